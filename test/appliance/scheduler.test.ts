/** The scheduler over a simulated day with a controllable clock, and retention over simulated days. */
import t from 'tap';
import { ManualClock } from '../../src/appliance/clock.js';
import type { ProtectionGroup } from '../../src/appliance/model.js';
import type { JobRequest } from '../../src/appliance/queue.js';
import { expiredPoints, type RetentionPoint } from '../../src/appliance/retention.js';
import { Scheduler, type Maintenance, type SchedulerState } from '../../src/appliance/scheduler.js';

const DAY0 = Date.parse('2026-03-02T00:00:00Z');
const MIN = 60_000;

function group(over: Partial<ProtectionGroup> = {}): ProtectionGroup {
  return {
    id: 'g1',
    name: 'gold',
    members: ['vm1', 'vm2'],
    syncFrequencyMinutes: 15,
    recoveryPointTimes: ['08:00', '20:00'],
    retention: { days: 7, maxCount: 10 },
    consistencyCheckTimes: ['03:00'],
    disks: [],
    enabled: true,
    createdAt: new Date(DAY0).toISOString(),
    ...over,
  };
}

function rig(groups: ProtectionGroup[], queued: (kind: string, id: string | undefined) => boolean = () => false, maintenance?: Maintenance) {
  const clock = new ManualClock(DAY0);
  const jobs: (JobRequest & { at: string })[] = [];
  let state: SchedulerState = {};
  const s = new Scheduler({
    clock,
    groups: () => groups,
    state,
    persist: async (x) => {
      state = x;
    },
    maintenance,
    sink: { isQueued: (k, id) => queued(k, id), enqueue: async (r) => jobs.push({ ...r, at: new Date(clock.now()).toISOString().slice(11, 16) }) },
  });
  return { clock, jobs, s, state: () => state };
}

t.test('a 15-minute sync and two daily points over a simulated day', async (t) => {
  const r = rig([group()]);
  await r.s.tick(); // first tick records the time only
  for (let m = 1; m <= 24 * 60; m++) {
    r.clock.advance(MIN);
    await r.s.tick();
  }
  const of = (src: string, trigger: string) => r.jobs.filter((j) => j.sourceId === src && j.trigger === trigger);
  for (const vm of ['vm1', 'vm2']) {
    t.equal(of(vm, 'sync').length, 94, `${vm}: 96 quarter hours minus the two recovery point times`);
    t.same(of(vm, 'recovery-point').map((j) => j.at), ['08:00', '20:00'], `${vm}: points at 08:00 and 20:00`);
    t.ok(of(vm, 'recovery-point').every((j) => j.params?.tag === 'scheduled' && j.kind === 'backup'));
    t.same(of(vm, 'consistency-check').map((j) => j.at), ['03:00']);
    const syncTimes = of(vm, 'sync').map((j) => j.at);
    t.equal(syncTimes[0], '00:15');
    t.equal(syncTimes.at(-1), '00:00', 'the midnight boundary at the end of the day');
    t.notOk(syncTimes.includes('08:00') || syncTimes.includes('20:00'));
    t.ok(syncTimes.every((x) => Number(x.slice(3)) % 15 === 0), 'on quarter hours');
  }
  t.equal(r.jobs.length, 2 * (94 + 2 + 1));
  t.equal(r.state().lastTick, DAY0 + 24 * 60 * MIN, 'last tick saved');
});

t.test('irregular ticks give the same jobs; a late sync is not stacked; disabled groups do nothing', async (t) => {
  const r = rig([group({ members: ['vm1'] }), group({ id: 'g2', members: ['vm9'], enabled: false })]);
  await r.s.tick();
  for (let m = 0; m < 24 * 60; m += 7) {
    r.clock.advance(7 * MIN);
    await r.s.tick();
  }
  r.clock.set(DAY0 + 24 * 60 * MIN);
  await r.s.tick();
  t.equal(r.jobs.filter((j) => j.trigger === 'sync').length, 94);
  t.equal(r.jobs.filter((j) => j.trigger === 'recovery-point').length, 2);
  t.notOk(r.jobs.some((j) => j.sourceId === 'vm9'));

  const busy = rig([group({ members: ['vm1'] })], (kind) => kind === 'backup');
  await busy.s.tick();
  for (let m = 1; m <= 24 * 60; m++) {
    busy.clock.advance(MIN);
    await busy.s.tick();
  }
  t.equal(busy.jobs.filter((j) => j.trigger === 'sync').length, 0, 'syncs skipped while one is queued');
  t.equal(busy.jobs.filter((j) => j.trigger === 'recovery-point').length, 2, 'scheduled points are always asked for');
});

