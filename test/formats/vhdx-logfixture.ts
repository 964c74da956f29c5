/**
 * A VHDX with a pending log, built from the specification (shared by the log replay test and the fuzz test):
 * an image written by our writer (8 MiB, 1 MiB blocks, blocks 0-2 written) gets three log entries (seq 10-12)
 * that wrap around the end of the 1 MiB circular log: a BAT page allocating block 3 past the end of the file,
 * a zero range and payload sectors; plus a stale older entry (seq 5) and a torn one after the head (seq 13).
 */
import { open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { BlockSource } from '../../src/formats/types.js';
import { writeDisk } from '../../src/formats/write.js';
import { buildHeader, buildLogEntry, writeBatEntry, type LogDescriptorSpec } from '../../src/formats/vhdx/build.js';
import { HEADER_OFFSETS, PAYLOAD_BLOCK_FULLY_PRESENT } from '../../src/formats/vhdx/layout.js';
import { parseHeader } from '../../src/formats/vhdx/structs.js';

const MiB = 1 << 20;
export const LOGGED_SIZE = 8 * MiB;
const SIZE = LOGGED_SIZE;
const LOG_OFFSET = 1 * MiB; // our writer's layout
const LOG_LENGTH = 1 * MiB;
const BAT_OFFSET = 3 * MiB;
export const LOG_GUID = '6f1c2d3e-4a5b-4c6d-8e9f-a0b1c2d3e4f5';

function fill(seed: number, n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (seed * 31 + i * 7 + (i >> 9)) & 0xff || 1;
  return b;
}

export async function baseImage(dir: string): Promise<string> {
  const path = join(dir, 'logged.vhdx');
  const src: BlockSource = {
    virtualSize: SIZE,
    blockSize: MiB,
    async *blocks() {
      for (let i = 0; i < 3; i++) yield { index: i, data: fill(i + 1, MiB) };
    },
  };
  await writeDisk('vhdx', src, path, { blockSize: MiB });
  return path;
}

export interface Plan { entries: { position: number; bytes: Buffer }[]; expected: Buffer }

/** Entries A (wrapping), B, C (the active sequence, seq 10-12), a stale entry (seq 5) and a torn one (seq 13). */
export async function plan(path: string, opts: { flushed?: number; tornHead?: boolean } = {}): Promise<Plan> {
  const file = await readFile(path);
  const expected = Buffer.alloc(SIZE);
  for (let i = 0; i < 3; i++) fill(i + 1, MiB).copy(expected, i * MiB);
  const fileSize = file.length; // 7 MiB: blocks 0-2 at 4, 5, 6 MiB
  const batPage = Buffer.from(file.subarray(BAT_OFFSET, BAT_OFFSET + 4096));
  writeBatEntry(batPage, 3, PAYLOAD_BLOCK_FULLY_PRESENT, fileSize); // block 3 → a new block past the end of the file
  const sectorB = fill(50, 4096);
  const sectorC = fill(60, 4096);
  const tailPos = LOG_LENGTH - 4096;
  const common = { logGuid: LOG_GUID, tail: tailPos, flushedFileOffset: opts.flushed ?? fileSize, lastFileOffset: fileSize + MiB };
  const descA: LogDescriptorSpec[] = [{ kind: 'data', fileOffset: BAT_OFFSET, bytes: batPage }];
  const descB: LogDescriptorSpec[] = [
    { kind: 'zero', fileOffset: 4 * MiB + 64 * 1024, length: 8192 },
    { kind: 'data', fileOffset: fileSize + 4096, bytes: sectorB },
  ];
  const descC: LogDescriptorSpec[] = [{ kind: 'data', fileOffset: 5 * MiB + 12 * 1024, bytes: sectorC }];
  const a = buildLogEntry({ ...common, sequenceNumber: 10n, descriptors: descA }); // 8 KiB: wraps
  const b = buildLogEntry({ ...common, sequenceNumber: 11n, descriptors: descB });
  const c = buildLogEntry({ ...common, sequenceNumber: 12n, descriptors: descC });
  if (opts.tornHead) c[100] ^= 0xff;
  const torn = buildLogEntry({ ...common, sequenceNumber: 13n, descriptors: descC });
  torn[200] ^= 1;
  const stale = buildLogEntry({ ...common, tail: 512 * 1024, sequenceNumber: 5n, descriptors: [{ kind: 'data', fileOffset: 6 * MiB, bytes: Buffer.alloc(4096, 0xee) }] });
  const posB = (tailPos + a.length) % LOG_LENGTH;
  const posC = posB + b.length;
  expected.fill(0, 64 * 1024, 64 * 1024 + 8192);
  sectorB.copy(expected, 3 * MiB + 4096);
  if (!opts.tornHead) sectorC.copy(expected, 1 * MiB + 12 * 1024);
  return {
    entries: [
      { position: tailPos, bytes: a }, { position: posB, bytes: b }, { position: posC, bytes: c },
      { position: posC + c.length, bytes: torn }, { position: 512 * 1024, bytes: stale },
    ],
    expected,
  };
}

export async function install(path: string, p: Plan, logGuid = LOG_GUID): Promise<void> {
  const fh = await open(path, 'r+');
  try {
    for (const e of p.entries) {
      const first = Math.min(e.bytes.length, LOG_LENGTH - e.position);
      await fh.write(e.bytes, 0, first, LOG_OFFSET + e.position);
      if (first < e.bytes.length) await fh.write(e.bytes, first, e.bytes.length - first, LOG_OFFSET);
    }
    for (const off of HEADER_OFFSETS) {
      const cur = Buffer.alloc(4096);
      await fh.read(cur, 0, 4096, off);
      const h = parseHeader(cur, { path, offset: off });
      if (!h.ok) throw h.problem;
      const nh = buildHeader({ ...h.value, sequenceNumber: h.value.sequenceNumber + 2n, logGuid });
      await fh.write(nh, 0, nh.length, off);
    }
  } finally {
    await fh.close();
  }
}

