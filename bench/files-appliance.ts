/**
 * The `files` suite's appliance rows (issue 12, cold browsing through a running appliance): for every
 * measurement a NEW `shadowvault serve` process over the fixture's store (so the point has never been opened
 * by that process and its block cache is empty), the fixture's NTFS source added with `attach`, then ONE cold
 * operation:
 *   - `files ls --url` of the 10,000-entry folder / `files get --url` of the 1 MiB file, as a new CLI process
 *     (what an administrator types: node start + HTTP + the appliance's work);
 *   - the same as one HTTP request from this process (GET .../files?path=, GET .../content?path=): the
 *     appliance's own latency, what a browser or the API client waits for.
 * Each measurement gives wall seconds, the appliance's CPU seconds (all its threads, /proc/PID/stat around the
 * operation) and, for CLI rows, the CLI process's CPU seconds.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCpuTimedSync } from './measure.js';

export interface ApplianceTiming {
  readonly wall: number;
  /** The appliance's CPU seconds for the operation. */
  readonly serverCpu: number;
  /** The CLI process's CPU seconds (0 for HTTP rows). */
  readonly clientCpu: number;
}

/** CPU seconds (user + system, every thread) of a process so far. */
function processCpu(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / 100; // utime, stime: fields 14 and 15, in clock ticks (100 Hz)
}

interface Served {
  readonly proc: ChildProcess;
  readonly url: string;
  readonly tokenFile: string;
  readonly token: string;
}

function startServe(cli: string, store: string, dataDir: string, sourceRoot: string): Promise<Served> {
  const proc = spawn(process.execPath, [cli, 'serve', '--listen', '127.0.0.1:0', '--store', store, '--data-dir', dataDir, '--source-root', sourceRoot, '--gc-at', 'never', '--verify-at', 'never'], { stdio: ['ignore', 'pipe', 'pipe'] });
  return new Promise((resolve, reject) => {
    let buf = '';
    let stderr = '';
    proc.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
    proc.stdout!.on('data', (c: Buffer) => {
      buf += c.toString();
      const m = /"url":"(http:\/\/[^"]+)"/.exec(buf);
      if (m && buf.includes('listening')) {
        const tokenFile = join(dataDir, 'admin-token');
        resolve({ proc, url: m[1]!, tokenFile, token: readFileSync(tokenFile, 'utf8').trim() });
      }
    });
    proc.once('exit', (code) => reject(new Error(`serve exited (${code}) before listening: ${stderr}`)));
  });
}

async function call<T>(s: Served, method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> {
  const r = await fetch(`${s.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${s.token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = Buffer.from(await r.arrayBuffer());
  if (r.status >= 300) throw new Error(`${method} ${path}: ${r.status} ${text.toString('utf8').slice(0, 300)}`);
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text.toString('utf8'));
  } catch {
    /* bytes */
  }
  return { status: r.status, body: parsed as T };
}

export interface ApplianceFixture {
  readonly cli: string;
  readonly store: string;
  /** The fixture folder: the NTFS disk image (the source's disk) lies in it. */
  readonly dir: string;
  readonly source: string;
  readonly diskPath: string;
  readonly work: string;
}

/**
 * Start a fresh appliance, add the source (attached to its points), resolve the newest point's volume route
 * (requests that touch no block of the point), run `op`, stop the appliance.
 */
async function withFreshAppliance(fx: ApplianceFixture, op: (s: Served, volumeBase: string) => Promise<ApplianceTiming>): Promise<ApplianceTiming> {
  const dataDir = mkdtempSync(join(tmpdir(), 'sv-bench-appliance-'));
  const s = await startServe(fx.cli, fx.store, dataDir, fx.dir);
  try {
    const src = await call<{ id: string }>(s, 'POST', '/api/v1/sources', { name: fx.source, disks: [{ name: 'disk0', path: fx.diskPath }], attach: true });
    const points = await call<Array<{ id: string }>>(s, 'GET', `/api/v1/sources/${src.body.id}/points`);
    const point = points.body[points.body.length - 1]!;
    return await op(s, `/api/v1/sources/${src.body.id}/points/${point.id}/disks/disk0/volumes/auto`);
  } finally {
    s.proc.kill('SIGTERM');
    await new Promise((r) => s.proc.once('exit', r));
    rmSync(dataDir, { recursive: true, force: true });
  }
}

function timedCli(s: Served, args: string[]): { wall: number; serverCpu: number; clientCpu: number; stdout: string } {
  const c0 = processCpu(s.proc.pid!);
  const r = runCpuTimedSync(process.execPath, [...args, '--url', s.url, '--token-file', s.tokenFile]);
  return { wall: r.wall, serverCpu: processCpu(s.proc.pid!) - c0, clientCpu: r.cpu, stdout: r.stdout };
}

async function timedHttp(s: Served, path: string, check: (body: unknown) => void): Promise<ApplianceTiming> {
  const c0 = processCpu(s.proc.pid!);
  const t0 = process.hrtime.bigint();
  const r = await call<unknown>(s, 'GET', path);
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  const serverCpu = processCpu(s.proc.pid!) - c0;
  check(r.body);
  return { wall, serverCpu, clientCpu: 0 };
}

export interface ApplianceRuns {
  readonly lsCli: ApplianceTiming[];
  readonly lsHttp: ApplianceTiming[];
  readonly getCli: ApplianceTiming[];
  readonly getHttp: ApplianceTiming[];
}

/** `runs` rounds of the four cold measurements (each on its own fresh appliance). */
export async function applianceRuns(fx: ApplianceFixture, runs: number, entries: number, log: (m: string) => void): Promise<ApplianceRuns> {
  const out: ApplianceRuns = { lsCli: [], lsHttp: [], getCli: [], getHttp: [] };
  const expectEntries = (n: number): void => {
    if (n !== entries) throw new Error(`the appliance listed ${n} entries, expected ${entries}`);
  };
  for (let i = 0; i < runs; i++) {
    log(`files: appliance round ${i + 1} of ${runs}`);
    out.lsCli.push(await withFreshAppliance(fx, async (s) => {
      const r = timedCli(s, [fx.cli, 'files', 'ls', fx.source, '/big', '--json']);
      expectEntries((JSON.parse(r.stdout) as { entries: unknown[] }).entries.length);
      return { wall: r.wall, serverCpu: r.serverCpu, clientCpu: r.clientCpu };
    }));
    out.lsHttp.push(await withFreshAppliance(fx, (s, base) => timedHttp(s, `${base}/files?path=%2Fbig`, (b) => expectEntries((b as { entries: unknown[] }).entries.length))));
    out.getCli.push(await withFreshAppliance(fx, async (s) => {
      const dest = join(fx.work, `appliance-get-${i}`);
      const r = timedCli(s, [fx.cli, 'files', 'get', fx.source, '/one-mib.bin', '--out', dest]);
      rmSync(dest, { recursive: true, force: true });
      return { wall: r.wall, serverCpu: r.serverCpu, clientCpu: r.clientCpu };
    }));
    out.getHttp.push(await withFreshAppliance(fx, (s, base) => timedHttp(s, `${base}/content?path=%2Fone-mib.bin`, (b) => {
      if (!Buffer.isBuffer(b) || b.length !== 1 << 20) throw new Error('the appliance did not send the 1 MiB file');
    })));
  }
  return out;
}
