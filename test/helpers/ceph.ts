/**
 * A throwaway one-node Ceph cluster with its RADOS Gateway (S3) on loopback, for the S3 backend's tests:
 * one monitor, one memstore OSD, radosgw with the beast frontend on 127.0.0.1:<free port>, and an S3 user made
 * by `radosgw-admin user create`. Everything lives in a private temp folder (config, mon store, sockets, logs);
 * no systemd, no /etc/ceph, no loop devices, no kernel modules. No mgr: nothing here needs it.
 * Started once per test file (~3-5 s to S3-ready), stopped in teardown: SIGTERM, then SIGKILL after 5 s.
 * Each daemon runs under a tiny `sh` guard that kills it when the test process goes away (its stdin pipe
 * closes), so a test killed by a timeout leaves no daemon behind.
 *
 * Settings and why (seen on this machine kind):
 * - auth none everywhere, and `[client] ms mon client mode = crc secure`: without it radosgw waits forever;
 * - `paxos propose interval = 0.05`: map changes commit at once instead of ~12 s of startup;
 * - `rgw gc obj min wait = 0`, `rgw gc processor period = 5`: deleted data leaves memstore's RAM promptly;
 * - `osd pool default pg num = 8`, `mon max pg per osd = 1000`, size 1: rgw makes ~8 pools on one OSD;
 * - memstore keeps object data in RAM at ~2x: tests keep their data at a few MiB.
 * Signatures are checked for real (SigV4), so a wrong secret key is refused.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort, runAsync, tempDir } from './env.js';
import { s3ServerAt, type S3Server } from './s3rver.js';

interface Teardown {
  teardown(fn: () => void | Promise<void>): void;
}

export interface CephCluster extends S3Server {
  readonly dir: string;
  readonly conf: string;
  /** `radosgw-admin ARGS -c <conf>`: its stdout. */
  rgwAdmin(args: string[]): Promise<string>;
  /** With `usageLog`: the requests served so far, summed over users and buckets (waits for the log's flush). */
  usage(): Promise<RgwUsage>;
  /** Resident memory of the OSD (memstore holds the objects in RAM) and of radosgw, MiB. */
  memoryMiB(): { osd: number; rgw: number };
  /** CPU seconds (user + system, all threads) each daemon has used so far (/proc/PID/stat): for benchmarks. */
  cpuSeconds(): CephCpu;
  stop(): Promise<void>;
}

const INSTALL = 'apt-get install -y ceph-mon ceph-osd ceph-mgr radosgw ceph-common ceph-base';
const TOOLS = ['ceph-mon', 'ceph-osd', 'radosgw', 'radosgw-admin', 'ceph', 'monmaptool', 'ceph-authtool'];

async function requireCeph(): Promise<void> {
  const missing: string[] = [];
  for (const tool of TOOLS) {
    await runAsync('sh', ['-c', `command -v ${tool}`]).catch(() => missing.push(tool));
  }
  if (missing.length) throw new Error(`the Ceph tests need ${missing.join(', ')}, which are not installed: run \`sudo ${INSTALL}\` (or \`npm run setup:test\`)`);
}

/** Options of startCeph (the defaults suit the tests: data of a few MiB). */
export interface CephOptions {
  /** memstore's capacity in bytes (default 1 GiB). It holds object data in RAM at ~2x: size it to the data. */
  readonly memstoreBytes?: number;
  /**
   * RGW's usage log on, flushed every second: `usage()` then counts every request the gateway served, from any
   * process or thread (benchmarks: requests per point).
   */
  readonly usageLog?: boolean;
}

/** CPU seconds used by the monitor, the OSD and the gateway. */
export interface CephCpu { mon: number; osd: number; rgw: number }

/** utime + stime of a process, seconds (0 when it is gone). USER_HZ is 100 on Linux. */
function cpuOf(pid: number | undefined): number {
  if (pid === undefined) return 0;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return 0;
  }
}

/** Requests the gateway served, by its usage-log category (put_obj, get_obj, list_bucket, stat_object, ...). */
export type RgwUsage = Record<string, number>;

