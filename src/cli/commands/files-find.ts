/** `shadowvault files find SOURCE[@POINT] PATTERN [--disk N] [--volume V] [--json]`: entries whose name matches a pattern. */
import { parseCommandArgs, printJson } from '../args.js';
import type { Command } from '../command.js';
import { SvError } from '../../errors/index.js';
import { findItems } from '../../files/find.js';
import { listedEntry, normalizePath, type ListedEntry } from '../../files/listing.js';
import { displayName, SESSION_OPTIONS, withSession } from './files-common.js';

const usage = `shadowvault files find SOURCE[@POINT] PATTERN [--disk N] [--volume V] [--under PATH] [--store DIR|URL] [--state-dir DIR] [--json]
       PATTERN: * ? [set] match within a name (case-insensitive on NTFS and FAT); with a '/' it matches the whole
       path ("/Users/*/Desktop/*.docx"), ** spans folders. Without --volume every readable volume is searched.`;

export const filesFindCommand: Command = {
  name: 'files find',
  summary: 'Find files and folders of a recovery point by name pattern (every readable volume unless --volume)',
  usage,
  async run(args, io) {
    const { values, positionals } = parseCommandArgs(args, { ...SESSION_OPTIONS, under: { type: 'string' } }, usage);
    if (positionals.length !== 2) throw new SvError('SV_ERR_CLI_BAD_USAGE', `expected SOURCE[@POINT] PATTERN\nusage: ${usage}`);
    const pattern = positionals[1]!;
    return withSession({ ref: positionals[0]!, store: values.store, 'state-dir': values['state-dir'], disk: values.disk, volume: values.volume }, 'files find', usage, io, async (s, vol) => {
      const found: Array<{ volume: number; path: string; entry: ListedEntry }> = [];
      const volumes = vol !== undefined ? [vol] : (await s.volumes()).filter((v) => v.fs).map((v) => v.index);
      if (vol === undefined && !volumes.length) await s.pick(); // throws the reason no volume is readable
      for (const index of volumes) {
        const fs = await s.fs(index);
        for await (const f of findItems(fs, pattern, normalizePath(values.under))) {
          if (values.json) found.push({ volume: index, path: f.path, entry: listedEntry(f.entry) });
          else io.stdout.write(`${volumes.length > 1 ? `volume ${index}  ` : ''}${displayName(f.path)}${f.entry.type === 'directory' ? '/' : ''}\n`);
        }
      }
      if (values.json) printJson(io, { source: s.source, point: s.point, disk: s.disk, pattern, found });
      return 0;
    });
  },
};
