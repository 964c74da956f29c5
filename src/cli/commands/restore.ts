/**
 * `shadowvault restore NAME[@POINT] --disk N --out PATH [--format F] [--force]`: a point's disk to an image.
 * With `--url` (a running appliance): `--out PATH` downloads the disk image to this machine; `--target PATH`
 * has the appliance restore it on its side (under one of its restore roots), as a job that is awaited.
 * A whole VM (issue 14): `--config-to DIR` writes the point's VM configuration files and every disk into DIR
 * (src/sync/restore-vm.ts); `--to-host --import` writes them on the VM's host and imports the VM there
 * (Hyper-V: Import-VM), through the agent (src/appliance/vm-import.ts).
 */
import { basename } from 'node:path';
import { parseCommandArgs, printJson } from '../args.js';
import type { CliIo, Command } from '../command.js';
import type { Job } from '../../appliance/model.js';
import { SvError } from '../../errors/index.js';
import { closePool } from '../../pool/index.js';
import { restore, restoreVm } from '../../sync/index.js';
import { formatBytes, progressBar } from '../progress.js';
import { STORE_OPTIONS, withCliStore } from '../store-open.js';
import { REMOTE_OPTIONS, remoteClient, sourceIdByName } from '../remote.js';
import { downloadImage, isRemote, remoteDisk, remotePoints, resolveRemotePoint, summaryOf, waitRemoteJob } from '../remote-store.js';

const usage = `shadowvault restore NAME[@POINT] --out PATH [--store DIR|URL] [--state-dir DIR] [--disk N] [--format vhdx|vhd|raw] [--force] [--json]
       shadowvault restore NAME[@POINT] --url URL --out PATH [--disk N|NAME] [--format F] [--force] [--json] [--token-file FILE]
       shadowvault restore NAME[@POINT] --url URL --target PATH [--disk N|NAME] [--format F] [--json]   (restored on the appliance)
       shadowvault restore NAME[@POINT] --url URL --to-host [--disk N|NAME] [--json]   (a VM source: back to the VM's host, next to its disks)
       shadowvault restore NAME[@POINT] --config-to DIR [--store DIR|URL] [--state-dir DIR] [--force] [--json]   (a whole VM: configuration files + every disk into DIR)
       shadowvault restore NAME[@POINT] --url URL --to-host --import [--json]   (a whole VM imported on its host: Hyper-V Import-VM)
       (--url: also SHADOWVAULT_URL; token from SHADOWVAULT_TOKEN, --token-file or the local admin-token file)`;
const FORMATS = ['vhdx', 'vhd', 'raw'] as const;
type Format = (typeof FORMATS)[number];

interface Values {
  store?: string; 'state-dir'?: string; disk?: string; out?: string; target?: string; format?: string; force?: boolean; json?: boolean; url?: string; 'token-file'?: string; 'to-host'?: boolean;
  'config-to'?: string; import?: boolean;
}

export const restoreCommand: Command = {
  name: 'restore',
  summary: 'Restore one disk of a recovery point (@latest by default) to a new VHDX, VHD or raw image',
  usage,
  async run(args, io) {
    const { values, positionals } = parseCommandArgs(args, {
      ...STORE_OPTIONS, disk: { type: 'string' }, out: { type: 'string' }, target: { type: 'string' }, format: { type: 'string' }, force: { type: 'boolean' }, json: { type: 'boolean' }, 'to-host': { type: 'boolean' },
      'config-to': { type: 'string' }, import: { type: 'boolean' },
      ...REMOTE_OPTIONS,
    }, usage);
    if (positionals.length !== 1) throw new SvError('SV_ERR_CLI_BAD_USAGE', `expected NAME[@POINT]\nusage: ${usage}`);
    if (values.format && !(FORMATS as readonly string[]).includes(values.format)) throw new SvError('SV_ERR_CLI_BAD_USAGE', `--format must be one of ${FORMATS.join(', ')}`);
    const [source, point] = positionals[0]!.split('@', 2) as [string, string | undefined];
    if (values.import && !values['to-host']) throw new SvError('SV_ERR_CLI_BAD_USAGE', `--import goes with --to-host (a whole VM imported on its host)\nusage: ${usage}`);
    if (values['config-to'] !== undefined && (values.out !== undefined || values.target !== undefined || values['to-host'] || values.disk !== undefined || values.format !== undefined)) {
      throw new SvError('SV_ERR_CLI_BAD_USAGE', `--config-to DIR restores the whole VM (configuration + every disk in its own format): no --out, --target, --to-host, --disk or --format\nusage: ${usage}`);
    }
    if (isRemote(values, io.env)) return remoteRestore(values, source, point, io);
    if (values['config-to'] !== undefined) return localRestoreVm(values, values['config-to'], source, point, io);
    if (values.target !== undefined || values['to-host']) throw new SvError('SV_ERR_CLI_BAD_USAGE', `--target and --to-host restore through an appliance: it needs --url (locally use --out)\nusage: ${usage}`);
    if (!values.out) throw new SvError('SV_ERR_CLI_BAD_USAGE', `--out PATH is required\nusage: ${usage}`);
    const disk = values.disk === undefined ? 0 : Number(values.disk);
    if (!Number.isSafeInteger(disk) || disk < 0) throw new SvError('SV_ERR_CLI_BAD_USAGE', `--disk must be a disk index (0, 1, ...), not ${values.disk}`);
    const bar = progressBar(io, 'restore', !values.json);
    try {
      const r = await withCliStore(values, io, (store) => restore({
        store, source, point, disk, out: values.out!, format: values.format as Format | undefined,
        force: values.force === true, progress: bar ? (p) => bar.update(p) : undefined,
      }));
      bar?.done();
      if (values.json) printJson(io, r);
      else io.stdout.write(`restored ${r.source}@${r.point} disk ${r.disk} to ${r.out} (${r.format}, ${formatBytes(r.virtualSize)}) in ${(r.durationMs / 1000).toFixed(2)} s\n`);
      return 0;
    } finally {
      await closePool();
    }
  },
};

