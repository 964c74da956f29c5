/**
 * Case-insensitive names, as NTFS compares them: each UTF-16 code unit mapped through the volume's own $UpCase
 * table (MFT record 10, 65536 x u16le, written by the formatter), then compared as unsigned 16-bit numbers.
 * This is the collation of the $I30 index, so the B+ tree descent agrees with the order Windows (or mkntfs)
 * wrote. A volume whose $UpCase is unreadable or mis-sized falls back to JavaScript's simple upper-casing of
 * each code unit (with a warning), which matches $UpCase for every name ntfs-3g and Windows tests use.
 */
import { endianness } from 'node:os';
import { AT, MFT_RECORD } from './structs.js';
import type { NtfsFile } from './file.js';
import { attributeHandle } from './handles.js';
import type { Mft } from './mft.js';

export const UPCASE_BYTES = 65536 * 2;

let fallback: Uint16Array | undefined;

export function simpleUpcase(): Uint16Array {
  if (!fallback) {
    fallback = new Uint16Array(65536);
    for (let i = 0; i < 65536; i++) {
      const u = String.fromCharCode(i).toUpperCase();
      fallback[i] = u.length === 1 ? u.charCodeAt(0) : i;
    }
  }
  return fallback;
}

/** The volume's table from $UpCase, or the simple fold and a warning. */
export async function loadUpcase(mft: Mft, file: NtfsFile | undefined, warnings: string[]): Promise<Uint16Array> {
  const data = file?.attributes.find((a) => a.type === AT.DATA && a.name === '');
  const size = data?.value?.length ?? data?.nonResident?.dataSize;
  if (!data || size !== UPCASE_BYTES) {
    warnings.push(`$UpCase (MFT record ${MFT_RECORD.UPCASE}) is missing or not ${UPCASE_BYTES} bytes: names compared with a simple upper-case fold`);
    return simpleUpcase();
  }
  const bytes = await attributeHandle(mft, file!, data).read(0, UPCASE_BYTES);
  // One copy of the bytes (little-endian on disk; swapped on a big-endian host), not 65,536 reads of a u16.
  const table = new Uint16Array(65536);
  const view = Buffer.from(table.buffer);
  bytes.copy(view, 0, 0, UPCASE_BYTES);
  if (endianness() === 'BE') view.swap16();
  return table;
}

/** NTFS file-name collation: upper-cased code units, then length. */
export function compareNames(a: string, b: string, up: Uint16Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const d = up[a.charCodeAt(i)]! - up[b.charCodeAt(i)]!;
    if (d !== 0) return d;
  }
  return a.length - b.length;
}
