/** Helpers of the issue 9 regression tests: a small two-image differencing chain made by the project's writers. */
import type { BlockSource, DiskFormat } from '../../src/formats/types.js';
import { writeDisk } from '../../src/formats/write.js';

export const CHAIN_SIZE = 4 << 20;
const BLOCK = 1 << 20;

/** `count` blocks of 1 MiB; block i is filled with `fill(i)`, or inherited/zero where that is null. */
function source(fill: (i: number) => number | null): BlockSource {
  return {
    virtualSize: CHAIN_SIZE,
    blockSize: BLOCK,
    async *blocks() {
      for (let i = 0; i < CHAIN_SIZE / BLOCK; i++) {
        const v = fill(i);
        yield { index: i, data: v === null ? null : Buffer.alloc(BLOCK, v) };
      }
    },
  };
}

/** A base image (blocks 1..4 filled with 0x11..0x44) and a differencing child (block 1 = 0xcc) of it. */
export async function makeChain(format: Exclude<DiskFormat, 'raw'>, basePath: string, childPath: string): Promise<void> {
  await writeDisk(format, source((i) => 0x11 * (i + 1)), basePath);
  await writeDisk(format, source((i) => (i === 1 ? 0xcc : null)), childPath, { variant: 'differencing', parentPath: basePath });
}

/** What the child of makeChain reads as. */
export function chainContent(): Buffer {
  const out = Buffer.alloc(CHAIN_SIZE);
  for (let i = 0; i < CHAIN_SIZE / BLOCK; i++) out.fill(i === 1 ? 0xcc : 0x11 * (i + 1), i * BLOCK, (i + 1) * BLOCK);
  return out;
}
