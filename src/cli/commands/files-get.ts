/**
 * `shadowvault files get SOURCE[@POINT] PATH... --out DIR [--force] [--streams]`: files and folders (recursively,
 * with their times) out of a recovery point, never outside DIR whatever names the file system holds (escaped:
 * README "Item-level restore"). `--tar -` writes a tar stream to stdout instead (`--tar FILE`: to a file).
 */
import { once } from 'node:events';
import { open, rename, rm, lstat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { parseCommandArgs, printJson } from '../args.js';
import type { CliIo, Command } from '../command.js';
import { SvError, wrapSystemError } from '../../errors/index.js';
import { getItems } from '../../files/extract.js';
import { normalizePath } from '../../files/listing.js';
import type { FileSystem } from '../../volumes/fs/types.js';
import { tempName } from '../../util/stale-temps.js';
import { formatBytes } from '../progress.js';
import { isRemote, REMOTE_OPTIONS } from '../remote-options.js';
import { displayName, index, SESSION_OPTIONS, withSession } from './files-common.js';

const usage = `shadowvault files get SOURCE[@POINT] PATH... --out DIR [--disk N] [--volume V] [--force] [--streams] [--store DIR|URL [--state-dir DIR] | --url URL [--token-file FILE]] [--json]
       shadowvault files get SOURCE[@POINT] PATH... --tar -|FILE [--disk N] [--volume V] [--force] [--url URL [--token-file FILE]]`;

async function writeTar(fs: FileSystem, paths: string[], target: string, force: boolean, io: CliIo): Promise<{ bytes: number; skipped: Array<{ path: string; reason: string }> }> {
  const skipped: Array<{ path: string; reason: string }> = [];
  const { tarItems } = await import('../../files/tar.js'); // loaded for --tar only (a new process's start)
  const chunks = tarItems(fs, paths, { onSkip: (path, reason) => skipped.push({ path, reason }) });
  let bytes = 0;
  if (target === '-') {
    // A reader that stops early (`| head`, `| tar t` on an error) closes the pipe: stop quietly on EPIPE.
    let broken: NodeJS.ErrnoException | undefined;
    const onError = (err: NodeJS.ErrnoException): void => { broken = err; };
    io.stdout.on('error', onError);
    try {
      for await (const c of chunks) {
        if (broken) break;
        bytes += c.length;
        if (!io.stdout.write(c)) await once(io.stdout, 'drain').catch(() => undefined); // rejects on 'error': `broken` says which
      }
    } finally {
      io.stdout.off('error', onError);
    }
    if (broken && broken.code !== 'EPIPE') throw wrapSystemError(broken, 'write the tar stream to stdout');
    return { bytes, skipped };
  }
  if (!force && (await lstat(target).then(() => true, () => false))) throw new SvError('SV_ERR_FILES_EXISTS', `${target} exists (ask to overwrite it with --force)`, { path: target });
  const tmp = join(dirname(target), tempName(basename(target)));
  const fh = await open(tmp, 'wx').catch((err: unknown) => { throw wrapSystemError(err, `create ${target}`); });
  try {
    for await (const c of chunks) {
      await fh.write(c, 0, c.length, bytes);
      bytes += c.length;
    }
    await fh.sync();
    await fh.close();
    await rename(tmp, target);
  } catch (err) {
    await fh.close().catch(() => undefined);
    await rm(tmp, { force: true });
    throw wrapSystemError(err, `write ${target}`);
  }
  return { bytes, skipped };
}

export const filesGetCommand: Command = {
  name: 'files get',
  summary: 'Restore files and folders of a recovery point into a folder (or as a tar stream), keeping times',
  usage,
  async run(args, io) {
    const { values, positionals } = parseCommandArgs(args, {
      ...SESSION_OPTIONS, ...REMOTE_OPTIONS, out: { type: 'string' }, tar: { type: 'string' }, force: { type: 'boolean' }, streams: { type: 'boolean' },
    }, usage);
    if (positionals.length < 2) throw new SvError('SV_ERR_CLI_BAD_USAGE', `expected SOURCE[@POINT] PATH...\nusage: ${usage}`);
    if ((values.out === undefined) === (values.tar === undefined)) throw new SvError('SV_ERR_CLI_BAD_USAGE', `give --out DIR or --tar -|FILE\nusage: ${usage}`);
    if (values.tar !== undefined && values.streams) throw new SvError('SV_ERR_CLI_BAD_USAGE', '--streams writes name:stream files into --out; tar archives carry the main data only');
    const paths = positionals.slice(1).map(normalizePath);
    const run = async (fs: FileSystem, at: { source: string; point: string; disk: number; volume: number }): Promise<number> => {
      if (values.tar !== undefined) {
        const r = await writeTar(fs, paths, values.tar, values.force === true, io);
        for (const k of r.skipped) io.stderr.write(`shadowvault: skipped ${displayName(k.path)}: ${k.reason}\n`);
        if (values.tar !== '-') {
          if (values.json) printJson(io, { ...at, tar: values.tar, ...r });
          else io.stdout.write(`wrote ${values.tar} (${formatBytes(r.bytes)})\n`);
        }
        return 0;
      }
      const r = await getItems(fs, paths, { out: values.out!, force: values.force === true, streams: values.streams === true });
      if (values.json) printJson(io, { ...at, ...r });
      else {
        io.stdout.write(`restored ${r.files} file(s), ${r.directories} folder(s)${r.symlinks ? `, ${r.symlinks} symbolic link(s)` : ''}${r.streams ? `, ${r.streams} stream(s)` : ''} (${formatBytes(r.bytes)}) from ${at.source}@${at.point} volume ${at.volume} into ${r.out} in ${(r.durationMs / 1000).toFixed(2)} s\n`);
        if (r.renamedCount) io.stdout.write(`  ${r.renamedCount} name(s) escaped (not valid as file names here), e.g. ${r.renamed.slice(0, 3).map((x) => `${displayName(x.path)} -> ${x.as}`).join(', ')}\n`);
        for (const k of r.skipped) io.stdout.write(`  skipped ${displayName(k.path)}: ${k.reason}\n`);
      }
      return 0;
    };
    if (isRemote(values, io.env)) {
      // The appliance client is loaded only here: a run on a local store does not pay for it.
      const { pickRemoteVolume, remoteDiskOf, remoteFs, remoteVolumes } = await import('./files-remote.js');
      const d = await remoteDiskOf({ ref: positionals[0]!, ...values }, usage, io);
      const v = pickRemoteVolume(d, await remoteVolumes(d), index(values.volume, '--volume', usage));
      return run(remoteFs(d, v), { source: d.source, point: d.point, disk: d.disk, volume: v.index });
    }
    return withSession({ ref: positionals[0]!, store: values.store, 'state-dir': values['state-dir'], disk: values.disk, volume: values.volume }, 'files get', usage, io, async (s, vol) => {
      const { volume, fs } = await s.pick(vol);
      return run(fs, { source: s.source, point: s.point, disk: s.disk, volume: volume.index });
    });
  },
};
