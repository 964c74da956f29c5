/**
 * Static checks of grafana/: dashboards are valid Grafana JSON using the provisioned data source, panel ids
 * are unique, and every metric a panel or an alert rule names is one the appliance exports.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { ApplianceMetrics } from '../../src/appliance/metrics.js';
import { REPO_ROOT } from '../helpers/env.js';

const G = join(REPO_ROOT, 'grafana');

interface Dash {
  uid: string;
  title: string;
  panels: { id: number; title: string; datasource: { uid: string }; targets: { expr: string; datasource: { uid: string } }[] }[];
}

t.test('dashboards and rules only name exported metrics', async (t) => {
  const m = new ApplianceMetrics({ points: () => [], store: () => ({}), pool: () => ({}), jobs: () => ({}), now: () => Date.now() });
  const exported = new Set((await m.registry.getMetricsAsJSON()).flatMap((x) => (String(x.type) === 'histogram' ? [x.name, `${x.name}_bucket`, `${x.name}_sum`, `${x.name}_count`] : [x.name])));
  exported.add('up');
  const names = (expr: string) => [...expr.matchAll(/\b(shadowvault_[a-z_]+|up)\b(?!\s*\()/g)].map((x) => x[1]);
  const ds = readFileSync(join(G, 'provisioning', 'datasources', 'shadowvault.yaml'), 'utf8');
  const uid = /uid:\s*(\S+)/.exec(ds)?.[1];
  t.equal(uid, 'shadowvault-prometheus');
  const uids = new Set<string>();
  for (const f of readdirSync(join(G, 'dashboards'))) {
    const d = JSON.parse(readFileSync(join(G, 'dashboards', f), 'utf8')) as Dash;
    t.notOk(uids.has(d.uid), `${f}: unique uid`);
    uids.add(d.uid);
    const ids = d.panels.map((p) => p.id);
    t.equal(new Set(ids).size, ids.length, `${f}: unique panel ids`);
    for (const p of d.panels) {
      t.equal(p.datasource.uid, uid, `${f} "${p.title}" uses the provisioned data source`);
      t.ok(p.targets.length > 0, `${f} "${p.title}" has a query`);
      for (const tg of p.targets) for (const n of names(tg.expr)) t.ok(exported.has(n), `${f} "${p.title}": ${n} is exported`);
    }
  }
  const rules = readFileSync(join(G, 'prometheus', 'alerts.yml'), 'utf8');
  for (const line of rules.split('\n').filter((l) => /^\s*expr:/.test(l))) for (const n of names(line)) t.ok(exported.has(n), `alert rule metric ${n} is exported`);
  for (const alert of ['ShadowvaultRecoveryPointLag', 'ShadowvaultJobFailed', 'ShadowvaultVerifyBadBlocks', 'ShadowvaultStoreNearlyFull']) t.match(rules, new RegExp(`alert: ${alert}\\b`));
});
