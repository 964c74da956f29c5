/** `shadowvault files volume-restore SOURCE[@POINT] --volume V --out FILE [--disk N] [--force]`: one volume as a raw image. */
import { parseCommandArgs, printJson } from '../args.js';
import type { Command } from '../command.js';
import { SvError } from '../../errors/index.js';
import { restoreVolume } from '../../files/volume-restore.js';
import { formatBytes, progressBar } from '../progress.js';
import type { VolumeRestoreResult } from '../../files/volume-restore.js';
import { REMOTE_OPTIONS } from '../remote.js';
import { isRemote } from '../remote-store.js';
import { restoreRemoteVolume } from '../remote-volume.js';
import { index, SESSION_OPTIONS, withSession } from './files-common.js';
import { pickRemoteVolume, remoteDiskOf, remoteVolumes } from './files-remote.js';

const usage = 'shadowvault files volume-restore SOURCE[@POINT] --volume V --out FILE [--disk N] [--force] [--store DIR|URL [--state-dir DIR] | --url URL [--token-file FILE]] [--json]';

export const filesVolumeRestoreCommand: Command = {
  name: 'files volume-restore',
  summary: 'Restore one volume (partition) of a recovery point\'s disk as a raw image file (sparse)',
  usage,
  async run(args, io) {
    const { values, positionals } = parseCommandArgs(args, { ...SESSION_OPTIONS, ...REMOTE_OPTIONS, out: { type: 'string' }, force: { type: 'boolean' } }, usage);
    if (positionals.length !== 1) throw new SvError('SV_ERR_CLI_BAD_USAGE', `expected SOURCE[@POINT]\nusage: ${usage}`);
    if (values.volume === undefined || values.out === undefined) throw new SvError('SV_ERR_CLI_BAD_USAGE', `--volume V and --out FILE are required (files volumes lists the volumes)\nusage: ${usage}`);
    const report = (r: VolumeRestoreResult): number => {
      if (values.json) printJson(io, r);
      else io.stdout.write(`restored ${r.source}@${r.point} disk ${r.disk} volume ${r.volume} to ${r.out} (raw, ${formatBytes(r.size)}) in ${(r.durationMs / 1000).toFixed(2)} s\n`);
      return 0;
    };
    const bar = progressBar(io, 'volume restore', !values.json);
    const progress = bar ? (p: { bytesDone: number; bytesTotal: number }): void => bar.update(p) : undefined;
    if (isRemote(values, io.env)) {
      const d = await remoteDiskOf({ ref: positionals[0]!, ...values }, usage, io);
      const v = pickRemoteVolume(d, await remoteVolumes(d), index(values.volume, '--volume', usage));
      const r = await restoreRemoteVolume(d, v, { out: values.out, force: values.force === true, progress });
      bar?.done();
      return report(r);
    }
    return withSession({ ref: positionals[0]!, store: values.store, 'state-dir': values['state-dir'], disk: values.disk, volume: values.volume }, 'files volume-restore', usage, io, async (s, vol) => {
      const r = await restoreVolume(s, vol!, { out: values.out!, force: values.force === true, progress });
      bar?.done();
      return report(r);
    });
  },
};