/** `restore --config-to DIR` on a local store: the whole VM as files. */
async function localRestoreVm(values: Values, dir: string, source: string, point: string | undefined, io: CliIo): Promise<number> {
  const bar = progressBar(io, 'restore', !values.json);
  try {
    const r = await withCliStore(values, io, (store) => restoreVm({ store, source, point, dir, force: values.force === true, progress: bar ? (p) => bar.update(p) : undefined }));
    bar?.done();
    if (values.json) printJson(io, r);
    else {
      io.stdout.write(`restored ${r.source}@${r.point} as a whole VM to ${r.dir}: configuration ${r.configuration.format} ${r.configuration.version}${r.configuration.simulated ? ' (SIMULATION)' : ''} (${r.configuration.files.join(', ')}), ${r.disks.length} disk(s) (${r.disks.map((d) => basename(d.out)).join(', ')}) in ${(r.durationMs / 1000).toFixed(2)} s\n`);
    }
    return 0;
  } finally {
    await closePool();
  }
}

/** `restore --url`: download (`--out`) or restore on the appliance (`--target`). */
async function remoteRestore(values: Values, source: string, pointRef: string | undefined, io: CliIo): Promise<number> {
  if (values['to-host']) return values.import ? importOnHost(values, source, pointRef, io) : restoreToHost(values, source, pointRef, io);
  if (values['config-to'] !== undefined) {
    throw new SvError('SV_ERR_CLI_BAD_USAGE', `--config-to DIR reads a local store (--store); through an appliance use --target DIR without --disk (the appliance writes the whole VM, configuration files included, into DIR on its side) or --to-host --import\nusage: ${usage}`);
  }
  if ((values.out === undefined) === (values.target === undefined)) throw new SvError('SV_ERR_CLI_BAD_USAGE', `with --url give either --out PATH (download here) or --target PATH (restore on the appliance)\nusage: ${usage}`);
  if (values.store !== undefined) throw new SvError('SV_ERR_CLI_BAD_USAGE', `--store and --url exclude each other\nusage: ${usage}`);
  if (values.target !== undefined && values.force) throw new SvError('SV_ERR_CLI_BAD_USAGE', '--force applies to --out only (the appliance never overwrites a restore target it did not create)');
  const t0 = Date.now();
  const api = remoteClient(values, io.env);
  const sourceId = await sourceIdByName(api, source);
  const point = resolveRemotePoint(await remotePoints(api, sourceId), source, pointRef);
  const bar = progressBar(io, 'restore', !values.json);
  const onProgress = bar ? (bytesDone: number, bytesTotal: number) => bar.update({ bytesDone, bytesTotal }) : undefined;
  if (values.target !== undefined) {
    const disk = values.disk === undefined ? undefined : remoteDisk(point, values.disk);
    const body = { target: values.target, ...(disk ? { disk: disk.name } : {}), ...(values.format ? { format: values.format } : {}) };
    const first = await api.request<Job>('POST', `api/v1/sources/${encodeURIComponent(sourceId)}/points/${encodeURIComponent(point.id)}/restore`, body);
    const job = await waitRemoteJob(api, first, onProgress);
    bar?.done();
    const res = (job.result ?? {}) as { bytesWritten?: number; files?: string[] };
    const r = { source, point: point.id, disk: disk?.index ?? null, target: values.target, format: values.format ?? 'raw', files: res.files ?? [], bytesWritten: res.bytesWritten ?? 0, job: job.id, durationMs: Date.now() - t0 };
    if (values.json) printJson(io, r);
    else io.stdout.write(`restored ${source}@${point.id} ${disk ? `disk ${disk.index} (${disk.name})` : 'all disks'} on the appliance to ${r.files.join(', ') || r.target} (${r.format}, ${formatBytes(r.bytesWritten)}) in ${(r.durationMs / 1000).toFixed(2)} s\n`);
    return 0;
  }
  const out = values.out!;
  const disk = remoteDisk(point, values.disk);
  const summary = summaryOf(point, source);
  const own = summary.disks?.[disk.index]?.format;
  const format: Format = (values.format as Format | undefined) ?? ((FORMATS as readonly string[]).includes(own ?? '') ? (own as Format) : 'raw');
  const bytes = await downloadImage(api, { sourceId, pointId: point.id, disk: disk.name, format, out, force: values.force === true }, onProgress);
  bar?.done();
  const virtualSize = summary.disks?.[disk.index]?.virtualSize ?? point.disks[disk.index]?.virtualSize ?? 0;
  const r = { source, point: point.id, disk: disk.index, out, format, virtualSize, bytesWritten: bytes, durationMs: Date.now() - t0 };
  if (values.json) printJson(io, r);
  else io.stdout.write(`restored ${r.source}@${r.point} disk ${r.disk} to ${r.out} (${r.format}, ${formatBytes(r.virtualSize)}) in ${(r.durationMs / 1000).toFixed(2)} s\n`);
  return 0;
}

