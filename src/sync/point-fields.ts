/**
 * What a recovery point records about how it was taken (issue 10 §4): consistency, the reasons it is less
 * than application-consistent, the pause/freeze time, and per disk how changes were found (`tracking`), the
 * change reference for the next backup and the bytes that crossed a boundary (`bytesSent`). Here: checking
 * the caller's options and deciding each disk's tracking record.
 */
import { SvError } from '../errors/index.js';
import { FALLBACK_CODE, TRACKING_METHODS, type DiskChangeRef, type DiskTracking } from '../../storage/manifest.js';
import type { BackupOptions } from './types.js';

function badOption(what: string, details: Record<string, unknown> = {}): never {
  throw new SvError('SV_ERR_SYNC_BAD_OPTIONS', what, details);
}

/** Throws SV_ERR_SYNC_BAD_OPTIONS unless the point fields of `opts` are well formed. */
export function checkPointFields(opts: BackupOptions): void {
  const n = opts.disks.length;
  if (opts.reasons !== undefined && (!Array.isArray(opts.reasons) || opts.reasons.some((r) => typeof r !== 'string' || r.length > 1000) || opts.reasons.length > 64)) {
    badOption('reasons must be a list of at most 64 strings', {});
  }
  for (const f of ['pauseMs', 'freezeMs'] as const) {
    const v = opts[f];
    if (v !== undefined && (typeof v !== 'number' || !Number.isFinite(v) || v < 0)) badOption(`${f} must be a non-negative number of milliseconds, got ${String(v)}`, { [f]: v });
  }
  if (opts.tracking) {
    if (opts.tracking.length !== n) badOption(`${opts.tracking.length} tracking records for ${n} disks`);
    opts.tracking.forEach((tr, i) => {
      if (tr === null) return;
      if (!(TRACKING_METHODS as readonly string[]).includes(tr.method) || (tr.reason !== undefined && typeof tr.reason !== 'string') || (tr.fallback !== undefined && (typeof tr.fallback !== 'string' || !FALLBACK_CODE.test(tr.fallback)))) {
        badOption(`disk ${i}: tracking ${JSON.stringify(tr)} is not {method: ${TRACKING_METHODS.join('|')}, reason?, fallback?}`, { disk: i });
      }
      const listed = opts.changed?.[i] != null;
      if (tr.method === 'bitmap' && !listed) badOption(`disk ${i}: tracking 'bitmap' needs its change list`, { disk: i });
      if (tr.method === 'digest' && listed) badOption(`disk ${i}: tracking 'digest' with a change list (give null to compare every block)`, { disk: i });
    });
  }
  if (opts.changeRefs) {
    if (opts.changeRefs.length !== n) badOption(`${opts.changeRefs.length} change references for ${n} disks`);
    opts.changeRefs.forEach((c, i) => {
      if (c === null) return;
      if (typeof c !== 'object' || typeof c.id !== 'string' || typeof c.diskIdentity !== 'string' || !Number.isSafeInteger(c.virtualSize) || c.virtualSize < 0) {
        badOption(`disk ${i}: change reference ${JSON.stringify(c)} is not {id, diskIdentity, virtualSize}`, { disk: i });
      }
    });
  }
}

/** A stored copy of a change reference: exactly its three fields. */
export function storedChangeRef(c: DiskChangeRef | null | undefined): DiskChangeRef | undefined {
  return c ? { id: c.id, diskIdentity: c.diskIdentity, virtualSize: c.virtualSize } : undefined;
}

/**
 * How disk `i`'s changes were found: a new initial copy whatever the caller says (first point, disk added or
 * resized); a consistency check compares digests; else the caller's record, or 'bitmap' with a change list
 * and 'digest' without.
 */
export function diskTracking(opts: BackupOptions, i: number, ctx: { first: boolean; fresh: string | undefined; check: boolean }): DiskTracking {
  const given = opts.tracking?.[i] ?? null;
  if (ctx.first || ctx.fresh) {
    const reason = ctx.fresh ?? (given?.method === 'initial' && given.reason ? given.reason : 'first recovery point of the source');
    return { method: 'initial', reason };
  }
  if (ctx.check) return { method: 'digest', reason: 'consistency check' };
  if (given) return { method: given.method, ...(given.reason !== undefined ? { reason: given.reason } : {}), ...(given.fallback !== undefined ? { fallback: given.fallback } : {}) };
  return { method: opts.changed?.[i] != null ? 'bitmap' : 'digest' };
}
