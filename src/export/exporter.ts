/**
 * Instant recovery: serve one disk of a recovery point over NBD, read-only or writable, until stopped.
 *
 * An export opens the point's disk as a DiskImage over the store (src/points/image.ts), which holds the
 * point (storage/holds.ts, operation "export") for as long as it is open, so prune and gc leave it alone; a
 * killed exporter's hold lapses, and its scratch folder is removed by the next writable export in the same
 * root (stale-scratch.ts). A writable export puts a scratch overlay (overlay.ts) in front of it: the
 * point never changes. Its NBD server (src/nbd/server.ts) listens on 127.0.0.1 (port 0: any free one)
 * unless told otherwise, or on a unix socket. Export name: `SOURCE@POINTID/DISK`; the empty name means it.
 *
 * stop(): ends the NBD connections, then either discards the overlay, or (`keep`) saves it as a new
 * recovery point of the source through the normal backup engine: the scratch file is the disk's overlaid
 * view for every block written (copy-on-write at the store's block size), so the engine reads exactly the
 * written ranges (its change list) and reuses the served point's blocks for the rest; the new point has
 * the served point as parent, its other disks unchanged, and `madeFrom: {instantRecovery: POINTID}`.
 */
import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SvError } from '../errors/index.js';
import { NbdServer } from '../nbd/server.js';
import type { Target } from '../nbd/wire.js';
import { openPointImage, type PointImage } from '../points/image.js';
import { backup } from '../sync/backup.js';
import type { PointSummary } from '../sync/types.js';
import type { Store } from '../../storage/store.js';
import { ImageBackend } from './image-backend.js';
import { Overlay } from './overlay.js';
import { makeScratchDir, removeStaleScratch } from './stale-scratch.js';
import { ExportTable } from './table.js';
import { fileRefs } from '../sources/file.js';

export interface StartExportOptions {
  readonly store: string | Store;
  readonly source: string;
  /** Point id, unique prefix, "latest" or undefined (the newest). */
  readonly point?: string;
  readonly disk?: number;
  /** Unix socket path, or host (default 127.0.0.1) and port (default 10809; 0: any free port). */
  readonly listen?: { path: string } | { host?: string; port?: number };
  readonly writable?: boolean;
  /** Folder for the overlay's scratch file (default: a new folder under the system temp folder). */
  readonly scratchDir?: string;
  readonly maxConnections?: number;
  /** Require TLS (NBD_OPT_STARTTLS) with this certificate chain and key, PEM (src/nbd/server.ts). */
  readonly tls?: { readonly cert: string | Buffer; readonly key: string | Buffer };
}

/** An export as listed by the CLI and the API. */
export interface ExportInfo {
  readonly id: string;
  readonly name: string;
  readonly source: string;
  readonly point: string;
  readonly disk: number;
  readonly virtualSize: number;
  readonly writable: boolean;
  /** `nbd://host:port/NAME` or `nbd+unix:///NAME?socket=PATH` (`nbds`/`nbds+unix` with TLS). */
  readonly uri: string;
  /** Clients must use TLS (NBD_OPT_STARTTLS). */
  readonly tls: boolean;
  readonly address: Target;
  readonly startedAt: string;
  readonly connections: number;
  /** Overlay blocks written so far (writable exports). */
  readonly blocksWritten: number;
}

export interface StopResult {
  readonly export: ExportInfo;
  /** The point saved from the overlay (`keep`), if any. */
  readonly kept?: PointSummary;
}

export const NBD_PORT = 10809;

export class RecoveryExport {
  readonly id = randomBytes(6).toString('hex');
  readonly name: string;
  readonly startedAt = new Date().toISOString();
  #store: string | Store;
  #image: PointImage;
  #overlay: Overlay | null;
  #scratchDir: string | null;
  #server: NbdServer;
  #stopping: Promise<StopResult> | null = null;

