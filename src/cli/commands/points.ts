/** `shadowvault points [NAME] [--store DIR] [--json]`: recovery points, oldest first. */
import { parseCommandArgs, printJson } from '../args.js';
import type { Command } from '../command.js';
import { listPoints, listSources, type PointSummary } from '../../sync/index.js';
import { formatBytes, storeDir } from '../progress.js';

const usage = 'shadowvault points [NAME] [--store DIR] [--json]';

export const pointsCommand: Command = {
  name: 'points',
  summary: 'List the recovery points of a data source (or of all), oldest first',
  usage,
  async run(args, io) {
    const { values, positionals } = parseCommandArgs(args, { store: { type: 'string' }, json: { type: 'boolean' } }, usage);
    const store = storeDir(values.store, io);
    const sources = positionals.length ? positionals : await listSources({ store });
    const all: PointSummary[] = [];
    for (const source of sources) all.push(...(await listPoints({ store, source })));
    all.sort((a, b) => (a.time < b.time ? -1 : a.time > b.time ? 1 : a.id < b.id ? -1 : 1));
    if (values.json) {
      printJson(io, all);
      return 0;
    }
    for (const p of all) {
      io.stdout.write(`${p.source}@${p.id}  ${p.time}  ${p.kind.padEnd(17)} ${p.consistency.padEnd(11)} disks ${p.disks.length}  changed ${formatBytes(p.bytesChanged)}  stored ${formatBytes(p.bytesStored)}\n`);
    }
    if (!all.length) io.stdout.write('no recovery points\n');
    return 0;
  },
};
