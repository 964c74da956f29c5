/**
 * Which file-system reader opens a volume: each reader registers a probe (a cheap look at the volume's first
 * PROBE_BYTES) and an opener; the first probe that says yes wins. Adding a reader: one `registerFs` line
 * below. A volume no probe recognises is SV_ERR_VOLUME_UNSUPPORTED.
 */
import { SvError } from '../../errors/index.js';
import { openExt, probeExt } from './ext/index.js';
import { openFat, probeFat } from './fat/index.js';
import type { FileSystem, VolumeReader } from './types.js';

/** How much of the volume's start the probes see (ext's superblock ends at 2048; 4 KiB covers FAT and NTFS). */
export const PROBE_BYTES = 4096;

export type FsProbe = (head: Buffer) => boolean;
export type FsOpener = (vol: VolumeReader, opts?: { name?: string }) => Promise<FileSystem>;

const READERS: Array<{ probe: FsProbe; open: FsOpener }> = [];

export function registerFs(probe: FsProbe, open: FsOpener): void {
  READERS.push({ probe, open });
}

registerFs(probeExt, openExt);
registerFs(probeFat, openFat);

/** Open the file system of `vol` with the first reader whose probe recognises it. */
export async function openFileSystem(vol: VolumeReader, opts: { name?: string } = {}): Promise<FileSystem> {
  const head = await vol.read(0, Math.min(PROBE_BYTES, vol.size));
  for (const r of READERS) if (r.probe(head)) return r.open(vol, opts);
  throw new SvError('SV_ERR_VOLUME_UNSUPPORTED', `${opts.name ?? 'volume'}: no supported file system found (first bytes ${head.subarray(0, 16).toString('hex')})`, {
    path: opts.name, head: head.subarray(0, 16).toString('hex'),
  });
}
