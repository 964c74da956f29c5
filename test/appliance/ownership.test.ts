/**
 * The appliance's side of VM ownership (src/appliance/ownership.ts) against real ownership records in a folder
 * (src/agent/owner.ts, as the agent's owner.claim / owner.release handlers use them), reached through an
 * in-process RPC; `down` stands for the host's agent killed or disconnected (the channel's SV_ERR_AGENT_OFFLINE).
 *
 * - a release while the host is down is kept durably (owner-releases.json, read again by a new document on the
 *   same folder, as after an appliance restart) and done by retry() once the host reports the VM; a retry
 *   through a host that does not report it does nothing;
 * - the intent is on disk before the host is asked (an appliance killed during the release still has it);
 * - claiming the VM again cancels a pending release once its source is saved (the retry would otherwise release
 *   a VM protected again), and so does a retry that finds a source for the VM here (the appliance died before
 *   removing it);
 * - a claim whose source was never saved (the appliance killed between the two) is released by the next retry;
 *   a refused claim leaves no intent;
 * - a takeover while the host is down fails with the host's error (nothing recorded), a plain claim does not
 *   (the first backup claims);
 * - a retry that comes while a source is being removed (its intent saved, the source not yet gone) leaves the
 *   intent alone: it dropped it, and an appliance killed before it asked the host left the VM owned by itself
 *   while it no longer protected it (cluster/owner-appliance-kill, round 3 of a run).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import t from 'tap';
import { claimOwner, readOwner, releaseOwner, type ApplianceRef } from '../../src/agent/owner.js';
import { JsonDocument } from '../../src/appliance/durable.js';
import { ownerOps, type PendingRelease } from '../../src/appliance/ownership.js';
import { SvError } from '../../src/errors/index.js';
import { tempDir } from '../helpers/env.js';
import { LoopbackRpc } from '../helpers/loopback-rpc.js';

const dir = tempDir(t, 'sv-ownership-');
const disk = join(dir, 'vm1.raw');
writeFileSync(disk, '');
const vm = { id: 'vm-1', disks: [{ path: disk }] } as unknown as Parameters<typeof readOwner>[0];
const A: ApplianceRef = { id: 'appliance-a-id', name: 'appliance-a' };
const B: ApplianceRef = { id: 'appliance-b-id', name: 'appliance-b' };

/** One host agent serving appliance `me`, `down` while killed; `onRelease` runs when a release reaches it. */
function host(me: ApplianceRef): { rpc: LoopbackRpc; down: boolean; onRelease: () => void } {
  const h = { down: false, rpc: undefined as unknown as LoopbackRpc, onRelease: () => undefined as void };
  const offline = (): never => {
    throw new SvError('SV_ERR_AGENT_OFFLINE', 'agent host-1 is not connected', { agentId: 'host-1' });
  };
  h.rpc = new LoopbackRpc('host-1', {
    'owner.claim': async (p) => {
      if (h.down) offline();
      const got = await claimOwner(vm, me, 'host-1', { takeOver: p.takeOver === true });
      return { result: { owner: got.record, ...(got.previous ? { previous: got.previous } : {}) } };
    },
    'owner.release': async () => {
      if (h.down) offline();
      h.onRelease();
      return { result: { released: await releaseOwner(vm, me) } };
    },
  });
  return h;
}

const log = pino({ level: 'silent' });
const hostVm = { id: 'vm-1', hostId: 'host-1' };

t.test('a release while the host is down is kept, and done when the host reports the VM again', async (t) => {
  const h = host(A);
  let reports = true;
  const pending = new JsonDocument<PendingRelease[]>(join(dir, 'a-state'), 'owner-releases', () => []);
  const ops = ownerOps(h.rpc, () => (reports ? ['host-1'] : []), log, pending);
  t.match(await ops.claim(hostVm, false), { owner: { appliance: A } }, 'A claims');
  h.down = true;
  reports = false; // a killed agent's VMs are not reported by a connected host
  await ops.release('vm-1');
  t.match(pending.value, [{ vmId: 'vm-1' }], 'kept');
  t.match(new JsonDocument<PendingRelease[]>(join(dir, 'a-state'), 'owner-releases', () => []).value, [{ vmId: 'vm-1' }], 'durably (read back from the folder)');
  t.match(await readOwner(vm), { appliance: A }, 'the record still names A');
  h.down = false;
  await ops.retry('host-2');
  t.equal(pending.value.length, 1, 'a host that does not report the VM releases nothing');
  reports = true;
  await ops.retry('host-1');
  t.same(pending.value, [], 'done once the host reports the VM');
  t.equal(await readOwner(vm), undefined, 'the record is gone: the VM is free');
});

t.test('claiming the VM again cancels a pending release', async (t) => {
  const h = host(A);
  const pending = new JsonDocument<PendingRelease[]>(join(dir, 'b-state'), 'owner-releases', () => []);
  const ops = ownerOps(h.rpc, () => ['host-1'], log, pending);
  h.down = true;
  await ops.release('vm-1');
  t.equal(pending.value.length, 1, 'pending');
  t.equal(await ops.claim(hostVm, false), undefined, 'a plain claim with the host down: not an error (the first backup claims)');
  t.match(pending.value, [{ vmId: 'vm-1' }], 'the intent stays until the source is saved');
  await ops.retry('host-1');
  t.equal(pending.value.length, 1, 'and a retry meanwhile leaves the claim being made alone');
  await ops.kept('vm-1');
  t.same(pending.value, [], 'the pending release is cancelled once the source is saved');
  h.down = false;
  await ops.claim(hostVm, false);
  await ops.kept('vm-1');
  await ops.retry('host-1');
  t.match(await readOwner(vm), { appliance: A }, 'and a later retry does not release the VM protected again');
});

