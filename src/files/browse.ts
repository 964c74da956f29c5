/**
 * A browse session: one disk of a recovery point opened as a DiskImage (held against prune and gc until
 * close), its partition table read, and file systems opened per volume on demand. What the `files` commands
 * and the API's files routes use; everything below is read-only and reads only the blocks it needs.
 *
 * Volume choice when none is given: the only volume; else the largest volume whose file system a reader opens
 * (a Windows disk's data partition rather than its EFI or recovery partitions).
 */
import { SvError, toWire, type WireError } from '../errors/index.js';
import { openPointImage, type PointImage } from '../points/image.js';
import type { BlobCache } from '../points/cache.js';
import { readPartitions, type PartitionTable, type Volume } from '../volumes/partitions/index.js';
import { openVolumeFs } from '../volumes/fs/probe.js';
import type { FileSystem } from '../volumes/fs/types.js';
import type { Store } from '../../storage/store.js';

export interface BrowseOptions {
  readonly store: string | Store;
  readonly source: string;
  /** Point id, unique prefix, "latest" or undefined (the newest). */
  readonly point?: string;
  readonly disk?: number;
  /** What the hold names as the reader ("files ls", "api files get", ...). */
  readonly operation: string;
  readonly cache?: BlobCache;
  /** Reads below this many bytes decode on the calling thread (see OpenPointImageOptions.inlineBytes). */
  readonly inlineBytes?: number;
}

/** One volume as `files volumes` lists it. */
export interface VolumeListing {
  readonly index: number;
  readonly offset: number;
  readonly size: number;
  /** Partition type ("0x83" or a GPT type GUID; "" without a table) and its name. */
  readonly type: string;
  readonly typeName: string;
  readonly kind: Volume['kind'];
  readonly name?: string;
  /** The file system, when a reader opens it. */
  readonly fs: { type: FileSystem['type']; label: string; uuid: string; blockSize: number } | null;
  /** Why no file system is given (SV_ERR_VOLUME_UNSUPPORTED naming what was found, or damage). */
  readonly error?: WireError;
}

export class BrowseSession {
  readonly image: PointImage;
  readonly table: PartitionTable;
  readonly #open = new Map<number, Promise<FileSystem>>();

  constructor(image: PointImage, table: PartitionTable) {
    this.image = image;
    this.table = table;
  }

  get source(): string { return this.image.manifest.source; }
  get point(): string { return this.image.manifest.id; }
  get disk(): number { return this.image.disk.index; }

  volume(index: number): Volume {
    const v = this.table.volumes.find((x) => x.index === index);
    if (!v) {
      const have = this.table.volumes.map((x) => x.index).join(', ') || 'none';
      throw new SvError('SV_ERR_VOLUME_NOT_FOUND', `${this.source}@${this.point} disk ${this.disk} has no volume ${index} (volumes: ${have})`, { volume: index, volumes: this.table.volumes.map((x) => x.index) });
    }
    return v;
  }

  /** The file system of volume `index` (opened once per session). */
  fs(index: number): Promise<FileSystem> {
    let p = this.#open.get(index);
    if (!p) {
      const v = this.volume(index);
      p = openVolumeFs(this.image, v, `${this.source}@${this.point} disk ${this.disk} volume ${index}`);
      this.#open.set(index, p);
      p.catch(() => this.#open.delete(index));
    }
    return p;
  }

  async volumes(): Promise<VolumeListing[]> {
    const out: VolumeListing[] = [];
    for (const v of this.table.volumes) {
      const base = { index: v.index, offset: v.offset, size: v.size, type: v.type, typeName: v.typeName, kind: v.kind, ...(v.name ? { name: v.name } : {}) };
      try {
        const fs = await this.fs(v.index);
        out.push({ ...base, fs: { type: fs.type, label: fs.label, uuid: fs.uuid, blockSize: fs.blockSize } });
      } catch (err) {
        if (!(err instanceof SvError)) throw err;
        out.push({ ...base, fs: null, error: toWire(err) });
      }
    }
    return out;
  }

  /** `index` when given; else the only volume, or the largest one a reader opens. */
  async pick(index?: number): Promise<{ volume: Volume; fs: FileSystem }> {
    if (index !== undefined) return { volume: this.volume(index), fs: await this.fs(index) };
    const vols = this.table.volumes;
    if (vols.length === 1) return { volume: vols[0]!, fs: await this.fs(vols[0]!.index) };
    let firstError: unknown;
    for (const v of [...vols].sort((a, b) => b.size - a.size || a.index - b.index)) {
      try {
        return { volume: v, fs: await this.fs(v.index) };
      } catch (err) {
        if (!(err instanceof SvError)) throw err;
        firstError ??= err;
      }
    }
    if (firstError) throw firstError;
    throw new SvError('SV_ERR_VOLUME_NOT_FOUND', `${this.source}@${this.point} disk ${this.disk} has no volumes (an empty disk)`, { volumes: [] });
  }

  close(): Promise<void> {
    return this.image.close();
  }
}

/** Open a browse session (the point is held until close). */
export async function openBrowse(opts: BrowseOptions): Promise<BrowseSession> {
  const image = await openPointImage({ store: opts.store, source: opts.source, point: opts.point, disk: opts.disk, cache: opts.cache, hold: { operation: opts.operation }, inlineBytes: opts.inlineBytes });
  try {
    return new BrowseSession(image, await readPartitions(image));
  } catch (err) {
    await image.close();
    throw err;
  }
}
