/**
 * Update-sequence fixups of multi-sector structures (MFT records, INDX blocks). The writer stores a sequence
 * number in the last two bytes of every 512-byte stride and keeps the displaced bytes in the update sequence
 * array; a stride whose last bytes differ from the number was torn (written partly) and the structure is
 * refused. Applied in place on a buffer this reader owns.
 */
import type { SvErrorCode } from '../../../errors/index.js';
import { badInput } from '../../../errors/bad-input.js';
import { FIXUP_STRIDE, MULTI_SECTOR_HEADER } from './structs.js';

export interface FixupContext {
  readonly name: string;
  readonly code: SvErrorCode;
  /** "MFT record 42", "INDX block VCN 3 of record 5". */
  readonly structure: string;
  /** Byte offset of the structure in the volume, for messages. */
  readonly at: number;
}

export function applyFixups(buf: Buffer, ctx: FixupContext): void {
  const usaOffset = buf.readUInt16LE(MULTI_SECTOR_HEADER.fields.usaOffset.offset);
  const usaCount = buf.readUInt16LE(MULTI_SECTOR_HEADER.fields.usaCount.offset);
  const strides = buf.length / FIXUP_STRIDE;
  const bad = (what: string, offset: number, expected: string | number, found: string | number) =>
    badInput(ctx.code, ctx.name, `${ctx.structure} ${what}`, ctx.at + offset, expected, found);
  if (usaCount !== strides + 1) throw bad('update sequence count', 6, strides + 1, usaCount);
  if (usaOffset < MULTI_SECTOR_HEADER.size || usaOffset % 2 !== 0 || usaOffset + 2 * usaCount > FIXUP_STRIDE - 2) {
    throw bad('update sequence offset', 4, `an even offset with the array inside the first ${FIXUP_STRIDE - 2} bytes`, usaOffset);
  }
  const usn = buf.readUInt16LE(usaOffset);
  for (let i = 0; i < strides; i++) {
    const end = (i + 1) * FIXUP_STRIDE - 2;
    const found = buf.readUInt16LE(end);
    if (found !== usn) throw bad('update sequence number (torn write)', end, usn, found);
    buf.writeUInt16LE(buf.readUInt16LE(usaOffset + 2 + 2 * i), end);
  }
}
