/** `shadowvault sources`: data sources of a running appliance (list, add, remove). */
import type { DataSource } from '../../appliance/model.js';
import { SvError } from '../../errors/index.js';
import { parseCommandArgs, printJson } from '../args.js';
import type { Command } from '../command.js';
import { REMOTE_OPTIONS, REMOTE_USAGE, remoteClient } from '../remote.js';

const usage = `shadowvault sources list [--json] ${REMOTE_USAGE}
       shadowvault sources add --name VM --disk NAME=PATH [--disk NAME=PATH]... [--host HOST] [--attach] [--json]
       shadowvault sources add --vm NAME|ID [--name SOURCE] [--online true|false] [--attach] [--take-over] [--json]
  --vm       protect a VM through its host agent (as \`shadowvault vms\` lists it); its disks come from the VM.
             A VM another appliance protects (\`vms\`: protectedBy) is refused (SV_ERR_AGENT_VM_OWNED) until
             that appliance releases it (removes its source)
  --take-over  an admin's forced takeover of a VM another appliance protects: logged here, recorded on the
             host and shown by \`vms\` on both appliances; that appliance's backups of it are refused from then on
  --online   allow online (application-consistent) backups when the VM meets the requirements (default true)
  --attach   the store holds recovery points under this name (a removed source): continue that series
       shadowvault sources remove ID`;

export const sourcesCommand: Command = {
  name: 'sources',
  summary: 'Data sources (VMs and their disks) of a running appliance',
  usage,
  async run(args, io) {
    const { values, positionals } = parseCommandArgs(args, { ...REMOTE_OPTIONS, json: { type: 'boolean' }, name: { type: 'string' }, host: { type: 'string' }, disk: { type: 'string', multiple: true }, attach: { type: 'boolean' }, vm: { type: 'string' }, online: { type: 'string' }, 'take-over': { type: 'boolean' } }, usage);
    const api = remoteClient(values, io.env);
    const action = positionals[0] ?? 'list';
    if (action === 'list') {
      const list = await api.request<DataSource[]>('GET', 'api/v1/sources');
      if (values.json) printJson(io, list);
      else for (const s of list) io.stdout.write(`${s.id}  ${s.name}  host=${s.host}  ${s.vm ? `vm=${s.vm.name} (${s.vm.id}) online=${s.vm.online}${s.vm.takenOver ? ` taken-over-from="${s.vm.takenOver.from.name}" at ${s.vm.takenOver.at}` : ''}` : s.disks.map((d) => `${d.name}=${d.path}`).join(' ')}\n`);
      return 0;
    }
    if (action === 'add' && values.vm !== undefined) {
      if (values.disk?.length) throw new SvError('SV_ERR_CLI_BAD_USAGE', `--vm and --disk exclude each other\nusage: ${usage}`, {});
      if (values['take-over']) io.stderr.write(`taking VM ${values.vm} over from the appliance that protects it (logged; shown by \`vms\` on both appliances)\n`);
      if (values.online !== undefined && values.online !== 'true' && values.online !== 'false') throw new SvError('SV_ERR_CLI_BAD_USAGE', '--online must be true or false', {});
      const body = { vm: values.vm, ...(values.name ? { name: values.name } : {}), ...(values.online ? { online: values.online === 'true' } : {}), ...(values.attach ? { attach: true } : {}), ...(values['take-over'] ? { takeOver: true } : {}) };
      const s = await api.request<DataSource>('POST', 'api/v1/sources', body);
      if (values.json) printJson(io, s);
      else io.stdout.write(`${s.id}\n`);
      return 0;
    }
    if (action === 'add') {
      if (!values.name || !values.disk?.length) throw new SvError('SV_ERR_CLI_BAD_USAGE', `sources add needs --name and at least one --disk NAME=PATH\nusage: ${usage}`, {});
      const disks = values.disk.map((d) => {
        const i = d.indexOf('=');
        if (i <= 0) throw new SvError('SV_ERR_CLI_BAD_USAGE', `--disk "${d}": expected NAME=PATH`, {});
        return { name: d.slice(0, i), path: d.slice(i + 1) };
      });
      const s = await api.request<DataSource>('POST', 'api/v1/sources', { name: values.name, disks, ...(values.host ? { host: values.host } : {}), ...(values.attach ? { attach: true } : {}) });
      if (values.json) printJson(io, s);
      else io.stdout.write(`${s.id}\n`);
      return 0;
    }
    if (action === 'remove' && positionals[1]) {
      await api.request('DELETE', `api/v1/sources/${encodeURIComponent(positionals[1])}`);
      return 0;
    }
    throw new SvError('SV_ERR_CLI_BAD_USAGE', `sources: unknown action "${positionals.join(' ')}"\nusage: ${usage}`, {});
  },
};
