/**
 * The `files` commands against a running appliance (`--url`, or SHADOWVAULT_URL without --store): the same JSON
 * as the local commands, from the appliance's item-level restore routes (docs/API.md). The point is resolved
 * like `restore --url` does (latest, an id or a unique prefix), the disk by index or name. `volumes` and `ls`
 * print the routes' answers; `get` and `find` run the local walkers over a RemoteFileSystem (../remote-fs.ts);
 * `volume-restore` reads the volume's byte range of the raw disk image route.
 */
import { SvError, fromWire } from '../../errors/index.js';
import type { VolumeListing } from '../../files/browse.js';
import { remoteClient, sourceIdByName, type RemoteClient } from '../remote.js';
import { RemoteFileSystem } from '../remote-fs.js';
import { remoteDisk, remotePoints, resolveRemotePoint } from '../remote-store.js';
import type { CliIo } from '../command.js';

export interface RemoteFilesArgs {
  readonly ref: string;
  readonly url?: string;
  readonly 'token-file'?: string;
  readonly store?: string;
  readonly disk?: string;
}

/** A disk of a point on the appliance: names for output, and the routes' common prefix. */
export interface RemoteDisk {
  readonly api: RemoteClient;
  readonly source: string;
  readonly sourceId: string;
  readonly point: string;
  readonly disk: number;
  readonly diskName: string;
  /** `api/v1/sources/ID/points/P/disks/D` */
  readonly base: string;
}

export async function remoteDiskOf(a: RemoteFilesArgs, usage: string, io: CliIo): Promise<RemoteDisk> {
  if (a.store !== undefined) throw new SvError('SV_ERR_CLI_BAD_USAGE', `--store and --url exclude each other\nusage: ${usage}`);
  const at = a.ref.indexOf('@');
  const source = at < 0 ? a.ref : a.ref.slice(0, at);
  if (!source) throw new SvError('SV_ERR_CLI_BAD_USAGE', `expected SOURCE[@POINT]\nusage: ${usage}`);
  const api = remoteClient(a, io.env);
  const sourceId = await sourceIdByName(api, source);
  const point = resolveRemotePoint(await remotePoints(api, sourceId), source, at < 0 ? undefined : a.ref.slice(at + 1));
  const disk = remoteDisk(point, a.disk);
  const e = encodeURIComponent;
  return { api, source, sourceId, point: point.id, disk: disk.index, diskName: disk.name, base: `api/v1/sources/${e(sourceId)}/points/${e(point.id)}/disks/${e(disk.name)}` };
}

/**
 * GET `.../sources/ID/points/POINT/disks/DISK/volumes` + `tail` on the appliance (`tail`: '' for the volumes,
 * `/VOLUME/files?path=...` for a listing).
 */
export async function remoteFiles<T>(a: RemoteFilesArgs, usage: string, io: CliIo, tail: string): Promise<T> {
  const d = await remoteDiskOf(a, usage, io);
  return d.api.request<T>('GET', `${d.base}/volumes${tail}`);
}

/** The disk's volumes as the appliance lists them. */
export async function remoteVolumes(d: RemoteDisk): Promise<VolumeListing[]> {
  return (await d.api.request<{ volumes: VolumeListing[] }>('GET', `${d.base}/volumes`)).volumes;
}

/** Volume `index` (or, as locally, the only volume or the largest readable one) of a remote disk. */
export function pickRemoteVolume(d: RemoteDisk, volumes: readonly VolumeListing[], index: number | undefined): VolumeListing {
  const name = `${d.source}@${d.point} disk ${d.disk}`;
  if (index !== undefined) {
    const v = volumes.find((x) => x.index === index);
    if (!v) throw new SvError('SV_ERR_VOLUME_NOT_FOUND', `${name} has no volume ${index} (volumes: ${volumes.map((x) => x.index).join(', ') || 'none'})`, { volume: index, volumes: volumes.map((x) => x.index) });
    return v;
  }
  if (volumes.length === 1) return volumes[0]!;
  const readable = [...volumes].filter((v) => v.fs).sort((a, b) => b.size - a.size || a.index - b.index);
  if (readable[0]) return readable[0];
  throw new SvError('SV_ERR_VOLUME_NOT_FOUND', `${name} has no volume with a readable file system`, { volumes: volumes.map((x) => x.index) });
}

/** The file system of a listed volume (its coded error when the appliance could not open it). */
export function remoteFs(d: RemoteDisk, v: VolumeListing): RemoteFileSystem {
  if (!v.fs) {
    if (v.error) throw fromWire(v.error);
    throw new SvError('SV_ERR_VOLUME_UNSUPPORTED', `volume ${v.index} has no readable file system`, { volume: v.index });
  }
  return new RemoteFileSystem(d.api, `${d.base}/volumes/${v.index}`, v.fs);
}
