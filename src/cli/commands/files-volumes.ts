/** `shadowvault files volumes SOURCE[@POINT] [--disk N] [--json]`: the volumes of a point's disk and their file systems. */
import { parseCommandArgs, printJson } from '../args.js';
import type { Command } from '../command.js';
import { SvError } from '../../errors/index.js';
import { formatBytes } from '../progress.js';
import type { VolumeListing } from '../../files/browse.js';
import { REMOTE_OPTIONS } from '../remote.js';
import { isRemote } from '../remote-store.js';
import { SESSION_OPTIONS, withSession } from './files-common.js';
import { remoteFiles } from './files-remote.js';

const usage = 'shadowvault files volumes SOURCE[@POINT] [--disk N] [--store DIR|URL [--state-dir DIR] | --url URL [--token-file FILE]] [--json]';

/** What `files volumes --json` prints (locally and from the appliance's route alike). */
interface VolumesResult {
  readonly source: string;
  readonly point: string;
  readonly disk: number;
  readonly scheme: string;
  readonly sectorSize: number;
  readonly warnings: readonly string[];
  readonly volumes: readonly VolumeListing[];
}

export const filesVolumesCommand: Command = {
  name: 'files volumes',
  summary: 'List the volumes (partitions) of a recovery point\'s disk: index, type, offset, size, file system, label',
  usage,
  async run(args, io) {
    const { values, positionals } = parseCommandArgs(args, { ...SESSION_OPTIONS, ...REMOTE_OPTIONS }, usage);
    if (positionals.length !== 1) throw new SvError('SV_ERR_CLI_BAD_USAGE', `expected SOURCE[@POINT]\nusage: ${usage}`);
    if (values.volume !== undefined) throw new SvError('SV_ERR_CLI_BAD_USAGE', `files volumes lists every volume; --volume is for ls, get and find\nusage: ${usage}`);
    const r: VolumesResult = isRemote(values, io.env)
      ? await remoteFiles<VolumesResult>({ ref: positionals[0]!, ...values }, usage, io, '')
      : await withSession({ ref: positionals[0]!, store: values.store, 'state-dir': values['state-dir'], disk: values.disk }, 'files volumes', usage, io, async (s) => ({
        source: s.source, point: s.point, disk: s.disk, scheme: s.table.scheme, sectorSize: s.table.sectorSize, warnings: s.table.warnings, volumes: await s.volumes(),
      }));
    if (values.json) {
      printJson(io, r);
      return 0;
    }
    io.stdout.write(`${r.source}@${r.point} disk ${r.disk}: ${r.scheme === 'none' ? 'no partition table' : r.scheme.toUpperCase()}, ${r.volumes.length} volume(s)\n`);
    for (const w of r.warnings) io.stdout.write(`  warning: ${w}\n`);
    for (const v of r.volumes) {
      const fs = v.fs ? `${v.fs.type}${v.fs.label ? ` "${v.fs.label}"` : ''} ${v.fs.uuid}` : `- (${v.error?.message ?? 'not readable'})`;
      io.stdout.write(`  ${String(v.index).padStart(3)}  ${v.typeName.padEnd(22)} offset ${String(v.offset).padStart(14)}  ${formatBytes(v.size).padStart(10)}  ${fs}${v.name ? `  [${v.name}]` : ''}\n`);
    }
    return 0;
  },
};
