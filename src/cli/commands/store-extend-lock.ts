/**
 * `shadowvault store extend-lock --store URL [--days N] [--json]`: push the Object Lock retention of the
 * objects of the points a store on S3 keeps to now + N days (default: the store URL's lock=MODE:DAYS).
 * `serve` runs the same after each gc (storage/lock-extend.ts).
 */
import { SvError } from '../../errors/index.js';
import { extendLocks } from '../../../storage/lock-extend.js';
import { parseCommandArgs, printJson } from '../args.js';
import type { Command } from '../command.js';
import { STORE_OPTIONS, withCliStore } from '../store-open.js';

const usage = 'shadowvault store extend-lock --store s3://BUCKET/PREFIX?lock=MODE:DAYS&... [--state-dir DIR] [--days N] [--json]';

export const storeExtendLockCommand: Command = {
  name: 'store extend-lock',
  summary: 'Extend the Object Lock retention of the objects of the kept recovery points (a store on S3 with lock=)',
  usage,
  async run(args, io) {
    const { values, positionals } = parseCommandArgs(args, { ...STORE_OPTIONS, days: { type: 'string' }, json: { type: 'boolean' } }, usage);
    if (positionals.length) throw new SvError('SV_ERR_CLI_BAD_USAGE', `unexpected ${positionals.join(' ')}\nusage: ${usage}`);
    const days = values.days === undefined ? undefined : Number(values.days);
    if (days !== undefined && (!Number.isSafeInteger(days) || days < 1 || days > 36_500)) throw new SvError('SV_ERR_CLI_BAD_USAGE', `--days must be a number of days 1..36500, not ${values.days}\nusage: ${usage}`);
    const r = await withCliStore(values, io, (store) => extendLocks(store, days === undefined ? {} : { days }));
    if (values.json) printJson(io, r);
    else io.stdout.write(`extend-lock: ${r.objects} objects of ${r.location} retained (${r.mode}) until ${r.until}: ${r.extended} extended, ${r.alreadyLater} already later, ${r.missing} gone meanwhile, in ${(r.durationMs / 1000).toFixed(2)} s\n`);
    return 0;
  },
};
