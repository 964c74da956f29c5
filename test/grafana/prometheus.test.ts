/**
 * The real Prometheus (Debian package) scrapes a real appliance while it backs up a disk; then every Grafana
 * panel query and every alert rule runs against it through Prometheus's HTTP API: none may error, and the
 * panels about the protected VM (overview and VM dashboards) must return data. promtool checks the rule
 * file, the scrape configuration and the appliance's /metrics text.
 */
import { spawn } from 'node:child_process';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import t from 'tap';
import { ThreadedEngine } from '../../src/appliance/engine/threaded.js';
import type { Job } from '../../src/appliance/model.js';
import { closePool } from '../../src/pool/index.js';
import { startTestAppliance } from '../api/helpers.js';
import { REPO_ROOT, requireTool, run, tempDir } from '../helpers/env.js';
import { makeRawImage } from '../appliance/images.js';

const GRAFANA = join(REPO_ROOT, 'grafana');
const RULES = join(GRAFANA, 'prometheus', 'alerts.yml');

interface Panel {
  title: string;
  targets?: { expr: string }[];
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => (typeof a === 'object' && a ? resolve(a.port) : reject(new Error('no port'))));
    });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

t.teardown(() => closePool());

t.test('Prometheus scrapes the appliance; every panel query and alert rule works', async (t) => {
  const prometheus = requireTool('prometheus');
  const promtool = requireTool('promtool');
  const dir = tempDir(t, 'sv-prom-');

  // the appliance, listening on loopback, with a viewer token for Prometheus
  const a = await startTestAppliance(t, { dir: join(dir, 'data'), sourceRoots: [dir], deps: { engine: new ThreadedEngine(join(dir, 'data', 'store')) } });
  await a.app.listen({ host: '127.0.0.1', port: 0 });
  const addr = a.app.server.address();
  const appPort = typeof addr === 'object' && addr ? addr.port : 0;
  const tokenFile = join(dir, 'prom-token');
  writeFileSync(tokenFile, (await a.appliance.tokens.create('prometheus', 'viewer')).token, { mode: 0o600 });
  const disk = join(dir, 'vm-prom-disk0.img');
  makeRawImage(disk, 32, 16, 1);
  const src = (await a.call('admin', 'POST', '/api/v1/sources', { name: 'vm-prom', disks: [{ name: 'disk0', path: disk }] })).json() as { id: string };
  await a.call('admin', 'POST', '/api/v1/groups', { name: 'gold', members: [src.id], syncFrequencyMinutes: 15, recoveryPointTimes: ['08:00', '20:00'], retention: { days: 7, maxCount: 10 } });

  // Prometheus on loopback with a temp config and data folder, scraping every second, with our rules
  const promPort = await freePort();
  const config = join(dir, 'prometheus.yml');
  writeFileSync(config, [
    'global:', '  scrape_interval: 1s', '  evaluation_interval: 1s',
    'rule_files:', `  - ${RULES}`,
    'scrape_configs:', '  - job_name: shadowvault', '    metrics_path: /metrics',
    '    authorization:', '      type: Bearer', `      credentials_file: ${tokenFile}`,
    '    static_configs:', `      - targets: ['127.0.0.1:${appPort}']`, '',
  ].join('\n'));
  run(promtool, ['check', 'config', config]);
  const prom = spawn(prometheus, [`--config.file=${config}`, `--storage.tsdb.path=${join(dir, 'tsdb')}`, `--web.listen-address=127.0.0.1:${promPort}`, '--log.level=warn'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let promLog = '';
  prom.stderr.on('data', (c: Buffer) => (promLog += c.toString()));
  const promExit = new Promise<number | null>((r) => prom.on('exit', (code) => r(code)));
  t.teardown(() => prom.kill('SIGKILL'));
  const base = `http://127.0.0.1:${promPort}`;
  const query = async (q: string): Promise<{ status: string; error?: string; data?: { result: unknown[] } }> => {
    const r = await fetch(`${base}/api/v1/query?query=${encodeURIComponent(q)}`);
    return (await r.json()) as { status: string; error?: string; data?: { result: unknown[] } };
  };
  for (;;) {
    const ready = await fetch(`${base}/-/ready`).then((r) => r.ok, () => false);
    if (ready) break;
    if (prom.exitCode !== null) throw new Error(`prometheus exited: ${promLog}`);
    await sleep(100);
  }

  // first scrapes before any job, so counters are seen at zero first
  for (let i = 0; ; i++) {
    const r = await query('count_over_time(up{job="shadowvault"}[1m]) >= 2');
    if ((r.data?.result.length ?? 0) > 0) break;
    if (i > 300) throw new Error(`Prometheus does not scrape the appliance: ${promLog}`);
    await sleep(100);
  }

  // jobs while Prometheus scrapes: backups (one after a change), a verify, a gc, a restore, a failed restore
  const runJob = async (body: Record<string, unknown>) => {
    const r = await a.call('operator', 'POST', '/api/v1/jobs', body);
    return a.appliance.queue.waitFor((r.json() as Job).id);
  };
  t.equal((await runJob({ kind: 'backup', sourceId: src.id })).state, 'succeeded');
  makeRawImage(disk, 32, 24, 2);
  const pending = runJob({ kind: 'backup', sourceId: src.id });
  const scrapedDuringBackup = (await query('shadowvault_jobs{state="running"}')).status;
  t.equal((await pending).state, 'succeeded');
  t.equal(scrapedDuringBackup, 'success');
  t.equal((await runJob({ kind: 'verify' })).state, 'succeeded');
  t.equal((await runJob({ kind: 'gc' })).state, 'succeeded');
  const point = ((await a.call('viewer', 'GET', `/api/v1/sources/${src.id}/points`)).json() as { id: string }[])[0];
  const target = join(a.appliance.config.restoreRoots[0], 'r.img');
  for (let i = 0; i < 2; i++) {
    const r = await a.call('operator', 'POST', `/api/v1/sources/${src.id}/points/${point.id}/restore`, { disk: 'disk0', target });
    await a.appliance.queue.waitFor((r.json() as Job).id); // the second fails: the target exists
  }
  await a.appliance.refreshStoreStats();
  // What a VM source's jobs and the agent channel feed (issue 10): an offline and an online point through
  // the same pointDone the executor calls, and a connected agent.
  a.appliance.metrics.pointDone({ consistency: 'offline', pauseMs: 180, disks: [{ tracking: { method: 'digest', reason: 'dirty bitmap sv-1 missing after a QEMU restart' } }] });
  a.appliance.metrics.pointDone({ consistency: 'application', freezeMs: 420, disks: [{ tracking: { method: 'bitmap' } }] });
  a.appliance.metrics.agentSeen('agent-prom', true);

  // wait until Prometheus holds a few scrapes after the last job
  const want = 'count_over_time(shadowvault_verify_last_bad_blocks[1m]) >= 3 and on() count_over_time(shadowvault_job_failures_total{kind="restore",reason="SV_ERR_FORMAT_OUTPUT_EXISTS"}[1m]) >= 2';
  for (let i = 0; ; i++) {
    const r = await query(`(${want}) and on() (count_over_time(shadowvault_store_size_bytes[10s]) >= 3)`);
    if (r.status === 'success' && (r.data?.result.length ?? 0) > 0) break;
    if (i > 300) throw new Error(`Prometheus never saw the jobs: ${JSON.stringify(r)} ${JSON.stringify(await query('up'))} ${JSON.stringify((await (await fetch(`${base}/api/v1/targets`)).json()))} ${promLog}`);
    await sleep(100);
  }
  const up = await query('up{job="shadowvault"}');
  t.match(JSON.stringify(up.data?.result), /"1"\]/, 'target up');

  // every panel of every dashboard
  const vars = (e: string) => e.replaceAll('$source', 'vm-prom').replaceAll('$__rate_interval', '1m').replaceAll('$__interval', '1s').replaceAll('$__range', '1h');
  const dashboards = readdirSync(join(GRAFANA, 'dashboards')).filter((f) => f.endsWith('.json'));
  t.same(dashboards.sort(), ['agents.json', 'overview.json', 'store.json', 'vm.json']);
  let queries = 0;
  for (const file of dashboards) {
    const d = JSON.parse(readFileSync(join(GRAFANA, 'dashboards', file), 'utf8')) as { panels: Panel[]; templating: { list: { query: { query: string } }[] } };
    for (const p of d.panels) {
      for (const target of p.targets ?? []) {
        const expr = vars(target.expr);
        const r = await query(expr);
        queries++;
        t.equal(r.status, 'success', `${file} "${p.title}": ${expr} ${r.error ?? ''}`);
        // every panel has data here (the jobs above touched every metric)
        t.ok((r.data?.result.length ?? 0) > 0, `${file} "${p.title}" returns data: ${expr}`);
      }
    }
    for (const v of d.templating.list) {
      const m = /^label_values\(([^,]+),\s*(\w+)\)$/.exec(v.query.query);
      t.ok(m, `template query ${v.query.query}`);
      const values = (await (await fetch(`${base}/api/v1/label/${m![2]}/values?match[]=${encodeURIComponent(m![1])}`)).json()) as { data: string[] };
      t.ok(values.data.includes('vm-prom'), 'template variable lists the protected VM');
    }
  }
  t.ok(queries >= 30, `${queries} panel queries`);

  // every alert rule: loaded, evaluated without error, and its expression runs
  const ruleCount = (readFileSync(RULES, 'utf8').match(/^\s*- alert:/gm) ?? []).length;
  let rules: { name: string; query: string; health: string; lastError?: string }[] = [];
  for (let i = 0; ; i++) {
    const r = (await (await fetch(`${base}/api/v1/rules`)).json()) as { data: { groups: { rules: { name: string; query: string; health: string; lastError?: string }[] }[] } };
    rules = r.data.groups.flatMap((g) => g.rules);
    if (rules.length === ruleCount && rules.every((x) => x.health !== 'unknown')) break;
    if (i > 100) break;
    await sleep(100);
  }
  t.equal(rules.length, ruleCount, 'every rule in alerts.yml loaded');
  for (const rule of rules) {
    t.equal(rule.health, 'ok', `${rule.name} evaluates: ${rule.lastError ?? ''}`);
    const r = await query(rule.query);
    t.equal(r.status, 'success', `${rule.name}: ${rule.query}`);
  }
  const failing = await query(rules.find((r) => r.name === 'ShadowvaultJobFailed')!.query);
  t.ok((failing.data?.result.length ?? 0) > 0, 'the failed restore fires ShadowvaultJobFailed');

  // promtool on the rule file, the shipped scrape config's syntax, and the appliance's exposition
  run(promtool, ['check', 'rules', RULES]);
  const shipped = readFileSync(join(GRAFANA, 'prometheus', 'prometheus.yml'), 'utf8').replaceAll('/etc/prometheus/shadowvault-alerts.yml', RULES).replaceAll('/etc/prometheus/shadowvault-token', tokenFile);
  writeFileSync(join(dir, 'shipped.yml'), shipped);
  run(promtool, ['check', 'config', join(dir, 'shipped.yml')]);
  const metrics = (await a.call('viewer', 'GET', '/metrics')).body;
  run(promtool, ['check', 'metrics'], { input: metrics });
  t.pass('promtool check rules, config and metrics pass');

  prom.kill('SIGTERM');
  t.equal(await promExit, 0, 'Prometheus stopped cleanly');
});
