/**
 * NTFS runlists ("mapping pairs"): how an attribute's virtual clusters (VCNs) map to volume clusters (LCNs).
 * Each run: a header byte (low nibble: bytes of the length, high nibble: bytes of the LCN delta), the length
 * (unsigned), the LCN delta from the previous run (signed; absent = a sparse run); a 0 byte ends the list.
 * Checked: every field inside the attribute, lengths > 0, LCNs inside the volume, the runs covering exactly the
 * extent's VCN range; across a whole attribute (all extents), no cluster mapped twice (a loop or overlap).
 */
import { badInput } from '../../../errors/bad-input.js';
import { SvError } from '../../../errors/index.js';

export interface Run {
  readonly vcn: number;
  /** null: a sparse run (reads as zeros). */
  readonly lcn: number | null;
  readonly length: number;
}

export interface RunContext {
  readonly name: string;
  /** "MFT record 42 $DATA". */
  readonly structure: string;
  /** Volume byte offset of the runlist, for messages. */
  readonly at: number;
  /** Clusters in the volume. */
  readonly clusters: number;
}

function readInt(buf: Buffer, at: number, size: number, signed: boolean): number {
  let v = 0n;
  for (let i = size - 1; i >= 0; i--) v = (v << 8n) | BigInt(buf[at + i]!);
  if (signed && size > 0 && buf[at + size - 1]! & 0x80) v -= 1n << BigInt(size * 8);
  return v > BigInt(Number.MAX_SAFE_INTEGER) || v < BigInt(Number.MIN_SAFE_INTEGER) ? Number.NaN : Number(v);
}

/** Decode the runs in buf[start, end) for VCNs [startVcn, lastVcn]. */
export function decodeRuns(buf: Buffer, start: number, end: number, startVcn: number, lastVcn: number, ctx: RunContext): Run[] {
  const bad = (what: string, pos: number, expected: string | number, found: string | number) =>
    badInput('SV_ERR_FS_NTFS_BAD_RUNLIST', ctx.name, `${ctx.structure} runlist ${what}`, ctx.at + pos - start, expected, found);
  const runs: Run[] = [];
  let pos = start;
  let vcn = startVcn;
  let lcn = 0;
  for (;;) {
    if (pos >= end) throw bad('terminator', pos, 'a 0 byte before the end of the attribute', 'the end');
    const head = buf[pos]!;
    if (head === 0) break;
    const lenSize = head & 0x0f;
    const offSize = head >> 4;
    if (lenSize === 0 || lenSize > 8 || offSize > 8) throw bad('header', pos, 'length size 1..8, offset size 0..8', `0x${head.toString(16)}`);
    if (pos + 1 + lenSize + offSize > end) throw bad('run', pos, `${1 + lenSize + offSize} bytes inside the attribute`, end - pos);
    const length = readInt(buf, pos + 1, lenSize, true);
    if (!(length > 0)) throw bad('run length', pos + 1, '> 0', length);
    if (vcn + length - 1 > lastVcn) throw bad('run length', pos + 1, `runs ending at VCN ${lastVcn}`, `a run to VCN ${vcn + length - 1}`);
    if (offSize === 0) runs.push({ vcn, lcn: null, length });
    else {
      lcn += readInt(buf, pos + 1 + lenSize, offSize, true);
      if (!(lcn >= 0) || lcn + length > ctx.clusters) throw bad('run LCN', pos + 1 + lenSize, `clusters inside the volume (0..${ctx.clusters - 1})`, `${lcn}+${length}`);
      runs.push({ vcn, lcn, length });
    }
    vcn += length;
    pos += 1 + lenSize + offSize;
  }
  if (vcn !== lastVcn + 1) throw bad('coverage', pos, `runs up to VCN ${lastVcn}`, `runs up to VCN ${vcn - 1}`);
  return runs;
}

/** Throws SV_ERR_FS_NTFS_LOOP when two runs of one attribute map the same cluster. */
export function checkNoOverlap(runs: readonly Run[], name: string, structure: string): void {
  const real = runs.filter((r) => r.lcn !== null).sort((a, b) => a.lcn! - b.lcn!);
  for (let i = 1; i < real.length; i++) {
    const prev = real[i - 1]!;
    const cur = real[i]!;
    if (cur.lcn! < prev.lcn! + prev.length) {
      throw new SvError('SV_ERR_FS_NTFS_LOOP', `${name}: ${structure}: runs at VCN ${prev.vcn} and VCN ${cur.vcn} both map cluster ${cur.lcn}`, {
        path: name, structure, vcns: [prev.vcn, cur.vcn], lcn: cur.lcn,
      });
    }
  }
}

/** Index of the run holding `vcn` (runs sorted and contiguous by VCN), or -1. */
export function findRun(runs: readonly Run[], vcn: number): number {
  let lo = 0;
  let hi = runs.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const r = runs[mid]!;
    if (vcn < r.vcn) hi = mid - 1;
    else if (vcn >= r.vcn + r.length) lo = mid + 1;
    else return mid;
  }
  return -1;
}
