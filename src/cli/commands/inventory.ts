/** `shadowvault hosts`, `shadowvault vms` and `shadowvault clusters`: what the host agents report (reader role). */
import type { ClusterView } from '../../appliance/agents/clusters.js';
import type { HostView, VmView } from '../../appliance/agents/inventory.js';
import { parseCommandArgs, printJson } from '../args.js';
import type { Command } from '../command.js';
import { REMOTE_OPTIONS, REMOTE_USAGE, remoteClient } from '../remote.js';

const hostsUsage = `shadowvault hosts [--json] ${REMOTE_USAGE}`;
const clustersUsage = `shadowvault clusters [--json] ${REMOTE_USAGE}`;
const vmsUsage = `shadowvault vms [--host NAME] [--json] ${REMOTE_USAGE}`;

export const hostsCommand: Command = {
  name: 'hosts',
  summary: 'Hypervisor hosts with a paired agent, connected or not',
  usage: hostsUsage,
  async run(args, io) {
    const { values } = parseCommandArgs(args, { ...REMOTE_OPTIONS, json: { type: 'boolean' } }, hostsUsage);
    const list = await remoteClient(values, io.env).request<HostView[]>('GET', 'api/v1/hosts');
    if (values.json) printJson(io, list);
    else for (const h of list) io.stdout.write(`${h.id}  ${h.name}${h.cluster ? ` (${h.cluster})` : ''}  ${h.connected ? 'connected' : 'offline'}  ${h.hypervisor.name} ${h.hypervisor.version}  ${h.vms} VM(s)\n`);
    return 0;
  },
};

export const vmsCommand: Command = {
  name: 'vms',
  summary: 'VMs the host agents report: state, disks, whether online backup is possible (and why not)',
  usage: vmsUsage,
  async run(args, io) {
    const { values } = parseCommandArgs(args, { ...REMOTE_OPTIONS, json: { type: 'boolean' }, host: { type: 'string' } }, vmsUsage);
    const list = (await remoteClient(values, io.env).request<VmView[]>('GET', 'api/v1/vms')).filter((v) => values.host === undefined || v.host === values.host);
    if (values.json) printJson(io, list);
    else {
      for (const v of list) {
        const online = v.online.possible ? 'online backup possible' : `offline backup (${v.online.details.map((u) => u.reason).join('; ')})`;
        const p = v.protectedBy;
        const owner = p ? `  protected by ${p.here ? 'this appliance' : `"${p.name}" (${p.id})`}${p.takenOverFrom ? ` (taken over from "${p.takenOverFrom.name}" at ${p.takenOverFrom.at})` : ''}` : '';
        io.stdout.write(`${v.id}  ${v.name}  host=${v.host}${v.cluster ? ` cluster=${v.cluster}` : ''}${v.hostConnected ? '' : ' (offline)'}  ${v.state}${v.migration ? ` (migration ${v.migration})` : ''}${v.replica ? ` (replica ${v.replica.state})` : ''}  ${v.disks.length} disk(s)  ${online}${owner}\n`);
      }
    }
    return 0;
  },
};

export const clustersCommand: Command = {
  name: 'clusters',
  summary: 'Clusters: nodes, VMs, the node that runs each VM, its last point and protection state',
  usage: clustersUsage,
  async run(args, io) {
    const { values } = parseCommandArgs(args, { ...REMOTE_OPTIONS, json: { type: 'boolean' } }, clustersUsage);
    const list = await remoteClient(values, io.env).request<ClusterView[]>('GET', 'api/v1/clusters');
    if (values.json) {
      printJson(io, list);
      return 0;
    }
    for (const c of list) {
      io.stdout.write(`cluster ${c.name}: ${c.nodes.map((n) => `${n.name}${n.connected ? '' : ' (offline)'} runs ${n.runs}`).join(', ')}\n`);
      for (const v of c.vms) {
        const where = v.runsOn ? `on ${v.runsOn.host}` : `nowhere now (${v.placementError?.code ?? 'unknown'})`;
        const also = v.seenOn.filter((s) => s.hostId !== v.runsOn?.hostId).map((s) => `${s.host}: ${s.state}${s.migration ? ` ${s.migration}` : ''}`);
        const p = v.protection;
        const last = p.lastPoint ? `last point ${p.lastPoint.time}` : 'no point';
        io.stdout.write(`  ${v.id}  ${v.name}  ${where}${also.length ? ` (also ${also.join(', ')})` : ''}  ${p.state}${p.source ? ` as "${p.source.name}", ${last}` : ''}${p.lastJob?.error ? `, last backup failed: ${p.lastJob.error.code}` : ''}${p.protectedBy && !p.protectedBy.here ? `, protected by "${p.protectedBy.name}"` : ''}\n`);
      }
    }
    return 0;
  },
};
