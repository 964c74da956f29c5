/** `shadowvault jobs`: the job queue of a running appliance (list, show, start, cancel, wait, log). */
import type { DataSource, Job } from '../../appliance/model.js';
import { SvError } from '../../errors/index.js';
import { parseCommandArgs, printJson } from '../args.js';
import type { Command } from '../command.js';
import { REMOTE_OPTIONS, REMOTE_USAGE, remoteClient } from '../remote.js';

const usage = `shadowvault jobs list [--state STATE] [--kind KIND] [--limit N] [--json] ${REMOTE_USAGE}
       shadowvault jobs show ID [--json]      shadowvault jobs log ID
       shadowvault jobs start backup|check|prune --source VM [--wait] [--json]
       shadowvault jobs start verify|gc|repair [--wait] [--json]
       shadowvault jobs cancel ID             shadowvault jobs wait ID [--json]`;

function line(j: Job): string {
  const p = j.progress;
  const pct = p.bytesTotal > 0 ? ` ${Math.floor((100 * p.bytesDone) / p.bytesTotal)}%` : '';
  const err = j.error ? ` ${j.error.code}: ${j.error.message}` : '';
  return `${j.id}  ${j.kind.padEnd(7)} ${j.state.padEnd(11)} ${j.createdAt}${pct}${err}\n`;
}

export const jobsCommand: Command = {
  name: 'jobs',
  summary: 'Jobs (backup, check, verify, prune, gc, restore, repair) of a running appliance',
  usage,
  async run(args, io) {
    const { values, positionals } = parseCommandArgs(args, { ...REMOTE_OPTIONS, json: { type: 'boolean' }, state: { type: 'string' }, kind: { type: 'string' }, limit: { type: 'string' }, source: { type: 'string' }, wait: { type: 'boolean' } }, usage);
    const api = remoteClient(values, io.env);
    const [action = 'list', arg] = positionals;
    const out = (j: Job): number => {
      if (values.json) printJson(io, j);
      else io.stdout.write(line(j));
      return j.state === 'failed' || j.state === 'interrupted' ? 1 : 0;
    };
    const wait = async (id: string): Promise<Job> => {
      for (;;) {
        const j = await api.request<Job>('GET', `api/v1/jobs/${encodeURIComponent(id)}`);
        if (!['queued', 'running'].includes(j.state)) return j;
        await new Promise((r) => setTimeout(r, 250));
      }
    };
    switch (action) {
      case 'list': {
        const q = new URLSearchParams(Object.entries({ state: values.state, kind: values.kind, limit: values.limit }).filter((e): e is [string, string] => e[1] !== undefined));
        const jobs = await api.request<Job[]>('GET', `api/v1/jobs${q.size ? `?${q}` : ''}`);
        if (values.json) printJson(io, jobs);
        else for (const j of jobs) io.stdout.write(line(j));
        return 0;
      }
      case 'show':
        if (!arg) break;
        return out(await api.request<Job>('GET', `api/v1/jobs/${encodeURIComponent(arg)}`));
      case 'log': {
        if (!arg) break;
        const log = await api.request<{ lines: { time: string; level: string; message: string }[] }>('GET', `api/v1/jobs/${encodeURIComponent(arg)}/log`);
        for (const l of log.lines) io.stdout.write(`${l.time} ${l.level.padEnd(5)} ${l.message}\n`);
        return 0;
      }
      case 'cancel':
        if (!arg) break;
        return out(await api.request<Job>('POST', `api/v1/jobs/${encodeURIComponent(arg)}/cancel`)) && 0;
      case 'wait':
        if (!arg) break;
        return out(await wait(arg));
      case 'start': {
        if (!arg) break;
        let sourceId: string | undefined;
        if (values.source) {
          const sources = await api.request<DataSource[]>('GET', 'api/v1/sources');
          const s = sources.find((x) => x.name === values.source || x.id === values.source);
          if (!s) throw new SvError('SV_ERR_API_NOT_FOUND', `no data source named "${values.source}" on the appliance`, { name: values.source });
          sourceId = s.id;
        }
        const job = await api.request<Job>('POST', 'api/v1/jobs', { kind: arg, ...(sourceId ? { sourceId } : {}) });
        return out(values.wait ? await wait(job.id) : job);
      }
      default:
        break;
    }
    throw new SvError('SV_ERR_CLI_BAD_USAGE', `jobs: unknown or incomplete action "${positionals.join(' ')}"\nusage: ${usage}`, {});
  },
};
