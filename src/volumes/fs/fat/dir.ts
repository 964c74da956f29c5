/**
 * FAT directory entries: 8.3 entries with the VFAT long names that precede them. A long name is used only
 * when its parts arrive in order (last part first, sequence down to 1) and every part carries the checksum
 * of the 8.3 entry that follows; otherwise the parts are orphans and ignored (the 8.3 name stands), as
 * Windows and Linux do. Deleted entries (0xE5) are skipped, 0x00 ends the directory, '.' and '..' and the
 * volume label entry are not listed. Times: FAT records local time without a zone; they are read as UTC.
 */
import type { FileTimes } from '../types.js';
import {
  ATTR, DIR_ENTRY, DIR_ENTRY_SIZE, LFN_CHARS, LFN_ENTRY, LFN_LAST, LFN_MAX_PARTS, NAME_DELETED, NAME_END, NAME_KANJI_E5,
  NTRES_LOWER_BASE, NTRES_LOWER_EXT,
} from './structs.js';

export interface FatDirEntry {
  readonly name: string;
  readonly shortName: string;
  readonly attr: number;
  readonly firstCluster: number;
  readonly size: number;
  readonly times: FileTimes;
}

export interface ParsedDir {
  readonly entries: FatDirEntry[];
  /** The volume label entry (root directory only), if any. */
  readonly label?: string;
  /** True when a 0x00 entry ended the directory (later clusters need not be read). */
  readonly ended: boolean;
}

/** The checksum of an 8.3 name that each of its LFN entries carries. */
export function lfnChecksum(name11: Buffer): number {
  let sum = 0;
  for (let i = 0; i < 11; i++) sum = (((sum & 1) << 7) + (sum >> 1) + name11[i]!) & 0xff;
  return sum;
}

/** FAT date (bits 15-9 year - 1980, 8-5 month, 4-0 day) and time (15-11 h, 10-5 min, 4-0 s / 2) as UTC ms. */
export function fatTime(date: number, time: number, extraMs = 0): number | undefined {
  if (date === 0) return undefined;
  const day = date & 0x1f;
  const month = (date >> 5) & 0x0f;
  if (day === 0 || month === 0 || month > 12) return undefined;
  return Date.UTC(1980 + (date >> 9), month - 1, day, time >> 11, (time >> 5) & 0x3f, (time & 0x1f) * 2) + extraMs;
}

function shortName(raw: Buffer, ntRes: number): string {
  const bytes = Buffer.from(raw);
  if (bytes[0] === NAME_KANJI_E5) bytes[0] = NAME_DELETED;
  let base = bytes.toString('latin1', 0, 8).replace(/ +$/u, '');
  let ext = bytes.toString('latin1', 8, 11).replace(/ +$/u, '');
  if (ntRes & NTRES_LOWER_BASE) base = base.toLowerCase();
  if (ntRes & NTRES_LOWER_EXT) ext = ext.toLowerCase();
  return ext ? `${base}.${ext}` : base;
}

function lfnPart(buf: Buffer, at: number): number[] {
  const e = LFN_ENTRY.decode(buf, at);
  const chars: number[] = [];
  for (const part of [e.name1, e.name2, e.name3]) for (let i = 0; i < part.length; i += 2) chars.push(part.readUInt16LE(i));
  return chars;
}

/** Parse `buf` (whole 32-byte entries). `pending` carries LFN parts across clusters of one directory. */
export class DirParser {
  #parts: number[][] = [];
  #expect = 0;
  #checksum = -1;
  readonly entries: FatDirEntry[] = [];
  label: string | undefined;
  ended = false;

  feed(buf: Buffer): void {
    for (let at = 0; at + DIR_ENTRY_SIZE <= buf.length && !this.ended; at += DIR_ENTRY_SIZE) {
      const first = buf[at]!;
      if (first === NAME_END) {
        this.ended = true;
        break;
      }
      const attr = buf[at + 0x0b]!;
      if (first === NAME_DELETED) {
        this.#reset();
        continue;
      }
      if ((attr & 0x3f) === ATTR.LFN) {
        this.#lfn(buf, at);
        continue;
      }
      const d = DIR_ENTRY.decode(buf, at);
      const long = this.#takeLong(d.name);
      if (attr & ATTR.VOLUME_ID) {
        if (!(attr & ATTR.DIRECTORY) && this.label === undefined) this.label = d.name.toString('latin1').replace(/ +$/u, '');
        continue;
      }
      const short = shortName(d.name, d.ntRes);
      if (short === '.' || short === '..') continue;
      this.entries.push({
        name: long ?? short,
        shortName: short,
        attr,
        firstCluster: d.fstClusLo + d.fstClusHi * 65536,
        size: attr & ATTR.DIRECTORY ? 0 : d.fileSize,
        times: {
          modified: fatTime(d.wrtDate, d.wrtTime),
          accessed: fatTime(d.lstAccDate, 0),
          created: fatTime(d.crtDate, d.crtTime, d.crtTimeTenth <= 199 ? d.crtTimeTenth * 10 : 0),
        },
      });
    }
  }

  #reset(): void {
    this.#parts = [];
    this.#expect = 0;
    this.#checksum = -1;
  }

  #lfn(buf: Buffer, at: number): void {
    const ord = buf[at]!;
    const seq = ord & 0x1f;
    const sum = buf[at + LFN_ENTRY.fields.checksum.offset]!;
    if (ord & LFN_LAST) {
      this.#reset();
      if (seq < 1 || seq > LFN_MAX_PARTS) return;
      this.#expect = seq - 1;
      this.#checksum = sum;
      this.#parts = [lfnPart(buf, at)];
      return;
    }
    if (this.#parts.length === 0 || seq !== this.#expect || sum !== this.#checksum || seq < 1) {
      this.#reset();
      return;
    }
    this.#parts.push(lfnPart(buf, at));
    this.#expect = seq - 1;
  }

  /** The long name assembled for the 8.3 entry `name11`, if complete and its checksum matches. */
  #takeLong(name11: Buffer): string | undefined {
    const complete = this.#parts.length > 0 && this.#expect === 0 && this.#checksum === lfnChecksum(name11);
    const parts = this.#parts;
    this.#reset();
    if (!complete) return undefined;
    const units: number[] = [];
    for (const p of parts.reverse()) units.push(...p);
    const end = units.indexOf(0);
    const used = end >= 0 ? units.slice(0, end) : units.filter((u) => u !== 0xffff);
    if (used.length === 0 || used.length > LFN_MAX_PARTS * LFN_CHARS) return undefined;
    return String.fromCharCode(...used);
  }
}
