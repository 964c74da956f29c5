/**
 * Volume restore (`files volume-restore`): one partition of a recovery point's disk as a raw image file
 * (sparse: holes where the point has zero blocks), through the raw writer (formats/write.ts: temp file, fsync,
 * rename; an existing output is refused unless `force`; `confine` for the appliance's restore roots). Only the
 * blocks of the volume are read; zero ranges are known from the point's index (extents) and never read.
 */
import { SvError } from '../errors/index.js';
import type { BlockSource, Extent } from '../formats/types.js';
import { writeDisk } from '../formats/write.js';
import type { BrowseSession } from './browse.js';

const CHUNK = 8 * 1024 * 1024;
const IN_FLIGHT = 4;

export interface VolumeRestoreOptions {
  readonly out: string;
  readonly force?: boolean;
  readonly confine?: readonly string[];
  readonly signal?: AbortSignal;
  readonly progress?: (p: { bytesDone: number; bytesTotal: number }) => void;
}

export interface VolumeRestoreResult {
  readonly source: string;
  readonly point: string;
  readonly disk: number;
  readonly volume: number;
  readonly out: string;
  readonly size: number;
  readonly bytesRead: number;
  readonly durationMs: number;
}

/** Is [at, at+len) entirely inside zero extents? (`extents` sorted; `cursor` advances monotonically.) */
function allZero(extents: readonly Extent[], cursor: { i: number }, at: number, len: number): boolean {
  while (cursor.i < extents.length && extents[cursor.i]!.offset + extents[cursor.i]!.length <= at) cursor.i++;
  for (let i = cursor.i; i < extents.length; i++) {
    const e = extents[i]!;
    if (e.offset >= at + len) return true;
    if (e.kind === 'data') return false;
  }
  return true;
}

export async function restoreVolume(session: BrowseSession, index: number, opts: VolumeRestoreOptions): Promise<VolumeRestoreResult> {
  const t0 = Date.now();
  const v = session.volume(index);
  const image = session.image;
  const size = Math.max(0, Math.min(v.size, image.info.virtualSize - v.offset));
  const extents = await image.extents();
  let bytesRead = 0;
  const source: BlockSource = {
    virtualSize: size,
    blockSize: CHUNK,
    async *blocks() {
      const cursor = { i: 0 };
      const count = Math.ceil(size / CHUNK);
      const queue: Array<Promise<Buffer | null>> = [];
      let next = 0;
      for (let b = 0; b < count; b++) {
        while (queue.length < IN_FLIGHT && next < count) {
          const at = next * CHUNK;
          const len = Math.min(CHUNK, size - at);
          const p = allZero(extents, cursor, v.offset + at, len) ? Promise.resolve(null) : image.read(v.offset + at, len);
          p.catch(() => undefined);
          queue.push(p);
          next++;
        }
        const data = await queue.shift()!;
        if (data) bytesRead += data.length;
        if (opts.signal?.aborted) throw new SvError('SV_ERR_CORE_CANCELLED', 'volume restore cancelled', {});
        opts.progress?.({ bytesDone: Math.min(size, (b + 1) * CHUNK), bytesTotal: size });
        yield { index: b, data };
      }
    },
  };
  await writeDisk('raw', source, opts.out, { overwrite: opts.force === true, confine: opts.confine });
  return { source: session.source, point: session.point, disk: session.disk, volume: index, out: opts.out, size, bytesRead, durationMs: Date.now() - t0 };
}
