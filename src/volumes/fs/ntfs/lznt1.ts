/**
 * LZNT1 decompression (MS-XCA §2.5), as NTFS uses it for compressed files: a compression unit (16 clusters)
 * is a sequence of chunks, each holding up to 4096 bytes of output. Chunk header (u16le): bits 0-11 = chunk
 * bytes - 3 (header included), bit 15 = compressed; a 0 header ends the unit. A compressed chunk is groups of
 * a flag byte and 8 tokens: bit clear = a literal byte, bit set = a u16le back-reference whose split between
 * displacement and length depends on how far into the chunk the output is (12 bits of length at the start,
 * down to 4). Chunks that produce fewer than 4096 bytes leave zeros up to the next chunk. Every reference is
 * checked against the chunk start and the output end: a bad unit is SV_ERR_FS_NTFS_BAD_COMPRESSION.
 */
import { SvError } from '../../../errors/index.js';

export const LZNT1_CHUNK = 4096;

function bad(where: string, what: string, pos: number): SvError {
  return new SvError('SV_ERR_FS_NTFS_BAD_COMPRESSION', `${where}: LZNT1 ${what} at byte ${pos} of the compressed unit`, { structure: where, offset: pos });
}

/** Decompress `src` into `out` (pre-zeroed, the unit's size); `where` names the unit for errors. */
export function lznt1Decompress(src: Buffer, out: Buffer, where: string): void {
  let pos = 0;
  let chunkOut = 0;
  while (pos + 2 <= src.length && chunkOut < out.length) {
    const header = src.readUInt16LE(pos);
    if (header === 0) return;
    const size = (header & 0x0fff) + 3;
    const end = pos + size;
    if (end > src.length) throw bad(where, `chunk of ${size} bytes past the end of the data (${src.length} bytes)`, pos);
    const limit = Math.min(chunkOut + LZNT1_CHUNK, out.length);
    if ((header & 0x8000) === 0) {
      const raw = size - 2;
      if (chunkOut + raw > out.length) throw bad(where, 'uncompressed chunk past the end of the unit', pos);
      src.copy(out, chunkOut, pos + 2, end);
    } else {
      decompressChunk(src, pos + 2, end, out, chunkOut, limit, where);
    }
    pos = end;
    chunkOut += LZNT1_CHUNK;
  }
}

function decompressChunk(src: Buffer, start: number, end: number, out: Buffer, base: number, limit: number, where: string): void {
  let p = start;
  let o = base;
  while (p < end) {
    const flags = src[p++]!;
    for (let bit = 0; bit < 8 && p < end; bit++) {
      if ((flags & (1 << bit)) === 0) {
        if (o >= limit) throw bad(where, 'literal past the end of the chunk', p);
        out[o++] = src[p++]!;
        continue;
      }
      if (p + 2 > end) throw bad(where, 'truncated back-reference', p);
      const token = src.readUInt16LE(p);
      p += 2;
      const done = o - base;
      let dispBits = 4;
      while ((1 << dispBits) < done) dispBits++;
      const lenBits = 16 - dispBits;
      const disp = (token >> lenBits) + 1;
      const len = (token & ((1 << lenBits) - 1)) + 3;
      if (disp > done) throw bad(where, `back-reference ${disp} bytes before the chunk start`, p - 2);
      if (o + len > limit) throw bad(where, 'back-reference past the end of the chunk', p - 2);
      for (let i = 0; i < len; i++, o++) out[o] = out[o - disp]!;
    }
  }
}
