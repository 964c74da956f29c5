/**
 * restoreVm(): a whole VM of a point as files (`restore NAME[@POINT] --config-to DIR`): its configuration files
 * (config-files.ts; each named as the hypervisor named it, checked by src/hypervisor/config.ts), their
 * description `shadowvault-configuration.json`, and every disk of the point in its own format under its own
 * file name (when that name is not one plain path component: `disk<i>.<format>`), so that a Hyper-V
 * configuration finds its disks by name (Import-VM -VhdSourcePath DIR) and a QEMU description lists them.
 * DIR is created when missing; a file that exists is refused (SV_ERR_FORMAT_OUTPUT_EXISTS) unless `force`.
 * Configuration files are written temp + fsync + rename like the disks (formats/write.ts).
 */
import { lstat, mkdir, open, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { SvError, wrapSystemError } from '../errors/index.js';
import { checkConfigName, describeConfiguration, DESCRIPTION_FILE } from '../hypervisor/config.js';
import { ConfinedDir } from '../util/confined.js';
import { tempName } from '../util/stale-temps.js';
import { readConfiguration } from './config-files.js';
import { openStore } from './open-store.js';
import { restore } from './restore.js';
import type { CommonOptions, RestoreResult } from './types.js';

export interface RestoreVmOptions extends CommonOptions {
  readonly source: string;
  readonly point?: string;
  readonly dir: string;
  readonly force?: boolean;
}

export interface RestoreVmResult {
  readonly source: string;
  readonly point: string;
  readonly dir: string;
  readonly configuration: { readonly format: string; readonly version: string; readonly simulated: boolean; readonly files: string[] };
  readonly disks: ReadonlyArray<Pick<RestoreResult, 'disk' | 'out' | 'format' | 'virtualSize' | 'bytesWritten'>>;
  readonly durationMs: number;
}

/** The file name a restored disk gets (see the top comment). */
export function diskFileName(name: string, index: number, format: string): string {
  try {
    return checkConfigName(name, 'disk name');
  } catch {
    return `disk${index}.${format === 'raw' ? 'img' : format}`;
  }
}

/**
 * Write `data` as `<dir>/<name>` (a new file: an existing one is refused unless `force`): temp file, fsync,
 * rename, folder fsync. With `roots` (the appliance's restore roots) the folder is opened through
 * util/confined.ts (created when missing; no symbolic link followed below a root). Returns the path.
 */
export async function writeConfined(dir: string, name: string, data: Uint8Array, roots?: readonly string[], force = false): Promise<string> {
  const final = join(dir, checkConfigName(name, `file to write in ${dir}`));
  const folder = roots ? await ConfinedDir.open(dir, roots, { create: true }) : undefined;
  if (!folder) await mkdir(dir, { recursive: true }).catch((err: unknown) => { throw wrapSystemError(err, `create ${dir}`); });
  const at = (n: string): string => (folder ? folder.at(n) : join(dir, n));
  const tmp = tempName(name);
  try {
    const fh = await open(at(tmp), 'wx', 0o640);
    try {
      folder?.verifyOpened(fh.fd, tmp);
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    if (!force && (await lstat(at(name)).then(() => true, () => false))) {
      throw new SvError('SV_ERR_FORMAT_OUTPUT_EXISTS', `${final} exists${roots ? '' : ' (give --force to replace it)'}`, { path: final });
    }
    folder?.check();
    await rename(at(tmp), at(name));
    await folder?.sync();
    return final;
  } catch (err) {
    await unlink(at(tmp)).catch(() => undefined);
    throw err instanceof SvError ? err : wrapSystemError(err, `write ${final}`);
  } finally {
    await folder?.close();
  }
}

export async function restoreVm(opts: RestoreVmOptions): Promise<RestoreVmResult> {
  const t0 = Date.now();
  const store = await openStore(opts.store);
  const m = await store.resolvePoint(opts.source, opts.point);
  const config = await readConfiguration(store.ref, await store.loadIndex(), m, () => store.loadIndex());
  const names = m.disks.map((d) => diskFileName(d.name, d.index, d.format));
  const clash = names.find((n) => config.files.some((f) => f.name.toLowerCase() === n.toLowerCase()) || n === DESCRIPTION_FILE);
  if (clash) throw new SvError('SV_ERR_HYPERVISOR_BAD_CONFIGURATION', `point ${m.source}@${m.id}: disk file ${clash} has the name of a configuration file`, { name: clash });
  const force = opts.force === true;
  for (const f of config.files) await writeConfined(opts.dir, f.name, f.data, undefined, force);
  await writeConfined(opts.dir, DESCRIPTION_FILE, Buffer.from(`${JSON.stringify({ source: m.source, point: m.id, time: m.time, disks: names, ...describeConfiguration(config) }, null, 1)}\n`), undefined, force);
  const total = m.disks.reduce((n, d) => n + d.virtualSize, 0);
  let before = 0;
  const disks = [];
  for (const [i, d] of m.disks.entries()) {
    const r = await restore({
      store, source: m.source, point: m.id, disk: d.index, out: join(opts.dir, names[i]!), force, signal: opts.signal,
      progress: opts.progress ? (p) => opts.progress!({ bytesDone: before + p.bytesDone, bytesTotal: total }) : undefined,
    });
    before += d.virtualSize;
    disks.push({ disk: r.disk, out: r.out, format: r.format, virtualSize: r.virtualSize, bytesWritten: r.bytesWritten });
  }
  return {
    source: m.source, point: m.id, dir: opts.dir,
    configuration: { format: config.format, version: config.version, simulated: config.simulated, files: config.files.map((f) => f.name) },
    disks, durationMs: Date.now() - t0,
  };
}
