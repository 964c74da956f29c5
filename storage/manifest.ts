/**
 * Recovery point manifests: `<store>/points/<source>/<id>.json`, one small JSON file per point holding, for
 * each disk, the root digest of its index page tree (tree.ts), plus kind, consistency, change-tracking
 * reference and statistics. How the point was taken (issue 10 §4) is optional, so that points written before
 * it still read: `reasons`, `pauseMs`/`freezeMs`, per disk `tracking` and `changeRef`, and `bytesSent` in the
 * point's and the disks' stats. The file carries a SHA-256 of its own body (`checksum`), so a truncated or edited
 * manifest is refused (SV_ERR_STORE_CORRUPT_MANIFEST), never half-read.
 *
 * A VM's configuration files (issue 14), when the source gave them: `configuration` is their description
 * (src/hypervisor/config.ts: format, version, simulated, per file name, size, SHA-256) plus, per file, the
 * root and depth of a page tree exactly like a disk's (the file's bytes as a "disk" of its own size), so the
 * blocks live in packs on any backend and gc counts them like disk trees (refwalk.ts pointRefsOf).
 *
 * Invariants: a manifest is written last (atomicWrite), after the packs and the index segment naming every blob
 * of its trees are durable; it is never modified; prune deletes it (unlink + folder fsync). Point ids sort by
 * time: `YYYYMMDDTHHMMSSmmmZ-<6 hex>`.
 */
import { createHash, randomBytes } from 'node:crypto';
import { SvError, type WireError } from '../src/errors/index.js';
import { DIGEST_SIZE, POINT_ID_RE } from './layout.js';
import { parseConfigDescription, type VmConfigDescription } from '../src/hypervisor/config.js';

export const MANIFEST_FORMAT = 'shadowvault-point';
export const MANIFEST_VERSION = 1;

export const POINT_KINDS = ['initial', 'incremental', 'express-full', 'consistency-check'] as const;
export type PointKind = (typeof POINT_KINDS)[number];
export const CONSISTENCIES = ['application', 'crash', 'offline'] as const;
export type Consistency = (typeof CONSISTENCIES)[number];

export interface DiskRecord {
  /** Position of the disk in the data source (0-based). */
  readonly index: number;
  /** File name of the source image when it was backed up. */
  readonly name: string;
  readonly format: 'vhd' | 'vhdx' | 'raw';
  readonly virtualSize: number;
  /** Root page digest (hex; 64 zeros for an all-zero disk). */
  readonly root: string;
  /** Levels of pages (1: the root is a leaf page). */
  readonly depth: number;
  /** This disk's share of the point's statistics (absent in points written before it was recorded). */
  readonly stats?: DiskStats;
  /**
   * Set when this disk got a new initial copy in a point that has a parent: the disk is new in the source,
   * or its size changed (`reason` says which; the parent's copy keeps its own size). Absent otherwise.
   */
  readonly initial?: true;
  readonly reason?: string;
  /** How the changed blocks of this disk were found (absent in points written before it was recorded). */
  readonly tracking?: DiskTracking;
  /**
   * The change reference the NEXT backup of this disk hands to the hypervisor driver (src/hypervisor/driver.ts
   * ChangeReference: QEMU bitmap name, Hyper-V RCT id), when the source gave one.
   */
  readonly changeRef?: DiskChangeRef;
}

export const TRACKING_METHODS = ['bitmap', 'digest', 'initial'] as const;
/** Shape of DiskTracking.fallback: a short lower-case code (the set is src/appliance/fallback.ts's). */
export const FALLBACK_CODE = /^[a-z][a-z-]{0,39}$/u;
export type TrackingMethod = (typeof TRACKING_METHODS)[number];

/**
 * `bitmap`: only the blocks a change tracker (dirty bitmap, RCT, a --changed list) named were read;
 * `digest`: every block was read and compared by digest (express full: no usable tracker, `reason` says why);
 * `initial`: a full copy (first point, disk added or resized; `reason` says why).
 */
export interface DiskTracking {
  readonly method: TrackingMethod;
  readonly reason?: string;
  /** Why a tracker was not usable, as a code (src/appliance/fallback.ts: `storage-migrated`, `bitmap-missing`, …). */
  readonly fallback?: string;
}

/** A ChangeReference (src/hypervisor/driver.ts) as stored in a manifest. */
export interface DiskChangeRef {
  readonly id: string;
  readonly diskIdentity: string;
  readonly virtualSize: number;
}

