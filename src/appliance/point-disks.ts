/**
 * A recovery point's disks under the appliance's names, resolved from the point's own record, not from the
 * data source as it is now (a source removed and added again with `attach` continues the series under a new id,
 * and may name or order its disks differently).
 *
 * Contract:
 * - `noteOf`: the appliance's note of a point (the disk names it was made with, its tag) is the note the
 *   source itself saved, else the note saved by an earlier source of the same series, i.e. a note of that point
 *   whose source no longer exists (point ids are unique: a time to the millisecond and 3 random bytes);
 * - `pointDiskIndex`: a disk is found by the name the point lists (`name`) or by the file name its manifest
 *   records (`file`), in that order; no such disk is SV_ERR_SYNC_DISK_NOT_FOUND naming the disks the point has.
 */
import { SvError } from '../errors/index.js';
import type { DataSource, PointNote } from './model.js';

/** Whether `note` speaks for a point of `source`: saved by it, or by a source that no longer exists. */
export function speaksFor(note: PointNote, source: DataSource, sources: readonly DataSource[]): boolean {
  return note.sourceId === source.id || !sources.some((s) => s.id === note.sourceId);
}

/** The notes that speak for `source`'s points, by point id (its own win over an earlier source's of the series). */
export function notesOf(source: DataSource, notes: readonly PointNote[], sources: readonly DataSource[]): Map<string, PointNote> {
  const live = new Set(sources.map((s) => s.id));
  const out = new Map<string, PointNote>();
  for (const n of notes) if (!live.has(n.sourceId)) out.set(n.pointId, n);
  for (const n of notes) if (n.sourceId === source.id) out.set(n.pointId, n);
  return out;
}

/** A point as listed, with its disks: `name` the appliance's, `file` the manifest's. */
export interface PointDisks {
  readonly id: string;
  readonly disks: readonly { readonly name: string; readonly file: string }[];
}

/** Index in `point` of its disk named `disk` (the name the point lists, else its manifest's file name). */
export function pointDiskIndex(sourceName: string, point: PointDisks, disk: string): number {
  const byName = point.disks.findIndex((d) => d.name === disk);
  const i = byName >= 0 ? byName : point.disks.findIndex((d) => d.file === disk);
  if (i < 0) {
    const has = point.disks.map((d) => d.name);
    throw new SvError('SV_ERR_SYNC_DISK_NOT_FOUND', `recovery point ${point.id} of ${sourceName} has no disk "${disk}" (it has ${has.length ? has.join(', ') : 'none'})`, { point: point.id, disk, disks: has });
  }
  return i;
}
