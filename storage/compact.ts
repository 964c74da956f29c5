/**
 * Index segment rewriting shared by gc and backup commits (always under the commit lock):
 * - replaceSegment: write a segment's remaining entries under the same seq with gen+1, then remove the old
 *   file (readers take the highest gen of a seq, so a crash in between is harmless);
 * - compactIndex: when segments pile up (> MAX_SEGMENTS), merge them all into one (newest entry per digest),
 *   keeping lookups at a few binary searches whatever the number of backups.
 * Under Object Lock an old segment may refuse deletion (locked.ts): it stays, superseded by the new
 * generation of its seq (readers take the highest gen); a segment emptied by gc is then superseded by an empty
 * generation, so it never stays current naming packs gc deletes. A compaction's other segments that stay
 * keep naming blobs the merged segment names too: duplicates, harmless (the newest entry of a digest wins).
 */
import type { Backend } from './backend/types.js';
import { deleteUnlessLocked, type OnLocked } from './locked.js';
import { mergeSegments, type BlobIndex, type IndexEntry, type Segment, writeSegment } from './index.js';

export const MAX_SEGMENTS = 16;

export async function replaceSegment(backend: Backend, seg: Segment, keep: readonly IndexEntry[], onLocked?: OnLocked): Promise<void> {
  if (keep.length) await writeSegment(backend, keep, seg.seq, seg.gen + 1);
  const deleted = await deleteUnlessLocked(backend, `index/${seg.name}`, onLocked);
  if (!deleted && !keep.length) await writeSegment(backend, [], seg.seq, seg.gen + 1);
}

/** Merge every segment into one when there are more than `max`. Returns whether it merged. */
export async function compactIndex(backend: Backend, index: BlobIndex, max = MAX_SEGMENTS, onLocked?: OnLocked): Promise<boolean> {
  if (index.segments.length <= max) return false;
  const top = index.segments[0]!;
  await writeSegment(backend, mergeSegments(index.segments, top.seq), top.seq, top.gen + 1);
  // From here the old segments only repeat what the merged one names: removed in any order, all at once (one
  // after another they cost a folder fsync each, ~50 ms of a commit that holds the commit lock).
  await Promise.all(index.segments.map((seg) => deleteUnlessLocked(backend, `index/${seg.name}`, onLocked)));
  return true;
}
