/**
 * `files volume-restore --url`: one volume of a point's disk on a running appliance, as a local raw image. The
 * volume's byte range of the raw disk image route (GET .../disks/D/image?format=raw) is read in CHUNK-sized Range
 * requests, a few in flight, and written through the raw writer (formats/write.ts: temp file, fsync, rename; an
 * existing output refused unless `force`); all-zero chunks become holes. Unlike the local command, zero ranges
 * cross the network as zeros (the API has no block map route): a large sparse volume takes a while.
 */
import { isZero } from '../formats/common.js';
import type { BlockSource } from '../formats/types.js';
import { writeDisk } from '../formats/write.js';
import type { VolumeListing } from '../files/browse.js';
import type { VolumeRestoreResult } from '../files/volume-restore.js';
import { fetchRange } from './remote-fs.js';
import type { RemoteClient } from './remote.js';

const CHUNK = 8 * 1024 * 1024;
const IN_FLIGHT = 4;

export interface RemoteVolumeTarget {
  readonly api: RemoteClient;
  /** `api/v1/sources/ID/points/P/disks/D` */
  readonly base: string;
  readonly source: string;
  readonly point: string;
  readonly disk: number;
}

export async function restoreRemoteVolume(d: RemoteVolumeTarget, v: VolumeListing, opts: { out: string; force?: boolean; progress?: (p: { bytesDone: number; bytesTotal: number }) => void }): Promise<VolumeRestoreResult> {
  const t0 = Date.now();
  const size = v.size;
  const url = `${d.base}/image?format=raw`;
  let bytesRead = 0;
  const source: BlockSource = {
    virtualSize: size,
    blockSize: CHUNK,
    async *blocks() {
      const count = Math.ceil(size / CHUNK);
      const queue: Array<Promise<Buffer>> = [];
      let next = 0;
      try {
        for (let b = 0; b < count; b++) {
          while (queue.length < IN_FLIGHT && next < count) {
            const at = v.offset + next * CHUNK;
            const p = fetchRange(d.api, url, at, at + Math.min(CHUNK, size - next * CHUNK));
            p.catch(() => undefined);
            queue.push(p);
            next++;
          }
          const data = await queue.shift()!;
          bytesRead += data.length;
          opts.progress?.({ bytesDone: Math.min(size, (b + 1) * CHUNK), bytesTotal: size });
          yield { index: b, data: isZero(data) ? null : data };
        }
      } finally {
        await Promise.allSettled(queue);
      }
    },
  };
  await writeDisk('raw', source, opts.out, { overwrite: opts.force === true });
  return { source: d.source, point: d.point, disk: d.disk, volume: v.index, out: opts.out, size, bytesRead, durationMs: Date.now() - t0 };
}
