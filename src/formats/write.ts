/**
 * Writing a disk image from an ordered BlockSource, whatever the format: `writeDisk(format, source, outPath)`.
 *
 * Durability protocol: the writer writes `.<out>.tmp-<pid>-<rand>` (util/stale-temps.ts) in the output's folder, which is fsynced,
 * renamed over the output, and the folder fsynced; a crash leaves at worst a temp file, never a half image
 * under the real name. An existing output is refused (SV_ERR_FORMAT_OUTPUT_EXISTS) unless `overwrite: true`.
 *
 * Adding a format: write a `DiskWriter` and put it in WRITERS below (one line).
 */
import { lstat, open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { SvError, wrapSystemError } from '../errors/index.js';
import { writeRaw } from './raw/writer.js';
import type { BlockSource, DiskFormat } from './types.js';
import { writeVhd } from './vhd/writer.js';
import { writeVhdx } from './vhdx/writer.js';
import { ConfinedDir } from '../util/confined.js';
import { fsyncDir } from '../util/durable.js';
import { removeStaleTemps, tempName } from '../util/stale-temps.js';

export interface WriteOptions {
  /** Replace an existing output file. */
  readonly overwrite?: boolean;
  /** 'dynamic' (default for VHD/VHDX), 'fixed', or 'differencing' (needs `parentPath`). Raw ignores it. */
  readonly variant?: 'dynamic' | 'fixed' | 'differencing';
  /** The format's block size for dynamic/differencing images (VHD default 2 MiB). */
  readonly blockSize?: number;
  /** The parent of a differencing image (must exist; its identity is recorded in the child). */
  readonly parentPath?: string;
  /**
   * Roots the output must lie under (the appliance's restore roots): the output's folder is opened through
   * util/confined.ts (missing folders created, no symbolic link followed below a root, checked again before
   * the rename) and stale temp files in it are removed first. Omitted: the path is used as given (the CLI).
   */
  readonly confine?: readonly string[];
}

/** Writes `source` to `path` (a fresh temp file the caller renames). Must not rename or fsync itself. */
export type DiskWriter = (source: BlockSource, path: string, options: WriteOptions) => Promise<void>;

export const WRITERS: Partial<Record<DiskFormat, DiskWriter>> = {
  vhd: writeVhd,
  raw: writeRaw,
  vhdx: writeVhdx,
};

/** Write `source` as a `format` image at `outPath` (atomically: temp file, fsync, rename, fsync folder). */
export async function writeDisk(format: DiskFormat, source: BlockSource, outPath: string, options: WriteOptions = {}): Promise<void> {
  const writer = WRITERS[format];
  if (!writer) throw new SvError('SV_ERR_FORMAT_NO_WRITER', `no writer for ${format} images in this build`, { format });
  // Confined: every name below resolves inside the folder held open (util/confined.ts); else plain paths.
  const dir = options.confine ? await ConfinedDir.open(dirname(outPath), options.confine, { create: true }) : undefined;
  const name = basename(outPath);
  const inDir = (n: string): string => (dir ? dir.at(n) : join(dirname(outPath), n));
  const tmp = inDir(tempName(name));
  try {
    if (dir) await removeStaleTemps(dir);
    if (!options.overwrite) {
      const exists = await lstat(inDir(name)).then(() => true, () => false);
      if (exists) throw new SvError('SV_ERR_FORMAT_OUTPUT_EXISTS', `${outPath} exists (ask to overwrite it)`, { path: outPath });
    }
    dir?.check();
    await writer(source, tmp, options);
    await fsyncPath(tmp, 'r+');
    dir?.check();
    await rename(tmp, inDir(name)).catch((err: unknown) => { throw wrapSystemError(err, `rename ${tmp} to ${outPath}`); });
    await (dir ? dir.sync() : fsyncDir(dirname(outPath)));
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  } finally {
    await dir?.close();
  }
}

async function fsyncPath(path: string, flags: string): Promise<void> {
  try {
    const fh = await open(path, flags);
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  } catch (err) {
    throw wrapSystemError(err, `fsync ${path}`);
  }
}