/** Figures of one backup run, per disk (DiskRecord.stats) and, with totals and duration, per point. */
export interface DiskStats {
  /** Bytes read from the source image(s). */
  readonly bytesRead: number;
  /** Raw bytes of blocks whose digest differs from the previous point's. */
  readonly bytesChanged: number;
  /** Raw bytes of blocks written to the store (not already there). */
  readonly bytesNew: number;
  /** Bytes appended to pack files (compressed blocks, pages, record headers); a point's adds its index segment. */
  readonly bytesStored: number;
  readonly blocksChanged: number;
  readonly blocksNew: number;
  readonly blocksZero: number;
  readonly pagesWritten: number;
  /**
   * Bytes that crossed a process or network boundary to read the source (the disk source's bytesTransferred:
   * 0 for local files, NBD payload, the agent channel's bytes). Absent in points written before it was recorded.
   */
  readonly bytesSent?: number;
}

/** The counters every DiskStats has (bytesSent is optional: older points lack it). */
export const DISK_STATS_FIELDS = ['bytesRead', 'bytesChanged', 'bytesNew', 'bytesStored', 'blocksChanged', 'blocksNew', 'blocksZero', 'pagesWritten'] as const;

export interface PointStats extends DiskStats {
  /** Sum of the disks' virtual sizes. */
  readonly bytesTotal: number;
  readonly durationMs: number;
}

/** A configuration file as stored: its description entry plus its page tree (like DiskRecord's). */
export interface ConfigFileRecord {
  readonly name: string;
  readonly size: number;
  readonly sha256: string;
  readonly root: string;
  readonly depth: number;
}

/** A point's VM configuration: the description (config.ts) with each file's tree. */
export interface ConfigRecord extends Omit<VmConfigDescription, 'files'> {
  readonly files: readonly ConfigFileRecord[];
}

/** The description part of a stored configuration (what `points --json` shows). */
export function configDescription(c: ConfigRecord): VmConfigDescription {
  return { ...c, files: c.files.map((f) => ({ name: f.name, size: f.size, sha256: f.sha256 })) };
}

/** Every page tree a point names: its disks', then its configuration files' (gc and verify walk them all). */
export function pointTrees(m: PointManifest): Array<{ readonly root: string; readonly virtualSize: number }> {
  return [...m.disks.map((d) => ({ root: d.root, virtualSize: d.virtualSize })), ...(m.configuration?.files ?? []).map((f) => ({ root: f.root, virtualSize: f.size }))];
}

export interface PointManifest {
  readonly format: typeof MANIFEST_FORMAT;
  readonly version: number;
  readonly id: string;
  readonly source: string;
  /** ISO time the backup started (the moment the point represents). */
  readonly time: string;
  readonly kind: PointKind;
  readonly consistency: Consistency;
  /** Every unmet online-backup requirement that made the point less than application-consistent (absent: none recorded). */
  readonly reasons?: readonly string[];
  /** Offline point: how long the VM was paused (ms). */
  readonly pauseMs?: number;
  /** Online point: how long the guest's file systems were frozen (ms). */
  readonly freezeMs?: number;
  /** The source's change-tracking reference (RCT id, dirty bitmap name), when it gave one. */
  readonly changeRef: string | null;
  /** The point this one was computed against (null for the first). */
  readonly parent: string | null;
  /**
   * What the point was made from when not a backup of the source: `instantRecovery` is the point a writable
   * NBD export served, whose writes this point saved (`export --writable --keep`). Absent for backups.
   */
  readonly madeFrom?: { readonly instantRecovery: string };
  readonly blockSize: number;
  readonly fanout: number;
  readonly disks: readonly DiskRecord[];
  /** The VM's configuration files at the point (absent: the source gave none; points before issue 14). */
  readonly configuration?: ConfigRecord;
  readonly stats: PointStats;
}

export function newPointId(at: Date): string {
  const iso = at.toISOString(); // 2026-11-24T17:40:12.345Z
  const compact = `${iso.slice(0, 4)}${iso.slice(5, 7)}${iso.slice(8, 10)}T${iso.slice(11, 13)}${iso.slice(14, 16)}${iso.slice(17, 19)}${iso.slice(20, 23)}Z`;
  return `${compact}-${randomBytes(3).toString('hex')}`;
}

function checksumOf(body: string): string {
  return createHash('sha256').update(body).digest('hex');
}

