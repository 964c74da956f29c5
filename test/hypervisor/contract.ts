/**
 * The shared contract suite of HypervisorDriver (src/hypervisor/driver.ts). Every driver runs it: the QEMU
 * driver (test/hypervisor/qemu-writer.test.ts) and, later, the Hyper-V simulation. It needs one VM that
 * the driver manages, that is running, has at least one disk, and may be viewed offline.
 */
import type { Test } from 'tap';
import { hasCode } from '../../src/errors/index.js';
import { ONLINE_REQUIREMENTS, type HypervisorDriver, type PointInTimeView } from '../../src/hypervisor/driver.js';

type Tap = Test;

export interface ContractSubject {
  driver: HypervisorDriver;
  /** A running VM with at least one disk. */
  vmId: string;
  /** The VM cannot be viewed online (no guest agent): online views must be refused. */
  offlineOnly?: boolean;
}

async function rejectsWith(t: Tap, p: Promise<unknown>, code: Parameters<typeof hasCode>[1], msg: string): Promise<void> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  t.ok(hasCode(err, code), `${msg}: ${String((err as Error | undefined)?.message ?? 'no error')}`);
}

async function withView<T>(driver: HypervisorDriver, vmId: string, fn: (v: PointInTimeView) => Promise<T>): Promise<T> {
  const view = await driver.createView(vmId, { mode: 'offline' });
  try {
    return await fn(view);
  } finally {
    await view.release();
  }
}

/** Run the suite; `factory` is called once and gives the driver and its VM (the caller closes the driver). */
export async function driverContract(t: Tap, factory: () => ContractSubject | Promise<ContractSubject>): Promise<void> {
  const { driver, vmId, offlineOnly } = await factory();
  await t.test('contract: listVms names the VM with its disks', async (t) => {
    const vms = await driver.listVms();
    t.equal(new Set(vms.map((v) => v.id)).size, vms.length, 'ids are unique');
    const vm = vms.find((v) => v.id === vmId);
    t.ok(vm, `VM ${vmId} is listed`);
    t.equal(vm?.state, 'running');
    t.ok((vm?.disks.length ?? 0) > 0);
    for (const d of vm?.disks ?? []) {
      t.ok(d.key && d.identity && d.virtualSize > 0, `disk ${d.key}: identity ${d.identity}, ${d.virtualSize} bytes`);
      t.ok(['none', 'recording', 'inconsistent', 'disabled', 'unsupported'].includes(d.tracking.state));
    }
  });

  await t.test('contract: vmDisks (when the driver has it) agrees with listVms', async (t) => {
    if (!driver.vmDisks) return t.pass('this driver has no quick lookup: the agent lists every VM');
    const listed = (await driver.listVms()).find((v) => v.id === vmId)!;
    const quick = await driver.vmDisks(vmId);
    t.same(quick, { id: listed.id, disks: listed.disks }, 'a VM listVms just saw: the id and disks listVms gives');
    t.equal(await driver.vmDisks('00000000-0000-4000-8000-00000000dead'), undefined, 'an unknown VM: undefined (the caller lists)');
  });

  await t.test('contract: checkOnline reports one known reason per unmet requirement', async (t) => {
    const check = await driver.checkOnline(vmId);
    t.equal(check.possible, check.unmet.length === 0);
    for (const u of check.unmet) t.ok(u.requirement in ONLINE_REQUIREMENTS && u.reason.length > 0, `${u.requirement}: ${u.reason}`);
    const denied = await driver.checkOnline(vmId, { allowOnline: false });
    t.equal(denied.possible, false);
    t.ok(denied.unmet.some((u) => u.requirement === 'online-allowed'));
    if (offlineOnly) t.equal(check.possible, false);
  });

  await t.test('contract: refusals are coded', async (t) => {
    await rejectsWith(t, driver.createView('00000000-0000-0000-0000-000000000000', { mode: 'auto' }), 'SV_ERR_HYPERVISOR_VM_NOT_FOUND', 'unknown VM');
    if (offlineOnly) await rejectsWith(t, driver.createView(vmId, { mode: 'online' }), 'SV_ERR_HYPERVISOR_ONLINE_NOT_POSSIBLE', 'online without the requirements');
  });

  await t.test('contract: a view has every disk, answers changes(null), and is idempotent', async (t) => {
    const listed = (await driver.listVms()).find((v) => v.id === vmId)!;
    const view = await driver.createView(vmId, { mode: 'offline' });
    t.equal(view.vmId, vmId);
    t.equal(view.consistency, 'offline');
    t.equal(view.disks.length, listed.disks.length);
    for (const d of view.disks) {
      const l = listed.disks.find((x) => x.key === d.key);
      t.ok(l, `disk ${d.key} is listed`);
      t.equal(d.virtualSize, l?.virtualSize);
      t.equal(d.identity, l?.identity);
      t.ok(['file', 'nbd', 'agent'].includes(d.source.kind));
      t.same(await view.changes(d.index, null), { usable: false, reason: 'no previous reference' });
      const ref = d.nextReference;
      if (ref) {
        t.match(await view.changes(d.index, { ...ref, diskIdentity: `${ref.diskIdentity}-other` }), { usable: false, reason: /disk replaced/ });
        t.match(await view.changes(d.index, { ...ref, virtualSize: ref.virtualSize + 512 }), { usable: false, reason: /disk resized/ });
      }
    }
    await view.commit();
    await view.commit();
    await view.abort(); // after commit: nothing to roll back
    await view.release();
    await view.release();
    await rejectsWith(t, view.changes(0, null), 'SV_ERR_HYPERVISOR_VIEW_RELEASED', 'changes after release');
  });

  await t.test('contract: commit advances tracking; abort and release-alone keep the last committed reference', async (t) => {
    const first = await withView(driver, vmId, async (v) => {
      await v.commit();
      return v.disks.map((d) => d.nextReference);
    });
    if (first.every((r) => r === null)) {
      t.ok(true, 'this driver hands out no references for this VM');
      return;
    }
    const aborted = await withView(driver, vmId, async (v) => {
      for (const d of v.disks) if (first[d.index]) t.match(await v.changes(d.index, first[d.index]!), { usable: true }, `disk ${d.key}: usable after commit`);
      await v.abort();
      return v.disks.map((d) => d.nextReference);
    });
    await withView(driver, vmId, async (v) => {
      for (const d of v.disks) if (first[d.index]) t.match(await v.changes(d.index, first[d.index]!), { usable: true }, `disk ${d.key}: still usable after an aborted view`);
      for (const d of v.disks) if (aborted[d.index]) t.match(await v.changes(d.index, aborted[d.index]!), { usable: false }, `disk ${d.key}: the aborted view's reference is not`);
      // released without commit/abort = abort
    });
    await withView(driver, vmId, async (v) => {
      for (const d of v.disks) if (first[d.index]) t.match(await v.changes(d.index, first[d.index]!), { usable: true }, `disk ${d.key}: still usable after a view released alone`);
      await v.commit();
    });
  });

  await t.test('contract: nothing left behind', async (t) => {
    const report = await driver.cleanupLeftovers();
    t.same(report.errors, []);
    t.same(report.removed, [], 'a clean driver leaves nothing to clean');
  });
}
