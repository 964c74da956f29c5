/** `shadowvault agents`: pair, list and revoke the host agents of a running appliance (admin). */
import type { AgentRecord } from '../../appliance/agents/model.js';
import { SvError } from '../../errors/index.js';
import { parseCommandArgs, printJson } from '../args.js';
import type { Command } from '../command.js';
import { REMOTE_OPTIONS, REMOTE_USAGE, remoteClient } from '../remote.js';

const usage = `shadowvault agents pair [--ttl MINUTES] [--json] ${REMOTE_USAGE}
       shadowvault agents list [--json]
       shadowvault agents revoke ID
  pair     a one-time pairing code for \`shadowvault agent --pair CODE\` on a host (default: valid 15 minutes)
  revoke   the agent's credential stops working and its connection is closed`;

/** An agent as GET /api/v1/agents lists it: its record without the credential's id and pin, plus `connected`. */
type AgentLine = Pick<AgentRecord, 'id' | 'name' | 'cluster' | 'agentVersion' | 'hypervisor' | 'pairedAt' | 'lastSeenAt' | 'revokedAt'> & { connected: boolean };

export const agentsCommand: Command = {
  name: 'agents',
  summary: 'Host agents of a running appliance: pair, list, revoke',
  usage,
  async run(args, io) {
    const { values, positionals } = parseCommandArgs(args, { ...REMOTE_OPTIONS, json: { type: 'boolean' }, ttl: { type: 'string' } }, usage);
    const api = remoteClient(values, io.env);
    const [action = 'list', arg] = positionals;
    if (action === 'pair') {
      const ttl = values.ttl === undefined ? undefined : Number(values.ttl);
      if (ttl !== undefined && (!Number.isInteger(ttl) || ttl < 1 || ttl > 1440)) throw new SvError('SV_ERR_CLI_BAD_USAGE', `--ttl "${values.ttl}": expected minutes, 1..1440\nusage: ${usage}`, {});
      const p = await api.request<{ code: string; expiresAt: string; fingerprint: string | null }>('POST', 'api/v1/agents/pairing', ttl === undefined ? {} : { ttlMinutes: ttl });
      if (values.json) printJson(io, p);
      else io.stdout.write(`${p.code}\n  expires ${p.expiresAt}\n  on the host: shadowvault agent --appliance ${api.url} --pair ${p.code} --qmp '/run/qemu/*.qmp'\n${p.fingerprint ? `  certificate sha256 ${p.fingerprint}\n` : ''}`);
      return 0;
    }
    if (action === 'list') {
      const list = await api.request<AgentLine[]>('GET', 'api/v1/agents');
      if (values.json) printJson(io, list);
      else for (const a of list) io.stdout.write(`${a.id}  ${a.name}${a.cluster ? ` (${a.cluster})` : ''}  ${a.revokedAt ? `revoked ${a.revokedAt}` : a.connected ? 'connected' : `offline, last seen ${a.lastSeenAt ?? 'never'}`}  ${a.hypervisor.name} ${a.hypervisor.version}  agent ${a.agentVersion}\n`);
      return 0;
    }
    if (action === 'revoke' && arg) {
      await api.request('DELETE', `api/v1/agents/${encodeURIComponent(arg)}`);
      return 0;
    }
    throw new SvError('SV_ERR_CLI_BAD_USAGE', `agents: unknown action "${positionals.join(' ')}"\nusage: ${usage}`, {});
  },
};