export function encodeManifest(m: PointManifest): string {
  const body = JSON.stringify(m);
  return `${JSON.stringify({ ...m, checksum: checksumOf(body) }, null, 1)}\n`;
}

function bad(path: string, what: string, details: Record<string, unknown> = {}): SvError {
  return new SvError('SV_ERR_STORE_CORRUPT_MANIFEST', `manifest ${path}: ${what}`, { path, ...details });
}

const isInt = (v: unknown, min = 0): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= min;
const isDuration = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v) && v >= 0;
const HEX64 = new RegExp(`^[0-9a-f]{${DIGEST_SIZE * 2}}$`);

/** Parse and check a manifest file's text. `path` is used in messages. */
export function parseManifest(text: string, path: string): PointManifest {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw bad(path, `not valid JSON (${(err as Error).message}); ${text.length} bytes`, { size: text.length });
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw bad(path, 'not a JSON object');
  const { checksum, ...rest } = raw as Record<string, unknown>;
  if (rest.format !== MANIFEST_FORMAT) throw bad(path, `format field: expected "${MANIFEST_FORMAT}", found ${JSON.stringify(rest.format)}`);
  if (rest.version !== MANIFEST_VERSION) {
    throw new SvError('SV_ERR_STORE_BAD_VERSION', `manifest ${path}: version ${JSON.stringify(rest.version)}, this build reads ${MANIFEST_VERSION}`, { path });
  }
  if (typeof checksum !== 'string') throw bad(path, 'no checksum field');
  const expected = checksumOf(JSON.stringify(rest));
  if (checksum !== expected) throw bad(path, `checksum mismatch: file says ${checksum}, body hashes to ${expected}`);
  const m = rest as unknown as PointManifest;
  if (typeof m.id !== 'string' || !POINT_ID_RE.test(m.id)) throw bad(path, `id ${JSON.stringify(m.id)} is not a point id`);
  if (typeof m.source !== 'string' || !m.source) throw bad(path, 'source field missing');
  if (typeof m.time !== 'string' || Number.isNaN(Date.parse(m.time))) throw bad(path, `time ${JSON.stringify(m.time)} is not an ISO time`);
  if (!(POINT_KINDS as readonly unknown[]).includes(m.kind)) throw bad(path, `kind ${JSON.stringify(m.kind)} is not one of ${POINT_KINDS.join(', ')}`);
  if (!(CONSISTENCIES as readonly unknown[]).includes(m.consistency)) throw bad(path, `consistency ${JSON.stringify(m.consistency)} is not one of ${CONSISTENCIES.join(', ')}`);
  if (m.changeRef !== null && typeof m.changeRef !== 'string') throw bad(path, 'changeRef must be a string or null');
  if (m.reasons !== undefined && (!Array.isArray(m.reasons) || !m.reasons.every((r) => typeof r === 'string'))) throw bad(path, 'reasons must be a list of strings');
  for (const f of ['pauseMs', 'freezeMs'] as const) if (m[f] !== undefined && !isDuration(m[f])) throw bad(path, `${f} ${JSON.stringify(m[f])} is not a duration`);
  if (m.parent !== null && typeof m.parent !== 'string') throw bad(path, 'parent must be a string or null');
  if (m.madeFrom !== undefined && (typeof m.madeFrom !== 'object' || m.madeFrom === null || typeof m.madeFrom.instantRecovery !== 'string' || !POINT_ID_RE.test(m.madeFrom.instantRecovery))) {
    throw bad(path, `madeFrom ${JSON.stringify(m.madeFrom)} is not {"instantRecovery": <point id>}`);
  }
  if (!isInt(m.blockSize, 512) || (m.blockSize & (m.blockSize - 1)) !== 0) throw bad(path, `blockSize ${JSON.stringify(m.blockSize)} is not a power of two >= 512`);
  if (!isInt(m.fanout, 2)) throw bad(path, `fanout ${JSON.stringify(m.fanout)} is not an integer >= 2`);
  if (!Array.isArray(m.disks) || m.disks.length === 0) throw bad(path, 'disks must be a non-empty array');
  m.disks.forEach((d, i) => {
    if (typeof d !== 'object' || d === null) throw bad(path, `disks[${i}] is not an object`);
    if (d.index !== i) throw bad(path, `disks[${i}].index is ${JSON.stringify(d.index)}`);
    if (typeof d.name !== 'string') throw bad(path, `disks[${i}].name missing`);
    if (!['vhd', 'vhdx', 'raw'].includes(d.format)) throw bad(path, `disks[${i}].format ${JSON.stringify(d.format)}`);
    if (!isInt(d.virtualSize)) throw bad(path, `disks[${i}].virtualSize ${JSON.stringify(d.virtualSize)}`);
    if (typeof d.root !== 'string' || !HEX64.test(d.root)) throw bad(path, `disks[${i}].root is not a hex digest`);
    if (!isInt(d.depth, 1) || d.depth > 16) throw bad(path, `disks[${i}].depth ${JSON.stringify(d.depth)}`);
    if (d.stats !== undefined) {
      if (typeof d.stats !== 'object' || d.stats === null) throw bad(path, `disks[${i}].stats is not an object`);
      for (const f of DISK_STATS_FIELDS) if (!isInt(d.stats[f])) throw bad(path, `disks[${i}].stats.${f} ${JSON.stringify(d.stats[f])} is not a count`);
      if (d.stats.bytesSent !== undefined && !isInt(d.stats.bytesSent)) throw bad(path, `disks[${i}].stats.bytesSent ${JSON.stringify(d.stats.bytesSent)} is not a count`);
    }
    if (d.tracking !== undefined) {
      const tr = d.tracking as unknown as Record<string, unknown> | null;
      if (typeof tr !== 'object' || tr === null || !(TRACKING_METHODS as readonly unknown[]).includes(tr.method) || (tr.reason !== undefined && typeof tr.reason !== 'string') || (tr.fallback !== undefined && (typeof tr.fallback !== 'string' || !FALLBACK_CODE.test(tr.fallback)))) {
        throw bad(path, `disks[${i}].tracking ${JSON.stringify(d.tracking)} is not {method: ${TRACKING_METHODS.join('|')}, reason?, fallback?}`);
      }
    }
    if (d.changeRef !== undefined) {
      const c = d.changeRef as unknown as Record<string, unknown> | null;
      if (typeof c !== 'object' || c === null || typeof c.id !== 'string' || typeof c.diskIdentity !== 'string' || !isInt(c.virtualSize)) {
        throw bad(path, `disks[${i}].changeRef ${JSON.stringify(d.changeRef)} is not {id, diskIdentity, virtualSize}`);
      }
    }
    if (d.initial !== undefined && (d.initial !== true || typeof d.reason !== 'string')) throw bad(path, `disks[${i}].initial ${JSON.stringify(d.initial)} needs to be true with a reason`);
  });
  if (m.configuration !== undefined) {
    const c = m.configuration as unknown as Record<string, unknown> | null;
    if (typeof c !== 'object' || c === null || !Array.isArray(c.files)) throw bad(path, 'configuration is not {format, version, simulated, files}');
    const trees = (c.files as unknown[]).map((f, i) => {
      const r = (typeof f === 'object' && f !== null ? f : {}) as Record<string, unknown>;
      if (typeof r.root !== 'string' || !HEX64.test(r.root)) throw bad(path, `configuration.files[${i}].root is not a hex digest`);
      if (!isInt(r.depth, 1) || r.depth > 16) throw bad(path, `configuration.files[${i}].depth ${JSON.stringify(r.depth)}`);
      const { root: _r, depth: _d, ...entry } = r;
      return entry;
    });
    try {
      parseConfigDescription({ ...c, files: trees }, `manifest ${path} configuration`);
    } catch (err) {
      throw bad(path, (err as Error).message);
    }
  }
  if (typeof m.stats !== 'object' || m.stats === null) throw bad(path, 'stats missing');
  if (m.stats.bytesSent !== undefined && !isInt(m.stats.bytesSent)) throw bad(path, `stats.bytesSent ${JSON.stringify(m.stats.bytesSent)} is not a count`);
  return m;
}

/** A point whose manifest cannot be read: listed with its coded error; restore, verify, prune skip it. */
export interface DamagedPoint {
  readonly source: string;
  readonly id: string;
  readonly path: string;
  readonly error: WireError;
}

/** The ISO time a point id encodes (see newPointId): a damaged point has no readable `time`, its id still does. */
export function pointIdTime(id: string): string {
  return `${id.slice(0, 4)}-${id.slice(4, 6)}-${id.slice(6, 8)}T${id.slice(9, 11)}:${id.slice(11, 13)}:${id.slice(13, 15)}.${id.slice(15, 18)}Z`;
}
