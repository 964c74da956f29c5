/**
 * The agent's view methods: one session per point-in-time view of a VM (driver.createView), read by the
 * appliance disk by disk, range by range.
 *
 * - view.open takes the point in time and returns the session id and the view's disks; sessions expire
 *   after an idle timeout (abort + release: tracking is rolled back, nothing stays on the host).
 * - view.range hashes and compresses a block range on the agent's own worker pool (the DiskSource of the
 *   view's disk, opened once per session and disk) and answers with the changed blocks only (range-codec.ts).
 *   Memory: the bytes of the ranges being read, hashed and encoded at once are bounded by RANGE_BUDGET (one
 *   range per worker plus one being read, at most 64 MiB): a call over the budget waits before it reads (the
 *   appliance keeps more ranges in flight than the agent has workers; the waiting ones hold only their old
 *   digests). Each such range holds its read buffer, its compressed result and its encoded answer.
 * - view.spans is view.range for many small ranges of one disk at once (an incremental's scattered dirty
 *   blocks): each span checked as view.range's, at most MAX_CALL_BYTES in all, one RANGE_BUDGET acquisition,
 *   then the source's backupSpans (one read batch and one worker task) when it has one, else backupRange per
 *   span. The answer is the spans' view.range answers back to back with their lengths.
 * - view.read / view.extents serve raw bytes and allocation; view.changes the driver's change answer.
 * - view.configuration: the VM's configuration files as of the point (driver view.configuration(), checked by
 *   src/hypervisor/config.ts): the description as the result, the files back to back as the payload (at most
 *   16 MiB in all, the config limit). A view without one answers SV_ERR_HYPERVISOR_NO_CONFIGURATION.
 * - share.open (the file server's agent, src/smb/file-server.ts): a session over one frozen disk file of a
 *   served share, read with the same view.extents / view.range / view.read and ended by view.release. A view
 *   whose disk is a file on a host-side share reports it as `onShare`, so the appliance reads it there.
 * - view.commit / view.abort / view.release end the session (idempotent: release of an unknown session is a
 *   no-op; commit or abort of an unknown one throws SV_ERR_AGENT_UNKNOWN_SESSION, so the appliance knows).
 */
import { SvError } from '../../errors/index.js';
import { checkConfiguration, describeConfiguration, packConfiguration } from '../../hypervisor/config.js';
import type { ChangeReference, PointInTimeView } from '../../hypervisor/driver.js';
import { levelRange } from '../../native/index.js';
import { Slots } from '../../nbd/slots.js';
import { poolSize } from '../../pool/index.js';
import type { DiskSource } from '../../sources/types.js';
import type { AgentHandlers } from '../rpc.js';
import { DEFAULT_IDLE_MS, MAX_CALL_BYTES, type MethodDeps } from './deps.js';
import { MAX_SPANS } from '../channel/params.js';
import { badParam, bool, int, obj, oneOf, str } from './params.js';
import { encodeRangeAnswerParts } from './range-codec.js';
import { Handles } from './sessions.js';
import { openSharedFile, onShareOf } from '../../smb/file-server.js';

export type ViewMethod = 'view.open' | 'view.extents' | 'view.changes' | 'view.range' | 'view.spans' | 'view.read' | 'view.configuration' | 'view.commit' | 'view.abort' | 'view.release' | 'share.open';

interface Session {
  readonly view: PointInTimeView;
  readonly sources: Map<number, Promise<DiskSource>>;
}

/** Close the session's sources and release the view (release alone = abort + release when not committed). */
async function closeSession(s: Session): Promise<void> {
  const sources = [...s.sources.values()];
  s.sources.clear();
  await Promise.all(sources.map((p) => p.then((src) => src.close(), () => undefined)));
  await s.view.release();
}

function changeRef(method: string, v: unknown): ChangeReference | null {
  if (v === null) return null;
  const o = obj(method, v);
  return { id: str(method, 'previous.id', o.id), diskIdentity: str(method, 'previous.diskIdentity', o.diskIdentity, 4096), virtualSize: int(method, 'previous.virtualSize', o.virtualSize, 0, Number.MAX_SAFE_INTEGER) };
}

/** Bytes of view.range calls that may be read, hashed and encoded at once (see the header). */
export const RANGE_BUDGET = Math.min(64, 8 * (poolSize() + 1)) * 1024 * 1024;

