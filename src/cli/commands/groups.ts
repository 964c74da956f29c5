/** `shadowvault groups`: protection groups of a running appliance (list, create, update, remove). */
import type { DataSource, ProtectionGroup } from '../../appliance/model.js';
import { SvError } from '../../errors/index.js';
import { parseCommandArgs, printJson } from '../args.js';
import type { Command } from '../command.js';
import { REMOTE_OPTIONS, REMOTE_USAGE, remoteClient, type RemoteClient } from '../remote.js';

const usage = `shadowvault groups list [--json] ${REMOTE_USAGE}
       shadowvault groups create --name NAME --members VM[,VM...] [--sync-minutes 15..1440] [--points HH:MM[,HH:MM...]]
                                 [--retention-days N] [--retention-count N] [--check-times HH:MM,...] [--disks NAME,...]
       shadowvault groups update ID [same options as create] [--enable | --disable]
       shadowvault groups remove ID`;

const list = (v: string | undefined): string[] | undefined => (v === undefined ? undefined : v.split(',').map((x) => x.trim()).filter(Boolean));

function int(v: string | undefined, opt: string): number | undefined {
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v)) throw new SvError('SV_ERR_CLI_BAD_USAGE', `${opt} "${v}": expected a whole number`, {});
  return Number(v);
}

/** Member names or ids → ids, via the appliance's source list. */
async function memberIds(api: RemoteClient, names: string[] | undefined): Promise<string[] | undefined> {
  if (!names) return undefined;
  const sources = await api.request<DataSource[]>('GET', 'api/v1/sources');
  return names.map((n) => {
    const s = sources.find((x) => x.name === n || x.id === n);
    if (!s) throw new SvError('SV_ERR_API_NOT_FOUND', `no data source named "${n}" on the appliance`, { name: n });
    return s.id;
  });
}

export const groupsCommand: Command = {
  name: 'groups',
  summary: 'Protection groups (schedule, retention, members) of a running appliance',
  usage,
  async run(args, io) {
    const { values, positionals } = parseCommandArgs(args, {
      ...REMOTE_OPTIONS,
      json: { type: 'boolean' },
      name: { type: 'string' },
      members: { type: 'string' },
      'sync-minutes': { type: 'string' },
      points: { type: 'string' },
      'retention-days': { type: 'string' },
      'retention-count': { type: 'string' },
      'check-times': { type: 'string' },
      disks: { type: 'string' },
      enable: { type: 'boolean' },
      disable: { type: 'boolean' },
    }, usage);
    const api = remoteClient(values, io.env);
    const action = positionals[0] ?? 'list';
    const show = (g: ProtectionGroup): void => {
      if (values.json) printJson(io, g);
      else io.stdout.write(`${g.id}\n`);
    };
    const body = async (): Promise<Record<string, unknown>> => {
      const days = int(values['retention-days'], '--retention-days');
      const count = int(values['retention-count'], '--retention-count');
      const b: Record<string, unknown> = {
        name: values.name,
        members: await memberIds(api, list(values.members)),
        syncFrequencyMinutes: int(values['sync-minutes'], '--sync-minutes'),
        recoveryPointTimes: list(values.points),
        consistencyCheckTimes: list(values['check-times']),
        disks: list(values.disks),
        enabled: values.enable ? true : values.disable ? false : undefined,
      };
      if (days !== undefined || count !== undefined) b.retention = { days: days ?? 14, maxCount: count ?? 64 };
      return Object.fromEntries(Object.entries(b).filter(([, v]) => v !== undefined));
    };
    if (action === 'list') {
      const groups = await api.request<ProtectionGroup[]>('GET', 'api/v1/groups');
      if (values.json) printJson(io, groups);
      else for (const g of groups) io.stdout.write(`${g.id}  ${g.name}  every ${g.syncFrequencyMinutes} min, points ${g.recoveryPointTimes.join(',')}, keep ${g.retention.days} d / ${g.retention.maxCount}, ${g.members.length} member(s)${g.enabled ? '' : ' (disabled)'}\n`);
      return 0;
    }
    if (action === 'create') {
      const b = await body();
      show(await api.request<ProtectionGroup>('POST', 'api/v1/groups', { syncFrequencyMinutes: 60, recoveryPointTimes: ['20:00'], retention: { days: 14, maxCount: 64 }, ...b }));
      return 0;
    }
    if (action === 'update' && positionals[1]) {
      show(await api.request<ProtectionGroup>('PATCH', `api/v1/groups/${encodeURIComponent(positionals[1])}`, await body()));
      return 0;
    }
    if (action === 'remove' && positionals[1]) {
      await api.request('DELETE', `api/v1/groups/${encodeURIComponent(positionals[1])}`);
      return 0;
    }
    throw new SvError('SV_ERR_CLI_BAD_USAGE', `groups: unknown action "${positionals.join(' ')}"\nusage: ${usage}`, {});
  },
};
