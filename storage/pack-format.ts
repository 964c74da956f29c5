/**
 * The pack header and the record header, written in one place (layout.ts declares their offsets, sizes, magic
 * and version): a staged pack (pack.ts) and a pack built in memory (pack-memory.ts) write the same bytes.
 * Pack header (32 bytes): magic at 0, version u32 at 8, pack id u64 at 16. Record header (48 bytes): digest at 0
 * (32 bytes), stored length u32 at 32, raw length u32 at 36, flag u8 at 40, record magic u32 at 44; all
 * little-endian, the other bytes zero.
 */
import { PACK_HEADER_SIZE, PACK_MAGIC, PACK_VERSION, RECORD_HEADER_SIZE, RECORD_MAGIC } from './layout.js';

/** Write the pack header of pack `id` at the start of `target`. */
export function writePackHeader(target: Buffer, id: bigint): void {
  target.fill(0, 0, PACK_HEADER_SIZE);
  target.write(PACK_MAGIC, 0, 'latin1');
  target.writeUInt32LE(PACK_VERSION, 8);
  target.writeBigUInt64LE(id, 16);
}

export function packHeader(id: bigint): Buffer {
  const h = Buffer.alloc(PACK_HEADER_SIZE);
  writePackHeader(h, id);
  return h;
}

/** Write a record header at `at` of `target`. */
export function writeRecordHeader(target: Buffer, at: number, digest: Uint8Array, storedLength: number, rawLength: number, flag: number): void {
  target.set(digest, at);
  target.writeUInt32LE(storedLength, at + 32);
  target.writeUInt32LE(rawLength, at + 36);
  target.writeUInt8(flag, at + 40);
  target.fill(0, at + 41, at + 44);
  target.writeUInt32LE(RECORD_MAGIC, at + 44);
}

export function recordHeader(digest: Uint8Array, storedLength: number, rawLength: number, flag: number): Buffer {
  const h = Buffer.alloc(RECORD_HEADER_SIZE);
  writeRecordHeader(h, 0, digest, storedLength, rawLength, flag);
  return h;
}
