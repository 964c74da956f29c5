/**
 * The QEMU driver's pure parts, without a VM: socket globs, the names it owns, the state file (round trip
 * and a damaged file), the mapping of QEMU run states, device keys and the online requirements.
 */
import t from 'tap';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createServer, type Socket } from 'node:net';
import { QemuDriver } from '../../src/hypervisor/qemu/driver.js';
import { hasCode } from '../../src/errors/index.js';
import { deviceKey, vmState, type LiveVm } from '../../src/hypervisor/qemu/inspect.js';
import { isOurs, isTrackingBitmap, names, newToken, tokenOf, trackingBitmap } from '../../src/hypervisor/qemu/names.js';
import { onlineCheck } from '../../src/hypervisor/qemu/online.js';
import { expandPattern, expandSockets, matchesPattern } from '../../src/hypervisor/qemu/sockets.js';
import { StateFile } from '../../src/hypervisor/qemu/state-file.js';
import { identityChange } from '../../src/hypervisor/qemu/bitmap-changes.js';
import { fallbackReason } from '../../src/appliance/fallback.js';
import { tempDir } from '../helpers/env.js';

t.test('socket globs', async (t) => {
  const dir = tempDir(t, 'sv-qemu-glob-');
  for (const d of ['a', 'b']) mkdirSync(join(dir, d));
  for (const f of ['a/vm1.qmp', 'a/vm2.qmp', 'b/vm3.qmp', 'b/other.sock', 'a/.hidden.qmp']) writeFileSync(join(dir, f), '');
  t.same(expandPattern(join(dir, '*', '*.qmp')), [join(dir, 'a/vm1.qmp'), join(dir, 'a/vm2.qmp'), join(dir, 'b/vm3.qmp')]);
  t.same(expandPattern(join(dir, 'a', 'vm?.qmp')), [join(dir, 'a/vm1.qmp'), join(dir, 'a/vm2.qmp')]);
  t.same(expandPattern(join(dir, 'nope', 'x.qmp')), [join(dir, 'nope', 'x.qmp')], 'a plain path is kept even when missing');
  t.same(expandPattern(join(dir, 'nope', '*.qmp')), []);
  t.ok(matchesPattern(join(dir, 'a/gone.qmp'), join(dir, '*', '*.qmp')));
  t.notOk(matchesPattern(join(dir, 'a/sub/gone.qmp'), join(dir, '*', '*.qmp')), '* does not cross a /');
  t.same(expandSockets([join(dir, 'b', '*.qmp')], [join(dir, 'b/gone.qmp'), join(dir, 'c/gone.qmp')]), [join(dir, 'b/gone.qmp'), join(dir, 'b/vm3.qmp')]);
});

t.test('names: ours, with a token, and nothing else', async (t) => {
  const token = newToken();
  t.match(token, /^[0-9a-f]{8}$/);
  const n = names(token, 12);
  for (const v of Object.values(n)) {
    t.equal(tokenOf(v), token, v);
    t.ok(v.length <= 31 || v.endsWith('.qcow2'), `${v} fits a QEMU node name`);
  }
  t.ok(isTrackingBitmap(trackingBitmap(token)));
  t.notOk(isTrackingBitmap(n.cbwNode));
  for (const other of ['disk0', 'sv-', 'sv-track-', 'sv-xyz', 'sv-1234567', 'backup-sv-12345678-x', 'sv-1234567g-cbw0', undefined]) t.notOk(isOurs(other), String(other));
});

t.test('state file: round trip; a damaged file is a coded error', async (t) => {
  const dir = tempDir(t, 'sv-qemu-state-');
  const s = new StateFile(dir);
  s.update((st) => {
    st.paused.vm1 = 'abcd0123';
    st.views.abcd0123 = { vmId: 'vm1', disks: [{ qdev: '/machine/peripheral/vblk0/virtio-backend', node: 'disk0' }] };
  });
  t.same(new StateFile(dir).state.views.abcd0123, { vmId: 'vm1', disks: [{ qdev: '/machine/peripheral/vblk0/virtio-backend', node: 'disk0' }] });
  writeFileSync(s.path, '{"vms": ');
  t.ok(hasCode((() => {
    try {
      return new StateFile(dir);
    } catch (err) {
      return err;
    }
  })(), 'SV_ERR_HYPERVISOR_STATE'));
});

