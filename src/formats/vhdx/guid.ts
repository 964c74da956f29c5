/**
 * GUIDs as VHDX stores them (Microsoft mixed-endian: Data1 u32 LE, Data2 u16 LE, Data3 u16 LE, Data4 8 bytes)
 * and as text (lowercase 8-4-4-4-12, no braces). Parent locators carry them as "{XXXXXXXX-...}" UTF-16 text.
 */
import { randomBytes } from 'node:crypto';

export const ZERO_GUID = '00000000-0000-0000-0000-000000000000';

/** The 16 bytes at `at` as GUID text. */
export function readGuid(buf: Buffer, at = 0): string {
  const d1 = buf.readUInt32LE(at).toString(16).padStart(8, '0');
  const d2 = buf.readUInt16LE(at + 4).toString(16).padStart(4, '0');
  const d3 = buf.readUInt16LE(at + 6).toString(16).padStart(4, '0');
  const d4 = buf.toString('hex', at + 8, at + 10);
  const d5 = buf.toString('hex', at + 10, at + 16);
  return `${d1}-${d2}-${d3}-${d4}-${d5}`;
}

const GUID_TEXT = /^\{?([0-9a-fA-F]{8})-([0-9a-fA-F]{4})-([0-9a-fA-F]{4})-([0-9a-fA-F]{4})-([0-9a-fA-F]{12})\}?$/;

/** Normalise GUID text ("{ABC...}" or "abc...") to lowercase without braces; undefined when it is not a GUID. */
export function normaliseGuid(text: string): string | undefined {
  const m = GUID_TEXT.exec(text.trim());
  return m ? `${m[1]}-${m[2]}-${m[3]}-${m[4]}-${m[5]}`.toLowerCase() : undefined;
}

/** Write GUID text into 16 bytes at `at` (mixed-endian). The text must be a GUID (programming error otherwise). */
export function writeGuid(guid: string, buf: Buffer, at = 0): void {
  const g = normaliseGuid(guid);
  if (!g) throw new Error(`not a GUID: ${guid}`);
  const hex = g.replace(/-/g, '');
  buf.writeUInt32LE(parseInt(hex.slice(0, 8), 16), at);
  buf.writeUInt16LE(parseInt(hex.slice(8, 12), 16), at + 4);
  buf.writeUInt16LE(parseInt(hex.slice(12, 16), 16), at + 6);
  buf.write(hex.slice(16), at + 8, 8, 'hex');
}

export function guidBytes(guid: string): Buffer {
  const b = Buffer.alloc(16);
  writeGuid(guid, b);
  return b;
}

/** A random (version 4) GUID. */
export function randomGuid(): string {
  const b = randomBytes(16);
  b[7] = (b[7]! & 0x0f) | 0x40; // Data3 high nibble (stored LE: byte 7 is Data3's high byte)
  b[8] = (b[8]! & 0x3f) | 0x80;
  return readGuid(b);
}
