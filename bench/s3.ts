/**
 * Suite `s3`: the S3 backend against a throwaway Ceph RGW on loopback (test/helpers/ceph.ts: one memstore OSD,
 * so the bytes stay in RAM), next to the folder backend, at the backend interface: what a backup's pack
 * uploads and a restore's ranged reads cost. Steps, each for `fs` (FsBackend in a temp folder) and `s3`:
 *   put packs     N closed packs of 16 MiB from files (`{file}` puts: multipart on S3, 8 MiB parts, 4 in flight)
 *   ranged read   every pack read back as 1 MiB ranges, 16 in flight (the restore and verify pattern)
 *   list          one listing of packs/
 * The S3 rows carry the HTTP requests counted by S3Backend.requestCounts(). Default 128 MiB of packs
 * (`--quick` 32 MiB); memstore holds ~2x that in RAM. The 4 GiB backup/restore figures need the store
 * commands on S3 (issue 13 §4), not this suite.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FsBackend } from '../storage/backend/fs.js';
import { S3Backend } from '../storage/backend/s3.js';
import type { Backend } from '../storage/backend/types.js';
import { startCeph } from '../test/helpers/ceph.js';
import { Limit } from '../storage/backend/limit.js';
import { MiB, mbps } from './measure.js';
import type { BenchOptions, BenchRow, Suite, SuiteResult } from './types.js';

const PACK = 16 * MiB;
const RANGE = MiB;

async function timed(fn: () => Promise<unknown>): Promise<bigint> {
  const start = process.hrtime.bigint();
  await fn();
  return process.hrtime.bigint() - start;
}

async function steps(name: string, b: Backend, files: string[], counts: () => Record<string, number>): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  const bytes = files.length * PACK;
  const keys = files.map((_, i) => `packs/${i.toString(16).padStart(16, '0')}.pack`);
  const row = (step: string, ns: bigint, before: Record<string, number>): BenchRow => {
    const after = counts();
    const req = Object.entries(after).map(([op, n]) => [op, n - (before[op] ?? 0)] as const).filter(([, n]) => n > 0);
    const moves = !step.startsWith('list');
    return { backend: name, step, MiB: moves ? bytes / MiB : null, seconds: Number(ns) / 1e9, 'MB/s': moves ? mbps(bytes, ns) : null, requests: req.map(([op, n]) => `${op} ${n}`).join(', ') || '-' };
  };
  let before = counts();
  // The folder backend gets the bytes (written and fsynced): a {file} put would only move the file into place.
  const put = (file: string, i: number): Promise<void> => (name === 'fs' ? b.put(keys[i]!, readFileSync(file)) : b.put(keys[i]!, { file }));
  rows.push(row('put packs', await timed(() => Promise.all(files.map(put))), before));
  before = counts();
  const limit = new Limit(16);
  rows.push(row('ranged read 1 MiB x16', await timed(() => Promise.all(keys.flatMap((k) => Array.from({ length: PACK / RANGE }, (_, j) => limit.run(() => b.getRange(k, j * RANGE, RANGE)))))), before));
  before = counts();
  rows.push(row('list packs/', await timed(async () => { for await (const o of b.list('packs/')) void o; }), before));
  return rows;
}

export const s3Suite: Suite = {
  name: 's3',
  description: 'S3 backend on a loopback Ceph RGW vs the folder backend: pack puts, ranged reads, list',
  async run(options: BenchOptions): Promise<SuiteResult> {
    const total = options.quick ? 32 * MiB : 128 * MiB;
    const dir = mkdtempSync(join(tmpdir(), 'sv-bench-s3-'));
    const teardowns: (() => void | Promise<void>)[] = [];
    const t = { teardown: (fn: () => void | Promise<void>) => { teardowns.push(fn); } };
    process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
    try {
      const files = Array.from({ length: total / PACK }, (_, i) => {
        const f = join(dir, `pack${i}`);
        writeFileSync(f, randomBytes(PACK));
        return f;
      });
      const rows: BenchRow[] = [];
      options.log('s3: folder backend');
      const fs = new FsBackend(join(dir, 'store'));
      rows.push(...await steps('fs', fs, files, () => ({})));
      await fs.close();
      options.log('s3: starting a one-node Ceph cluster');
      const started = Date.now();
      const ceph = await startCeph(t);
      const readyMs = Date.now() - started;
      await ceph.bucket('bench');
      const s3 = await S3Backend.open(ceph.ref('bench', 'b/'), { credentials: ceph.credentials });
      rows.push(...await steps('s3 (Ceph RGW)', s3, files, () => s3.requestCounts()));
      await s3.close();
      return {
        columns: ['backend', 'step', 'MiB', 'seconds', 'MB/s', 'requests'],
        rows,
        notes: [
          `${files.length} packs of 16 MiB; Ceph RGW (memstore) on 127.0.0.1, S3-ready in ${(readyMs / 1000).toFixed(1)} s`,
          'backend level only: the backup/restore rows of issue 13 need the store commands on S3 (§4)',
        ],
      };
    } finally {
      for (const fn of teardowns.reverse()) await fn();
      rmSync(dir, { recursive: true, force: true });
    }
  },
};
