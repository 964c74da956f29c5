/**
 * Start a real QEMU VM for a test and stop it in teardown. The VM gets a QMP socket
 * (`-qmp unix:...,server=on,wait=off`), no display, no default devices, and its disks as `-blockdev`
 * file + format nodes (node names `file<i>`/`disk<i>`, device ids `vblk<i>`, virtio-blk-pci). Teardown
 * sends `quit` over QMP, waits a bounded time (60 s once QEMU answered it, else 5 s), then SIGKILLs the process.
 *
 * Acceleration: TCG by default. `SV_QEMU_ACCEL=kvm` opts into KVM where /dev/kvm works; on the nested
 * KVM of the build machines a Linux guest hung at boot (and `-cpu host` aborted on an MSR), so TCG is
 * the reliable default (the guests here are tiny).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { QmpClient } from '../../src/qemu/qmp.js';
import { hasCode } from '../../src/errors/index.js';
import { requireTool } from './env.js';
import { killOnExit } from './exit-guard.js';

export interface VmDisk {
  path: string;
  format: 'raw' | 'qcow2';
}

export interface VmOptions {
  /** Folder for the QMP socket and logs. */
  dir: string;
  name?: string;
  /** SMBIOS/QMP UUID (default a fixed one). */
  uuid?: string;
  disks: VmDisk[];
  memoryMb?: number;
  /** Direct Linux boot. */
  kernel?: string;
  initrd?: string;
  append?: string;
  /** Guest serial port goes to this file. */
  serialLog?: string;
  /** Adds virtio-serial with a virtserialport org.qemu.guest_agent.0 on a unix socket chardev here. */
  guestAgentSocket?: string;
  extraArgs?: string[];
}

export interface Vm {
  qmp: QmpClient;
  qmpPath: string;
  process: ChildProcess;
  /** QEMU's stderr so far. */
  stderr(): string;
  /** Quit (QMP), then SIGKILL after a bound. Idempotent; teardown calls it. */
  shutdown(): Promise<void>;
}

interface Teardown {
  teardown(fn: () => void | Promise<void>): void;
}

export function qemuAccel(): string {
  return process.env.SV_QEMU_ACCEL === 'kvm' && existsSync('/dev/kvm') ? 'kvm' : 'tcg';
}

export function vmArgs(opts: VmOptions, qmpPath: string): string[] {
  const args = ['-machine', `q35,accel=${qemuAccel()}`, '-m', String(opts.memoryMb ?? 128), '-display', 'none', '-nodefaults', '-monitor', 'none',
    '-qmp', `unix:${qmpPath},server=on,wait=off`, '-name', opts.name ?? 'sv-test', '-uuid', opts.uuid ?? '6c2b4b1a-53f5-4d6e-9a4b-2f1a0c9e7d11'];
  args.push('-serial', opts.serialLog ? `file:${opts.serialLog}` : 'none');
  opts.disks.forEach((disk, i) => {
    args.push('-blockdev', JSON.stringify({ driver: 'file', filename: disk.path, 'node-name': `file${i}` }));
    args.push('-blockdev', JSON.stringify({ driver: disk.format, file: `file${i}`, 'node-name': `disk${i}` }));
    args.push('-device', `virtio-blk-pci,drive=disk${i},id=vblk${i}${i === 0 && !opts.kernel ? ',bootindex=1' : ''}`);
  });
  if (opts.kernel) args.push('-kernel', opts.kernel, '-no-reboot');
  if (opts.initrd) args.push('-initrd', opts.initrd);
  if (opts.append) args.push('-append', opts.append);
  if (opts.guestAgentSocket) {
    args.push('-device', 'virtio-serial-pci,id=vser0', '-chardev', `socket,id=qga0,path=${opts.guestAgentSocket},server=on,wait=off`,
      '-device', 'virtserialport,bus=vser0.0,chardev=qga0,name=org.qemu.guest_agent.0,id=qgaport');
  }
  return [...args, ...(opts.extraArgs ?? [])];
}

/** Start the VM and connect QMP (retrying while QEMU creates its socket). */
export async function startVm(t: Teardown, opts: VmOptions): Promise<Vm> {
  const qemu = requireTool('qemu-system-x86_64');
  const qmpPath = join(opts.dir, `${opts.name ?? 'vm'}.qmp`);
  const child = spawn(qemu, vmArgs(opts, qmpPath), { stdio: ['ignore', 'ignore', 'pipe'] });
  killOnExit(child);
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr = (stderr + d.toString('utf8')).slice(-8192)));
  let exited = false;
  const exit = new Promise<void>((resolve) => child.once('exit', () => {
    exited = true;
    resolve();
  }));
  let qmp: QmpClient | undefined;
  let down: Promise<void> | undefined;
  const shutdown = (): Promise<void> => (down ??= (async () => {
    // QEMU answered `quit`: it is on its way out (SHUTDOWN sent to every monitor), only slow on a loaded
    // machine (niced), so wait for it; a SIGKILL here would look like a crash to an agent watching it.
    const answered = qmp && !qmp.ended ? await qmp.execute('quit', undefined, { timeoutMs: 2000 }).then(() => true, () => false) : false;
    qmp?.close();
    const killer = setTimeout(() => child.kill('SIGKILL'), answered ? 60_000 : 5000);
    if (!qmp) child.kill('SIGKILL');
    await exit;
    clearTimeout(killer);
  })());
  t.teardown(shutdown);
  for (let attempt = 0; !qmp; attempt++) {
    if (exited) throw new Error(`qemu-system-x86_64 exited at start: ${stderr}`);
    try {
      qmp = await QmpClient.connect(qmpPath, { connectTimeoutMs: 2000 });
    } catch (err) {
      if (!hasCode(err, 'SV_ERR_QEMU_CONNECT') || attempt > 200) throw err;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  return { qmp, qmpPath, process: child, stderr: () => stderr, shutdown };
}
