/**
 * Real NBD servers for the tests: qemu-nbd, qemu-storage-daemon and nbdkit, each started on a unix socket
 * in the test's temporary folder and killed in teardown. `startPeer` waits until the socket accepts a
 * connection (or fails with the server's stderr if it exits first).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { connect } from 'node:net';
import { join } from 'node:path';
import { requireTool } from '../helpers/env.js';

interface Teardown {
  teardown(fn: () => void | Promise<void>): void;
}

function canConnect(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ path });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** Start `tool args...`, which serves on `sock`; resolves when the socket accepts connections. */
export async function startPeer(t: Teardown, tool: string, args: string[], sock: string): Promise<ChildProcess> {
  const child = spawn(requireTool(tool), args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
  });
  for (let i = 0; i < 200; i++) {
    if (child.exitCode !== null) throw new Error(`${tool} ${args.join(' ')} exited ${child.exitCode}: ${stderr}`);
    if (await canConnect(sock)) return child;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${tool} did not open ${sock} in 10 s: ${stderr}`);
}

/** qemu-nbd serving `image` read-only, many clients, on `dir/qemu-nbd.sock`. */
export async function qemuNbd(t: Teardown, dir: string, image: string, format: string, extra: string[] = []): Promise<string> {
  const sock = join(dir, 'qemu-nbd.sock');
  await startPeer(t, 'qemu-nbd', ['--read-only', '--persistent', '--shared=8', '-f', format, '-k', sock, ...extra, image], sock);
  return sock;
}

/** nbdkit in the foreground on `dir/nbdkit.sock` with `args` (plugin, filters, parameters). */
export async function nbdkit(t: Teardown, dir: string, args: string[]): Promise<string> {
  const sock = join(dir, 'nbdkit.sock');
  await startPeer(t, 'nbdkit', ['-f', '-U', sock, ...args], sock);
  return sock;
}