t.test('after downtime the scheduler catches up once', async (t) => {
  const r = rig([group({ members: ['vm1'], consistencyCheckTimes: [] })]);
  await r.s.tick();
  r.clock.advance(7 * 60 * MIN + 50 * MIN); // 07:50
  await r.s.tick();
  t.equal(r.jobs.length, 1, 'one sync for the missed quarter hours');
  r.clock.advance(3 * 60 * MIN); // 10:50, crossing 08:00
  await r.s.tick();
  t.same(r.jobs.slice(1).map((j) => j.trigger), ['recovery-point'], 'the missed point, not also a sync');
});

t.test('hourly sync with one point, frequency 24 h', async (t) => {
  const r = rig([group({ members: ['vm1'], syncFrequencyMinutes: 1440, recoveryPointTimes: ['12:30'], consistencyCheckTimes: [] })]);
  await r.s.tick();
  for (let m = 1; m <= 2 * 24 * 60; m++) {
    r.clock.advance(MIN);
    await r.s.tick();
  }
  t.same(r.jobs.map((j) => `${j.trigger}@${j.at}`), ['recovery-point@12:30', 'sync@00:00', 'recovery-point@12:30', 'sync@00:00']);
});

t.test('store maintenance: gc and verify once a day at their times, not stacked', async (t) => {
  let gcPending = false;
  const r = rig([], (kind) => kind === 'gc' && gcPending, { gcTimes: ['02:30'], verifyTimes: ['03:30', '15:30'] });
  await r.s.tick();
  for (let m = 1; m <= 2 * 24 * 60; m++) {
    r.clock.advance(MIN);
    await r.s.tick();
    if (m === 24 * 60) gcPending = true; // day 2: a gc still pending is not stacked
  }
  t.same(r.jobs.map((j) => `${j.kind}@${j.at}`), ['gc@02:30', 'verify@03:30', 'verify@15:30', 'verify@03:30', 'verify@15:30']);
  t.ok(r.jobs.every((j) => j.trigger === 'maintenance' && j.sourceId === undefined));
});

t.test('retention prunes exactly the expired points over simulated days', async (t) => {
  // ten days of a 15-minute sync and points at 08:00 and 20:00, as the scheduler makes them
  const points: RetentionPoint[] = [];
  for (let m = 15; m <= 10 * 24 * 60; m += 15) {
    const mod = m % (24 * 60);
    points.push({ id: `p${m}`, time: DAY0 + m * MIN, tag: mod === 8 * 60 || mod === 20 * 60 ? 'scheduled' : 'sync' });
  }
  const now = DAY0 + 10 * 24 * 60 * MIN + 5 * MIN;
  const expired = new Set(expiredPoints(points, { days: 7, maxCount: 10 }, now));
  const scheduled = points.filter((p) => p.tag === 'scheduled');
  const lastScheduled = scheduled.at(-1)!;
  const keep = new Set([...scheduled.slice(-10).map((p) => p.id), ...points.filter((p) => p.time > lastScheduled.time).map((p) => p.id)]);
  for (const p of points) if (keep.has(p.id) === expired.has(p.id)) t.fail(`${p.id} (${p.tag}) ${keep.has(p.id) ? 'kept' : 'expired'} expected`);
  t.equal(expired.size + keep.size, points.length);
  t.equal(keep.size, 10 + 16, 'ten scheduled points and the syncs since 20:00');

  // days bind before count
  const byDays = expiredPoints(scheduled, { days: 2, maxCount: 100 }, now);
  t.same(byDays, scheduled.filter((p) => p.time < now - 2 * 86_400_000).map((p) => p.id));
  // never the newest point, even when everything is too old
  t.same(expiredPoints([{ id: 'old', time: 0, tag: 'sync' }], { days: 1, maxCount: 1 }, now), []);
  t.same(expiredPoints([], { days: 1, maxCount: 1 }, now), []);
  // manual points count like scheduled ones
  t.same(expiredPoints([{ id: 'm1', time: now - 3, tag: 'manual' }, { id: 'm2', time: now - 2, tag: 'manual' }, { id: 's', time: now - 1, tag: 'sync' }], { days: 1, maxCount: 1 }, now), ['m1']);
});
