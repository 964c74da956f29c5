/**
 * Helpers of the format round-trip tests (formats-roundtrip.test.ts): the fixture README as an oracle table,
 * content hashes through our reader, qemu-img/qemu-io as independent peers (and qemu-io as the guest writing),
 * the CLI as child processes (backup/restore wrappers, a small concurrency limiter), store size and files.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Test } from 'tap';
import { isZero } from '../../src/formats/common.js';
import { openDisk } from '../../src/formats/open.js';
import { childEnv, CLI, FIXTURE_IMAGES, nodeCommand, requireTool } from '../helpers/env.js';
import { rng } from '../formats/vhd-fixture-helpers.js';

export const MiB = 1 << 20;
export const GiB = 1 << 30;

export interface FixtureRow {
  /** Compressed file name in the fixture folder, e.g. "win10-dynamic.vhdx.gz". */
  readonly file: string;
  /** Decompressed name, e.g. "win10-dynamic.vhdx". */
  readonly name: string;
  readonly format: 'vhd' | 'vhdx';
  /** Virtual size from the README, or null for the bad-* rows. */
  readonly virtualSize: number | null;
  /** Content SHA-256 from the README, 'zero' for "all zero", null for the bad-* rows. */
  readonly sha256: string | 'zero' | null;
  readonly bad: boolean;
}

/** The image rows of the fixture README's table (the oracle: content hashes agreed by qemu-img and libvhdi). */
export function readmeFixtures(): FixtureRow[] {
  const text = readFileSync(join(FIXTURE_IMAGES, 'README.md'), 'utf8');
  const rows: FixtureRow[] = [];
  for (const line of text.split('\n')) {
    const cells = line.split('|').map((c) => c.trim());
    // | file | origin | made by | exercises | virtual size | content sha256 |
    if (cells.length < 8 || !/^[\w.-]+\.(vhdx?)\.(gz|bz2)$/u.test(cells[1]!)) continue;
    const file = cells[1]!;
    const name = file.replace(/\.(gz|bz2)$/u, '');
    const sizeCell = cells[5]!;
    const hashCell = cells[6]!;
    const bad = name.startsWith('bad-');
    rows.push({
      file, name, format: name.endsWith('.vhdx') ? 'vhdx' : 'vhd', bad,
      virtualSize: /^\d+$/u.test(sizeCell) ? Number(sizeCell) : null,
      sha256: /^[0-9a-f]{64}$/u.test(hashCell) ? hashCell : hashCell === 'all zero' ? 'zero' : null,
    });
  }
  return rows;
}

/** qemu's name for our format names. */
export function qemuFormat(format: string): string {
  return format === 'vhd' ? 'vpc' : format;
}

/** SHA-256 of the whole virtual disk read through our reader (openDisk + read, 8 MiB at a time). */
export async function contentSha256(path: string): Promise<{ sha256: string; virtualSize: number }> {
  const image = await openDisk(path);
  try {
    const h = createHash('sha256');
    const size = image.info.virtualSize;
    const step = 8 * MiB;
    const buf = Buffer.allocUnsafe(step);
    for (let o = 0; o < size; o += step) {
      const n = Math.min(step, size - o);
      h.update(await image.read(o, n, buf.subarray(0, n)));
    }
    return { sha256: h.digest('hex'), virtualSize: size };
  } finally {
    await image.close();
  }
}

/**
 * For the README's "all zero" disks (127 GiB: hashing every byte would take minutes): through our reader, every
 * 'data' extent reads as zero, and a 64 KiB read every GiB (and at the very end) of the rest reads as zero.
 * Returns the first offset found non-zero, or null.
 */
export async function firstNonZero(path: string): Promise<{ at: number | null; virtualSize: number; dataBytes: number }> {
  const image = await openDisk(path);
  try {
    const size = image.info.virtualSize;
    let dataBytes = 0;
    const step = 8 * MiB;
    for (const e of await image.extents()) {
      if (e.kind !== 'data') continue;
      dataBytes += e.length;
      for (let o = e.offset; o < e.offset + e.length; o += step) {
        const n = Math.min(step, e.offset + e.length - o);
        if (!isZero(await image.read(o, n))) return { at: o, virtualSize: size, dataBytes };
      }
    }
    const probes: number[] = [];
    for (let o = 0; o < size; o += GiB) probes.push(o);
    probes.push(Math.max(0, size - 65536));
    for (const o of probes) {
      if (!isZero(await image.read(o, Math.min(65536, size - o)))) return { at: o, virtualSize: size, dataBytes };
    }
    return { at: null, virtualSize: size, dataBytes };
  } finally {
    await image.close();
  }
}

