/**
 * The Linux test guest: Debian's kernel (its vmlinux, entered directly by QEMU, where the kernel allows) + an
 * initramfs built by scripts/build-guest-initramfs.sh (cached under build/guest/), booting with an ext4 data disk on /dev/vda, qemu-ga on org.qemu.guest_agent.0 and a
 * writer of checksummed files (scripts/guest/init.sh). Its rule, for a copy of the disk:
 *   - the file system is clean (`e2fsck -fn` exits 0; after a `stop` copy, replay the journal first);
 *   - every /files/f* file is payload + "SVSUM <sha256 hex of payload>\n" and the digest matches.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { REPO_ROOT, requireTool, run } from './env.js';
import { startVm, type Vm, type VmOptions } from './vm.js';

interface Teardown {
  teardown(fn: () => void | Promise<void>): void;
}

let bootFiles: { kernel: string; initrd: string } | undefined;

/** Kernel and initramfs paths (builds the initramfs once per machine; asked once per process). */
export function guestBootFiles(): { kernel: string; initrd: string } {
  if (bootFiles) return bootFiles;
  requireTool('cpio');
  requireTool('busybox');
  requireTool('qemu-ga');
  const out = run('bash', [join(REPO_ROOT, 'scripts', 'build-guest-initramfs.sh')]);
  const kernel = /^KERNEL=(.+)$/mu.exec(out)?.[1];
  const initrd = /^INITRAMFS=(.+)$/mu.exec(out)?.[1];
  if (!kernel || !initrd) throw new Error(`build-guest-initramfs.sh printed no KERNEL=/INITRAMFS= lines: ${out}`);
  return (bootFiles = { kernel, initrd });
}

/** The guest's QEMU options besides its disks and monitors. */
export type LinuxVmOptions = Pick<VmOptions, 'memoryMb' | 'kernel' | 'initrd' | 'append' | 'serialLog' | 'guestAgentSocket'> & { serialLog: string; guestAgentSocket: string };

/**
 * Options for one QEMU process of the guest: its console log and guest-agent socket are `<tag>.serial.log` and
 * `<tag>.qga` in `dir`. A migration's destination gets the same devices under another tag (the source still
 * holds its socket). `paceS`: after its first eight files the guest waits that long between files (init.sh
 * `svpace`): a guest kept through a long test file then costs little CPU instead of a whole emulated core.
 */
export function linuxVmOptions(dir: string, tag: string, opts: { paceS?: number } = {}): LinuxVmOptions {
  const { kernel, initrd } = guestBootFiles();
  // cryptomgr.notests: the kernel's crypto self-tests took ~5 s of an emulated (TCG) boot.
  // no_timer_check: on a loaded machine the emulated CPU can miss the kernel's IO-APIC timer check window,
  // and the boot ends in "Kernel panic - not syncing: IO-APIC + timer doesn't work!" (seen at load ~30).
  const append = `console=ttyS0 panic=-1 quiet cryptomgr.notests no_timer_check${opts.paceS ? ` svpace=${opts.paceS}` : ''}`;
  return { memoryMb: 256, kernel, initrd, append, serialLog: join(dir, `${tag}.serial.log`), guestAgentSocket: join(dir, `${tag}.qga`) };
}