t.test('a claim whose source was never saved (the appliance killed in between) is released by the next retry', async (t) => {
  const h = host(A);
  const state = join(dir, 'k-state');
  const pending = new JsonDocument<PendingRelease[]>(state, 'owner-releases', () => []);
  await releaseOwner(vm, A);
  t.match(await ownerOps(h.rpc, () => ['host-1'], log, pending).claim(hostVm, false), { owner: { appliance: A } }, 'A claims (then dies before it saves the source)');
  // the restarted appliance: its state read back from the folder, no source for the VM
  const again = ownerOps(h.rpc, () => ['host-1'], log, new JsonDocument<PendingRelease[]>(state, 'owner-releases', () => []), () => false);
  await again.retry('host-1');
  t.equal(await readOwner(vm), undefined, 'the claim is released: the VM is free');
  const refused = host(B);
  const byB = ownerOps(refused.rpc, () => ['host-1'], log, new JsonDocument<PendingRelease[]>(join(dir, 'k2-state'), 'owner-releases', () => []));
  t.match(await byB.claim(hostVm, false), { owner: { appliance: B } }, 'another appliance claims it without a takeover');
  await byB.kept('vm-1');
  await releaseOwner(vm, B);
});

t.test('a refused claim drops the intent it saved', async (t) => {
  const hb = host(B);
  await claimOwner(vm, A, 'host-1');
  const pending = new JsonDocument<PendingRelease[]>(join(dir, 'r-state'), 'owner-releases', () => []);
  await t.rejects(ownerOps(hb.rpc, () => ['host-1'], log, pending).claim(hostVm, false), { code: 'SV_ERR_AGENT_VM_OWNED' });
  t.same(pending.value, [], 'nothing left to release');
  t.match(await readOwner(vm), { appliance: A }, 'A still owns the VM');
});

t.test('a takeover while the host is down fails with the host\'s error; nothing is recorded', async (t) => {
  const hb = host(B);
  const ops = ownerOps(hb.rpc, () => ['host-1'], log, new JsonDocument<PendingRelease[]>(join(dir, 'c-state'), 'owner-releases', () => []));
  hb.down = true;
  await t.rejects(ops.claim(hostVm, true), { code: 'SV_ERR_AGENT_OFFLINE' }, 'refused with the host\'s error');
  t.match(await readOwner(vm), { appliance: A }, 'A still owns the VM');
  hb.down = false;
  t.match(await ops.claim(hostVm, true), { owner: { appliance: B }, previous: { appliance: A } }, 'with the host back, the takeover is recorded');
});

t.test('the intent is on disk before the host is asked; a VM still protected here is not released by a retry', async (t) => {
  const h = host(B);
  const state = join(dir, 'd-state');
  const pending = new JsonDocument<PendingRelease[]>(state, 'owner-releases', () => []);
  let protectedHere = false;
  const ops = ownerOps(h.rpc, () => ['host-1'], log, pending, () => protectedHere);
  await ops.claim(hostVm, true);
  let seen: PendingRelease[] = [];
  h.onRelease = () => (seen = new JsonDocument<PendingRelease[]>(state, 'owner-releases', () => []).value);
  await ops.release('vm-1');
  t.match(seen, [{ vmId: 'vm-1' }], 'the release reached the host with its intent already saved');
  t.same(pending.value, [], 'and dropped once the host answered');
  await ops.claim(hostVm, false);
  await ops.kept('vm-1'); // the source is saved
  await ops.intendRelease('vm-1'); // the appliance died here, before it removed the source
  protectedHere = true;
  const restarted = ownerOps(h.rpc, () => ['host-1'], log, new JsonDocument<PendingRelease[]>(state, 'owner-releases', () => []), () => protectedHere);
  await restarted.retry('host-1');
  t.same(new JsonDocument<PendingRelease[]>(state, 'owner-releases', () => []).value, [], 'the stale intent is dropped');
  t.match(await readOwner(vm), { appliance: B }, 'and the VM, still protected here, keeps its record');
});

t.test('a retry while the source is being removed leaves the intent alone (then the VM is released)', async (t) => {
  const h = host(B);
  const state = join(dir, 'e-state');
  let protectedHere = true;
  const ops = ownerOps(h.rpc, () => ['host-1'], log, new JsonDocument<PendingRelease[]>(state, 'owner-releases', () => []), () => protectedHere);
  await ops.claim(hostVm, false);
  await ops.kept('vm-1');
  t.match(await readOwner(vm), { appliance: B }, 'B protects the VM');
  await ops.intendRelease('vm-1'); // the source is being removed: an inventory push's retry comes in between
  await ops.retry('host-1');
  t.match(new JsonDocument<PendingRelease[]>(state, 'owner-releases', () => []).value, [{ vmId: 'vm-1' }], 'the intent is kept (it was dropped: the source was still here)');
  protectedHere = false; // the source is removed; the appliance is killed before it asks the host
  const restarted = ownerOps(h.rpc, () => ['host-1'], log, new JsonDocument<PendingRelease[]>(state, 'owner-releases', () => []), () => protectedHere);
  await restarted.retry('host-1');
  t.equal(await readOwner(vm), undefined, 'the restarted appliance releases the VM');
  const stays = ownerOps(h.rpc, () => ['host-1'], log, new JsonDocument<PendingRelease[]>(join(dir, 'f-state'), 'owner-releases', () => []), () => true);
  await stays.intendRelease('vm-1');
  await stays.kept('vm-1'); // the source could not be removed
  await stays.retry('host-1');
  t.same(new JsonDocument<PendingRelease[]>(join(dir, 'f-state'), 'owner-releases', () => []).value, [], 'an intent whose source stays is dropped, and the VM left alone');
});