export interface ToolRun {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** qemu-img with its exit code (compare exits 1 when the images differ). */
export function qemuImg(args: string[]): ToolRun {
  const r = spawnSync(requireTool('qemu-img'), args, { encoding: 'utf8', maxBuffer: 1 << 26 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Virtual size as qemu-img sees it (with an explicit format). */
export function qemuVirtualSize(format: string, path: string): number {
  const r = qemuImg(['info', '-f', qemuFormat(format), '--output=json', path]);
  if (r.code !== 0) throw new Error(`qemu-img info -f ${qemuFormat(format)} ${path}: ${r.stderr}`);
  return (JSON.parse(r.stdout) as { 'virtual-size': number })['virtual-size'];
}

/** One write of a "day" of guest activity. */
export interface GuestWrite {
  readonly offset: number;
  readonly length: number;
  /** A byte pattern, 'random' (seeded, incompressible) or 'zero' (write -z). */
  readonly fill: number | 'random' | 'zero';
}

/**
 * Apply `writes` to `image` with qemu-io (qemu as the guest's block layer), in one qemu-io run.
 * Returns the change list [[offset, length], ...] (what a change tracker would report).
 */
export function guestWrites(format: string, image: string, writes: readonly GuestWrite[], scratch: string, seed: number): Array<[number, number]> {
  const args = ['-f', qemuFormat(format)];
  const rand = rng(seed);
  writes.forEach((w, i) => {
    if (w.fill === 'zero') args.push('-c', `write -q -z ${w.offset} ${w.length}`);
    else if (w.fill === 'random') {
      const file = join(scratch, `guest-${seed}-${i}.bin`);
      const buf = Buffer.allocUnsafe(w.length);
      for (let k = 0; k < buf.length; k += 4) buf.writeUInt32LE(Math.floor(rand() * 0x100000000), k);
      writeFileSync(file, buf);
      args.push('-c', `write -q -s ${file} ${w.offset} ${w.length}`);
    } else args.push('-c', `write -q -P ${w.fill} ${w.offset} ${w.length}`);
  });
  execFileSync(requireTool('qemu-io'), [...args, image], { stdio: ['ignore', 'pipe', 'pipe'] });
  return writes.map((w) => [w.offset, w.length]);
}

/** Bytes of all files under `dir` (apparent sizes): what the store occupies. */
export function treeBytes(dir: string): number {
  let n = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) n += treeBytes(p);
    else if (e.isFile()) n += statSync(p).size;
  }
  return n;
}

/** Relative paths of all files under `dir`, sorted (to see that a failed run left nothing behind). */
export function treeFiles(dir: string, prefix = ''): string[] {
  const out: string[] = [];
  for (const e of readdirSync(join(dir, prefix), { withFileTypes: true })) {
    const rel = prefix ? `${prefix}/${e.name}` : e.name;
    if (e.isDirectory()) out.push(...treeFiles(dir, rel));
    else out.push(rel);
  }
  return out.sort();
}

/**
 * The environment of the CLI children (started by nodeCommand, test/helpers/env.ts, without tap's processinfo
 * hook: measured, a restore took ~0.8 s of CPU with it, ~0.3 s without).
 */
export function cliEnv(): NodeJS.ProcessEnv {
  // One worker thread: a second costs ~0.08 s of CPU per child to start and these images are small.
  return childEnv({ SHADOWVAULT_WORKERS: '1' });
}

/** `shadowvault ARGS` as a child process (the real launcher). */
export function cli(args: string[]): ToolRun {
  const r = spawnSync(...nodeCommand([CLI, ...args]), { encoding: 'utf8', maxBuffer: 64 << 20, env: cliEnv() });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

export function cliAsync(args: string[]): Promise<ToolRun> {
  return new Promise((resolve) => {
    const child = spawn(...nodeCommand([CLI, ...args]), { env: cliEnv() });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** `shadowvault ARGS --json`, parsed; throws with stderr on a non-zero exit. */
export function cliJson<T>(args: string[]): T {
  const r = cli([...args, '--json']);
  if (r.code !== 0) throw new Error(`shadowvault ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}

/** SHA-256 of a file's bytes. */
export function fileSha256(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

export interface PointJson {
  id: string;
  kind: string;
  blockSize: number;
  disks: Array<{ index: number; name: string; format: string; virtualSize: number }>;
  bytesRead: number;
  bytesChanged: number;
  bytesNew: number;
  bytesStored: number;
}

export function backup(t: Test, store: string, source: string, images: string[], changed?: string[]): PointJson {
  const args = ['backup', ...images, '--store', store, '--source', source];
  for (const c of changed ?? []) args.push('--changed', c);
  const r = cli([...args, '--json']);
  t.equal(r.code, 0, `backup ${source} exits 0${r.code ? `: ${r.stderr}` : ''}`);
  return JSON.parse(r.stdout) as PointJson;
}

export function restore(t: Test, store: string, ref: string, disk: number, out: string, format?: string): void {
  const args = ['restore', ref, '--store', store, '--disk', String(disk), '--out', out];
  if (format) args.push('--format', format);
  const r = cli(args);
  t.equal(r.code, 0, `restore ${ref} disk ${disk} → ${format ?? 'its format'} exits 0${r.code ? `: ${r.stderr}` : ''}`);
}

/** The code of the CLI's one-line error (`error SV_ERR_...: message`). */
export function errorCode(stderr: string): string | undefined {
  return /^error (SV_ERR_[A-Z0-9_]+): /mu.exec(stderr)?.[1];
}

/**
 * Start `jobs` at most `limit` at a time (CLI children: the machine is shared); returns one promise per job, in
 * order, so that the caller checks the first outputs while the later ones are still being restored.
 */
export function pool<T>(jobs: Array<() => Promise<T>>, limit: number): Array<Promise<T>> {
  let running = 0;
  const waiting: Array<() => void> = [];
  return jobs.map(async (job) => {
    if (running >= limit) await new Promise<void>((go) => waiting.push(go));
    running++;
    try {
      return await job();
    } finally {
      running--;
      waiting.shift()?.();
    }
  });
}

/** Blocks of `bs` bytes touched by a change list. */
export function touchedBlocks(changes: ReadonlyArray<readonly [number, number]>, bs: number): number {
  const set = new Set<number>();
  for (const [off, len] of changes) for (let b = Math.floor(off / bs); b * bs < off + len; b++) set.add(b);
  return set.size;
}
