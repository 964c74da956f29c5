/**
 * ReplicaDriver without a running qemu-storage-daemon (the real-daemon flows are in test/cluster/replica.test):
 * the wrapped driver's VMs pass through, importVm goes to the wrapped driver (refused, coded, on a host with
 * replicas only), and a replica whose daemon does not answer is listed 'unknown' with the error, never dropped.
 */
import { join } from 'node:path';
import t from 'tap';
import { parseReplicaSpec } from '../../src/hypervisor/replica/config.js';
import { ReplicaDriver } from '../../src/hypervisor/replica/driver.js';
import { FixedDriver, vm } from '../agent/helpers.js';
import { asyncErrorCode } from '../helpers/codes.js';
import { tempDir } from '../helpers/env.js';

const dir = tempDir(t, 'sv-replica-driver-');
const spec = `vm1=qsd=${join(dir, 'none.qmp')},node=replica0,nbd=${join(dir, 'nbd.sock')},primary=${join(dir, 'primary.qmp')},job=repl0`;
const req = { folder: dir, configuration: { format: 'qemu-json', version: '1', simulated: false, files: [] }, disks: [] } as unknown as Parameters<ReplicaDriver['importVm']>[0];

t.test('with the host\'s own driver', async (t) => {
  const inner = new FixedDriver([vm('11111111-2222-3333-4444-555555555555', 'own')]);
  const d = new ReplicaDriver({ inner, replicas: [parseReplicaSpec(spec)], stateDir: join(dir, 'a') });
  t.teardown(() => d.close());
  const vms = await d.listVms();
  t.same(vms.map((v) => v.id), ['11111111-2222-3333-4444-555555555555', 'replica-vm1'], 'own VMs, then the replica');
  t.match(vms[1], { state: 'unknown', replica: { state: 'unknown', primary: { job: 'repl0' } }, error: { code: /^SV_ERR_/u } }, 'a daemon that does not answer: unknown, with the error');
  await t.rejects(d.importVm(req), /FixedDriver imports nothing/u, 'importVm: the host\'s own driver answers');
  t.match(await d.checkOnline('replica-vm1'), { possible: false, unmet: [{ requirement: 'vm-running' }] }, 'a replica is never online');
  t.equal(await asyncErrorCode(() => d.createView('replica-vm1', { mode: 'online' })), 'SV_ERR_QEMU_CONNECT', 'no view without its daemon');
});

t.test('replicas only', async (t) => {
  const d = new ReplicaDriver({ inner: null, replicas: [parseReplicaSpec(spec)], stateDir: join(dir, 'b') });
  t.teardown(() => d.close());
  t.equal(await asyncErrorCode(() => d.importVm(req)), 'SV_ERR_HYPERVISOR_IMPORT_NOT_SUPPORTED', 'importVm refused, coded');
  t.equal(await asyncErrorCode(() => d.createView('nope', { mode: 'auto' })), 'SV_ERR_HYPERVISOR_VM_NOT_FOUND', 'an unknown VM');
  t.match(await d.cleanupLeftovers(), { removed: [], errors: [{ what: 'replica vm1' }] }, 'cleanup reports the daemon it could not reach');
});
