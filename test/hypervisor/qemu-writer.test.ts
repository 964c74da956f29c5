/**
 * The QEMU driver on the writer guest (no guest agent → offline views), one boot for the file: at least 10
 * successive views while the guest writes, each read over NBD one point in time (the writer rule holds even
 * when the guest writes a lot between reading the header and the ring), pauseMs recorded; a plain copy of
 * the running disk read the same way is torn. Then (issue 14) the VM's configuration: captured from QMP with a
 * view, kept with a point in a store, and restored with the disk as files (`restore --config-to DIR`); QEMU
 * cannot import (coded refusal). Then the shared driver contract.
 */
import t from 'tap';
import { closeSync, openSync, readFileSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { hasCode } from '../../src/errors/index.js';
import { QemuDriver } from '../../src/hypervisor/qemu/driver.js';
import { describeConfiguration } from '../../src/hypervisor/config.js';
import { closePool } from '../../src/pool/index.js';
import { backup } from '../../src/sync/index.js';
import { cliInProcess } from '../helpers/cli.js';
import { queryBlockExports, queryNamedBlockNodes, queryStatus } from '../../src/qemu/qmp-commands.js';
import { tempDir } from '../helpers/env.js';
import { checkWriterView, startDriverVm } from '../helpers/driver-vm.js';
import { HEADER_LBA, RING_LBA, RING_SLOTS, SECTOR, checkWriterImage, checkWriterRule, makeWriterDisk, readHeader, waitForHeader } from '../helpers/writer-guest.js';
import { driverContract } from './contract.js';

const dir = tempDir(t, 'sv-hv-writer-');
const disk = makeWriterDisk(join(dir, 'disk.raw'), 'raw');
const { vm, driverSocket } = await startDriverVm(t, { dir, name: 'writer', disks: [{ path: disk, format: 'raw' }] });
await waitForHeader(disk, 300, 'raw', 180_000); // a full ring; slow when the machine is loaded
const stateDir = join(dir, 'state');
const driver = new QemuDriver({ qmp: [join(dir, '*.drv.qmp')], stateDir });
t.teardown(() => driver.close());
t.teardown(() => closePool());
const vmId = '6c2b4b1a-53f5-4d6e-9a4b-2f1a0c9e7d11';

t.test('listVms: the writer VM, its disk, no guest agent', async (t) => {
  const vms = await driver.listVms();
  t.equal(vms.length, 1);
  t.match(vms[0], { id: vmId, name: 'writer', state: 'running', guestAgent: { present: false, answering: false } });
  t.match(vms[0]!.disks, [{ key: 'vblk0', format: 'raw', virtualSize: 64 << 20, path: disk, snapshottable: true, tracking: { state: 'none', persistent: false } }]);
  t.match(driver.hypervisor, { name: 'qemu', version: /^\d+\.\d+\.\d+$/ });
  const check = await driver.checkOnline(vmId);
  t.equal(check.possible, false);
  t.same(check.unmet.map((u) => u.requirement).sort(), ['guest-agent', 'guest-freeze']);
  t.ok(driverSocket);
});

t.test('10 offline views while the guest writes: each one point in time', async (t) => {
  const pauses: number[] = [];
  for (let i = 0; i < 10; i++) {
    const view = await driver.createView(vmId, { mode: 'auto' });
    try {
      t.equal(view.consistency, 'offline');
      t.ok(view.reasons.length >= 1 && view.reasons.some((r) => /guest agent/u.test(r)), view.reasons.join('; '));
      t.equal(view.disks.length, 1);
      pauses.push(view.pauseMs!);
      const check = await checkWriterView(view.disks[0]!.source, async () => {
        await waitForHeader(disk, readHeader(disk) + 3);
      });
      t.same(check.problems, [], `view ${i}: header ${check.header}`);
      await view.commit();
    } finally {
      await view.release();
    }
    t.equal((await queryStatus(vm.qmp)).status, 'running', 'the VM runs after the view');
  }
  t.comment(`pauseMs over 10 views: ${pauses.join(', ')}`);
  t.ok(pauses.every((p) => Number.isFinite(p) && p >= 0));
  t.same((await queryBlockExports(vm.qmp)).map((e) => e.id), [], 'no export left');
  t.same((await queryNamedBlockNodes(vm.qmp)).map((n) => n['node-name']).filter((n) => n.startsWith('sv-')), [], 'no node left');
});

t.test('one view per VM at a time', async (t) => {
  const first = await driver.createView(vmId, { mode: 'offline' });
  try {
    const err = await driver.createView(vmId, { mode: 'offline' }).then(async (v) => v.release(), (e: unknown) => e);
    t.ok(hasCode(err, 'SV_ERR_HYPERVISOR_VIEW_FAILED'), String(err));
  } finally {
    await first.release();
  }
});

t.test('a plain copy of the running disk, read the same way, is torn', async (t) => {
  const fd = openSync(disk, 'r');
  try {
    const buf = Buffer.alloc(SECTOR);
    readSync(fd, buf, 0, SECTOR, HEADER_LBA * SECTOR);
    const header = buf.readUInt32LE(0);
    await waitForHeader(disk, header + 3);
    const ring = Buffer.alloc(RING_SLOTS * SECTOR);
    readSync(fd, ring, 0, ring.length, RING_LBA * SECTOR);
    const check = checkWriterRule(header, Array.from({ length: RING_SLOTS }, (_, i) => ring.readUInt32LE(i * SECTOR)));
    t.equal(check.ok, false, `the rule catches the torn copy: ${check.problems[0]}`);
  } finally {
    closeSync(fd);
  }
});

t.test('configuration: captured from QMP with a view, kept with the point, restored as files with the disk', async (t) => {
  const store = join(dir, 'store');
  const view = await driver.createView(vmId, { mode: 'offline' });
  let pointId: string;
  let config: Awaited<ReturnType<typeof view.configuration>>;
  try {
    config = await view.configuration();
    t.match(config, { format: 'qemu-qmp-json', version: /^\d+\.\d+\.\d+$/u, simulated: false });
    t.same(config.files.map((f) => f.name), ['qemu-config.json']);
    const described = JSON.parse(Buffer.from(config.files[0]!.data).toString('utf8')) as { uuid: string; name: string; machine: unknown; blockDevices: Array<{ qdev: string | null; medium: { file: string } | null }> };
    t.equal(described.uuid, vmId);
    t.equal(described.name, 'writer');
    t.type(described.machine, 'string', `machine type from qom-get: ${JSON.stringify(described.machine)}`);
    t.ok(described.blockDevices.some((b) => b.medium?.file === disk), 'the disk file is in the description');
    t.equal(await view.configuration(), config, 'asked once per view');
    const r = await backup({ store, source: 'writer', disks: [view.disks[0]!.source], configuration: config, consistency: view.consistency });
    pointId = r.id;
    t.match(r.configuration, { format: 'qemu-qmp-json', files: [{ name: 'qemu-config.json', size: config.files[0]!.data.length }] });
    await view.commit();
  } finally {
    await view.release();
  }
  const points = await cliInProcess(['points', 'writer', '--store', store, '--json']);
  t.match(JSON.parse(points.stdout), [{ id: pointId, configuration: { format: 'qemu-qmp-json' } }], 'points --json shows the configuration');
  const out = join(dir, 'whole-vm');
  const res = await cliInProcess(['restore', `writer@${pointId}`, '--store', store, '--config-to', out, '--json']);
  t.equal(res.code, 0, res.stderr);
  t.same(readFileSync(join(out, 'qemu-config.json')), Buffer.from(config.files[0]!.data), 'the configuration file, byte for byte');
  t.match(JSON.parse(readFileSync(join(out, 'shadowvault-configuration.json'), 'utf8')), { point: pointId, format: 'qemu-qmp-json', disks: ['vblk0'] });
  t.same(checkWriterImage(join(out, 'vblk0')).problems, [], 'the disk restored beside it passes the writer rule');
  const again = await cliInProcess(['restore', `writer@${pointId}`, '--store', store, '--config-to', out]);
  t.equal(again.code, 1);
  t.match(again.stderr, /SV_ERR_FORMAT_OUTPUT_EXISTS/u, 'an existing file is not overwritten without --force');
  const imp = await driver.importVm({ folder: out, configuration: describeConfiguration(config), disks: ['vblk0'] }).catch((e: unknown) => e);
  t.ok(hasCode(imp, 'SV_ERR_HYPERVISOR_IMPORT_NOT_SUPPORTED'), 'QEMU has no import');
});

await driverContract(t, () => ({ driver, vmId, offlineOnly: true }));
