/** `shadowvault restore NAME[@POINT] --disk N --out PATH [--format F] [--force]`: a point's disk to an image. */
import { parseCommandArgs, printJson } from '../args.js';
import type { Command } from '../command.js';
import { SvError } from '../../errors/index.js';
import { closePool } from '../../pool/index.js';
import { restore } from '../../sync/index.js';
import { formatBytes, progressBar, storeDir } from '../progress.js';

const usage = 'shadowvault restore NAME[@POINT] --out PATH [--store DIR] [--disk N] [--format vhdx|vhd|raw] [--force] [--json]';
const FORMATS = ['vhdx', 'vhd', 'raw'] as const;

export const restoreCommand: Command = {
  name: 'restore',
  summary: 'Restore one disk of a recovery point (@latest by default) to a new VHDX, VHD or raw image',
  usage,
  async run(args, io) {
    const { values, positionals } = parseCommandArgs(args, {
      store: { type: 'string' }, disk: { type: 'string' }, out: { type: 'string' }, format: { type: 'string' }, force: { type: 'boolean' }, json: { type: 'boolean' },
    }, usage);
    if (positionals.length !== 1) throw new SvError('SV_ERR_CLI_BAD_USAGE', `expected NAME[@POINT]\nusage: ${usage}`);
    if (!values.out) throw new SvError('SV_ERR_CLI_BAD_USAGE', `--out PATH is required\nusage: ${usage}`);
    if (values.format && !(FORMATS as readonly string[]).includes(values.format)) throw new SvError('SV_ERR_CLI_BAD_USAGE', `--format must be one of ${FORMATS.join(', ')}`);
    const disk = values.disk === undefined ? 0 : Number(values.disk);
    if (!Number.isSafeInteger(disk) || disk < 0) throw new SvError('SV_ERR_CLI_BAD_USAGE', `--disk must be a disk index (0, 1, ...), not ${values.disk}`);
    const [source, point] = positionals[0]!.split('@', 2) as [string, string | undefined];
    const bar = progressBar(io, 'restore', !values.json);
    try {
      const r = await restore({
        store: storeDir(values.store, io), source, point, disk, out: values.out, format: values.format as (typeof FORMATS)[number] | undefined,
        force: values.force === true, progress: bar ? (p) => bar.update(p) : undefined,
      });
      bar?.done();
      if (values.json) printJson(io, r);
      else io.stdout.write(`restored ${r.source}@${r.point} disk ${r.disk} to ${r.out} (${r.format}, ${formatBytes(r.virtualSize)}) in ${(r.durationMs / 1000).toFixed(2)} s\n`);
      return 0;
    } finally {
      await closePool();
    }
  },
};
