/**
 * VM data sources through the API, with a real agent on the real channel (in this process; a fixed
 * inventory): `sources add --vm` by name or id, the checks (unknown VM, ambiguous name, a VM protected twice,
 * disks and a VM together), the `online` option, restore `toHost` refused for path sources, and a backup
 * of a VM whose host is gone failing with SV_ERR_AGENT_NO_HOST.
 */
import t from 'tap';
import type { Job } from '../../src/appliance/model.js';
import { FixedDriver, listenAppliance, startAgent, until, vm } from '../agent/helpers.js';

t.test('VM sources: add by name or id, the checks, online, jobs without a host', async (t) => {
  const a = await listenAppliance(t);
  const code = (await a.call('admin', 'POST', '/api/v1/agents/pairing', {})).json().code as string;
  const driver = new FixedDriver([vm('11111111-2222-3333-4444-555555555555', 'web01'), vm('aaaaaaaa-2222-3333-4444-555555555555', 'twin'), vm('bbbbbbbb-2222-3333-4444-555555555555', 'twin')]);
  const agent = await startAgent(t, { appliance: new URL(a.url), driver, pairCode: code, name: 'kvm-1' });
  await until('inventory', () => (a.appliance.agents.vms().length === 3 ? true : undefined));

  const byName = await a.call('admin', 'POST', '/api/v1/sources', { vm: 'web01' });
  t.equal(byName.statusCode, 201, byName.body);
  t.match(byName.json(), { name: 'web01', host: 'kvm-1', disks: [], vm: { id: '11111111-2222-3333-4444-555555555555', name: 'web01', online: true } });
  const again = await a.call('admin', 'POST', '/api/v1/sources', { vm: '11111111-2222-3333-4444-555555555555', name: 'web01-bis' });
  t.equal(again.statusCode, 409, 'a VM protected twice');
  t.equal((await a.call('admin', 'POST', '/api/v1/sources', { vm: 'nope' })).json().code, 'SV_ERR_API_NOT_FOUND', 'unknown VM');
  const twin = await a.call('admin', 'POST', '/api/v1/sources', { vm: 'twin' });
  t.equal(twin.statusCode, 409, 'an ambiguous name');
  t.match(twin.json().message, /give the VM's id/);
  const byId = await a.call('admin', 'POST', '/api/v1/sources', { vm: 'bbbbbbbb-2222-3333-4444-555555555555', name: 'twin-b', online: false });
  t.equal(byId.statusCode, 201, byId.body);
  t.equal(byId.json().vm.online, false, 'online: false kept');
  const both = await a.call('admin', 'POST', '/api/v1/sources', { vm: 'web01', name: 'x', disks: [{ name: 'd', path: '/srv/x.img' }] });
  t.equal(both.statusCode, 400, 'disks and a VM together');
  const patched = await a.call('admin', 'PATCH', `/api/v1/sources/${byId.json().id}`, { online: true });
  t.equal(patched.json().vm.online, true, 'online can be changed');
  const noVmNoDisks = await a.call('admin', 'POST', '/api/v1/sources', { name: 'empty' });
  t.equal(noVmNoDisks.statusCode, 400, 'neither disks nor a VM');

  const path = await a.call('admin', 'POST', '/api/v1/sources', { name: 'files', disks: [{ name: 'd', path: '/srv/x.img' }] });
  const toHost = await a.call('operator', 'POST', `/api/v1/sources/${path.json().id}/points/nope/restore`, { toHost: true });
  t.equal(toHost.statusCode, 404, 'no such point (checked before the source kind)');

  await agent.stop();
  await until('agent gone', () => (a.appliance.agents.vms().every((v) => !v.hostConnected) ? true : undefined));
  const r = await a.call('operator', 'POST', '/api/v1/jobs', { kind: 'backup', sourceId: byName.json().id });
  t.equal(r.statusCode, 202, r.body);
  const job: Job = await a.appliance.queue.waitFor((r.json() as Job).id);
  t.equal(job.state, 'failed');
  t.equal(job.error?.code, 'SV_ERR_AGENT_NO_HOST', JSON.stringify(job.error));
  t.match(job.error?.message, /not connected/);
});