export function viewHandlers(deps: MethodDeps): { handlers: Pick<AgentHandlers, ViewMethod>; close(): Promise<void>; readonly sessions: number } {
  const sessions = new Handles<Session>({
    idleMs: deps.idleMs ?? DEFAULT_IDLE_MS,
    expire: (s) => closeSession(s),
    unknown: (id) => new SvError('SV_ERR_AGENT_UNKNOWN_SESSION', `no view session ${id} on this agent (released, expired after its idle timeout, or never opened)`, { session: id }),
  });

  const rangeBytes = new Slots(RANGE_BUDGET);

  /** Sessions being closed by close() (a lost connection): a new view waits for them (one view per VM). */
  let closing: Promise<void> = Promise.resolve();

  /** The session's disk `disk` and its open source (opened once). */
  const diskOf = (m: string, s: Session, disk: unknown, signal: AbortSignal): Promise<DiskSource> => {
    const i = int(m, 'disk', disk, 0, s.view.disks.length - 1);
    let src = s.sources.get(i);
    if (!src) {
      src = deps.open(s.view.disks[i]!.source, signal);
      s.sources.set(i, src);
      src.catch(() => s.sources.delete(i));
    }
    return src;
  };
  /** Run fn on the session `p` names (bad params reject, never throw synchronously). */
  const session = async <R>(m: string, p: unknown, fn: (s: Session, o: Record<string, unknown>) => Promise<R>): Promise<R> => {
    const o = obj(m, p);
    return sessions.use(str(m, 'session', o.session, 64), (s) => fn(s, o));
  };
  /** offset/length of a call on `src`: inside the disk, at most MAX_CALL_BYTES. */
  const span = (m: string, src: DiskSource, o: Record<string, unknown>): { offset: number; length: number } => {
    const size = src.info.virtualSize;
    const offset = int(m, 'offset', o.offset, 0, size);
    const length = int(m, 'length', o.length, 1, Math.min(MAX_CALL_BYTES, size - offset));
    return { offset, length };
  };

  /** blockSize and level of a view.range / view.spans call. */
  const coding = (m: string, o: Record<string, unknown>): { blockSize: number; level: number } => {
    const blockSize = int(m, 'blockSize', o.blockSize, 4096, 16 * 1024 * 1024);
    if ((blockSize & (blockSize - 1)) !== 0) throw badParam(m, 'blockSize', 'must be a power of two', blockSize);
    const { min, max } = levelRange();
    return { blockSize, level: int(m, 'level', o.level, min, max) };
  };
  /** The old digests of `count` blocks (the payload) when hasOld, else null (and no payload). */
  const digestsOf = (m: string, o: Record<string, unknown>, payload: Uint8Array | undefined, count: number): Uint8Array | null => {
    const oldDigests = bool(m, 'hasOld', o.hasOld) ? payload ?? new Uint8Array(0) : null;
    if (oldDigests && oldDigests.length !== count * 32) throw badParam(m, 'payload', `must hold ${count} digests (${count * 32} bytes), has ${oldDigests.length}`, oldDigests.length);
    if (!oldDigests && payload && payload.length) throw badParam(m, 'payload', 'must be empty without hasOld', payload.length);
    return oldDigests;
  };

  const handlers: Pick<AgentHandlers, ViewMethod> = {
    'view.open': async (p, _payload, signal) => {
      const m = 'view.open';
      const o = obj(m, p);
      const vmId = str(m, 'vmId', o.vmId);
      const mode = oneOf(m, 'mode', o.mode, ['auto', 'online', 'offline'] as const);
      const allowOnline = bool(m, 'allowOnline', o.allowOnline);
      const freezeTimeoutMs = o.freezeTimeoutMs === undefined ? undefined : int(m, 'freezeTimeoutMs', o.freezeTimeoutMs, 100, 600_000);
      // The store's block size: the granularity of the change tracking the view starts.
      const blockSize = o.blockSize === undefined ? undefined : int(m, 'blockSize', o.blockSize, 4096, 16 * 1024 * 1024);
      await closing;
      const view = await deps.driver.createView(vmId, { mode, allowOnline, freezeTimeoutMs, blockSize, signal });
      const id = sessions.add({ view, sources: new Map() });
      return {
        result: {
          session: id, consistency: view.consistency, reasons: [...view.reasons],
          ...(view.pauseMs !== undefined ? { pauseMs: view.pauseMs } : {}), ...(view.freezeMs !== undefined ? { freezeMs: view.freezeMs } : {}),
          disks: view.disks.map((d) => {
            const onShare = onShareOf(deps.shares, d.source);
            return { index: d.index, key: d.key, name: d.name, virtualSize: d.virtualSize, identity: d.identity, nextReference: d.nextReference, ...(onShare ? { onShare } : {}) };
          }),
        },
      };
    },
    'share.open': async (p, _payload, signal) => {
      const o = obj('share.open', p);
      const view = openSharedFile(deps.served, str('share.open', 'share', o.share), str('share.open', 'path', o.path));
      const session: Session = { view, sources: new Map() };
      const src = await diskOf('share.open', session, 0, signal);
      return { result: { session: sessions.add(session), virtualSize: src.info.virtualSize } };
    },
    'view.extents': (p, _payload, signal) => session('view.extents', p, async (s, o) => {
      const src = await diskOf('view.extents', s, o.disk, signal);
      return { result: { extents: (await src.extents()).map((e) => ({ offset: e.offset, length: e.length, kind: e.kind })) } };
    }),
    'view.changes': (p) => session('view.changes', p, async (s, o) => {
      const disk = int('view.changes', 'disk', o.disk, 0, s.view.disks.length - 1);
      return { result: await s.view.changes(disk, changeRef('view.changes', o.previous)) };
    }),
    'view.range': (p, payload, signal) => session('view.range', p, async (s, o) => {
      const m = 'view.range';
      const src = await diskOf(m, s, o.disk, signal);
      const { blockSize, level } = coding(m, o);
      const { offset, length } = span(m, src, o);
      if (offset % blockSize !== 0) throw badParam(m, 'offset', `must be a multiple of the block size ${blockSize}`, offset);
      const count = Math.ceil(length / blockSize);
      const oldDigests = digestsOf(m, o, payload, count);
      // The source may take ownership of (transfer) the digest buffer: encode against a copy.
      const old = oldDigests ? new Uint8Array(oldDigests) : null;
      await rangeBytes.acquire(() => signal.aborted, length);
      try {
        if (signal.aborted) throw new SvError('SV_ERR_CORE_CANCELLED', 'view.range cancelled by the caller', { offset, length });
        const res = await src.backupRange({ offset, length, blockSize, level, oldDigests: oldDigests ? new Uint8Array(oldDigests) : null }, signal);
        return { result: { count }, payloadParts: encodeRangeAnswerParts(res, old, count) };
      } finally {
        rangeBytes.release(length);
      }
    }),
    'view.spans': (p, payload, signal) => session('view.spans', p, async (s, o) => {
      const m = 'view.spans';
      const src = await diskOf(m, s, o.disk, signal);
      const { blockSize, level } = coding(m, o);
      const list = o.spans;
      if (!Array.isArray(list) || list.length === 0 || list.length > MAX_SPANS) throw badParam(m, 'spans', `must be a list of 1..${MAX_SPANS} [offset, length] pairs`);
      let total = 0;
      let blocks = 0;
      const ranges = list.map((v: unknown, i) => {
        if (!Array.isArray(v) || v.length !== 2) throw badParam(m, `spans[${i}]`, 'must be an [offset, length] pair');
        const { offset, length } = span(m, src, { offset: v[0], length: v[1] });
        if (offset % blockSize !== 0) throw badParam(m, `spans[${i}]`, `offset must be a multiple of the block size ${blockSize}`, offset);
        total += length;
        const count = Math.ceil(length / blockSize);
        blocks += count;
        return { offset, length, count, first: blocks - count };
      });
      if (total > MAX_CALL_BYTES) throw badParam(m, 'spans', `must cover at most ${MAX_CALL_BYTES} bytes in all, cover ${total}`, total);
      const all = digestsOf(m, o, payload, blocks);
      // The source may take ownership of (transfer) the digest buffers: encode against copies.
      const olds = ranges.map((r) => (all ? all.slice(r.first * 32, (r.first + r.count) * 32) : null));
      const reqs = ranges.map((r, i) => ({ offset: r.offset, length: r.length, blockSize, level, oldDigests: olds[i] ? new Uint8Array(olds[i]) : null }));
      await rangeBytes.acquire(() => signal.aborted, total);
      try {
        if (signal.aborted) throw new SvError('SV_ERR_CORE_CANCELLED', 'view.spans cancelled by the caller', { spans: ranges.length, bytes: total });
        const results = src.backupSpans ? await src.backupSpans(reqs, signal) : await Promise.all(reqs.map((req) => src.backupRange(req, signal)));
        const payloadParts: Uint8Array[] = [];
        const lengths = results.map((res, i) => {
          const parts = encodeRangeAnswerParts(res, olds[i] ?? null, ranges[i]!.count);
          payloadParts.push(...parts);
          return parts.reduce((n, x) => n + x.length, 0);
        });
        return { result: { lengths }, payloadParts };
      } finally {
        rangeBytes.release(total);
      }
    }),
    'view.read': (p, _payload, signal) => session('view.read', p, async (s, o) => {
      const src = await diskOf('view.read', s, o.disk, signal);
      const { offset, length } = span('view.read', src, o);
      const data = await src.read(offset, length);
      return { result: { length: data.length }, payload: data };
    }),
    'view.configuration': (p) => session('view.configuration', p, async (s) => {
      const c = checkConfiguration(await s.view.configuration(), `VM ${s.view.vmId}`);
      return { result: { configuration: describeConfiguration(c) }, payload: packConfiguration(c) };
    }),
    'view.commit': (p) => end('view.commit', p, true),
    'view.abort': (p) => end('view.abort', p, false),
    'view.release': async (p) => {
      const s = sessions.take(str('view.release', 'session', obj('view.release', p).session, 64));
      if (s) await closeSession(s);
      return { result: {} };
    },
  };

  /** commit/abort: the session stays open (release follows); an unknown session throws. */
  const end = (m: 'view.commit' | 'view.abort', p: unknown, commit: boolean): Promise<{ result: Record<string, never> }> =>
    session(m, p, async (s) => {
      if (commit) await s.view.commit();
      else await s.view.abort();
      return { result: {} };
    });

  const close = (): Promise<void> => {
    const done = closing.then(() => sessions.closeAll());
    closing = done.catch(() => undefined);
    return done;
  };
  return { handlers, close, get sessions() { return sessions.size; } };
}
