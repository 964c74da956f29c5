/** `shadowvault verify [NAME[@POINT]] [--sample PCT]`: re-read and re-hash stored blocks. Exit 1 when bad. */
import { parseCommandArgs, printJson } from '../args.js';
import type { Command } from '../command.js';
import { SvError } from '../../errors/index.js';
import { closePool } from '../../pool/index.js';
import { verify } from '../../sync/index.js';
import { formatBytes, progressBar } from '../progress.js';
import { STORE_OPTIONS, withCliStore } from '../store-open.js';

const usage = 'shadowvault verify [NAME[@POINT]] [--store DIR|URL] [--state-dir DIR] [--sample PERCENT] [--json]';

export const verifyCommand: Command = {
  name: 'verify',
  summary: 'Re-read and re-hash stored blocks (all, one source/point, or a sample); name the points bad blocks affect',
  usage,
  async run(args, io) {
    const { values, positionals } = parseCommandArgs(args, { ...STORE_OPTIONS, sample: { type: 'string' }, json: { type: 'boolean' } }, usage);
    if (positionals.length > 1) throw new SvError('SV_ERR_CLI_BAD_USAGE', `expected at most one NAME[@POINT]\nusage: ${usage}`);
    const sample = values.sample === undefined ? 100 : Number(values.sample);
    if (!(sample > 0 && sample <= 100)) throw new SvError('SV_ERR_CLI_BAD_USAGE', `--sample must be a percentage in (0, 100], not ${values.sample}`);
    const [source, point] = positionals.length ? (positionals[0]!.split('@', 2) as [string, string | undefined]) : [undefined, undefined];
    const bar = progressBar(io, 'verify', !values.json);
    try {
      const r = await withCliStore(values, io, (store) => verify({ store, source, point, samplePercent: sample, progress: bar ? (p) => bar.update(p) : undefined }));
      bar?.done();
      if (values.json) printJson(io, r);
      else {
        io.stdout.write(`verified ${r.points} points: ${r.pagesChecked} pages, ${r.blocksChecked} blocks (${formatBytes(r.bytesChecked)}), ${r.bad.length} bad\n`);
        for (const b of r.bad) {
          const where = b.pack === null ? 'not in the index' : `pack ${b.pack} record at offset ${b.offset}`;
          io.stdout.write(`  bad ${b.kind} ${b.digest} (${where}): ${b.code} ${b.message}\n    affects ${b.points.join(', ') || '(no point)'}\n`);
        }
        for (const p of r.skipped) io.stdout.write(`  skipped ${p.point}: ${p.code} ${p.message}\n`);
      }
      return r.bad.length ? 1 : 0;
    } finally {
      await closePool();
    }
  },
};
