/**
 * `shadowvault points [NAME] [--store DIR|URL] [--state-dir DIR] [--json]`: recovery points, oldest first; a point whose manifest is
 * damaged is listed as DAMAGED with its coded error (`damaged: true, error: {code, message}` in JSON). With `--url`, the points of
 * a running appliance (same output: the engine's point summaries).
 */
import { parseCommandArgs, printJson } from '../args.js';
import type { Command } from '../command.js';
import { SvError } from '../../errors/index.js';
import { listPoints, listSources, type PointListing } from '../../sync/index.js';
import { formatBytes } from '../progress.js';
import { STORE_OPTIONS, withCliStore } from '../store-open.js';
import { REMOTE_OPTIONS, remoteClient, type RemoteClient } from '../remote.js';
import { isRemote, remotePoints, remoteSources, summaryOf } from '../remote-store.js';

const usage = `shadowvault points [NAME]... [--store DIR|URL] [--state-dir DIR] [--json]
       shadowvault points [NAME]... --url URL [--token-file FILE] [--json]   (token also from SHADOWVAULT_TOKEN)`;

/** The points of the named sources (all when none) on the appliance. */
async function remoteListing(api: RemoteClient, names: string[]): Promise<PointListing[]> {
  const sources = await remoteSources(api);
  const chosen = names.length
    ? names.map((n) => {
        const s = sources.find((x) => x.name === n || x.id === n);
        if (!s) throw new SvError('SV_ERR_API_NOT_FOUND', `no data source named "${n}" on the appliance at ${api.url}`, { name: n });
        return s;
      })
    : sources;
  const all: PointListing[] = [];
  for (const s of chosen) all.push(...(await remotePoints(api, s.id)).map((p) => summaryOf(p, s.name)));
  return all;
}

export const pointsCommand: Command = {
  name: 'points',
  summary: 'List the recovery points of a data source (or of all), oldest first',
  usage,
  async run(args, io) {
    const { values, positionals } = parseCommandArgs(args, { ...STORE_OPTIONS, json: { type: 'boolean' }, ...REMOTE_OPTIONS }, usage);
    const remote = isRemote(values, io.env);
    if (remote && values.store !== undefined) throw new SvError('SV_ERR_CLI_BAD_USAGE', `--store and --url exclude each other\nusage: ${usage}`);
    const all: PointListing[] = [];
    if (remote) all.push(...(await remoteListing(remoteClient(values, io.env), positionals)));
    else {
      await withCliStore(values, io, async (store) => {
        const sources = positionals.length ? positionals : await listSources({ store });
        for (const source of sources) all.push(...(await listPoints({ store, source })));
      });
    }
    all.sort((a, b) => (a.time < b.time ? -1 : a.time > b.time ? 1 : a.id < b.id ? -1 : 1));
    if (values.json) {
      printJson(io, all);
      return 0;
    }
    for (const p of all) {
      if (p.damaged) {
        io.stdout.write(`${p.source}@${p.id}  ${p.time}  DAMAGED ${p.error.code}: ${p.error.message}\n`);
        continue;
      }
      io.stdout.write(`${p.source}@${p.id}  ${p.time}  ${p.kind.padEnd(17)} ${p.consistency.padEnd(11)} disks ${p.disks.length}  changed ${formatBytes(p.bytesChanged)}  stored ${formatBytes(p.bytesStored)}\n`);
    }
    if (!all.length) io.stdout.write('no recovery points\n');
    return 0;
  },
};
