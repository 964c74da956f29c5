/**
 * Suite `api`: the appliance stays responsive while backups run (issue 5).
 * - Backup throughput: a generated raw disk (bench/gen-disk.ts; 1 GiB, `--quick` 128 MiB) backed up into a
 *   fresh store by the CLI (`shadowvault backup`, a child process) and through the API (`shadowvault serve` in
 *   a child process, POST /api/v1/jobs, polled to the end), interleaved, several runs each. MB/s by wall time
 *   (CLI: process start to exit; API: POST to the job's end) and by the engine's own duration.
 * - Latency: a loopback load loop (keep-alive connections, 8 concurrent) of GET /api/v1/jobs (100 jobs in the
 *   queue history) for the whole of a full-speed API backup, and for 3 s idle: p50 / p99 / max, requests/s.
 * Targets: p99 < 50 ms during the backup; API throughput within 10% of the CLI's.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateDisk } from './gen-disk.js';
import type { BenchOptions, BenchRow, Suite, SuiteResult } from './types.js';

const CLI = new URL('../../bin/shadowvault.js', import.meta.url).pathname;
const MiB = 1 << 20;

interface Appliance {
  proc: ChildProcess;
  url: string;
  token: string;
}

function startAppliance(dataDir: string): Promise<Appliance> {
  const proc = spawn(process.execPath, [CLI, 'serve', '--data-dir', dataDir, '--listen', '127.0.0.1:0'], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    let buf = '';
    let found = false;
    proc.stdout?.on('data', (c: Buffer) => {
      if (found) return; // keep draining the job log lines
      buf += c.toString();
      const m = /"url":"(http:\/\/[^"]+)"/.exec(buf);
      if (m) {
        found = true;
        buf = '';
        resolve({ proc, url: m[1]!, token: readFileSync(join(dataDir, 'admin-token'), 'utf8').trim() });
      }
    });
    proc.on('exit', (code) => reject(new Error(`serve exited ${code}`)));
  });
}

async function stopAppliance(a: Appliance): Promise<void> {
  const exited = new Promise((r) => a.proc.on('exit', r));
  a.proc.kill('SIGTERM');
  await exited;
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });

function request(a: Appliance, method: string, path: string, body?: unknown): Promise<{ status: number; json: unknown }> {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : JSON.stringify(body);
    const req = http.request(`${a.url}${path}`, { method, agent, headers: { authorization: `Bearer ${a.token}`, ...(data ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) } : {}) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString();
        resolve({ status: res.statusCode ?? 0, json: text ? JSON.parse(text) : undefined });
      });
    });
    req.on('error', reject);
    req.end(data);
  });
}

interface JobView {
  id: string;
  state: string;
  result?: { durationMs?: number };
}

async function waitJob(a: Appliance, id: string): Promise<JobView> {
  for (;;) {
    const j = (await request(a, 'GET', `/api/v1/jobs/${id}`)).json as JobView;
    if (j.state !== 'queued' && j.state !== 'running') return j;
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Back up `disk` through a fresh appliance; returns wall seconds (POST → end) and engine seconds. */
async function apiBackup(dir: string, disk: string, during?: (a: Appliance, done: Promise<unknown>) => Promise<void>): Promise<{ wallS: number; engineS: number }> {
  const data = mkdtempSync(join(dir, 'appliance-'));
  const a = await startAppliance(data);
  try {
    const src = (await request(a, 'POST', '/api/v1/sources', { name: 'vm', disks: [{ name: 'disk0', path: disk }] })).json as { id: string };
    if (during) for (let i = 0; i < 100; i++) await waitJob(a, ((await request(a, 'POST', '/api/v1/jobs', { kind: 'verify' })).json as JobView).id);
    const t0 = process.hrtime.bigint();
    const job = (await request(a, 'POST', '/api/v1/jobs', { kind: 'backup', sourceId: src.id })).json as JobView;
    const done = waitJob(a, job.id);
    const load = during ? during(a, done) : Promise.resolve();
    const end = await done;
    const wallS = Number(process.hrtime.bigint() - t0) / 1e9;
    await load;
    if (end.state !== 'succeeded') throw new Error(`API backup ${end.state}: ${JSON.stringify(end)}`);
    return { wallS, engineS: (end.result?.durationMs ?? NaN) / 1000 };
  } finally {
    await stopAppliance(a);
    rmSync(data, { recursive: true, force: true });
  }
}

function cliBackup(dir: string, disk: string): { wallS: number; engineS: number } {
  const store = mkdtempSync(join(dir, 'cli-store-'));
  try {
    const t0 = process.hrtime.bigint();
    const r = spawnSync(process.execPath, [CLI, 'backup', disk, '--source', 'vm', '--store', store, '--json'], { encoding: 'utf8' });
    const wallS = Number(process.hrtime.bigint() - t0) / 1e9;
    if (r.status !== 0) throw new Error(`CLI backup: ${r.stderr}`);
    return { wallS, engineS: (JSON.parse(r.stdout) as { durationMs: number }).durationMs / 1000 };
  } finally {
    rmSync(store, { recursive: true, force: true });
  }
}

