/**
 * A safety net for the child processes a test file starts (QEMU, qemu-storage-daemon, agents, `serve`): each
 * one given to `killOnExit` is sent SIGKILL when this process exits while the child still runs. The helpers stop
 * their children in tap teardowns, in order; those do not run when the file's top-level code throws (the
 * process ends first), which left qemu-storage-daemons and QEMUs running after the test had failed. Samba and
 * Ceph have their own guard (a shell that stops the daemon when our stdin closes: test/helpers/samba.ts).
 * Not a net for a test process killed by a signal.
 */
import type { ChildProcess } from 'node:child_process';

const live = new Set<ChildProcess>();
let hooked = false;

export function killOnExit(child: ChildProcess): void {
  if (!hooked) {
    hooked = true;
    process.once('exit', () => {
      for (const c of live) c.kill('SIGKILL');
    });
  }
  if (child.exitCode !== null || child.signalCode !== null) return;
  live.add(child);
  child.once('exit', () => live.delete(child));
}