t.test('run states, device keys', async (t) => {
  t.equal(vmState('running'), 'running');
  t.equal(vmState('paused'), 'paused');
  t.equal(vmState('io-error'), 'paused');
  t.equal(vmState('inmigrate'), 'migrating');
  t.equal(vmState('shutdown'), 'stopped');
  t.equal(vmState('guest-panicked'), 'crashed');
  t.equal(vmState('prelaunch'), 'unknown');
  t.equal(deviceKey('/machine/peripheral/vblk0/virtio-backend'), 'vblk0');
  t.equal(deviceKey('/machine/peripheral-anon/device[3]/virtio-backend'), '/machine/peripheral-anon/device[3]/virtio-backend');
});

t.test('online requirements: one reason per unmet one', async (t) => {
  const disk = { key: 'vblk0', device: 'd', format: 'raw', virtualSize: 1, path: '/x', identity: 'i', snapshottable: true, tracking: { state: 'none' as const, persistent: false }, node: 'disk0', qdev: 'q', bitmaps: [] };
  const vm: LiveVm = { id: 'id', name: 'vm', state: 'running', runState: 'running', disks: [disk] };
  const ga = { present: true, answering: true, freezeSupported: true };
  t.same(onlineCheck(vm, ga, true), { possible: true, unmet: [] });
  const all = onlineCheck({ ...vm, state: 'paused', runState: 'paused', disks: [{ ...disk, snapshottable: false, reason: 'disk vblk0 (/dev/sdb) is a pass-through host block device' }] }, { present: true, answering: true, freezeSupported: false }, false);
  t.same(all.unmet.map((u) => u.requirement), ['guest-freeze', 'vm-running', 'disks-snapshottable', 'online-allowed']);
  t.match(all.unmet[2]!.reason, /pass-through/);
  t.same(onlineCheck(vm, { present: false, answering: false, freezeSupported: false }, true).unmet.map((u) => u.requirement), ['guest-agent', 'guest-freeze']);
});

t.test('a disk that reads another file: storage migrated or replaced (fallback codes)', async (t) => {
  const moved = identityChange('/csv/m0.raw#64:12', '/solo/m0.raw#65:7', false);
  t.match(moved, /^storage migrated .*\/solo\/m0\.raw.*\/csv\/m0\.raw/u, moved);
  t.equal(fallbackReason(moved), 'storage-migrated');
  const copied = identityChange('/vms/m0.raw#64:12', '/vms/m0.raw#65:7', true);
  t.equal(fallbackReason(copied), 'storage-migrated', `same path on another host, bitmap carried: ${copied}`);
  const replaced = identityChange('/vms/m0.raw#64:12', '/vms/m0.raw#64:13', false);
  t.equal(fallbackReason(replaced), 'disk-changed', replaced);
  t.equal(fallbackReason(identityChange('/a/x.raw#node:disk0', '/b/x.raw#node:disk0', false)), 'storage-migrated', 'a path the host cannot stat');
});

t.test('cleanupLeftovers: a QMP socket that never greets is reported when a dead run left work on its VM', async (t) => {
  const dir = tempDir(t, 'sv-qemu-silent-');
  const socket = join(dir, 'silent.qmp');
  // accepts and never greets: what a client sees while QEMU serves another one on the socket, or is hung
  const held: Socket[] = [];
  const server = createServer((c) => void held.push(c.on('error', () => {})));
  await new Promise<void>((r) => server.listen(socket, r));
  t.teardown(() => {
    for (const c of held) c.destroy();
    server.close();
  });
  const stateDir = join(dir, 'state');
  new StateFile(stateDir).update((s) => void (s.vms['vm-a'] = { name: 'a', socket, disks: [] }));
  const quiet = new QemuDriver({ qmp: [socket], stateDir, cleanupWaitS: 1 });
  t.same(await quiet.cleanupLeftovers(), { removed: [], errors: [] }, 'nothing of ours recorded there: nothing to report');
  await quiet.close();
  new StateFile(stateDir).update((s) => {
    s.views['0123abcd'] = { vmId: 'vm-a', disks: [{ qdev: 'vblk0', node: 'disk0' }] };
    s.paused['vm-a'] = '0123abcd';
  });
  const d = new QemuDriver({ qmp: [socket], stateDir, cleanupWaitS: 1 });
  t.teardown(() => d.close());
  const report = await d.cleanupLeftovers();
  t.match(report, { removed: [], errors: [{ what: `VM vm-a (QMP ${socket})`, code: 'SV_ERR_HYPERVISOR_VM_GONE', message: /did not answer within 1 s/u }] }, 'a dead view and a pause mark there: reported, kept');
  t.same(Object.keys(new StateFile(stateDir).state.views), ['0123abcd'], 'the record stays for the next cleanup');
});