/**
 * Settings that cut the daemons' CPU on a loopback test cluster (they share the machine's cores with the
 * appliance; measured in docs/BENCHMARKS.md, "S3 backend (issue 13)"). None of them touches S3's protocol,
 * authentication or signatures: logging off (each level costs formatting even when only kept in memory),
 * no CRC on messages between the daemons (loopback; the objects' bytes are still checked by S3's Content-MD5),
 * RGW writing and reading RADOS in 16 MiB pieces instead of 4 MiB (fewer OSD operations per pack), one OSD
 * shard and 8 beast threads instead of 512 (two cores: fewer threads handing work to each other).
 */
const CPU_SETTINGS = `${['ms', 'rgw', 'osd', 'mon', 'paxos', 'auth', 'monc', 'objecter', 'rados', 'filestore', 'memstore', 'objclass', 'asok', 'throttle', 'finisher', 'heartbeatmap', 'perfcounter', 'context', 'bluestore', 'ms']
  .filter((n, i, a) => a.indexOf(n) === i).map((n) => `debug ${n} = 0/0\n`).join('')}ms crc data = false
ms crc header = false
rgw max chunk size = 16777216
rgw obj stripe size = 16777216
rgw get obj max req size = 16777216
rgw put obj min window size = 33554432
rgw get obj window size = 33554432
osd op num shards = 1
osd op num threads per shard = 2
rgw thread pool size = 8
`;

function config(dir: string, monPort: number, rgwPort: number, fsid: string, opts: CephOptions): string {
  return `[global]
fsid = ${fsid}
mon host = v2:127.0.0.1:${monPort}
mon initial members = a
auth cluster required = none
auth service required = none
auth client required = none
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd crush chooseleaf type = 0
mon max pg per osd = 1000
mon allow pool size one = true
mon warn on pool no redundancy = false
osd objectstore = memstore
memstore device bytes = ${opts.memstoreBytes ?? 1073741824}
paxos propose interval = 0.05
run dir = ${dir}/run
pid file = ${dir}/run/$name.pid
admin socket = ${dir}/run/$name.asok
log file = ${dir}/log/$name.log
mon data = ${dir}/mon/$name
osd data = ${dir}/osd/$name
rgw gc obj min wait = 0
rgw gc processor period = 5
${CPU_SETTINGS}[client]
ms mon client mode = crc secure
rgw frontends = beast endpoint=127.0.0.1:${rgwPort}
rgw data = ${dir}/rgw
${opts.usageLog ? 'rgw enable usage log = true\nrgw usage log tick interval = 1\nrgw usage log flush threshold = 1\n' : ''}`;
}