/** GET /api/v1/jobs from `concurrency` loops until `until` settles (or for `ms`); latencies in ms. */
async function loadLoop(a: Appliance, concurrency: number, until: Promise<unknown> | number): Promise<{ lat: number[]; seconds: number }> {
  let stop = false;
  const t0 = process.hrtime.bigint();
  if (typeof until === 'number') setTimeout(() => (stop = true), until);
  else void until.finally(() => (stop = true));
  const lat: number[] = [];
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (!stop) {
        const s = process.hrtime.bigint();
        const r = await request(a, 'GET', '/api/v1/jobs');
        if (r.status !== 200) throw new Error(`GET /api/v1/jobs: ${r.status}`);
        lat.push(Number(process.hrtime.bigint() - s) / 1e6);
      }
    }),
  );
  return { lat, seconds: Number(process.hrtime.bigint() - t0) / 1e9 };
}

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;
}

function latencyRow(what: string, r: { lat: number[]; seconds: number }): BenchRow {
  const s = [...r.lat].sort((x, y) => x - y);
  return { what, requests: s.length, 'req/s': Math.round(s.length / r.seconds), 'p50 ms': Number(pct(s, 50).toFixed(2)), 'p99 ms': Number(pct(s, 99).toFixed(2)), 'max ms': Number(s[s.length - 1]!.toFixed(2)) };
}

export const apiSuite: Suite = {
  name: 'api',
  description: 'appliance API: GET /api/v1/jobs latency during a full-speed backup; backup MB/s through the API vs the CLI',
  async run(o: BenchOptions): Promise<SuiteResult> {
    const dir = mkdtempSync(join(tmpdir(), 'sv-bench-api-'));
    try {
      const size = (o.quick ? 128 : 1024) * MiB;
      const runs = o.quick ? 1 : 3;
      const disk = join(dir, 'disk.raw');
      o.log(`api: generating a ${size / MiB} MiB disk`);
      generateDisk(disk, size, 11);
      cliBackup(dir, disk); // warm the page cache and the build
      const cli: { wallS: number; engineS: number }[] = [];
      const api: { wallS: number; engineS: number }[] = [];
      for (let i = 0; i < runs; i++) {
        o.log(`api: backup run ${i + 1}/${runs} (CLI, then API)`);
        cli.push(cliBackup(dir, disk));
        api.push(await apiBackup(dir, disk));
      }
      const mb = size / 1e6;
      const best = (xs: { wallS: number; engineS: number }[], k: 'wallS' | 'engineS') => Math.min(...xs.map((x) => x[k]));
      const median = (xs: { wallS: number; engineS: number }[], k: 'wallS' | 'engineS') => [...xs.map((x) => x[k])].sort((p, q) => p - q)[xs.length >> 1]!;
      const tput: BenchRow[] = [
        { what: 'backup via CLI (MB/s, wall)', best: Math.round(mb / best(cli, 'wallS')), median: Math.round(mb / median(cli, 'wallS')), 'engine best': Math.round(mb / best(cli, 'engineS')), runs },
        { what: 'backup via API (MB/s, wall)', best: Math.round(mb / best(api, 'wallS')), median: Math.round(mb / median(api, 'wallS')), 'engine best': Math.round(mb / best(api, 'engineS')), runs },
      ];
      const ratio = best(cli, 'wallS') / best(api, 'wallS');

      o.log('api: latency of GET /api/v1/jobs, idle and during a full-speed backup');
      let idle: BenchRow | undefined;
      let busy: BenchRow | undefined;
      await apiBackup(dir, disk, async (a, done) => {
        // the backup has started: measure under it; idle figures come after it ends
        busy = latencyRow('GET /api/v1/jobs during backup (8 conns)', await loadLoop(a, 8, done));
        idle = latencyRow('GET /api/v1/jobs idle (8 conns, 3 s)', await loadLoop(a, 8, 3000));
      });
      const p99 = Number(busy?.['p99 ms']);
      return {
        columns: ['what', 'best', 'median', 'engine best', 'runs', 'requests', 'req/s', 'p50 ms', 'p99 ms', 'max ms'],
        rows: [...tput, idle!, busy!],
        notes: [
          `disk ${size / MiB} MiB (gen-disk: 40% zero, 30% compressible, 30% random 4 MiB regions), fresh store each run, page cache warm`,
          `API/CLI throughput (best wall): ${(ratio * 100).toFixed(0)}% (target >= 90%) ${ratio >= 0.9 ? 'MET' : 'NOT MET'}`,
          `p99 GET /api/v1/jobs during backup: ${p99} ms (target < 50 ms) ${p99 < 50 ? 'MET' : 'NOT MET'}`,
        ],
      };
    } finally {
      agent.destroy();
      rmSync(dir, { recursive: true, force: true });
    }
  },
};
