/**
 * The VM-backup metrics (issue 10 §8): backups by consistency, pause/freeze histogram by mode, bytes sent,
 * change-tracking fallbacks by a fixed set of reasons (free text mapped onto it), per-agent up / last seen.
 * Fed by a real backup job through the appliance (a local disk: crash-consistent, first point = no-previous
 * fallbacks, 0 bytes sent) and by pointDone / agentSeen as a VM source's job and the agent channel call them.
 */
import { join } from 'node:path';
import t from 'tap';
import { SyncEngine } from '../../src/appliance/engine/sync.js';
import { ApplianceMetrics, FALLBACK_REASONS, fallbackReason } from '../../src/appliance/metrics.js';
import type { Job } from '../../src/appliance/model.js';
import { closePool } from '../../src/pool/index.js';
import { startTestAppliance } from '../api/helpers.js';
import { tempDir } from '../helpers/env.js';
import { makeRawImage } from './images.js';

t.teardown(closePool);

const samplers = { points: () => [], store: () => ({}), pool: () => ({}), jobs: () => ({}), now: () => Date.now() };

/** The value of one sample line `name{labels} value` in the exposition text (undefined when absent). */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

t.test('free-text reasons map onto the fixed set', async (t) => {
  const cases: Array<[string | undefined, string]> = [
    ['storage migrated (the disk is now /b/m0.raw, it was /a/m0.raw; a mirror does not carry the tracking bitmap)', 'storage-migrated'],
    ['dirty bitmap sv-3 missing after a QEMU restart', 'bitmap-missing'],
    ['bitmap sv-3 is inconsistent (unclean shutdown)', 'bitmap-inconsistent'],
    ['size changed from 1073741824 to 2147483648', 'disk-changed'],
    ['disk added to the source', 'disk-changed'],
    ['first recovery point of the source', 'no-previous'],
    ['raw disk on a QEMU without persistent bitmaps: unsupported', 'unsupported'],
    ['cosmic rays', 'other'],
    [undefined, 'other'],
  ];
  for (const [text, want] of cases) t.equal(fallbackReason(text), want, String(text));
  for (const [, want] of cases) t.ok((FALLBACK_REASONS as readonly string[]).includes(want));
});

t.test('pointDone and agentSeen', async (t) => {
  const m = new ApplianceMetrics(samplers);
  let text = await m.text();
  for (const c of ['application', 'crash', 'offline']) t.equal(sample(text, `shadowvault_backups_total{consistency="${c}"}`), 0, `${c}: 0 from the start`);
  for (const r of FALLBACK_REASONS) t.equal(sample(text, `shadowvault_change_tracking_fallbacks_total{reason="${r}"}`), 0, `${r}: 0 from the start`);
  t.equal(sample(text, 'shadowvault_backup_pause_seconds_count{mode="offline"}'), 0);
  m.pointDone({ consistency: 'offline', pauseMs: 300, disks: [{ tracking: { method: 'digest', reason: 'bitmap gone' } }, { tracking: { method: 'bitmap' } }] });
  m.pointDone({ consistency: 'application', freezeMs: 1500, disks: [{ tracking: { method: 'initial', reason: 'disk replaced' } }, { tracking: { method: 'digest' } }] });
  m.backupDone('vm', 'vda', { bytesRead: 100, bytesChanged: 50, bytesWritten: 20, bytesSent: 30 });
  m.agentSeen('agent-1', true, 1_700_000_000_000);
  m.agentSeen('agent-2', true, 1_700_000_001_000);
  m.agentSeen('agent-2', false, 1_700_000_005_000);
  text = await m.text();
  t.equal(sample(text, 'shadowvault_backups_total{consistency="offline"}'), 1);
  t.equal(sample(text, 'shadowvault_backups_total{consistency="application"}'), 1);
  t.equal(sample(text, 'shadowvault_backup_pause_seconds_count{mode="offline"}'), 1);
  t.equal(sample(text, 'shadowvault_backup_pause_seconds_sum{mode="offline"}'), 0.3);
  t.equal(sample(text, 'shadowvault_backup_pause_seconds_bucket{le="0.25",mode="offline"}'), 0);
  t.equal(sample(text, 'shadowvault_backup_pause_seconds_bucket{le="0.5",mode="offline"}'), 1);
  t.equal(sample(text, 'shadowvault_backup_pause_seconds_sum{mode="online"}'), 1.5);
  t.equal(sample(text, 'shadowvault_change_tracking_fallbacks_total{reason="bitmap-missing"}'), 1);
  t.equal(sample(text, 'shadowvault_change_tracking_fallbacks_total{reason="disk-changed"}'), 1);
  t.equal(sample(text, 'shadowvault_change_tracking_fallbacks_total{reason="other"}'), 0, 'a digest record without a reason is not a fallback');
  t.equal(sample(text, 'shadowvault_backup_sent_bytes_total{source="vm",disk="vda"}'), 30);
  t.equal(sample(text, 'shadowvault_agent_up{agent="agent-1"}'), 1);
  t.equal(sample(text, 'shadowvault_agent_up{agent="agent-2"}'), 0, 'disconnected');
  t.equal(sample(text, 'shadowvault_agent_last_seen_timestamp_seconds{agent="agent-2"}'), 1_700_000_001, 'last seen: when it was last up');
  m.agentRemoved('agent-2');
  text = await m.text();
  t.equal(sample(text, 'shadowvault_agent_up{agent="agent-2"}'), undefined, 'a revoked agent\'s series go');
  t.equal(sample(text, 'shadowvault_agent_up{agent="agent-1"}'), 1);
});

t.test('a backup job feeds them from its point', async (t) => {
  const dir = tempDir(t, 'sv-vm-metrics-');
  const a = await startTestAppliance(t, { dir: join(dir, 'data'), sourceRoots: [dir], deps: { engine: new SyncEngine(join(dir, 'data', 'store')) } });
  const d0 = join(dir, 'vm-disk0.img');
  const d1 = join(dir, 'vm-disk1.img');
  makeRawImage(d0, 2, 1, 1);
  makeRawImage(d1, 2, 1, 2);
  const src = (await a.call('admin', 'POST', '/api/v1/sources', { name: 'vmm', disks: [{ name: 'disk0', path: d0 }, { name: 'disk1', path: d1 }] })).json() as { id: string };
  for (let i = 0; i < 2; i++) {
    const r = await a.call('operator', 'POST', '/api/v1/jobs', { kind: 'backup', sourceId: src.id });
    t.equal((await a.appliance.queue.waitFor((r.json() as Job).id)).state, 'succeeded');
  }
  const text = (await a.call('viewer', 'GET', '/metrics')).body;
  t.equal(sample(text, 'shadowvault_backups_total{consistency="crash"}'), 2, 'two crash-consistent points');
  t.equal(sample(text, 'shadowvault_change_tracking_fallbacks_total{reason="no-previous"}'), 2, 'the first point: both disks had no previous point');
  t.equal(sample(text, 'shadowvault_backup_sent_bytes_total{source="vmm",disk="disk0"}'), 0, 'local disks: nothing sent');
  t.equal(sample(text, 'shadowvault_backup_pause_seconds_count{mode="offline"}'), 0, 'no pause for a disk read in place');
});
