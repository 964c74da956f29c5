/**
 * Helpers of the store-damage tests: a small store built once (vm1: an initial and an incremental point, vm2: one
 * point; 4 MiB disks), copied per case with `cp -a`; in-process restores of every point compared with the disk
 * as it was backed up; the files of each kind in the store; ways to damage a file.
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { generateDisk, prng } from '../../bench/gen-disk.js';
import { backup, restore, fileRefs } from '../../src/sync/index.js';
import { run } from '../helpers/env.js';

export interface BuiltPoint {
  readonly source: string;
  readonly id: string;
  /** SHA-256 of the disk as backed up. */
  readonly sha: string;
}

export interface BuiltStore {
  readonly store: string;
  /** [vm1 initial, vm1 incremental, vm2 initial] */
  readonly points: readonly BuiltPoint[];
  /** Per point: the index segment and the pack its backup wrote. */
  readonly segmentOf: ReadonlyMap<string, string>;
  readonly packOf: ReadonlyMap<string, string>;
}

const sha = (path: string): string => createHash('sha256').update(readFileSync(path)).digest('hex');
export const key = (p: { source: string; id: string }): string => `${p.source}@${p.id}`;

function newFiles(dir: string, before: Set<string>): string {
  const added = readdirSync(dir).filter((n) => !before.has(n));
  if (added.length !== 1) throw new Error(`expected one new file in ${dir}, found ${added.join(', ')}`);
  return join(dir, added[0]!);
}

/** Back up two small sources; return the points with their disks' hashes and the file each backup wrote. */
export async function buildStore(dir: string): Promise<BuiltStore> {
  const store = join(dir, 'store');
  const a = join(dir, 'a.raw');
  const b = join(dir, 'b.raw');
  for (const [path, seed] of [[a, 11], [b, 12]] as const) {
    generateDisk(path, 4 << 20, seed);
    const disk = readFileSync(path);
    const rand = prng(seed);
    for (let i = 0; i < 1 << 20; i++) disk[i] = Math.floor(rand() * 256); // never an all-zero disk
    writeFileSync(path, disk);
  }
  const points: BuiltPoint[] = [];
  const segmentOf = new Map<string, string>();
  const packOf = new Map<string, string>();
  const step = async (source: string, image: string): Promise<void> => {
    const idx = new Set(readdirSync(join(store, 'index'), { withFileTypes: false }).map(String));
    const packs = new Set(readdirSync(join(store, 'packs')).map(String));
    const r = await backup({ store, source, disks: fileRefs([image]) });
    const p = { source, id: r.id, sha: sha(image) };
    points.push(p);
    segmentOf.set(key(p), newFiles(join(store, 'index'), idx));
    packOf.set(key(p), newFiles(join(store, 'packs'), packs));
  };
  mkdirSync(join(store, 'index'), { recursive: true });
  mkdirSync(join(store, 'packs'), { recursive: true });
  await step('vm1', a);
  const buf = readFileSync(a);
  const rand = prng(5);
  for (let k = 0; k < 8; k++) buf.fill(1 + Math.floor(rand() * 250), Math.floor(rand() * 64) * 65536, Math.floor(rand() * 64) * 65536 + 65536);
  writeFileSync(a, buf);
  await step('vm1', a);
  await step('vm2', b);
  return { store, points, segmentOf, packOf };
}

/** A copy of the built store for one case (paths in `segmentOf`/`packOf` rebased onto it). */
export function copyStore(built: BuiltStore, to: string): BuiltStore {
  rmSync(to, { recursive: true, force: true });
  run('cp', ['-a', built.store, to]);
  const rebase = (m: ReadonlyMap<string, string>) => new Map([...m].map(([k, v]) => [k, v.replace(built.store, to)]));
  return { store: to, points: built.points, segmentOf: rebase(built.segmentOf), packOf: rebase(built.packOf) };
}

/** Restore every point in-process: 'ok' (bit-identical), 'differs', or the error's code. */
export async function restoreAll(s: BuiltStore, outDir: string): Promise<Record<string, string>> {
  mkdirSync(outDir, { recursive: true });
  const out: Record<string, string> = {};
  for (const p of s.points) {
    const file = join(outDir, `${p.source}-${p.id}.raw`);
    try {
      await restore({ store: s.store, source: p.source, point: p.id, out: file, format: 'raw', force: true });
      out[key(p)] = sha(file) === p.sha ? 'ok' : 'differs';
    } catch (err) {
      out[key(p)] = String((err as { code?: unknown }).code ?? (err as Error).message);
    }
    rmSync(file, { force: true });
  }
  return out;
}

export type Damage = 'flip' | 'truncate' | 'delete' | 'garbage' | 'fifo' | 'folder';
export const DAMAGES: readonly Damage[] = ['flip', 'truncate', 'delete', 'garbage', 'fifo', 'folder'];

/** Damage `path` (created when missing, for garbage/fifo/folder). `seed` picks the flipped byte. */
export function damage(path: string, how: Damage, seed = 1): void {
  switch (how) {
    case 'flip': {
      const b = readFileSync(path);
      const at = Math.floor(prng(seed)() * b.length);
      b[at] = b[at]! ^ 0x10;
      writeFileSync(path, b);
      return;
    }
    case 'truncate':
      truncateSync(path, Math.floor(statSync(path).size / 2));
      return;
    case 'delete':
      rmSync(path, { force: true });
      return;
    case 'garbage': {
      const rand = prng(seed);
      writeFileSync(path, Buffer.from(Array.from({ length: 700 }, () => Math.floor(rand() * 256))));
      return;
    }
    case 'fifo':
      rmSync(path, { force: true });
      run('mkfifo', [path]);
      return;
    case 'folder':
      rmSync(path, { force: true });
      mkdirSync(path);
      return;
  }
}