export async function startCeph(t: Teardown, opts: CephOptions = {}): Promise<CephCluster> {
  await requireCeph();
  const dir = tempDir(t, 'sv-ceph-');
  for (const d of ['run', 'log', 'mon', 'osd/osd.0', 'rgw']) mkdirSync(join(dir, d), { recursive: true });
  const [monPort, rgwPort] = [await freePort(), await freePort()];
  const fsid = randomUUID();
  const conf = join(dir, 'ceph.conf');
  writeFileSync(conf, config(dir, monPort, rgwPort, fsid, opts));
  const daemons: { name: string; proc: ChildProcess }[] = [];
  let stopped = false;

  const daemon = (name: string, cmd: string, args: string[]): void => {
    // The guard: the daemon in the background; when our stdin closes (stop, or this process died) → TERM it.
    const guard = 'trap "" INT; "$@" & p=$!; read _ || true; kill -TERM $p 2>/dev/null; wait $p';
    const proc = spawn('sh', ['-c', guard, 'sh', cmd, ...args], { stdio: ['pipe', 'ignore', 'ignore'], cwd: dir });
    daemons.push({ name, proc });
  };
  const ceph = (args: string[], timeoutMs = 20_000): Promise<string> => runAsync('ceph', ['-c', conf, '--connect-timeout', '5', ...args], { timeoutMs });
  const rgwAdmin = (args: string[]): Promise<string> => runAsync('radosgw-admin', ['-c', conf, ...args], { timeoutMs: 60_000 });

  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    const exits = daemons.map(({ proc }) => (proc.exitCode !== null ? Promise.resolve() : new Promise<void>((r) => proc.once('exit', () => r()))));
    // In reverse order of start, each after the one before has gone: radosgw waits for its OSD and an OSD
    // for its monitor when they are gone first (5-9 s each); in this order each exits in well under a second.
    for (let i = daemons.length - 1; i >= 0; i--) {
      daemons[i]!.proc.stdin?.end();
      await Promise.race([exits[i], sleep(3000)]);
    }
    const all = Promise.all(exits);
    if (await Promise.race([all.then(() => true), sleep(5000).then(() => false)])) return;
    for (const name of ['client.rgw', 'osd.0', 'mon.a']) {
      try {
        process.kill(Number(readFileSync(join(dir, 'run', `${name}.pid`), 'utf8').trim()), 'SIGKILL');
      } catch { /* gone already */ }
    }
    for (const { proc } of daemons) proc.kill('SIGKILL');
    await Promise.race([all, sleep(2000)]);
  };
  t.teardown(stop);

  try {
    await runAsync('ceph-authtool', ['--create-keyring', join(dir, 'keyring'), '--gen-key', '-n', 'mon.', '--cap', 'mon', 'allow *']);
    await runAsync('monmaptool', ['--create', '--addv', 'a', `[v2:127.0.0.1:${monPort}]`, '--fsid', fsid, join(dir, 'monmap')]);
    await runAsync('ceph-mon', ['-c', conf, '--mkfs', '-i', 'a', '--monmap', join(dir, 'monmap'), '--keyring', join(dir, 'keyring')]);
    daemon('mon.a', 'ceph-mon', ['-c', conf, '-i', 'a', '-f']);
    const osdUuid = randomUUID();
    for (let i = 0; ; i++) {
      try {
        await ceph(['osd', 'new', osdUuid], 5000);
        break;
      } catch (err) {
        if (i >= 100) throw err;
        await sleep(100);
      }
    }
    await runAsync('ceph-osd', ['-c', conf, '-i', '0', '--mkfs', '--osd-uuid', osdUuid]);
    daemon('osd.0', 'ceph-osd', ['-c', conf, '-i', '0', '-f']);
    daemon('client.rgw', 'radosgw', ['-c', conf, '-n', 'client.rgw', '-f']);
    const endpoint = `http://127.0.0.1:${rgwPort}`;
    for (let i = 0; ; i++) {
      const up = await fetch(`${endpoint}/`).then((r) => r.ok, () => false);
      if (up) break;
      if (i >= 600) throw new Error(`radosgw did not answer on ${endpoint} within 60 s (logs: ${dir}/log)`);
      await sleep(100);
    }
    const accessKeyId = `SVTEST${randomUUID().replace(/-/gu, '').slice(0, 14).toUpperCase()}`;
    const secretAccessKey = randomUUID().replace(/-/gu, '') + randomUUID().replace(/-/gu, '').slice(0, 8);
    await rgwAdmin(['user', 'create', '--uid', 'shadowvault', '--display-name', 'shadowvault tests', '--access-key', accessKeyId, '--secret', secretAccessKey]);
    const usage = async (): Promise<RgwUsage> => {
      await sleep(2500); // the log's tick (1 s) and RGW's flush
      const out = JSON.parse(await rgwAdmin(['usage', 'show', '--show-log-entries=false'])) as { summary?: { categories?: { category: string; ops: number }[] }[] };
      const sum: RgwUsage = {};
      for (const u of out.summary ?? []) for (const c of u.categories ?? []) sum[c.category] = (sum[c.category] ?? 0) + c.ops;
      return sum;
    };
    /** The pid of this cluster's daemon `exe` (ceph-osd, radosgw): its command line names our config file. */
    const pidOf = (exe: string): number | undefined => {
      for (const pid of readdirSync('/proc')) {
        if (!/^\d+$/u.test(pid)) continue;
        try {
          const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
          if (argv[0]?.endsWith(exe) && argv.includes(conf)) return Number(pid);
        } catch { /* gone */ }
      }
      return undefined;
    };
    const rssOf = (exe: string): number => {
      try {
        return Number(/VmRSS:\s+(\d+)/u.exec(readFileSync(`/proc/${pidOf(exe)}/status`, 'utf8'))?.[1] ?? 0) / 1024;
      } catch {
        return 0;
      }
    };
    const memoryMiB = (): { osd: number; rgw: number } => ({ osd: rssOf('ceph-osd'), rgw: rssOf('radosgw') });
    const cpuSeconds = (): CephCpu => ({ mon: cpuOf(pidOf('ceph-mon')), osd: cpuOf(pidOf('ceph-osd')), rgw: cpuOf(pidOf('radosgw')) });
    return { ...s3ServerAt(t, endpoint, { accessKeyId, secretAccessKey }), dir, conf, rgwAdmin, usage, memoryMiB, cpuSeconds, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
