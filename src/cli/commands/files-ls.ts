/** `shadowvault files ls SOURCE[@POINT] [--disk N] [--volume V] [PATH] [-l] [--json]`: a directory of a point's file system. */
import { parseCommandArgs, printJson } from '../args.js';
import type { Command } from '../command.js';
import { SvError } from '../../errors/index.js';
import { listPath, type Listing, type ListedEntry } from '../../files/listing.js';
import { isRemote, REMOTE_OPTIONS } from '../remote-options.js';
import { displayName, SESSION_OPTIONS, shortTime, withSession } from './files-common.js';

const usage = 'shadowvault files ls SOURCE[@POINT] [PATH] [--disk N] [--volume V] [-l] [--store DIR|URL [--state-dir DIR] | --url URL [--token-file FILE]] [--json]';

/** What `files ls --json` prints (locally and from the appliance's route alike). */
type LsResult = Listing & { source: string; point: string; disk: number; volume: number; fs: string };

const TYPE_CHAR: Record<ListedEntry['type'], string> = { file: '-', directory: 'd', symlink: 'l', other: '?' };

function line(e: ListedEntry, long: boolean): string {
  const size = e.type === 'directory' ? '-' : String(e.size);
  const name = `${displayName(e.name)}${e.type === 'symlink' && e.target !== undefined ? ` -> ${displayName(e.target)}` : ''}`;
  const extra = long ? `  ${shortTime(e.created).padEnd(19)}  ${e.mode !== undefined ? `mode ${(e.mode & 0o7777).toString(8).padStart(4, '0')}` : e.attributes !== undefined ? `attr 0x${e.attributes.toString(16)}` : ''}${e.dosName ? `  (${e.dosName})` : ''}` : '';
  let out = `${TYPE_CHAR[e.type]} ${size.padStart(14)}  ${shortTime(e.modified).padEnd(19)}${extra}  ${name}\n`;
  for (const s of e.streams ?? []) out += `  ${' '.repeat(14)}  ${''.padEnd(19)}  ${displayName(e.name)}:${displayName(s.name)} (stream, ${s.size} bytes)\n`;
  return out;
}

export const filesLsCommand: Command = {
  name: 'files ls',
  summary: 'List a directory of a recovery point\'s file system (name, type, size, times; named streams with -l)',
  usage,
  async run(args, io) {
    const { values, positionals } = parseCommandArgs(args, { ...SESSION_OPTIONS, ...REMOTE_OPTIONS, long: { type: 'boolean', short: 'l' } }, usage);
    if (positionals.length < 1 || positionals.length > 2) throw new SvError('SV_ERR_CLI_BAD_USAGE', `expected SOURCE[@POINT] [PATH]\nusage: ${usage}`);
    const long = values.long === true;
    const print = (r: LsResult, note?: string): number => {
      if (values.json) {
        printJson(io, r);
        return 0;
      }
      if (note) io.stderr.write(note);
      for (const e of r.entries) io.stdout.write(line(e, long));
      return 0;
    };
    if (isRemote(values, io.env)) {
      if (values.volume !== undefined && !/^\d{1,4}$/.test(values.volume)) throw new SvError('SV_ERR_CLI_BAD_USAGE', `--volume must be an index (0, 1, ...), not ${JSON.stringify(values.volume)}\nusage: ${usage}`);
      const query = `path=${encodeURIComponent(positionals[1] ?? '/')}${long ? '&streams=true' : ''}`;
      const { remoteFiles } = await import('./files-remote.js'); // the appliance client, for --url only
      return print(await remoteFiles<LsResult>({ ref: positionals[0]!, ...values }, usage, io, `/${values.volume ?? 'auto'}/files?${query}`));
    }
    return withSession({ ref: positionals[0]!, store: values.store, 'state-dir': values['state-dir'], disk: values.disk, volume: values.volume }, 'files ls', usage, io, async (s, vol) => {
      const { volume, fs } = await s.pick(vol);
      const listing = await listPath(fs, positionals[1], long);
      const note = vol === undefined && s.table.volumes.length > 1 ? `(volume ${volume.index}, ${fs.type}${fs.label ? ` "${fs.label}"` : ''}; --volume V for another)\n` : undefined;
      return print({ source: s.source, point: s.point, disk: s.disk, volume: volume.index, fs: fs.type, ...listing }, note);
    });
  },
};
