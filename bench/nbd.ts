/**
 * Suite `nbd`: sequential read throughput of a 1 GiB raw export served by `qemu-nbd --read-only` on a unix
 * socket (the file is in the page cache, every byte allocated, random), through our NBD client
 * (`readInto` 4 MiB requests, 8 in flight, into 8 reused buffers: the engine's pattern; data discarded) and through
 * `nbdcopy SOURCE null:` (libnbd, its defaults: 4 connections when the server allows multi-conn, 64
 * requests in flight) and `nbdcopy -C 1` (one connection, like ours). Two more rows: a full backup (sync
 * engine, a fresh store per run) of the same bytes as a `file` disk source and as an `nbd` disk source of
 * this export (src/sources/: the coordinator reads, the workers hash and compress the transferred bytes).
 * `--quick` uses 128 MiB.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NbdClient } from '../src/nbd/client.js';
import { closePool } from '../src/pool/index.js';
import type { DiskSourceRef } from '../src/sources/types.js';
import { writeRandomFile } from './data.js';
import { backup } from '../src/sync/index.js';
import { MiB, measure } from './measure.js';
import type { BenchOptions, BenchRow, Suite, SuiteResult } from './types.js';

const PIECE = 4 * MiB;
const DEPTH = 8;

async function startQemuNbd(image: string, sock: string): Promise<ChildProcess> {
  const child = spawn('qemu-nbd', ['--read-only', '--persistent', '--shared=8', '-f', 'raw', '-k', sock, image], { stdio: 'ignore' });
  for (let i = 0; i < 200 && !existsSync(sock); i++) await new Promise((r) => setTimeout(r, 50));
  if (!existsSync(sock)) throw new Error('qemu-nbd did not start (is qemu-utils installed?)');
  return child;
}

/** Sequential read of the whole export: PIECE-byte reads, DEPTH in flight, into DEPTH reused buffers. */
async function readAll(sock: string): Promise<void> {
  const client = await NbdClient.connect({ target: { path: sock }, maxRequestBytes: PIECE });
  try {
    const buffers = Array.from({ length: DEPTH }, () => Buffer.allocUnsafe(PIECE));
    const inFlight: Promise<Buffer>[] = [];
    let n = 0;
    for (let at = 0, i = 0; at < client.size; at += PIECE, i++) {
      if (inFlight.length === DEPTH) n += (await inFlight.shift()!).length;
      inFlight.push(client.readInto(at, buffers[i % DEPTH]!.subarray(0, Math.min(PIECE, client.size - at))));
    }
    for (const p of inFlight) n += (await p).length;
    if (n !== client.size) throw new Error(`read ${n} of ${client.size} bytes`);
  } finally {
    await client.close();
  }
}

/** A full backup of `ref` into a fresh store under `dir` (removed afterwards). */
let stores = 0;
async function backupOnce(dir: string, ref: DiskSourceRef): Promise<void> {
  const store = join(dir, `store-${stores++}`);
  try {
    await backup({ store, source: 'vm', disks: [ref] });
  } finally {
    rmSync(store, { recursive: true, force: true });
  }
}

function nbdcopy(sock: string, extra: string[]): void {
  const r = spawnSync('nbdcopy', [...extra, `nbd+unix:///?socket=${sock}`, 'null:'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`nbdcopy failed: ${r.error?.message ?? r.stderr}`);
}

export const nbdSuite: Suite = {
  name: 'nbd',
  description: 'NBD client: sequential read of a qemu-nbd export vs nbdcopy',
  async run(options: BenchOptions): Promise<SuiteResult> {
    const size = options.quick ? 128 * MiB : 1024 * MiB;
    const runs = options.quick ? 1 : 3;
    const dir = mkdtempSync(join(tmpdir(), 'sv-bench-nbd-'));
    const sock = join(dir, 'nbd.sock');
    let server: ChildProcess | null = null;
    try {
      options.log(`nbd: writing ${size / MiB} MiB of random data`);
      writeRandomFile(join(dir, 'disk.raw'), size);
      server = await startQemuNbd(join(dir, 'disk.raw'), sock);
      const rows: BenchRow[] = [];
      for (const [reader, fn] of [
        ['shadowvault NbdClient (1 connection, 4 MiB x 8 in flight)', () => readAll(sock)],
        ['nbdcopy -C 1 (1 connection)', () => nbdcopy(sock, ['-C', '1'])],
        ['nbdcopy (defaults)', () => nbdcopy(sock, [])],
        ['full backup, file source (workers read the file)', () => backupOnce(dir, { kind: 'file', path: join(dir, 'disk.raw'), format: 'raw' })],
        ['full backup, nbd source (coordinator reads, workers hash)', () => backupOnce(dir, { kind: 'nbd', socket: sock, exportName: '', name: 'disk.raw' })],
      ] as const) {
        options.log(`nbd: ${reader}`);
        const t = await measure(size, runs, fn);
        rows.push({ reader, 'MB/s best': t.best, 'MB/s median': t.median, runs: t.runs });
      }
      return { rows, notes: [`${size / MiB} MiB raw export, qemu-nbd --read-only on a unix socket, page cache warm; data discarded`] };
    } finally {
      await closePool();
      server?.kill('SIGTERM');
      rmSync(dir, { recursive: true, force: true });
    }
  },
};
