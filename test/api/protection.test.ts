import t from 'tap';
import { GROUP, startTestAppliance } from './helpers.js';

t.test('data sources: create, read, update, delete, conflicts', async (t) => {
  const a = await startTestAppliance(t);
  const r = await a.call('admin', 'POST', '/api/v1/sources', { name: 'vm-web01', disks: [{ name: 'disk0', path: '/srv/vms/web01/disk0.vhdx' }] });
  t.equal(r.statusCode, 201);
  const s = r.json() as { id: string; host: string };
  t.equal(s.host, 'local', 'host defaults to local');
  t.equal((await a.call('viewer', 'GET', `/api/v1/sources/${s.id}`)).json().name, 'vm-web01');
  t.equal((await a.call('viewer', 'GET', '/api/v1/sources')).json().length, 1);
  const dup = await a.call('admin', 'POST', '/api/v1/sources', { name: 'vm-web01', disks: [{ name: 'd', path: '/srv/x' }] });
  t.equal(dup.statusCode, 409);
  t.equal(dup.json().code, 'SV_ERR_API_CONFLICT');
  const upd = await a.call('admin', 'PATCH', `/api/v1/sources/${s.id}`, { host: 'hv01', disks: [{ name: 'disk0', path: '/srv/a.vhdx' }, { name: 'disk1', path: '/srv/b.vhdx' }] });
  t.equal(upd.statusCode, 200);
  t.equal(upd.json().disks.length, 2);
  t.equal(upd.json().host, 'hv01');
  t.equal((await a.call('admin', 'PATCH', `/api/v1/sources/${s.id}`, { name: 'renamed' })).statusCode, 409, 'no rename');
  const twice = await a.call('admin', 'POST', '/api/v1/sources', { name: 'vm2', disks: [{ name: 'd', path: '/srv/x' }, { name: 'd', path: '/srv/y' }] });
  t.equal(twice.statusCode, 400);
  const g = await a.call('admin', 'POST', '/api/v1/groups', { ...GROUP, members: [s.id] });
  t.equal(g.statusCode, 201);
  const inUse = await a.call('admin', 'DELETE', `/api/v1/sources/${s.id}`);
  t.equal(inUse.statusCode, 409, 'member of a group');
  t.equal((await a.call('admin', 'DELETE', `/api/v1/groups/${g.json().id}`)).statusCode, 204);
  t.equal((await a.call('admin', 'DELETE', `/api/v1/sources/${s.id}`)).statusCode, 204);
  t.equal((await a.call('viewer', 'GET', `/api/v1/sources/${s.id}`)).statusCode, 404);
});

t.test('protection groups: schedule and retention fields, defaults, patch, durable', async (t) => {
  const a = await startTestAppliance(t);
  const s = (await a.call('admin', 'POST', '/api/v1/sources', { name: 'vm1', disks: [{ name: 'disk0', path: '/srv/d0' }] })).json() as { id: string };
  const r = await a.call('admin', 'POST', '/api/v1/groups', { ...GROUP, recoveryPointTimes: ['20:00', '08:00'], members: [s.id], consistencyCheckTimes: ['03:30'], disks: ['disk0'] });
  t.equal(r.statusCode, 201);
  const g = r.json() as { id: string; recoveryPointTimes: string[]; enabled: boolean };
  t.same(g.recoveryPointTimes, ['08:00', '20:00'], 'sorted');
  t.equal(g.enabled, true);
  const p = await a.call('admin', 'PATCH', `/api/v1/groups/${g.id}`, { syncFrequencyMinutes: 60 });
  t.equal(p.statusCode, 200);
  t.equal(p.json().syncFrequencyMinutes, 60);
  t.same(p.json().members, [s.id], 'patch keeps absent fields');
  t.same(p.json().consistencyCheckTimes, ['03:30']);
  await a.appliance.db.flush();
  const onDisk = a.appliance.db.groups.value;
  t.equal(onDisk[0].syncFrequencyMinutes, 60);
  for (const bad of [
    { ...GROUP, syncFrequencyMinutes: 14 },
    { ...GROUP, syncFrequencyMinutes: 1441 },
    { ...GROUP, recoveryPointTimes: [] },
    { ...GROUP, recoveryPointTimes: ['24:00'] },
    { ...GROUP, recoveryPointTimes: ['8:00'] },
    { ...GROUP, retention: { days: 0, maxCount: 1 } },
    { ...GROUP, retention: { days: 1 } },
    { ...GROUP, syncFrequencyMinutes: '15' },
    { ...GROUP, name: '' },
    { ...GROUP, extra: 1 },
  ]) {
    const x = await a.call('admin', 'POST', '/api/v1/groups', { ...bad, name: (bad as { name: string }).name === '' ? '' : `g${Math.random()}`.replace('.', '') });
    t.equal(x.statusCode, 400, JSON.stringify(bad));
    t.equal(x.json().code, 'SV_ERR_API_VALIDATION');
  }
  const unknownMember = await a.call('admin', 'POST', '/api/v1/groups', { ...GROUP, name: 'other', members: ['00000000-0000-0000-0000-000000000001'] });
  t.equal(unknownMember.statusCode, 404);
  t.equal((await a.call('viewer', 'GET', '/api/v1/groups')).json().length, 1);
});
