/**
 * The streamed VHD: the dynamic image writer.ts writes, as an ImageLayout computed from which VHD blocks hold
 * data, so a download can send it front to back without a temporary file.
 *
 * Layout (writer.ts's, byte for byte given the same identity): footer copy, dynamic header at 512, BAT at
 * 1536 (sector padded, 0xFFFFFFFF = absent); then each present block in block order as its sector bitmap
 * (every sector of the block marked, padded to a sector: the writer's, though readers ignore it in a dynamic
 * disk) and its data (the last block zero-padded); then the footer. The size is rounded up to whole sectors.
 * The identity (unique id, time stamp) is a parameter: writer.ts uses a random id and the current time; a
 * download derives the id from the recovery point and uses the point's time, so a point always streams the
 * same bytes.
 */
import { createHash } from 'node:crypto';
import { SvError } from '../../errors/index.js';
import { makeLayout, presentBlocks, SegmentList, type ImageLayout } from '../image-layout.js';
import { encodeDynHeader, encodeFooter } from './build.js';
import { DYN_HEADER_SIZE, DiskType, FOOTER_SIZE, SECTOR, VHD_EPOCH, VHD_MAX_SIZE, bitmapBytes } from './structs.js';
import { VHD_DEFAULT_BLOCK } from './writer.js';

export interface VhdIdentity {
  /** 16 bytes. */
  readonly uniqueId: Buffer;
  /** Seconds since the VHD epoch (2000-01-01). */
  readonly timeStamp: number;
}

export interface VhdStreamSpec {
  readonly virtualSize: number;
  /** Per VHD block (`blockSize` bytes of the disk): non-zero when the block holds data. */
  readonly present: Uint8Array;
  readonly blockSize?: number;
  readonly identity: VhdIdentity;
}

/** An identity drawn from a seed (e.g. the point's id) and a time: the same inputs, the same identity. */
export function vhdIdentityFrom(seed: string, time: Date): VhdIdentity {
  const uniqueId = createHash('sha256').update(`shadowvault vhd identity\0${seed}`).digest().subarray(0, 16);
  return { uniqueId, timeStamp: Math.max(0, Math.floor(time.getTime() / 1000) - VHD_EPOCH) };
}

/** The VHD block size of a streamed image (the unit of the caller's presence map). */
export function vhdStreamBlockSize(spec: { blockSize?: number }): number {
  return spec.blockSize ?? VHD_DEFAULT_BLOCK;
}

export function vhdStreamLayout(spec: VhdStreamSpec): ImageLayout {
  const blockSize = vhdStreamBlockSize(spec);
  const size = Math.ceil(spec.virtualSize / SECTOR) * SECTOR;
  if (!Number.isSafeInteger(size) || size < 0 || size > VHD_MAX_SIZE) {
    throw new SvError('SV_ERR_VHD_TOO_LARGE', `a VHD holds at most ${VHD_MAX_SIZE} bytes; the disk has ${spec.virtualSize}`, { expected: `<= ${VHD_MAX_SIZE}`, found: spec.virtualSize });
  }
  const count = Math.ceil(size / blockSize);
  if (spec.present.length !== count) {
    throw new SvError('SV_ERR_CORE_INTERNAL', `VHD stream: presence map of ${spec.present.length} blocks for a disk of ${count}`, { expected: count, found: spec.present.length });
  }
  const tableOffset = FOOTER_SIZE + DYN_HEADER_SIZE;
  const batBytes = Math.ceil((count * 4) / SECTOR) * SECTOR;
  const dataStart = tableOffset + batBytes;
  const bm = bitmapBytes(blockSize);
  const stride = bm + blockSize;
  const blocks = presentBlocks(spec.present);
  const bat = Buffer.alloc(batBytes, 0xff);
  blocks.forEach((b, k) => bat.writeUInt32BE((dataStart + k * stride) / SECTOR, b * 4));
  const bitmap = Buffer.alloc(bm, 0);
  bitmap.fill(0xff, 0, blockSize / SECTOR / 8);
  const { uniqueId, timeStamp } = spec.identity;
  const footer = encodeFooter({ diskType: DiskType.dynamic, size, dataOffset: FOOTER_SIZE, uniqueId, timeStamp });
  const header = encodeDynHeader({ tableOffset, maxTableEntries: count, blockSize, locators: [] });
  const head = new SegmentList().bytes(0, footer).bytes(FOOTER_SIZE, header).bytes(tableOffset, bat);
  return makeLayout(head, {
    at: dataStart,
    stride,
    blocks,
    parts: (b) => [
      { kind: 'bytes', at: 0, data: bitmap },
      { kind: 'disk', at: bm, offset: b * blockSize, length: blockSize },
    ],
  }, new SegmentList().bytes(0, footer).items);
}
