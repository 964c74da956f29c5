/**
 * `shadowvault repair [--store DIR] [--dry-run] [--json]`: rebuild the index from the packs' record headers,
 * quarantine what cannot be read, and report per point what is intact, recovered or lost. Exit 1 when a point
 * is lost or damaged.
 */
import { parseCommandArgs, printJson } from '../args.js';
import type { Command } from '../command.js';
import { repair } from '../../sync/index.js';
import { STORE_OPTIONS, withCliStore } from '../store-open.js';

const usage = 'shadowvault repair [--store DIR|URL] [--state-dir DIR] [--dry-run] [--json]';

export const repairCommand: Command = {
  name: 'repair',
  summary: 'Rebuild the index from the packs, quarantine unreadable files, report per point what is intact, recovered or lost',
  usage,
  async run(args, io) {
    const { values } = parseCommandArgs(args, { ...STORE_OPTIONS, 'dry-run': { type: 'boolean' }, json: { type: 'boolean' } }, usage);
    const r = await withCliStore(values, io, (store) => repair({ store, dryRun: values['dry-run'] === true }));
    const broken = r.points.filter((p) => p.status === 'lost' || p.status === 'damaged');
    if (values.json) printJson(io, r);
    else {
      const verb = r.dryRun ? 'would rebuild' : 'rebuilt';
      io.stdout.write(`repair: ${verb} the index from ${r.packsScanned} packs (${r.packsSkipped} in use skipped): ${r.entriesAfter} entries (was ${r.entriesBefore}; ${r.entriesRecovered} recovered, ${r.entriesDropped} dropped), ${r.recordsBad} bad records\n`);
      for (const q of r.quarantined) io.stdout.write(`  ${r.dryRun ? 'would quarantine' : 'quarantined'} ${q.path}${q.quarantinedAs ? ` as quarantine/${q.quarantinedAs}` : ''}: ${q.code} ${q.reason}\n`);
      for (const p of r.damagedPacks) io.stdout.write(`  damaged pack ${p.pack}: ${p.ranges.length} damaged range(s), ${p.badRecords.length} bad record(s)${p.header ? `; header: ${p.header}` : ''}\n`);
      for (const p of r.points) {
        const what = p.status === 'lost' ? `${p.pagesMissing} pages and ${p.blocksMissing} blocks missing` : p.status === 'recovered' ? `${p.blobsRecovered} blobs recovered` : p.status === 'damaged' ? `${p.error?.code} ${p.error?.message}` : 'all blocks present';
        io.stdout.write(`  ${p.point}: ${p.status} (${what})\n`);
      }
    }
    return broken.length ? 1 : 0;
  },
};
