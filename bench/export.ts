/**
 * Suite `export` (instant recovery, issue 12): a recovery point served by our NBD server (RecoveryExport,
 * read-only, unix socket). A 1 GiB disk of random bytes (`--quick`: 128 MiB) is backed up into a fresh
 * store, then:
 *   - sequential read: `nbdcopy EXPORT null:` (libnbd defaults: 4 connections, 64 requests in flight),
 *     1 warm-up (store pages and packs in the page cache) + 3 timed runs, MB/s;
 *   - the same of the raw file served by our server directly (ImageBackend), to separate the server's cost
 *     from the point reader's;
 *   - random 64 KiB reads, one at a time through NbdClient, at 64 KiB-aligned offsets: p50 / p99 latency.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ImageBackend } from '../src/export/image-backend.js';
import { RecoveryExport } from '../src/export/exporter.js';
import { ExportTable } from '../src/export/table.js';
import { openDisk } from '../src/formats/open.js';
import { NbdClient } from '../src/nbd/client.js';
import { NbdServer } from '../src/nbd/server.js';
import { closePool } from '../src/pool/index.js';
import { backup } from '../src/sync/index.js';
import { prng, writeRandomFile } from './data.js';
import { MiB, measure } from './measure.js';
import type { BenchOptions, BenchRow, Suite, SuiteResult } from './types.js';
import { fileRefs } from '../src/sources/file.js';

/** nbdcopy to null: (asynchronously: the server runs in this process and must keep serving). */
function nbdcopy(uri: string): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile('nbdcopy', [uri, 'null:'], { encoding: 'utf8' }, (err, _out, stderr) => (err ? reject(new Error(`nbdcopy failed: ${err.message} ${stderr}`)) : resolve()));
  });
}

/** `count` random 64 KiB reads one after the other; latencies in ms, sorted. */
async function randomReads(sock: string, count: number): Promise<number[]> {
  const client = await NbdClient.connect({ target: { path: sock } });
  const rand = prng(6464);
  const blocks = Math.floor(client.size / 65536);
  const out: number[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const at = Math.floor(rand() * blocks) * 65536;
      const t0 = process.hrtime.bigint();
      await client.read(at, 65536);
      out.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
  } finally {
    await client.close();
  }
  return out.sort((a, b) => a - b);
}

/** CPU seconds (this process, every thread: the server and its workers) per GiB served, over `copies` copies. */
function cpuPerGiB(since: NodeJS.CpuUsage, size: number, copies: number): number {
  const c = process.cpuUsage(since);
  return Number(((c.user + c.system) / 1e6 / copies / (size / (1024 * MiB))).toFixed(2));
}

const pct = (sorted: number[], p: number): number => sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))]!;

export const exportSuite: Suite = {
  name: 'export',
  description: 'Instant recovery: nbdcopy and random 64 KiB reads of a recovery point served over NBD',
  async run(options: BenchOptions): Promise<SuiteResult> {
    const size = options.quick ? 128 * MiB : 1024 * MiB;
    const runs = options.quick ? 1 : 3;
    const reads = options.quick ? 300 : 3000;
    const dir = mkdtempSync(join(tmpdir(), 'sv-bench-export-'));
    const rows: BenchRow[] = [];
    try {
      const raw = join(dir, 'disk.raw');
      options.log(`export: writing ${size / MiB} MiB of random data and backing it up`);
      writeRandomFile(raw, size);
      const store = join(dir, 'store');
      await backup({ store, source: 'bench', disks: fileRefs([raw]) });

      const sock = join(dir, 'point.sock');
      const ex = await RecoveryExport.start({ store, source: 'bench', listen: { path: sock } });
      try {
        options.log('export: nbdcopy of the point');
        const c0 = process.cpuUsage();
        const t = await measure(size, runs, () => nbdcopy(`nbd+unix:///?socket=${sock}`));
        rows.push({ what: 'nbdcopy of a point export (warm store)', 'MB/s best': t.best, 'MB/s median': t.median, 'p50 ms': null, 'p99 ms': null, 'server CPU s/GiB': cpuPerGiB(c0, size, runs + 1), runs: t.runs });
        options.log('export: random 64 KiB reads of the point');
        await randomReads(sock, Math.min(200, reads)); // warm-up
        const lat = await randomReads(sock, reads);
        rows.push({ what: `random 64 KiB reads of a point export (${reads}, 1 in flight)`, 'MB/s best': null, 'MB/s median': null, 'p50 ms': pct(lat, 50), 'p99 ms': pct(lat, 99), 'server CPU s/GiB': null, runs: 1 });
      } finally {
        await ex.stop();
      }

      const image = await openDisk(raw);
      const table = new ExportTable();
      table.add({ name: 'raw', description: 'bench', backend: new ImageBackend(image) });
      const rawSock = join(dir, 'raw.sock');
      const server = await NbdServer.listen({ listen: { path: rawSock }, exports: table });
      try {
        options.log('export: nbdcopy of the raw file through our server');
        const c0 = process.cpuUsage();
        const t = await measure(size, runs, () => nbdcopy(`nbd+unix:///?socket=${rawSock}`));
        rows.push({ what: 'nbdcopy of the raw file through our server', 'MB/s best': t.best, 'MB/s median': t.median, 'p50 ms': null, 'p99 ms': null, 'server CPU s/GiB': cpuPerGiB(c0, size, runs + 1), runs: t.runs });
        const lat = await randomReads(rawSock, reads);
        rows.push({ what: `random 64 KiB reads of the raw file through our server (${reads})`, 'MB/s best': null, 'MB/s median': null, 'p50 ms': pct(lat, 50), 'p99 ms': pct(lat, 99), 'server CPU s/GiB': null, runs: 1 });
      } finally {
        await server.close();
        await image.close();
      }
      return { rows, notes: [`${size / MiB} MiB of random bytes (incompressible), 64 KiB store blocks; server and nbdcopy on one machine over a unix socket; targets: >= 1,000 MB/s sequential, p99 < 5 ms`] };
    } finally {
      await closePool();
      rmSync(dir, { recursive: true, force: true });
    }
  },
};
