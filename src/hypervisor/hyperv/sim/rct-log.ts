/**
 * SIMULATION (SimulatedHyperVHost): Resilient Change Tracking, simulated by a log beside the base VHDX.
 *
 * Real Hyper-V keeps `<disk>.vhdx.rct` / `.mrt` beside the disk; they travel with it through live and storage
 * migration. The simulation keeps `<base disk>.simrct`, a text file of lines appended with O_APPEND:
 *   `w <offset> <length>`  the simulated guest wrote this range (appended BEFORE the data is written, so a
 *                          kill between the two over-reports a change, never misses one);
 *   `m <rctId>`            an RCT id: the point in time of a checkpoint (appended while the guest is paused).
 * Changes since RCT id A up to RCT id B (or up to now) = the union of the `w` lines between the two markers,
 * rounded out to RCT_GRANULARITY. An id whose marker is not in the file is invalid (SV_ERR_HYPERV_RCT_INVALID):
 * that is what a reset of the tracking (the file deleted or replaced) looks like.
 */
import { appendFileSync, readFileSync } from 'node:fs';
import { SvError } from '../../../errors/index.js';

/** Granularity the simulated RCT reports changes in. */
export const RCT_GRANULARITY = 64 * 1024;

export function rctLogPath(basePath: string): string {
  return `${basePath}.simrct`;
}

export function appendWrite(basePath: string, offset: number, length: number): void {
  appendFileSync(rctLogPath(basePath), `w ${offset} ${length}\n`);
}

export function appendMarker(basePath: string, rctId: string): void {
  appendFileSync(rctLogPath(basePath), `m ${rctId}\n`);
}

function lines(basePath: string): string[] {
  let text: string;
  try {
    text = readFileSync(rctLogPath(basePath), 'utf8');
  } catch {
    text = '';
  }
  return text.split('\n');
}

/** Changed ranges (sorted, merged, granularity-aligned, clipped to the disk) between two markers. */
export function changesBetween(basePath: string, fromId: string, toId: string | null, virtualSize: number): Array<[number, number]> {
  const all = lines(basePath);
  const from = all.indexOf(`m ${fromId}`);
  if (from < 0) throw new SvError('SV_ERR_HYPERV_RCT_INVALID', `${basePath}: RCT id ${fromId} is not in the disk's change tracking (tracking was reset or the disk replaced)`, { path: basePath, rctId: fromId });
  let to = all.length;
  if (toId !== null) {
    to = all.indexOf(`m ${toId}`, from);
    if (to < 0) throw new SvError('SV_ERR_HYPERV_RCT_INVALID', `${basePath}: RCT id ${toId} is not in the disk's change tracking after ${fromId}`, { path: basePath, rctId: toId });
  }
  const blocks = new Set<number>();
  for (let i = from + 1; i < to; i++) {
    const m = /^w (\d+) (\d+)$/u.exec(all[i]!);
    if (!m) continue;
    const off = Number(m[1]);
    const len = Number(m[2]);
    for (let b = Math.floor(off / RCT_GRANULARITY); b * RCT_GRANULARITY < off + len; b++) blocks.add(b);
  }
  const out: Array<[number, number]> = [];
  for (const b of [...blocks].sort((x, y) => x - y)) {
    const start = b * RCT_GRANULARITY;
    const end = Math.min(start + RCT_GRANULARITY, virtualSize);
    const last = out[out.length - 1];
    if (last && last[0] + last[1] === start) last[1] = end - last[0];
    else out.push([start, end - start]);
  }
  return out;
}
