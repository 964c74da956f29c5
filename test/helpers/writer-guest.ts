/**
 * The 512-byte writer guest (/work/shared/guest/README.md): its disk images and its consistency rule.
 *
 * The guest writes, per tick, `counter` into ring sector LBA 2048 + (counter mod 256) (128 × u32le), then
 * into the header sector LBA 1. The rule checked here is writer.asm's: with M = the newest ring value
 * (M >= 256), the 256 ring slots (u32le at the start of sectors 2048..2303) hold exactly M-255 .. M, each
 * in its slot, and the header H is M or M-1. H = M-1 is a real point in time: between a tick's ring write
 * and its header write. (The README states the rule with H in place of M; that version flags a copy taken
 * in that gap, which a `stop` hits now and then, so a consistent copy would fail it.)
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { SHARED_DIR, requireTool, run } from './env.js';

export const SECTOR = 512;
export const HEADER_LBA = 1;
export const RING_LBA = 2048;
export const RING_SLOTS = 256;
export const WRITER_BIN = join(SHARED_DIR, 'guest', 'writer.bin');

/** A 64 MiB disk of `format` with writer.bin in sector 0. */
export function makeWriterDisk(path: string, format: 'raw' | 'qcow2'): string {
  run(requireTool('qemu-img'), ['create', '-q', '-f', format, path, '64M']);
  run(requireTool('qemu-io'), ['-f', format, '-c', `write -s ${WRITER_BIN} 0 512`, path]);
  return path;
}

export interface WriterCheck {
  ok: boolean;
  header: number;
  /** What breaks the rule (empty when ok). */
  problems: string[];
}

/** Check the rule on a header value and the 256 ring slot values (slot i = value at LBA 2048 + i). */
export function checkWriterRule(header: number, slots: number[]): WriterCheck {
  const problems: string[] = [];
  const newest = Math.max(...slots);
  if (newest < RING_SLOTS) problems.push(`newest ring value ${newest} < ${RING_SLOTS}: the ring is not full yet`);
  else {
    const oldest = newest - (RING_SLOTS - 1);
    const seen = new Set<number>();
    slots.forEach((value, i) => {
      if (value < oldest) problems.push(`slot ${i} holds ${value}, older than ${oldest} (newest slot ${newest})`);
      else if (value % RING_SLOTS !== i) problems.push(`slot ${i} holds ${value}, which belongs in slot ${value % RING_SLOTS}`);
      else if (seen.has(value)) problems.push(`value ${value} twice`);
      seen.add(value);
    });
    if (header > newest) problems.push(`header ${header} is newer than every slot (newest ${newest})`);
    else if (header < newest - 1) problems.push(`header ${header} is older than the newest slot ${newest} by more than one tick`);
  }
  return { ok: problems.length === 0, header, problems };
}

/**
 * The rule on any reader of a disk's bytes: read the header, run `between` (e.g. wait until the live guest wrote
 * more), then read the ring. A reader of one point in time passes whatever the guest did in between.
 */
export async function checkWriterReads(read: (offset: number, length: number) => Promise<Buffer>, between: () => Promise<void> = async () => undefined): Promise<WriterCheck> {
  const header = (await read(HEADER_LBA * SECTOR, SECTOR)).readUInt32LE(0);
  await between();
  const ring = await read(RING_LBA * SECTOR, RING_SLOTS * SECTOR);
  return checkWriterRule(header, Array.from({ length: RING_SLOTS }, (_, i) => ring.readUInt32LE(i * SECTOR)));
}

/** Read u32le at the start of sector `lba` of a raw image. */
function readU32(fd: number, lba: number): number {
  const buf = Buffer.alloc(4);
  readSync(fd, buf, 0, 4, lba * SECTOR);
  return buf.readUInt32LE(0);
}

/** The header value of a disk image; works on the live disk of a running VM (qemu-io --force-share). */
export function readHeader(path: string, format: 'raw' | 'qcow2' = 'raw'): number {
  if (format === 'raw') {
    const fd = openSync(path, 'r');
    try {
      return readU32(fd, HEADER_LBA);
    } finally {
      closeSync(fd);
    }
  }
  const out = run(requireTool('qemu-io'), ['-U', '-r', '-f', format, '-c', `read -v ${HEADER_LBA * SECTOR} 4`, path]);
  const bytes = /^[0-9a-f]{8}:\s+([0-9a-f]{2}) ([0-9a-f]{2}) ([0-9a-f]{2}) ([0-9a-f]{2})/mu.exec(out);
  if (!bytes) throw new Error(`qemu-io printed no hex dump of ${path}: ${out}`);
  return Buffer.from(bytes.slice(1, 5).map((h) => parseInt(h, 16))).readUInt32LE(0);
}

/** Check the rule on a raw image file. */
export function checkWriterImage(rawPath: string): WriterCheck {
  const fd = openSync(rawPath, 'r');
  try {
    const header = readU32(fd, HEADER_LBA);
    const slots = Array.from({ length: RING_SLOTS }, (_, i) => readU32(fd, RING_LBA + i));
    return checkWriterRule(header, slots);
  } finally {
    closeSync(fd);
  }
}

/** Wait until the live disk's header reaches `atLeast` (the guest is writing), bounded by `timeoutMs`. */
export async function waitForHeader(path: string, atLeast: number, format: 'raw' | 'qcow2' = 'raw', timeoutMs = 60_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const h = readHeader(path, format);
    if (h >= atLeast) return h;
    if (Date.now() > deadline) throw new Error(`writer guest: header ${h} did not reach ${atLeast} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
