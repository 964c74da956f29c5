/**
 * Live migration as the QEMU driver sees it, per VM (one QMP socket):
 *
 * - ROLE. Which side of a migration this QEMU is, from its run state and `query-migrate`:
 *     inmigrate                           → 'incoming'  (destination: the VM does not run here yet)
 *     finish-migrate, or running/paused
 *     with a migration setup/active/…     → 'outgoing'  (source: the VM still runs here)
 *     postmigrate                         → 'completed' (source after the switch-over: the VM runs elsewhere)
 *     anything else                       → none
 *   The appliance resolves a VM seen on two nodes at once with it (src/appliance/agents/placement.ts).
 *
 * - BITMAPS TRAVEL. The driver's tracking bitmaps (sv-track-*) live in QEMU's memory (raw disks) or are
 *   flushed to the qcow2 image only at a clean close. A live migration carries them only with the
 *   `dirty-bitmaps` migration capability. The driver turns it on for every live VM it manages: on a source
 *   when it first sees the VM, on a destination while it waits in `inmigrate` (QEMU 7.2 needs it only on the
 *   source, seen in test/cluster/migration.test.ts; setting it on both sides costs nothing and is what the
 *   QEMU documentation asks). Bitmaps are matched by node name, which the cluster manager keeps identical on
 *   both sides (it must, for the disks to migrate at all). The capability cannot change while a migration
 *   runs (QEMU refuses): the driver tries again at the next poll.
 */
import type { QmpClient } from '../../qemu/qmp.js';
import type { RunState } from '../../qemu/qmp-commands.js';
import type { MigrationRole } from '../driver.js';

const ACTIVE = new Set(['setup', 'active', 'pre-switchover', 'device', 'postcopy-active', 'postcopy-paused', 'postcopy-recover', 'wait-unplug', 'cancelling', 'colo']);

export async function migrationRole(qmp: QmpClient, runState: RunState): Promise<MigrationRole | undefined> {
  if (runState === 'inmigrate') return 'incoming';
  if (runState === 'postmigrate') return 'completed';
  if (runState === 'finish-migrate') return 'outgoing';
  if (runState !== 'running' && runState !== 'paused') return undefined;
  const m = await qmp.execute<{ status?: string }>('query-migrate');
  return m.status !== undefined && ACTIVE.has(m.status) ? 'outgoing' : undefined;
}

/** Capabilities set per QMP client (a new QEMU process is a new client). */
const done = new WeakSet<QmpClient>();

/**
 * Turn on `dirty-bitmaps` for this QEMU, once per process. Returns whether it is on; false when QEMU refused
 * (a migration in progress): the next call tries again.
 */
export async function ensureBitmapMigration(qmp: QmpClient): Promise<boolean> {
  if (done.has(qmp)) return true;
  try {
    const caps = await qmp.execute<Array<{ capability: string; state: boolean }>>('query-migrate-capabilities');
    if (!caps.some((c) => c.capability === 'dirty-bitmaps' && c.state)) {
      await qmp.execute('migrate-set-capabilities', { capabilities: [{ capability: 'dirty-bitmaps', state: true }] });
    }
    done.add(qmp);
    return true;
  } catch {
    return false;
  }
}
