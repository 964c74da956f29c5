/**
 * `shadowvault backup <image>... --store DIR --source NAME [--changed FILE]... [--format F]...`: a new recovery
 * point. `--format raw|vhd|vhdx|auto` given once applies to every image; given once per image, to each in order.
 * `shadowvault backup --source NAME --url URL`: a backup job on a running appliance (it reads the source's
 * configured disks), awaited; prints the new point like a local backup.
 */
import { readFile } from 'node:fs/promises';
import { inputFormat, parseCommandArgs, printJson } from '../args.js';
import type { CliIo, Command } from '../command.js';
import { SvError, wrapSystemError } from '../../errors/index.js';
import type { DiskFormat } from '../../formats/types.js';
import { closePool } from '../../pool/index.js';
import { backup, check, type BackupResult } from '../../sync/index.js';
import { fileRefs } from '../../sources/file.js';
import { formatBytes, progressBar } from '../progress.js';
import { STORE_OPTIONS, withCliStore } from '../store-open.js';
import { REMOTE_OPTIONS, remoteClient, runRemoteJob, sourceIdByName } from '../remote.js';
import { isRemote } from '../remote-store.js';

const usage = `shadowvault backup <image>... --source NAME [--store DIR|URL] [--state-dir DIR] [--changed FILE]... [--format raw|vhd|vhdx|auto]... [--consistency crash|application|offline] [--change-ref REF] [--block-size BYTES] [--json]
       shadowvault backup --source NAME --url URL [--token-file FILE] [--json]   (a job on the appliance; token also from SHADOWVAULT_TOKEN)`;

export async function readChangeList(path: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw wrapSystemError(err, `read change list ${path}`);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new SvError('SV_ERR_SYNC_BAD_CHANGE_LIST', `change list ${path}: not valid JSON (${(err as Error).message})`, { path });
  }
}

export function printPoint(io: CliIo, r: BackupResult): void {
  io.stdout.write(
    `point ${r.source}@${r.id} (${r.kind}, ${r.consistency}) at ${r.time}\n` +
      `  read ${formatBytes(r.bytesRead)} of ${formatBytes(r.bytesTotal)}, changed ${formatBytes(r.bytesChanged)} (${r.blocksChanged} blocks), ` +
      `new ${formatBytes(r.bytesNew)}, stored ${formatBytes(r.bytesStored)}${r.blocksRepaired ? `, repaired ${r.blocksRepaired} bad blocks` : ''}, ${(r.durationMs / 1000).toFixed(2)} s\n`,
  );
  const how = [
    r.bytesSent ? `sent ${formatBytes(r.bytesSent)}` : '',
    r.pauseMs !== undefined ? `VM paused ${Math.round(r.pauseMs)} ms` : '',
    r.freezeMs !== undefined ? `guest frozen ${Math.round(r.freezeMs)} ms` : '',
    r.reasons?.length ? `${r.consistency} because: ${r.reasons.join('; ')}` : '',
  ].filter(Boolean);
  if (how.length) io.stdout.write(`  ${how.join(', ')}\n`);
}

const CONSISTENCY = ['crash', 'application', 'offline'] as const;

