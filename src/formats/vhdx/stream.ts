/**
 * The streamed VHDX: the dynamic image writer.ts writes, as an ImageLayout computed from which VHDX blocks
 * hold data, so a download can send it front to back without a temporary file.
 *
 * Layout (writer.ts's, byte for byte given the same identity): file identifier, headers 1 and 2 (sequence 1
 * and 2), region tables at 192 and 256 KiB; empty log at 1 MiB; metadata region at 2 MiB; BAT at 3 MiB (rounded
 * up to 1 MiB); then the present blocks in block order, each a whole block (the last one zero-padded), marked
 * FULLY_PRESENT; absent blocks NOT_PRESENT. No sector bitmap blocks (not differencing).
 * The identity (file write, data write and page 83 GUIDs) is a parameter: writer.ts draws it at random; a
 * download derives it from the recovery point, so the same point always streams the same bytes.
 */
import { createHash } from 'node:crypto';
import { SvError } from '../../errors/index.js';
import { makeLayout, presentBlocks, SegmentList, type ImageLayout } from '../image-layout.js';
import { batEntryCount } from './bat.js';
import { buildFileIdentifier, buildHeader, buildMetadataRegion, buildRegionTable, writeBatEntry } from './build.js';
import { ZERO_GUID, readGuid } from './guid.js';
import {
  GUIDS, HEADER_OFFSETS, MAX_VIRTUAL_SIZE, MiB, PAYLOAD_BLOCK_FULLY_PRESENT, REGION_TABLE_OFFSETS, WRITER_BAT_OFFSET,
  WRITER_DYNAMIC_BLOCK_SIZE, WRITER_LOG_LENGTH, WRITER_LOG_OFFSET, WRITER_METADATA_LENGTH, WRITER_METADATA_OFFSET, chunkRatioOf,
} from './layout.js';

export interface VhdxIdentity {
  readonly fileWriteGuid: string;
  readonly dataWriteGuid: string;
  readonly page83: string;
}

export interface VhdxStreamSpec {
  readonly virtualSize: number;
  /** Per VHDX block (`blockSize` bytes of the disk): non-zero when the block holds data. */
  readonly present: Uint8Array;
  readonly blockSize?: number;
  readonly identity: VhdxIdentity;
  readonly creator?: string;
}

const LOGICAL_SECTOR = 512;
const PHYSICAL_SECTOR = 4096;

/** Version-4-shaped GUIDs drawn from a seed (e.g. the point's id): the same seed, the same identity. */
export function vhdxIdentityFrom(seed: string): VhdxIdentity {
  const h = createHash('sha512').update(`shadowvault vhdx identity\0${seed}`).digest();
  const guid = (at: number): string => {
    const b = Buffer.from(h.subarray(at, at + 16));
    b[7] = (b[7]! & 0x0f) | 0x40;
    b[8] = (b[8]! & 0x3f) | 0x80;
    return readGuid(b);
  };
  return { fileWriteGuid: guid(0), dataWriteGuid: guid(16), page83: guid(32) };
}

/** The VHDX block size of a streamed image (the unit of the caller's presence map). */
export function vhdxStreamBlockSize(spec: { blockSize?: number }): number {
  return spec.blockSize ?? WRITER_DYNAMIC_BLOCK_SIZE;
}

export function vhdxStreamLayout(spec: VhdxStreamSpec): ImageLayout {
  const blockSize = vhdxStreamBlockSize(spec);
  const vsize = spec.virtualSize;
  if (!Number.isSafeInteger(vsize) || vsize <= 0 || vsize > MAX_VIRTUAL_SIZE || vsize % LOGICAL_SECTOR !== 0) {
    throw new SvError('SV_ERR_FORMAT_BAD_OPTION', `VHDX virtual size must be a multiple of ${LOGICAL_SECTOR} from ${LOGICAL_SECTOR} to 64 TiB, not ${vsize}`, { virtualSize: vsize });
  }
  const dataBlocks = Math.ceil(vsize / blockSize);
  if (spec.present.length !== dataBlocks) {
    throw new SvError('SV_ERR_CORE_INTERNAL', `VHDX stream: presence map of ${spec.present.length} blocks for a disk of ${dataBlocks}`, { expected: dataBlocks, found: spec.present.length });
  }
  const totalEntries = batEntryCount({ blockSize, virtualSize: vsize, logicalSectorSize: LOGICAL_SECTOR, hasParent: false });
  const batLength = Math.ceil((totalEntries * 8) / MiB) * MiB;
  const bat = Buffer.alloc(totalEntries * 8);
  const chunkRatio = chunkRatioOf(LOGICAL_SECTOR, blockSize);
  const blocks = presentBlocks(spec.present);
  const dataStart = WRITER_BAT_OFFSET + batLength;
  blocks.forEach((b, k) => writeBatEntry(bat, b + Math.floor(b / chunkRatio), PAYLOAD_BLOCK_FULLY_PRESENT, dataStart + k * blockSize));

  const { fileWriteGuid, dataWriteGuid, page83 } = spec.identity;
  const head = new SegmentList().bytes(0, buildFileIdentifier(spec.creator ?? 'shadowvault'));
  HEADER_OFFSETS.forEach((at, i) => {
    head.bytes(at, buildHeader({ sequenceNumber: BigInt(i + 1), fileWriteGuid, dataWriteGuid, logGuid: ZERO_GUID, logLength: WRITER_LOG_LENGTH, logOffset: WRITER_LOG_OFFSET }));
  });
  const regions = buildRegionTable([
    { guid: GUIDS.batRegion, fileOffset: WRITER_BAT_OFFSET, length: batLength, required: true },
    { guid: GUIDS.metadataRegion, fileOffset: WRITER_METADATA_OFFSET, length: WRITER_METADATA_LENGTH, required: true },
  ]);
  for (const at of REGION_TABLE_OFFSETS) head.bytes(at, regions);
  const meta = buildMetadataRegion({
    blockSize, leaveBlocksAllocated: false, virtualSize: vsize, logicalSectorSize: LOGICAL_SECTOR, physicalSectorSize: PHYSICAL_SECTOR, page83,
  }, WRITER_METADATA_LENGTH);
  head.bytes(WRITER_METADATA_OFFSET, meta).bytes(WRITER_BAT_OFFSET, bat).zeroTo(dataStart);
  return makeLayout(head, {
    at: dataStart,
    stride: blockSize,
    blocks,
    parts: (b) => [{ kind: 'disk', at: 0, offset: b * blockSize, length: blockSize }],
  });
}
