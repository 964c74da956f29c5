/**
 * The `file` disk source: a VHD/VHDX/raw image or a block device this process can open (src/formats/open.ts).
 * `read`/`extents` go to the opened image; `backupRange` runs the worker task storeBackupRange, whose worker
 * opens the same file itself (once per worker, as the format the coordinator detected, under the same roots)
 * and reads it on its own thread: no bytes cross a thread boundary, so `bytesTransferred` stays 0.
 */
import { SvError } from '../errors/index.js';
import { openDisk } from '../formats/open.js';
import type { DiskImage } from '../formats/types.js';
import { runTask } from '../pool/index.js';
import { checkRange } from './range.js';
import type { DiskSource, FileSourceRef, RangeRequest, RangeResult } from './types.js';

class FileSource implements DiskSource {
  readonly ref: FileSourceRef;
  readonly bytesTransferred = 0;
  readonly #image: DiskImage;
  readonly #resolved: FileSourceRef & { readonly format: DiskImage['info']['format'] };
  #closed = false;

  constructor(ref: FileSourceRef, image: DiskImage) {
    this.ref = ref;
    this.#image = image;
    this.#resolved = { ...ref, format: image.info.format };
  }

  get info(): DiskImage['info'] {
    return this.#image.info;
  }

  #open(what: string): void {
    if (this.#closed) throw new SvError('SV_ERR_SOURCE_CLOSED', `${this.ref.path}: ${what} after close`, { path: this.ref.path });
  }

  async extents(): ReturnType<DiskImage['extents']> {
    this.#open('extents');
    return this.#image.extents();
  }

  async read(offset: number, length: number, target?: Buffer): Promise<Buffer> {
    this.#open('read');
    return this.#image.read(offset, length, target);
  }

  async backupRange(req: RangeRequest, signal?: AbortSignal): Promise<RangeResult> {
    this.#open('backupRange');
    checkRange(req, this.info.virtualSize, this.ref.path);
    return runTask('storeBackupRange', { ...req, input: { kind: 'file', ref: this.#resolved } }, { signal });
  }

  async backupSpans(reqs: readonly RangeRequest[], signal?: AbortSignal): Promise<RangeResult[]> {
    this.#open('backupSpans');
    for (const req of reqs) checkRange(req, this.info.virtualSize, this.ref.path);
    const { results } = await runTask('storeBackupSpans', { spans: reqs, input: { kind: 'file', ref: this.#resolved } }, { signal });
    return results;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#image.close();
  }
}

export async function openFileSource(ref: FileSourceRef): Promise<DiskSource> {
  const image = await openDisk(ref.path, { format: ref.format ?? undefined, roots: ref.roots });
  return new FileSource(ref, image);
}

/** File references for paths (the CLI's positional images): one format for all, or one per path, or none. */
export function fileRefs(paths: readonly string[], opts: { formats?: ReadonlyArray<FileSourceRef['format']>; roots?: readonly string[] } = {}): FileSourceRef[] {
  return paths.map((path, i) => ({ kind: 'file', path, ...(opts.formats?.[i] ? { format: opts.formats[i] } : {}), ...(opts.roots ? { roots: opts.roots } : {}) }));
}