export function backupLike(isCheck: boolean): Command {
  const name = isCheck ? 'check' : 'backup';
  const use = isCheck ? `shadowvault check <image>... --source NAME [--store DIR|URL] [--state-dir DIR] [--format raw|vhd|vhdx|auto]... [--consistency C] [--json]
       shadowvault check --source NAME --url URL [--token-file FILE] [--json]` : usage;
  return {
    name,
    summary: isCheck
      ? 'Consistency check: compare every block of the source with its replica, repair the store, create a point'
      : 'Back up disk images of a data source into the volume store (a new recovery point)',
    usage: use,
    async run(args, io) {
      const { values, positionals } = parseCommandArgs(args, {
        ...STORE_OPTIONS, source: { type: 'string' }, changed: { type: 'string', multiple: true }, consistency: { type: 'string' },
        'change-ref': { type: 'string' }, 'block-size': { type: 'string' }, format: { type: 'string', multiple: true }, json: { type: 'boolean' }, ...REMOTE_OPTIONS,
      }, use);
      if (isRemote(values, io.env)) return remoteBackup(name, values, positionals, io, use);
      if (!positionals.length) throw new SvError('SV_ERR_CLI_BAD_USAGE', `expected at least one image\nusage: ${use}`);
      if (!values.source) throw new SvError('SV_ERR_CLI_BAD_USAGE', `--source NAME is required\nusage: ${use}`);
      if (values.consistency && !(CONSISTENCY as readonly string[]).includes(values.consistency)) {
        throw new SvError('SV_ERR_CLI_BAD_USAGE', `--consistency must be one of ${CONSISTENCY.join(', ')}`);
      }
      const files = (values.changed ?? []) as string[];
      if (isCheck && files.length) throw new SvError('SV_ERR_CLI_BAD_USAGE', 'check reads every block: --changed does not apply');
      if (files.length && files.length !== positionals.length) {
        throw new SvError('SV_ERR_CLI_BAD_USAGE', `give one --changed FILE per image (${positionals.length} images, ${files.length} files)`);
      }
      const formats = imageFormats(values.format ?? [], positionals.length, use);
      const changed = files.length ? await Promise.all(files.map(readChangeList)) : undefined;
      const blockSize = values['block-size'] ? Number(values['block-size']) : undefined;
      const bar = progressBar(io, name, !values.json);
      try {
        const source = values.source;
        const r = await withCliStore(values, io, (store) => {
          const opts = {
            store, source, disks: fileRefs(positionals, { formats }),
            consistency: values.consistency as (typeof CONSISTENCY)[number] | undefined, changeRef: values['change-ref'] ?? null, blockSize,
            progress: bar ? (p: { bytesDone: number; bytesTotal: number }) => bar.update(p) : undefined,
          };
          return isCheck ? check(opts) : backup({ ...opts, changed: changed as Array<Array<[number, number]>> | undefined });
        }, true);
        bar?.done();
        if (values.json) printJson(io, r);
        else printPoint(io, r);
        return 0;
      } finally {
        await closePool();
      }
    },
  };
}

/** `--format` given once (every image) or once per image (in order); null: the name and the content decide. */
function imageFormats(given: readonly string[], images: number, use: string): Array<DiskFormat | null> | undefined {
  if (!given.length) return undefined;
  if (given.length !== 1 && given.length !== images) {
    throw new SvError('SV_ERR_CLI_BAD_USAGE', `give --format once (for every image) or once per image (${images} images, ${given.length} formats)\nusage: ${use}`);
  }
  const formats = given.map((f) => inputFormat(f, '--format', use) ?? null);
  return given.length === 1 ? Array.from({ length: images }, () => formats[0]!) : formats;
}

type Values = { source?: string; store?: string; 'state-dir'?: string; changed?: string[]; format?: string[]; consistency?: string; 'change-ref'?: string; 'block-size'?: string; json?: boolean; url?: string; 'token-file'?: string };

/** `backup|check --url`: a job on the appliance for the named source, awaited; prints the new point. */
async function remoteBackup(kind: string, values: Values, positionals: string[], io: CliIo, use: string): Promise<number> {
  if (positionals.length) {
    throw new SvError('SV_ERR_CLI_BAD_USAGE', `with --url the appliance ${kind === 'check' ? 'checks' : 'backs up'} the source's configured disks: give no images (got ${positionals.join(' ')})${values.url === undefined ? '; SHADOWVAULT_URL is set: pass --store DIR to back up into a local store' : ''}\nusage: ${use}`, { images: positionals });
  }
  if (!values.source) throw new SvError('SV_ERR_CLI_BAD_USAGE', `--source NAME is required\nusage: ${use}`);
  const local = (['store', 'state-dir', 'changed', 'format', 'consistency', 'change-ref', 'block-size'] as const).filter((k) => values[k] !== undefined);
  if (local.length) throw new SvError('SV_ERR_CLI_BAD_USAGE', `--${local.join(', --')}: not with --url (the appliance's data source settings apply)\nusage: ${use}`, { options: local });
  const api = remoteClient(values, io.env);
  const sourceId = await sourceIdByName(api, values.source);
  const bar = progressBar(io, kind, !values.json);
  const job = await runRemoteJob(api, { kind, sourceId }, bar ? (bytesDone, bytesTotal) => bar.update({ bytesDone, bytesTotal }) : undefined);
  bar?.done();
  const { pointId, ...point } = (job.result ?? {}) as Record<string, unknown>;
  const r = (typeof point.id === 'string' ? point : { id: pointId, ...point }) as unknown as BackupResult;
  if (values.json) printJson(io, r);
  else printPoint(io, r);
  return 0;
}

export const backupCommand = backupLike(false);
