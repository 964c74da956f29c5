/**
 * Shared by the issue 9 regression tests: an appliance with the real sync engine whose job slots a test can
 * hold busy (a verify job that waits for `release()` before it runs), and a small backed-up source.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Test } from 'tap';
import type { EngineContext, VerifyOutcome } from '../../src/appliance/engine/index.js';
import { SyncEngine } from '../../src/appliance/engine/sync.js';
import type { Job } from '../../src/appliance/model.js';
import { startTestAppliance, type TestAppliance } from '../api/helpers.js';
import { makeRawImage } from '../appliance/images.js';

/** The real engine, except that verify waits until the test opens the gate (it holds a job slot meanwhile). */
export class GatedEngine extends SyncEngine {
  #open: () => void = () => undefined;
  #gate = new Promise<void>((resolve) => (this.#open = resolve));

  release(): void {
    this.#open();
  }

  override async verify(ctx: EngineContext): Promise<VerifyOutcome> {
    await this.#gate;
    return super.verify(ctx);
  }
}

export async function startJob(a: TestAppliance, body: Record<string, unknown>): Promise<Job> {
  const r = await a.call('operator', 'POST', '/api/v1/jobs', body);
  if (r.statusCode !== 202) throw new Error(`start job: ${r.statusCode} ${r.body}`);
  return r.json() as Job;
}

/** An appliance with one job slot, and a source `vm1` (one 2 MiB disk under `<data>/sources`) backed up once. */
export async function backedUpAppliance(t: Test, dir: string): Promise<{ a: TestAppliance; engine: GatedEngine; sourceId: string; pointId: string; disk: string }> {
  const data = join(dir, 'data');
  const engine = new GatedEngine(join(data, 'store'));
  const a = await startTestAppliance(t, { dir: data, deps: { engine }, limits: { maxConcurrentJobs: 1 } });
  mkdirSync(join(data, 'sources'), { recursive: true });
  const disk = join(data, 'sources', 'vm1-disk0.img');
  makeRawImage(disk, 2, 1, 9);
  const add = await a.call('admin', 'POST', '/api/v1/sources', { name: 'vm1', disks: [{ name: 'disk0', path: disk }] });
  if (add.statusCode !== 201) throw new Error(`add source: ${add.statusCode} ${add.body}`);
  const sourceId = (add.json() as { id: string }).id;
  const backup = await a.appliance.queue.waitFor((await startJob(a, { kind: 'backup', sourceId })).id);
  if (backup.state !== 'succeeded') throw new Error(`backup: ${JSON.stringify(backup.error)}`);
  const points = (await a.call('viewer', 'GET', `/api/v1/sources/${sourceId}/points`)).json() as { id: string }[];
  return { a, engine, sourceId, pointId: points[0]!.id, disk };
}
