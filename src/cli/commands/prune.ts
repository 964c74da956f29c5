/**
 * `shadowvault prune NAME [--keep-days N] [--keep-count N] [--dry-run]`: delete points outside retention.
 * `shadowvault prune NAME --point ID...`: delete exactly those points (how a damaged point is deleted).
 */
import { parseCommandArgs, printJson } from '../args.js';
import type { Command } from '../command.js';
import { SvError } from '../../errors/index.js';
import { prune } from '../../sync/index.js';
import { STORE_OPTIONS, withCliStore } from '../store-open.js';

const usage = `shadowvault prune NAME [--store DIR|URL] [--state-dir DIR] [--keep-days DAYS] [--keep-count N] [--dry-run] [--json]
       shadowvault prune NAME --point ID [--point ID]... [--store DIR|URL] [--state-dir DIR] [--dry-run] [--json]`;

function count(v: string | undefined, what: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 0) throw new SvError('SV_ERR_CLI_BAD_USAGE', `${what} must be a non-negative integer, not ${v}`);
  return n;
}

export const pruneCommand: Command = {
  name: 'prune',
  summary: 'Delete recovery points outside the retention (days and maximum count; saved per source when given)',
  usage,
  async run(args, io) {
    const { values, positionals } = parseCommandArgs(args, {
      ...STORE_OPTIONS, 'keep-days': { type: 'string' }, 'keep-count': { type: 'string' }, 'dry-run': { type: 'boolean' }, json: { type: 'boolean' },
      point: { type: 'string', multiple: true },
    }, usage);
    if (positionals.length !== 1) throw new SvError('SV_ERR_CLI_BAD_USAGE', `expected one data source NAME\nusage: ${usage}`);
    const days = count(values['keep-days'], '--keep-days');
    const maxCount = count(values['keep-count'], '--keep-count');
    const pointIds = values.point;
    if (pointIds && (days !== undefined || maxCount !== undefined)) throw new SvError('SV_ERR_CLI_BAD_USAGE', `--point excludes --keep-days and --keep-count\nusage: ${usage}`);
    const r = await withCliStore(values, io, (store) => prune({
      store, source: positionals[0]!, retention: { days, maxCount }, save: !values['dry-run'] && !pointIds, dryRun: values['dry-run'] === true, pointIds,
    }));
    if (values.json) printJson(io, r);
    else {
      io.stdout.write(`${values['dry-run'] ? 'would remove' : 'removed'} ${r.removed.length} point(s), kept ${r.kept.length} (retention: ${r.retention.days || '∞'} days, ${r.retention.maxCount || '∞'} points)\n${r.removed.map((id) => `  - ${r.source}@${id}\n`).join('')}`);
      for (const h of r.held) io.stdout.write(`  kept held ${r.source}@${h.id}: in use by ${h.holders.join(', ')} (pruned once released)\n`);
      for (const l of r.lockedSkipped) io.stdout.write(`  kept locked ${r.source}@${l.id}: under Object Lock${l.retainUntil ? ` until ${l.retainUntil}` : ''} (pruned once it expires)\n`);
      for (const s of r.skipped) io.stdout.write(`  skipped damaged ${r.source}@${s.id}: ${s.error.code} ${s.error.message} (delete it with --point ${s.id})\n`);
    }
    return 0;
  },
};