/** `restore --url --to-host --import`: the whole VM written on its host and imported there (a job, awaited). */
async function importOnHost(values: Values, source: string, pointRef: string | undefined, io: CliIo): Promise<number> {
  if (values.out !== undefined || values.target !== undefined || values.format !== undefined || values.force || values.disk !== undefined) {
    throw new SvError('SV_ERR_CLI_BAD_USAGE', `--to-host --import restores the whole VM (configuration + every disk): no --out, --target, --format, --force or --disk\nusage: ${usage}`);
  }
  const t0 = Date.now();
  const api = remoteClient(values, io.env);
  const sourceId = await sourceIdByName(api, source);
  const point = resolveRemotePoint(await remotePoints(api, sourceId), source, pointRef);
  const bar = progressBar(io, 'restore', !values.json);
  const first = await api.request<Job>('POST', `api/v1/sources/${encodeURIComponent(sourceId)}/points/${encodeURIComponent(point.id)}/restore`, { toHost: true, import: true });
  const job = await waitRemoteJob(api, first, bar ? (bytesDone, bytesTotal) => bar.update({ bytesDone, bytesTotal }) : undefined);
  bar?.done();
  const res = (job.result ?? {}) as { host?: string; folder?: string; vmId?: string; name?: string; bytes?: number; files?: string[] };
  const r = { source, point: point.id, host: res.host ?? null, folder: res.folder ?? null, vmId: res.vmId ?? null, name: res.name ?? null, files: res.files ?? [], bytesWritten: res.bytes ?? 0, job: job.id, durationMs: Date.now() - t0 };
  if (values.json) printJson(io, r);
  else io.stdout.write(`imported ${source}@${point.id} on ${r.host} as VM ${r.name} (${r.vmId}) from ${r.folder} (${r.files.length} files, ${formatBytes(r.bytesWritten)}) in ${(r.durationMs / 1000).toFixed(2)} s\n`);
  return 0;
}

/** `restore --url --to-host`: a VM source's disk back to the VM's host (a job on the appliance, awaited). */
async function restoreToHost(values: Values, source: string, pointRef: string | undefined, io: CliIo): Promise<number> {
  if (values.out !== undefined || values.target !== undefined || values.format !== undefined || values.force) {
    throw new SvError('SV_ERR_CLI_BAD_USAGE', `--to-host writes a raw image next to the VM's disks: no --out, --target, --format or --force\nusage: ${usage}`);
  }
  const t0 = Date.now();
  const api = remoteClient(values, io.env);
  const sourceId = await sourceIdByName(api, source);
  const point = resolveRemotePoint(await remotePoints(api, sourceId), source, pointRef);
  const disk = remoteDisk(point, values.disk);
  const bar = progressBar(io, 'restore', !values.json);
  const first = await api.request<Job>('POST', `api/v1/sources/${encodeURIComponent(sourceId)}/points/${encodeURIComponent(point.id)}/restore`, { toHost: true, disk: disk.name });
  const job = await waitRemoteJob(api, first, bar ? (bytesDone, bytesTotal) => bar.update({ bytesDone, bytesTotal }) : undefined);
  bar?.done();
  const res = (job.result ?? {}) as { host?: string; path?: string; bytes?: number };
  const r = { source, point: point.id, disk: disk.index, host: res.host ?? null, path: res.path ?? null, bytesWritten: res.bytes ?? 0, job: job.id, durationMs: Date.now() - t0 };
  if (values.json) printJson(io, r);
  else io.stdout.write(`restored ${source}@${point.id} disk ${disk.index} (${disk.name}) to ${r.host}:${r.path} (raw, ${formatBytes(r.bytesWritten)}) in ${(r.durationMs / 1000).toFixed(2)} s\n`);
  return 0;
}
