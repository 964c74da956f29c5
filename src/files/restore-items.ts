/**
 * The appliance's item restore (a restore job with `items`): files and folders of one volume of a point's disk
 * into a folder under the restore roots (confined: src/util/confined.ts), the point held while it runs.
 */
import { SvError } from '../errors/index.js';
import type { EngineContext, ItemsRequest, RestoreOutcome, RestoreRequest } from '../appliance/engine/index.js';
import type { Store } from '../../storage/store.js';
import { openBrowse } from './browse.js';
import { getItems } from './extract.js';
import { normalizePath } from './listing.js';

export async function restoreItems(store: Store, pointId: string, req: RestoreRequest, items: ItemsRequest, ctx: EngineContext): Promise<RestoreOutcome> {
  if (req.disk === undefined) throw new SvError('SV_ERR_CORE_INVALID_ARGUMENT', 'an item restore needs the disk', {});
  const session = await openBrowse({ store, source: req.source, point: pointId, disk: req.disk, operation: 'item restore (API)' });
  try {
    const { volume, fs } = await session.pick(items.volume);
    const r = await getItems(fs, items.paths.map(normalizePath), {
      out: req.target, force: items.overwrite === true, confine: req.roots, signal: ctx.signal, progress: (p) => ctx.onProgress(p.bytesDone, p.bytesDone),
    });
    ctx.log(`restored ${r.files} file(s), ${r.directories} folder(s) (${r.bytes} bytes) of ${req.source}@${pointId} disk ${req.disk} volume ${volume.index} into ${r.out}${r.skipped.length ? `; skipped ${r.skipped.length}` : ''}`);
    const raw = {
      volume: volume.index, out: r.out, itemFiles: r.files, directories: r.directories, symlinks: r.symlinks, streams: r.streams, bytes: r.bytes,
      renamed: r.renamed.slice(0, 100), renamedCount: r.renamedCount, skipped: r.skipped.slice(0, 100), durationMs: r.durationMs,
    };
    return { bytesWritten: r.bytes, files: [r.out], raw };
  } finally {
    await session.close();
  }
}
