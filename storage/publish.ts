/**
 * Publishing points (Store.publishPoint), in groups. The commit sequence of one point (store.ts): its packs
 * durable (the writer's finish), then under the commit lock: a run that raced a gc sweep rewrites what it
 * reused (`afterSweep`), the index segment naming the run's blobs, a compaction when segments pile up, a new
 * source's settings, the manifest (create-only), the bad-list entries the run rewrote cleared.
 *
 * GROUP COMMIT. Points of one Store that wait for the commit lock while another commit holds it are published
 * together at the next hold: one listing of the index, their segments written at once (distinct sequence
 * numbers, in arrival order), one compaction, their manifests written at once, one bad-list update. Each point
 * keeps its own order (its segment is durable before its manifest is put), so a crash at any moment leaves
 * what it left before: points published whole, unnamed blobs that gc removes. WHY: eight backups of one
 * appliance that ended together committed one after another, each a few file writes and folder fsyncs under
 * the lock (~15 ms here): the last waited for the seven others (docs/BENCHMARKS.md, session 11).
 *
 * Failures: a point's own steps (afterSweep, its segment, its settings, its manifest) fail that point only; a
 * shared step (the listing, the compaction) fails every point of the group not published yet, and the bad-list
 * update fails the points that rewrote bad blocks (their manifest is published: as when they committed alone).
 */
import type { LockFile } from './lock.js';
import { BlobIndex, writeSegment } from './index.js';
import type { PointManifest } from './manifest.js';
import { encodeManifest } from './manifest.js';
import type { PublishRequest, Store } from './store.js';

interface Waiting {
  readonly req: PublishRequest;
  resolve(m: PointManifest): void;
  reject(err: unknown): void;
}

/** One per Store: publishes the requests given to it, grouped while the commit lock is busy. */
export class PointPublisher {
  readonly #store: Store;
  #waiting: Waiting[] = [];
  #running = false;

  constructor(store: Store) {
    this.#store = store;
  }

  /** Points given to publish() and not published (or failed) yet. */
  get pending(): number {
    return this.#pending;
  }

  #pending = 0;

  /** Publish `req` (its writer finished) with the others waiting; resolves to its manifest. */
  publish(req: PublishRequest): Promise<PointManifest> {
    this.#pending++;
    const published = new Promise<PointManifest>((resolve, reject) => {
      this.#waiting.push({ req, resolve, reject });
      if (!this.#running) void this.#run();
    });
    return published.finally(() => this.#pending--);
  }

  async #run(): Promise<void> {
    this.#running = true;
    while (this.#waiting.length) {
      const group = this.#waiting.splice(0);
      let lock: LockFile;
      try {
        lock = await this.#store.lockCommit('backup commit');
      } catch (err) {
        for (const w of group) w.reject(err);
        continue;
      }
      try {
        await this.#commit(group);
      } catch (err) {
        for (const w of group) w.reject(err); // a promise settled already stays as it is
      } finally {
        await lock.release();
      }
    }
    this.#running = false;
  }

  /** The group's commit, under the commit lock. Settles every request it publishes or fails on its own. */
  async #commit(group: Waiting[]): Promise<void> {
    const store = this.#store;
    const backend = store.backend;
    let live = group;
    const fail = (w: Waiting, err: unknown): void => {
      w.reject(err);
      live = live.filter((x) => x !== w);
    };
    if (live.some((w) => w.req.afterSweep)) {
      const generation = await store.gcGeneration();
      for (const w of live) {
        if (!w.req.afterSweep || generation === w.req.generation) continue;
        await w.req.afterSweep().catch((err: unknown) => fail(w, err));
      }
    }
    const { current } = await BlobIndex.listSegmentFiles(backend);
    const maxSeq = [...current.keys()].reduce((m, s) => (s > m ? s : m), 0n);
    const nowSeq = BigInt(Date.now()) * 1000n;
    let seq = nowSeq > maxSeq ? nowSeq : maxSeq + 1n;
    const planned = live.map((w) => {
      const entries = w.req.entries();
      return { w, entries, seq: entries.length ? seq++ : 0n };
    });
    let wrote = false;
    const named = await Promise.all(planned.map(async ({ w, entries, seq: s }) => {
      try {
        if (entries.length) await writeSegment(backend, entries, s);
      } catch (err) {
        fail(w, err);
        return undefined;
      }
      wrote ||= entries.length > 0;
      w.req.onNamed?.();
      return { w, segmentBytes: entries.length ? 64 + entries.length * 56 : 0 };
    }));
    if (wrote) await (await import('./compact.js')).compactIndex(backend, await store.loadIndex());
    const published = await Promise.all(named.map(async (n) => {
      if (!n) return undefined;
      try {
        const manifest = n.w.req.manifest(n.segmentBytes);
        if (n.w.req.newSource) await store.ensureSource(manifest.source, n.w.req.newSource.blockSize);
        await backend.put(`points/${manifest.source}/${manifest.id}.json`, Buffer.from(encodeManifest(manifest)));
        return { w: n.w, manifest, repaired: [...(n.w.req.repaired ?? [])] };
      } catch (err) {
        fail(n.w, err);
        return undefined;
      }
    }));
    const done = published.filter((p): p is NonNullable<typeof p> => p !== undefined);
    const repaired = done.flatMap((p) => p.repaired);
    let badError: unknown;
    if (repaired.length) await store.updateBad([], repaired).catch((err: unknown) => (badError = err));
    for (const p of done) {
      if (badError !== undefined && p.repaired.length) p.w.reject(badError);
      else p.w.resolve(p.manifest);
    }
  }
}
