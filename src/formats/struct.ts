/**
 * Binary structures declared once: a field table (offset, size, type) from which decoding and encoding
 * are derived, and whose total size is checked against the declared structure size at module load.
 * Big- and little-endian integers, byte strings, GUIDs (RFC 4122 byte order or Microsoft mixed-endian).
 */

export type FieldType =
  | 'u8' | 'u16be' | 'u32be' | 'u64be' | 'u16le' | 'u32le' | 'u64le'
  | 'bytes' | 'ascii';

export interface FieldSpec {
  readonly offset: number;
  readonly size: number;
  readonly type: FieldType;
}

export type Layout = Readonly<Record<string, FieldSpec>>;

type ValueOf<F extends FieldSpec> = F['type'] extends 'bytes' ? Buffer : F['type'] extends 'ascii' ? string : number;
export type Decoded<L extends Layout> = { -readonly [K in keyof L]: ValueOf<L[K]> };

const WIDTH: Record<FieldType, number | undefined> = {
  u8: 1, u16be: 2, u32be: 4, u64be: 8, u16le: 2, u32le: 4, u64le: 8, bytes: undefined, ascii: undefined,
};

export interface Struct<L extends Layout> {
  readonly name: string;
  readonly size: number;
  readonly fields: L;
  decode(buf: Buffer, at?: number): Decoded<L>;
  encode(values: Partial<Decoded<L>>, into?: Buffer, at?: number): Buffer;
}

/** Declare a structure; throws at module load (a programming error, not input) if fields overlap or overflow. */
export function defineStruct<L extends Layout>(name: string, size: number, fields: L): Struct<L> {
  const sorted = Object.entries(fields).sort((a, b) => a[1].offset - b[1].offset);
  let end = 0;
  for (const [key, f] of sorted) {
    const w = WIDTH[f.type];
    if ((w !== undefined && w !== f.size) || f.offset < end || f.offset + f.size > size) {
      throw new Error(`struct ${name}: field ${key} (offset ${f.offset}, size ${f.size}) is misdeclared`);
    }
    end = f.offset + f.size;
  }
  return {
    name,
    size,
    fields,
    decode(buf: Buffer, at = 0): Decoded<L> {
      const out: Record<string, unknown> = {};
      for (const [key, f] of sorted) out[key] = readField(buf, at + f.offset, f);
      return out as Decoded<L>;
    },
    encode(values: Partial<Decoded<L>>, into?: Buffer, at = 0): Buffer {
      const buf = into ?? Buffer.alloc(size);
      for (const [key, f] of sorted) {
        const v = (values as Record<string, unknown>)[key];
        if (v !== undefined) writeField(buf, at + f.offset, f, v);
      }
      return buf;
    },
  };
}

function readField(buf: Buffer, o: number, f: FieldSpec): unknown {
  switch (f.type) {
    case 'u8': return buf.readUInt8(o);
    case 'u16be': return buf.readUInt16BE(o);
    case 'u32be': return buf.readUInt32BE(o);
    case 'u64be': return Number(buf.readBigUInt64BE(o));
    case 'u16le': return buf.readUInt16LE(o);
    case 'u32le': return buf.readUInt32LE(o);
    case 'u64le': return Number(buf.readBigUInt64LE(o));
    case 'bytes': return Buffer.from(buf.subarray(o, o + f.size));
    case 'ascii': return buf.toString('latin1', o, o + f.size);
  }
}

function writeField(buf: Buffer, o: number, f: FieldSpec, v: unknown): void {
  switch (f.type) {
    case 'u8': buf.writeUInt8(v as number, o); return;
    case 'u16be': buf.writeUInt16BE(v as number, o); return;
    case 'u32be': buf.writeUInt32BE(v as number, o); return;
    case 'u64be': buf.writeBigUInt64BE(toU64(v as number), o); return;
    case 'u16le': buf.writeUInt16LE(v as number, o); return;
    case 'u32le': buf.writeUInt32LE(v as number, o); return;
    case 'u64le': buf.writeBigUInt64LE(toU64(v as number), o); return;
    case 'bytes': {
      const b = v as Buffer;
      buf.fill(0, o, o + f.size);
      b.copy(buf, o, 0, Math.min(b.length, f.size));
      return;
    }
    case 'ascii': buf.fill(0, o, o + f.size); buf.write(v as string, o, f.size, 'latin1'); return;
  }
}

/** U64_ALL_ONES (2^64 once rounded to a number) is written back as 0xFFFFFFFFFFFFFFFF. */
function toU64(v: number): bigint {
  return v >= U64_ALL_ONES ? 0xffffffffffffffffn : BigInt(v);
}

/** 64-bit fields are decoded to numbers; values above 2^53 become inexact. Callers compare with this. */
export const U64_ALL_ONES = Number(0xffffffffffffffffn);

/** A 16-byte id as the canonical 8-4-4-4-12 text, bytes in file order (VHD unique ids are big-endian). */
export function uuidText(b: Buffer): string {
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}
