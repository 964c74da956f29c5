/**
 * cleanupLeftovers for one VM whose QEMU answers: what a killed run of this driver left, recognised by the
 * `sv-` names (names.ts) and the state file, minus what this driver's live views own (`active` tokens):
 *   1. a VM we paused is resumed (`cont`); a guest we froze is thawed (confirmed);
 *   2. our NBD exports are deleted; our snapshot-access nodes deleted; a device still on our
 *      copy-before-write filter is put back on its node (from the state file's view record); the filter
 *      and scratch nodes deleted; our block jobs cancelled and dismissed;
 *   3. each disk's tracking bitmaps repaired (tracking.ts: a frozen sv-track-* is merged back and removed).
 * A checkpoint view's overlay (checkpoint.ts) comes first, before anything else touches the device: a device
 * whose active layer is our overlay, or a merge job of ours, is merged back (merge.ts, the job driven on from
 * its state), then the overlay node and file go. An overlay file of a record whose node QEMU does not have
 * any more (this QEMU was started again on the base: the restarted guest never saw the overlay's writes) is
 * rolled back: removed. Either way no chain is left.
 * Files (scratch files, stopped-VM servers) are cleaned by the driver once for all VMs.
 */
import { existsSync } from 'node:fs';
import type { QmpClient } from '../../qemu/qmp.js';
import { blockJobCancel, cont, jobDismiss, queryBlock, queryBlockExports, queryNamedBlockNodes, queryStatus } from '../../qemu/qmp-commands.js';
import type { CleanupReport } from '../driver.js';
import { wireOf } from './errors.js';
import { withThawedGuest } from './thaw.js';
import type { LiveVm } from './inspect.js';
import { isOurs, tokenOf } from './names.js';
import type { StateFile } from './state-file.js';
import { mergeOnline } from './merge.js';
import { deleteExport, deleteFile, deleteNode, setDrive } from './steps.js';
import { repairTracking } from './tracking.js';

type Report = { removed: string[]; errors: Array<{ what: string; code: string; message: string }> };

async function attempt(report: Report, what: string, run: () => Promise<unknown>): Promise<void> {
  try {
    await run();
    report.removed.push(what);
  } catch (err) {
    report.errors.push({ what, ...wireOf(err) });
  }
}

export async function cleanupVm(qmp: QmpClient, vm: LiveVm, state: StateFile, active: ReadonlySet<string>, gaSocket: string | undefined): Promise<CleanupReport> {
  const report: Report = { removed: [], errors: [] };
  const stale = (name: string | undefined): name is string => isOurs(name) && !active.has(tokenOf(name)!);
  const pausedBy = state.state.paused[vm.id];
  if (pausedBy !== undefined && !active.has(pausedBy)) {
    await attempt(report, `resumed VM ${vm.name} (paused by view ${pausedBy})`, async () => {
      if ((await queryStatus(qmp)).status === 'paused') await cont(qmp);
      state.update((s) => void delete s.paused[vm.id]);
    });
  }
  const frozenBy = state.state.frozen[vm.id];
  if (frozenBy !== undefined && !active.has(frozenBy)) {
    await attempt(report, `thawed the guest of VM ${vm.name} (frozen by view ${frozenBy})`, async () => {
      if (gaSocket) await withThawedGuest(gaSocket);
      state.update((s) => void delete s.frozen[vm.id]);
    });
  }
  for (const e of await queryBlockExports(qmp)) {
    if (stale(e.id)) await attempt(report, `export ${e.id}`, () => deleteExport(qmp, e.id));
  }
  const merging = new Set<string>();
  for (const [token, v] of Object.entries(state.state.views)) {
    if (v.vmId !== vm.id || active.has(token) || !v.overlays) continue;
    const present = new Set((await queryNamedBlockNodes(qmp)).map((n) => n['node-name']));
    for (const o of v.overlays) {
      merging.add(o.jobId);
      if (present.has(o.overlayNode)) {
        let merged = false;
        await attempt(report, `merged overlay ${o.path} back into ${o.baseNode}`, async () => {
          await mergeOnline(qmp, o);
          merged = true;
        });
        if (!merged) continue; // kept (in use, nothing lost); the record stays for the next start
        await attempt(report, `node ${o.overlayNode}`, () => deleteNode(qmp, o.overlayNode));
        await attempt(report, `overlay file ${o.path}`, async () => deleteFile(o.path));
      } else if (existsSync(o.path)) {
        await attempt(report, `rolled back overlay ${o.path} (QEMU runs on the base without it: its writes were never seen by this run of the VM)`, async () => deleteFile(o.path));
      }
    }
  }
  const nodes = (await queryNamedBlockNodes(qmp)).map((n) => n['node-name']).filter(stale);
  for (const n of nodes.filter((x) => /-snap\d+$/u.test(x))) await attempt(report, `node ${n}`, () => deleteNode(qmp, n));
  for (const b of await queryBlock(qmp)) {
    const root = b.inserted?.['node-name'];
    // a device on our overlay was handled above (merged, or kept because its merge failed: never switched away)
    if (!b.qdev || !stale(root) || /-ovl\d+$/u.test(root)) continue;
    const under = state.state.views[tokenOf(root)!]?.disks.find((d) => d.qdev === b.qdev)?.node;
    if (under) await attempt(report, `device ${b.qdev} back on ${under}`, () => setDrive(qmp, b.qdev!, under));
    else report.errors.push({ what: `device ${b.qdev} on ${root}`, code: 'SV_ERR_HYPERVISOR_STATE', message: `no view record names the node under ${root}` });
  }
  for (const n of nodes.filter((x) => /-cbw\d+$/u.test(x))) await attempt(report, `node ${n}`, () => deleteNode(qmp, n));
  for (const n of nodes.filter((x) => /-scr\d+$/u.test(x))) await attempt(report, `node ${n}`, () => deleteNode(qmp, n));
  for (const j of await qmp.execute<Array<{ id: string; status: string }>>('query-jobs')) {
    if (!stale(j.id) || merging.has(j.id)) continue;
    await attempt(report, `job ${j.id}`, async () => {
      if (j.status !== 'concluded') await blockJobCancel(qmp, j.id).catch(() => undefined);
      await jobDismiss(qmp, j.id).catch(() => undefined);
    });
  }
  const busy = [...active].some((t) => state.state.views[t]?.vmId === vm.id);
  if (!busy) {
    for (const disk of vm.disks) {
      try {
        const repair = await repairTracking(qmp, disk);
        report.removed.push(...repair.actions);
      } catch (err) {
        report.errors.push({ what: `tracking bitmaps of ${disk.key}`, ...wireOf(err) });
      }
    }
  }
  if (report.errors.length === 0) {
    state.update((s) => {
      for (const [token, v] of Object.entries(s.views)) if (v.vmId === vm.id && !active.has(token) && !v.servers) delete s.views[token];
    });
  }
  return report;
}