/** Wait until the console says the guest booted and wrote its first eight files; throws on its failure markers. */
export async function waitForGuestFiles(serialLog: string, timeoutMs = 180_000): Promise<void> {
  const start = Date.now();
  for (;;) {
    const log = existsSync(serialLog) ? readFileSync(serialLog, 'utf8') : '';
    if (log.includes('SVGUEST WROTE 8')) return;
    const fail = /SVGUEST FAIL.*|Kernel panic.*/u.exec(log);
    if (fail) throw new Error(`Linux guest failed to boot: ${fail[0]} (console: ${serialLog})`);
    if (Date.now() - start > timeoutMs) throw new Error(`Linux guest not ready after ${timeoutMs / 1000} s (console: ${serialLog})`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** A raw disk of `sizeMb` with an empty ext4 file system. */
export function makeExt4Disk(path: string, sizeMb = 64): string {
  run(requireTool('qemu-img'), ['create', '-q', '-f', 'raw', path, `${sizeMb}M`]);
  run(requireTool('mkfs.ext4'), ['-q', '-F', '-L', 'svdata', path]);
  return path;
}

export interface LinuxGuest {
  vm: Vm;
  disk: string;
  serialLog: string;
  guestAgentSocket: string;
  /** Milliseconds from QEMU start to "SVGUEST WROTE 8" on the console (booted, qemu-ga up, 8 files written). */
  bootMs: number;
}

/**
 * Boot the guest on a fresh ext4 disk in `dir` and wait until it has written its first eight files.
 * `extraArgs` go to QEMU (e.g. a second `-qmp` socket for a driver).
 */
export async function startLinuxGuest(t: Teardown, dir: string, opts: { extraArgs?: string[] } = {}): Promise<LinuxGuest> {
  const disk = makeExt4Disk(join(dir, 'data.raw'));
  const o = linuxVmOptions(dir, 'sv-linux');
  const start = Date.now();
  const vm = await startVm(t, { dir, name: 'sv-linux', disks: [{ path: disk, format: 'raw' }], ...o, ...(opts.extraArgs ? { extraArgs: opts.extraArgs } : {}) });
  await waitForGuestFiles(o.serialLog);
  return { vm, disk, serialLog: o.serialLog, guestAgentSocket: o.guestAgentSocket, bootMs: Date.now() - start };
}

/** `e2fsck -fn` on an image: exit status and output (0 = clean). */
export function fsck(image: string, opts: { replayJournal?: boolean } = {}): { status: number; output: string } {
  const e2fsck = requireTool('e2fsck');
  if (opts.replayJournal) spawnSync(e2fsck, ['-fy', image], { encoding: 'utf8' });
  const r = spawnSync(e2fsck, ['-fn', image], { encoding: 'utf8' });
  return { status: r.status ?? -1, output: `${r.stdout}${r.stderr}` };
}

export interface FileWalk {
  files: number;
  bad: string[];
}

/** Extract /files from an ext4 image (debugfs rdump) and check each file's SVSUM trailer. */
export function checkGuestFiles(image: string, workDir: string): FileWalk {
  const out = join(workDir, `walk-${Date.now()}`);
  mkdirSync(out, { recursive: true });
  run(requireTool('debugfs'), ['-R', `rdump /files ${out}`, image]);
  const bad: string[] = [];
  let files = 0;
  for (const name of readdirSync(join(out, 'files'))) {
    if (!/^f\d{6}$/u.test(name)) continue;
    files++;
    const problem = svsumProblem(readFileSync(join(out, 'files', name)));
    if (problem) bad.push(`${name}: ${problem}`);
  }
  return { files, bad };
}

/**
 * The guest's rule on a restored image (a copy: changed in place when the journal is replayed): e2fsck clean,
 * at least one file, every file's checksum right. `replayJournal` for a point that is not application-
 * consistent (its file systems were not frozen). `workDir` receives the extracted files.
 */
export function checkLinuxImage(image: string, workDir: string, opts: { replayJournal?: boolean } = {}): { ok: boolean; files: number; problems: string[] } {
  const f = fsck(image, opts);
  const problems = f.status === 0 ? [] : [`e2fsck -fn exit ${f.status}${opts.replayJournal ? ' (after a journal replay)' : ''}: ${f.output}`];
  const walk = checkGuestFiles(image, workDir);
  if (walk.files === 0) problems.push('no guest files in /files');
  problems.push(...walk.bad);
  return { ok: problems.length === 0, files: walk.files, problems };
}

/** Why a guest file breaks the rule (payload + "SVSUM <sha256 hex>\n"), or undefined when it keeps it. */
export function svsumProblem(data: Buffer): string | undefined {
  const trailer = /SVSUM ([0-9a-f]{64})\n$/u.exec(data.subarray(Math.max(0, data.length - 72)).toString('latin1'));
  if (!trailer?.[1]) return `no SVSUM trailer (${data.length} bytes)`;
  const payload = data.subarray(0, data.length - trailer[0].length);
  if (createHash('sha256').update(payload).digest('hex') !== trailer[1]) return `SHA-256 of its ${payload.length} payload bytes differs from its trailer`;
  return undefined;
}
