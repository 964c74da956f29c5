/**
 * A view of a VM whose QEMU is not running: its disk files are consistent as they lie, so each is served
 * read-only by `qemu-nbd --read-only --shared=8 --persistent` on a unix socket in the state folder (qcow2 is
 * read by QEMU's own code: there is no qcow2 parser here). Consistency 'offline', pause 0. Nothing tracks
 * changes of a stopped VM for us: changes() says so (the caller compares digests), and no next reference is
 * handed out. commit/abort have nothing to do; release stops the servers.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { SvError } from '../../errors/index.js';
import type { ChangeAnswer, PointInTimeView, ViewDisk, VmDisk } from '../driver.js';
import { names, newToken } from './names.js';
import type { StateFile } from './state-file.js';

export interface StoppedContext {
  readonly state: StateFile;
  readonly stateDir: string;
  readonly qemuNbd: string;
  readonly onReleased: (token: string) => void;
  readonly onCreated: (token: string) => void;
}

const STARTUP_MS = 10_000;

function serve(qemuNbd: string, disk: VmDisk, socket: string, exportName: string): Promise<ChildProcess> {
  rmSync(socket, { force: true });
  const format = disk.format === 'qcow2' || disk.format === 'raw' || disk.format === 'vhdx' || disk.format === 'vpc' ? disk.format : 'raw';
  const child = spawn(qemuNbd, ['--read-only', '--shared=8', '--persistent', `--format=${format}`, `--socket=${socket}`, `--export-name=${exportName}`, disk.path], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr = (stderr + d.toString('utf8')).slice(-4096)));
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const fail = (why: string): void => {
      clearInterval(poll);
      child.kill('SIGKILL');
      reject(new SvError('SV_ERR_HYPERVISOR_DISK_SERVER', `qemu-nbd for ${disk.path}: ${why}${stderr ? `: ${stderr.trim()}` : ''}`, { path: disk.path, socket }));
    };
    child.once('error', (err) => fail(err.message));
    child.once('exit', (code, signal) => fail(`exited (${signal ?? code}) before serving`));
    const poll = setInterval(() => {
      if (existsSync(socket)) {
        clearInterval(poll);
        child.removeAllListeners('exit');
        resolve(child);
      } else if (Date.now() - started > STARTUP_MS) fail(`no socket after ${STARTUP_MS} ms`);
    }, 20);
  });
}

/** Kill a qemu-nbd left by a killed run, only if /proc says it is still that process. */
export function killLeftoverServer(pid: number, socket: string): boolean {
  try {
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    if (!cmdline.includes('qemu-nbd') || !cmdline.includes(socket)) return false;
    process.kill(pid, 'SIGKILL');
    return true;
  } catch {
    return false;
  } finally {
    rmSync(socket, { force: true });
  }
}

export async function createStoppedView(ctx: StoppedContext, vmId: string, disks: readonly VmDisk[]): Promise<PointInTimeView> {
  const token = newToken();
  const servers: Array<{ child: ChildProcess; socket: string }> = [];
  const viewDisks: ViewDisk[] = [];
  ctx.onCreated(token);
  const record = (): void => ctx.state.update((s) => {
    s.views[token] = { vmId, disks: [], servers: servers.map((x) => ({ pid: x.child.pid ?? -1, socket: x.socket })) };
  });
  let released: Promise<void> | undefined;
  const release = (): Promise<void> => (released ??= (async () => {
    for (const { child } of servers) {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        const killer = setTimeout(() => child.kill('SIGKILL'), 2000);
        await exited;
        clearTimeout(killer);
      }
    }
    for (const { socket } of servers) rmSync(socket, { force: true });
    ctx.state.update((s) => void delete s.views[token]);
    ctx.onReleased(token);
  })());
  try {
    for (const [index, disk] of disks.entries()) {
      const n = names(token, index);
      const socket = join(ctx.stateDir, `${n.exportId}.sock`);
      servers.push({ child: await serve(ctx.qemuNbd, disk, socket, n.exportId), socket });
      record();
      viewDisks.push({
        index, key: disk.key, name: disk.key, virtualSize: disk.virtualSize, identity: disk.identity,
        source: { kind: 'nbd', socket, exportName: n.exportId, name: disk.key }, nextReference: null,
      });
    }
  } catch (err) {
    await release();
    throw err;
  }
  const check = (disk: number): void => {
    if (released) throw new SvError('SV_ERR_HYPERVISOR_VIEW_RELEASED', `view ${token} of VM ${vmId} was released`, { vmId });
    if (!viewDisks[disk]) throw new SvError('SV_ERR_HYPERVISOR_VIEW_RELEASED', `view ${token} has no disk ${disk}`, { vmId, disk });
  };
  return {
    vmId,
    consistency: 'offline',
    reasons: ['the VM is not running: its disk files are read as they are'],
    pauseMs: 0,
    disks: viewDisks,
    changes: async (disk): Promise<ChangeAnswer> => {
      check(disk);
      return { usable: false, reason: 'the VM is not running: no dirty bitmap is served for a stopped VM (digest comparison)' };
    },
    configuration: async () => {
      check(0);
      throw new SvError('SV_ERR_HYPERVISOR_NO_CONFIGURATION', `VM ${vmId} is not running: no QEMU answers on QMP to describe its machine, so this point has no configuration`, { vmId });
    },
    commit: async () => undefined,
    abort: async () => undefined,
    release,
  };
}
