/**
 * Disks whose reads never return, for tests of stuck jobs (issue 9, D4). Two real blocking peers:
 * - a FIFO nobody writes to: open(2) for reading blocks until a writer comes (the formats code may refuse
 *   FIFOs up front; then this one fails at once instead);
 * - a regular file on a FUSE mount whose reads hang: `nbdfuse` exports an nbdkit memory disk through the
 *   `delay` filter. stat and open answer at once, every read waits HUNG_READ_SECONDS, as on a hung NFS or iSCSI
 *   volume; no check of the file type can tell, and no signal interrupts the read (the engine's abort, its
 *   3 s stuck limit, pass while the read waits). Not an hour: a FUSE read already handed to the server
 *   holds its process in uninterruptible sleep, even against kill -9, until the server answers; with this
 *   delay a killed appliance is gone within seconds. The teardown unmounts lazily and kills both servers.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requireTool, run } from './env.js';

interface Teardown {
  teardown(fn: () => void | Promise<void>): void;
}

/** Make a FIFO at `path` (nobody ever writes to it). */
export function fifoDisk(path: string): string {
  run('mkfifo', [path]);
  return path;
}

/** Seconds every read of hungFuseDisk() waits: far above the engine's 3 s stuck limit. */
export const HUNG_READ_SECONDS = 10;

/** A `sizeMiB` MiB regular file on a FUSE mount whose reads each wait HUNG_READ_SECONDS; removed at teardown. */
export async function hungFuseDisk(t: Teardown, sizeMiB = 64): Promise<string> {
  const nbdfuse = requireTool('nbdfuse');
  requireTool('nbdkit');
  const fusermount = requireTool('fusermount');
  const mnt = mkdtempSync(join(tmpdir(), 'sv-hung-'));
  const before = statSync(mnt).dev;
  const proc = spawn(nbdfuse, [mnt, '[', 'nbdkit', '--filter=delay', 'memory', `${sizeMiB}M`, `rdelay=${HUNG_READ_SECONDS}`, ']'], { detached: true, stdio: 'ignore' });
  t.teardown(() => {
    try {
      run(fusermount, ['-u', '-z', mnt]);
    } catch {
      /* not mounted */
    }
    try {
      if (proc.pid !== undefined) process.kill(-proc.pid, 'SIGKILL');
    } catch {
      /* gone */
    }
    try {
      rmdirSync(mnt);
    } catch {
      /* busy until the last blocked reader goes; it is empty */
    }
  });
  const file = join(mnt, 'nbd');
  for (let i = 0; i < 500; i++) {
    if (proc.exitCode !== null) throw new Error(`nbdfuse exited with ${proc.exitCode} before mounting ${mnt}`);
    if (statSync(mnt).dev !== before) return file;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`nbdfuse did not mount ${mnt} within 10 s`);
}
