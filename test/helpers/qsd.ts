/**
 * A qemu-storage-daemon for a test, stopped in teardown: the replica side of a replication. It opens `disk`
 * (raw) as node `node`, serves it writable over NBD as export `node` on `nbdSocket` (the primary's
 * blockdev-mirror writes there), and has one QMP monitor per name in `monitors` (QEMU serves one client per
 * monitor: the agent's and the test's).
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { QmpClient } from '../../src/qemu/qmp.js';
import { requireTool } from './env.js';
import { killOnExit } from './exit-guard.js';

interface Teardown {
  teardown(fn: () => void | Promise<void>): void;
}

export interface Qsd {
  readonly nbdSocket: string;
  /** Monitor socket paths, by the names given. */
  readonly monitors: Record<string, string>;
  /** A QMP client on the monitor `name`. */
  connect(name: string): Promise<QmpClient>;
  stderr(): string;
}

export async function startQsd(t: Teardown, o: { dir: string; disk: string; node: string; monitors: string[] }): Promise<Qsd> {
  const bin = requireTool('qemu-storage-daemon');
  const nbdSocket = join(o.dir, 'qsd-nbd.sock');
  const monitors = Object.fromEntries(o.monitors.map((m) => [m, join(o.dir, `qsd-${m}.qmp`)]));
  const args = [
    ...o.monitors.flatMap((m, i) => ['--chardev', `socket,id=mon${i},path=${monitors[m]},server=on,wait=off`, '--monitor', `chardev=mon${i}`]),
    '--blockdev', JSON.stringify({ driver: 'file', filename: o.disk, 'node-name': `${o.node}-file` }),
    '--blockdev', JSON.stringify({ driver: 'raw', file: `${o.node}-file`, 'node-name': o.node }),
    '--nbd-server', `addr.type=unix,addr.path=${nbdSocket}`,
    '--export', `type=nbd,id=${o.node},node-name=${o.node},name=${o.node},writable=on`,
  ];
  const child = spawn(bin, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  killOnExit(child);
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-8000)));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  t.teardown(async () => {
    child.kill('SIGKILL');
    await exited;
  });
  for (let i = 0; !existsSync(nbdSocket) || !Object.values(monitors).every((m) => existsSync(m)); i++) {
    if (child.exitCode !== null || i > 400) throw new Error(`qemu-storage-daemon did not start: ${stderr}`);
    await new Promise((r) => setTimeout(r, 25));
  }
  return { nbdSocket, monitors, connect: (name) => QmpClient.connect(monitors[name]!, { connectTimeoutMs: 5000 }), stderr: () => stderr };
}
