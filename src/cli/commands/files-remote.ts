/**
 * `files volumes` and `files ls` against a running appliance (`--url`, or SHADOWVAULT_URL without --store): the
 * same JSON as the local commands, from the appliance's item-level restore routes (docs/API.md). The point is
 * resolved like `restore --url` does (latest, an id or a unique prefix), the disk by index or name.
 */
import { SvError } from '../../errors/index.js';
import { remoteClient, sourceIdByName } from '../remote.js';
import { remoteDisk, remotePoints, resolveRemotePoint } from '../remote-store.js';
import type { CliIo } from '../command.js';

export interface RemoteFilesArgs {
  readonly ref: string;
  readonly url?: string;
  readonly 'token-file'?: string;
  readonly store?: string;
  readonly disk?: string;
}

/**
 * GET `.../sources/ID/points/POINT/disks/DISK/volumes` + `tail` on the appliance (`tail`: '' for the volumes,
 * `/VOLUME/files?path=...` for a listing).
 */
export async function remoteFiles<T>(a: RemoteFilesArgs, usage: string, io: CliIo, tail: string): Promise<T> {
  if (a.store !== undefined) throw new SvError('SV_ERR_CLI_BAD_USAGE', `--store and --url exclude each other\nusage: ${usage}`);
  const at = a.ref.indexOf('@');
  const source = at < 0 ? a.ref : a.ref.slice(0, at);
  if (!source) throw new SvError('SV_ERR_CLI_BAD_USAGE', `expected SOURCE[@POINT]\nusage: ${usage}`);
  const api = remoteClient(a, io.env);
  const sourceId = await sourceIdByName(api, source);
  const point = resolveRemotePoint(await remotePoints(api, sourceId), source, at < 0 ? undefined : a.ref.slice(at + 1));
  const disk = remoteDisk(point, a.disk);
  const e = encodeURIComponent;
  return api.request<T>('GET', `api/v1/sources/${e(sourceId)}/points/${e(point.id)}/disks/${e(disk.name)}/volumes${tail}`);
}
