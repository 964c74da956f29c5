/**
 * Which file-system reader opens a volume: each reader registers a probe (a cheap look at the volume's first
 * PROBE_BYTES; it may load its module first) and an opener; `openFileSystem` asks the probes in registration order and opens with the first
 * that recognises the bytes. Nothing recognised: SV_ERR_VOLUME_UNSUPPORTED naming what was found (signatures.ts:
 * LVM2 PV, XFS, ReFS, btrfs, LUKS, swap, BitLocker, exFAT, ...; "all zero"; else the first bytes in hex).
 * `openVolumeFs` also refuses partitions the table marks as LVM or Windows dynamic disk (LDM) before reading.
 *
 * Adding a reader: one `registerFs(probe, open)` line at the end of this file.
 */
import { SvError } from '../../errors/index.js';
import type { DiskImage } from '../../formats/types.js';
import type { Volume } from '../partitions/types.js';
import { looksLikeNtfs } from './ntfs/boot.js';
import { identifyVolume, IDENTIFY_BYTES } from './signatures.js';
import type { FileSystem, VolumeReader } from './types.js';
import { volumeReader } from './volume-reader.js';

/** Bytes read for probing: the ext superblock ends at 2048; boot sectors (FAT, NTFS) are the first 512. */
export const PROBE_BYTES = 4096;

export type FsProbe = (head: Buffer) => boolean | Promise<boolean>;
export type FsOpener = (vol: VolumeReader, opts?: { name?: string }) => Promise<FileSystem>;

const READERS: Array<{ probe: FsProbe; open: FsOpener }> = [];

export function registerFs(probe: FsProbe, open: FsOpener): void {
  READERS.push({ probe, open });
}

function unsupported(name: string, found: string, details: Record<string, unknown>): SvError {
  return new SvError('SV_ERR_VOLUME_UNSUPPORTED', `${name}: ${found}: not supported yet (item-level restore reads NTFS, ext2/3/4 and FAT12/16/32)`, { volume: name, found, ...details });
}

/** Open the file system of `vol` with the first reader whose probe recognises it. `name` is used in messages. */
export async function openFileSystem(vol: VolumeReader, opts: { name?: string } = {}): Promise<FileSystem> {
  const name = opts.name ?? `volume of ${vol.size} bytes`;
  const head = await vol.read(0, Math.min(PROBE_BYTES, vol.size));
  for (const r of READERS) if (await r.probe(head)) return r.open(vol, { name });
  const more = await vol.read(0, Math.min(IDENTIFY_BYTES, vol.size));
  const found = identifyVolume(more) ?? `no known file system (first bytes ${more.subarray(0, 16).toString('hex')})`;
  throw unsupported(name, found, { size: vol.size, head: more.subarray(0, 16).toString('hex') });
}

/** Open the file system of partition `volume` of `disk`; LVM and LDM partitions are refused without reading. */
export async function openVolumeFs(disk: DiskImage, volume: Volume, name = `${disk.info.path} volume ${volume.index}`): Promise<FileSystem> {
  if (volume.kind === 'lvm') throw unsupported(name, 'LVM2 physical volume (partition type)', { type: volume.type });
  if (volume.kind === 'ldm') throw unsupported(name, 'Windows dynamic disk (LDM) partition', { type: volume.type });
  return openFileSystem(volumeReader(disk, volume), { name });
}

// Each reader is loaded when a volume needs it (a new CLI process loads only the one it reads: start-up time);
// the ext and FAT probes too, when the probes before them did not recognise the volume (NTFS is asked first).
registerFs(looksLikeNtfs, async (v, o) => (await import('./ntfs/index.js')).openNtfs(v, o));
registerFs(async (head) => (await import('./ext/superblock.js')).looksLikeExt(head), async (v, o) => (await import('./ext/index.js')).openExt(v, o));
registerFs(async (head) => (await import('./fat/bpb.js')).looksLikeFat(head), async (v, o) => (await import('./fat/index.js')).openFat(v, o));