  private constructor(store: string | Store, image: PointImage, overlay: Overlay | null, scratchDir: string | null, server: NbdServer, name: string) {
    this.#store = store;
    this.#image = image;
    this.#overlay = overlay;
    this.#scratchDir = scratchDir;
    this.#server = server;
    this.name = name;
  }

  static async start(opts: StartExportOptions): Promise<RecoveryExport> {
    const image = await openPointImage({ store: opts.store, source: opts.source, point: opts.point, disk: opts.disk, hold: { operation: 'export' }, readWindows: !opts.writable });
    let overlay: Overlay | null = null;
    let scratchDir: string | null = null;
    try {
      const name = `${image.manifest.source}@${image.manifest.id}/${image.disk.index}`;
      const base = new ImageBackend(image);
      if (opts.writable) {
        const root = opts.scratchDir ?? tmpdir();
        await removeStaleScratch(root);
        scratchDir = await makeScratchDir(root);
        overlay = await Overlay.create(base, { scratchPath: join(scratchDir, 'overlay.raw'), blockSize: image.manifest.blockSize });
      }
      const table = new ExportTable();
      table.add({ name, description: `shadowvault recovery point ${name}${opts.writable ? ' (writable overlay)' : ''}`, backend: overlay ?? base }, true);
      const listen = opts.listen && 'path' in opts.listen ? opts.listen : { host: opts.listen?.host ?? '127.0.0.1', port: opts.listen?.port ?? NBD_PORT };
      const server = await NbdServer.listen({ listen, exports: table, ...(opts.maxConnections ? { maxConnections: opts.maxConnections } : {}), ...(opts.tls ? { tls: opts.tls } : {}) });
      return new RecoveryExport(opts.store, image, overlay, scratchDir, server, name);
    } catch (err) {
      await overlay?.close();
      if (scratchDir) await rm(scratchDir, { recursive: true, force: true });
      await image.close();
      throw err;
    }
  }

  get info(): ExportInfo {
    const a = this.#server.address;
    const scheme = this.#server.tls ? 'nbds' : 'nbd';
    const uri = 'path' in a ? `${scheme}+unix:///${encodeURIComponent(this.name)}?socket=${a.path}` : `${scheme}://${a.host.includes(':') ? `[${a.host}]` : a.host}:${a.port}/${encodeURIComponent(this.name)}`;
    return {
      id: this.id, name: this.name, source: this.#image.manifest.source, point: this.#image.manifest.id, disk: this.#image.disk.index,
      virtualSize: this.#image.disk.virtualSize, writable: this.#overlay !== null, uri, tls: this.#server.tls, address: a, startedAt: this.startedAt,
      connections: this.#server.connections, blocksWritten: this.#overlay?.blocksWritten ?? 0,
    };
  }

  /** Stop serving; discard the overlay, or save it as a new point with `keep` (writable exports only). */
  stop(opts: { keep?: boolean } = {}): Promise<StopResult> {
    if (opts.keep && !this.#overlay) return Promise.reject(new SvError('SV_ERR_NBD_BAD_EXPORT_OPTIONS', `export ${this.name} is read-only: there is nothing to keep`, { export: this.name }));
    this.#stopping ??= this.#stop(opts.keep === true);
    return this.#stopping;
  }

  async #stop(keep: boolean): Promise<StopResult> {
    const info = this.info;
    await this.#server.close();
    const overlay = this.#overlay;
    try {
      if (!overlay) return { export: info };
      if (!keep) return { export: info };
      await overlay.detach();
      // The image keeps holding the served point while the new one is computed against it.
      const kept = await backup({
        store: this.#store, source: info.source, disks: fileRefs([overlay.scratchPath], { formats: ['raw'] }), changed: [overlay.writtenRanges()],
        base: { point: info.point, disk: info.disk }, consistency: 'crash',
      });
      return { export: info, kept };
    } finally {
      await overlay?.close();
      if (this.#scratchDir) await rm(this.#scratchDir, { recursive: true, force: true });
      await this.#image.close();
    }
  }
}
