/**
 * Test helpers for the NBD server: a seeded sparse raw disk (random 64 KiB-aligned data runs between
 * holes) and its VHDX copy made by qemu-img, and an in-process server exporting an image (read-only or
 * through a scratch overlay) on a unix socket in the test's folder, stopped in teardown.
 */
import { closeSync, ftruncateSync, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { prng } from '../../bench/data.js';
import { ImageBackend } from '../../src/export/image-backend.js';
import { Overlay } from '../../src/export/overlay.js';
import { ExportTable } from '../../src/export/table.js';
import { openDisk } from '../../src/formats/open.js';
import type { NbdBackend } from '../../src/nbd/backend.js';
import { NbdServer, type NbdServerOptions } from '../../src/nbd/server.js';
import { requireTool, run } from '../helpers/env.js';

interface Teardown {
  teardown(fn: () => void | Promise<void>): void;
}

/** A sparse raw file of `size` bytes: seeded random data runs (64 KiB-aligned) separated by holes. */
export function makeSparseRaw(path: string, size: number, seed: number): void {
  const rand = prng(seed);
  const fd = openSync(path, 'w');
  ftruncateSync(fd, size);
  for (let at = 0; at < size; ) {
    const len = Math.min((1 + Math.floor(rand() * 24)) * 65536, size - at);
    if (rand() < 0.5) {
      const data = Buffer.alloc(len);
      for (let i = 0; i < len; i += 4) data.writeUInt32LE((rand() * 0x100000000) >>> 0 || 1, i);
      writeSync(fd, data, 0, len, at);
    }
    at += len;
  }
  closeSync(fd);
}

/** The raw disk and a dynamic VHDX with the same content (holes left unallocated). */
export function makeDisk(dir: string, size: number, seed: number): { raw: string; vhdx: string } {
  const raw = join(dir, 'disk.raw');
  const vhdx = join(dir, 'disk.vhdx');
  makeSparseRaw(raw, size, seed);
  run(requireTool('qemu-img'), ['convert', '-f', 'raw', '-O', 'vhdx', '-o', 'subformat=dynamic,block_size=1M', raw, vhdx]);
  return { raw, vhdx };
}

export interface Served {
  server: NbdServer;
  backend: NbdBackend;
  sock: string;
  /** nbd+unix URI of the export (libnbd / qemu syntax). */
  uri: (name?: string) => string;
}

/** Serve `image` as export `name` (also the default) on `dir/nbd.sock`; `writable` adds a scratch overlay. */
export async function serveImage(t: Teardown, dir: string, image: string, opts: { name?: string; writable?: boolean; server?: Partial<NbdServerOptions> } = {}): Promise<Served> {
  const name = opts.name ?? 'disk';
  const disk = await openDisk(image);
  const base = new ImageBackend(disk);
  const overlay = opts.writable ? await Overlay.create(base, { scratchPath: join(dir, 'overlay.scratch'), blockSize: 65536 }) : null;
  const backend = overlay ?? base;
  const table = new ExportTable();
  table.add({ name, description: `test export of ${image}`, backend }, true);
  const sock = join(dir, 'nbd.sock');
  const server = await NbdServer.listen({ listen: { path: sock }, exports: table, ...opts.server });
  t.teardown(async () => {
    await server.close();
    await overlay?.close();
    await disk.close();
  });
  return { server, backend, sock, uri: (n = name) => `nbd+unix:///${n}?socket=${sock}` };
}
