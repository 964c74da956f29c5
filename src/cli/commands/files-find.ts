/** `shadowvault files find SOURCE[@POINT] PATTERN [--disk N] [--volume V] [--json]`: entries whose name matches a pattern. */
import { parseCommandArgs, printJson } from '../args.js';
import type { Command } from '../command.js';
import { SvError } from '../../errors/index.js';
import { findItems } from '../../files/find.js';
import { listedEntry, normalizePath, type ListedEntry } from '../../files/listing.js';
import type { FileSystem } from '../../volumes/fs/types.js';
import { REMOTE_OPTIONS } from '../remote.js';
import { isRemote } from '../remote-store.js';
import { displayName, index, SESSION_OPTIONS, withSession } from './files-common.js';
import { pickRemoteVolume, remoteDiskOf, remoteFs, remoteVolumes } from './files-remote.js';

const usage = `shadowvault files find SOURCE[@POINT] PATTERN [--disk N] [--volume V] [--under PATH] [--store DIR|URL [--state-dir DIR] | --url URL [--token-file FILE]] [--json]
       PATTERN: * ? [set] match within a name (case-insensitive on NTFS and FAT); with a '/' it matches the whole
       path ("/Users/*/Desktop/*.docx"), ** spans folders. Without --volume every readable volume is searched.`;

export const filesFindCommand: Command = {
  name: 'files find',
  summary: 'Find files and folders of a recovery point by name pattern (every readable volume unless --volume)',
  usage,
  async run(args, io) {
    const { values, positionals } = parseCommandArgs(args, { ...SESSION_OPTIONS, ...REMOTE_OPTIONS, under: { type: 'string' } }, usage);
    if (positionals.length !== 2) throw new SvError('SV_ERR_CLI_BAD_USAGE', `expected SOURCE[@POINT] PATTERN\nusage: ${usage}`);
    const pattern = positionals[1]!;
    /** Search `volumes` (index and file system, opened on demand) and print what matches. */
    const search = async (at: { source: string; point: string; disk: number }, volumes: number[], fsOf: (v: number) => Promise<FileSystem>): Promise<number> => {
      const found: Array<{ volume: number; path: string; entry: ListedEntry }> = [];
      for (const v of volumes) {
        const fs = await fsOf(v);
        for await (const f of findItems(fs, pattern, normalizePath(values.under))) {
          if (values.json) found.push({ volume: v, path: f.path, entry: listedEntry(f.entry) });
          else io.stdout.write(`${volumes.length > 1 ? `volume ${v}  ` : ''}${displayName(f.path)}${f.entry.type === 'directory' ? '/' : ''}\n`);
        }
      }
      if (values.json) printJson(io, { ...at, pattern, found });
      return 0;
    };
    if (isRemote(values, io.env)) {
      const d = await remoteDiskOf({ ref: positionals[0]!, ...values }, usage, io);
      const listed = await remoteVolumes(d);
      const vol = index(values.volume, '--volume', usage);
      const volumes = vol !== undefined ? [pickRemoteVolume(d, listed, vol)] : listed.filter((v) => v.fs);
      if (!volumes.length) remoteFs(d, pickRemoteVolume(d, listed, undefined)); // throws the reason no volume is readable
      return search({ source: d.source, point: d.point, disk: d.disk }, volumes.map((v) => v.index), async (i) => remoteFs(d, volumes.find((v) => v.index === i)!));
    }
    return withSession({ ref: positionals[0]!, store: values.store, 'state-dir': values['state-dir'], disk: values.disk, volume: values.volume }, 'files find', usage, io, async (s, vol) => {
      const volumes = vol !== undefined ? [vol] : (await s.volumes()).filter((v) => v.fs).map((v) => v.index);
      if (vol === undefined && !volumes.length) await s.pick(); // throws the reason no volume is readable
      return search({ source: s.source, point: s.point, disk: s.disk }, volumes, (i) => s.fs(i));
    });
  },
};
