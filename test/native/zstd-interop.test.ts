/** The addon's zstd frames are ordinary frames: the zstd CLI and zstd-napi read them, and the addon reads theirs. */
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { compress, decompress } from 'zstd-napi';
import { BLOCK_FLAG, blockAt, hash, packBlocks, unpackBlock } from '../../src/native/index.js';
import { requireTool } from '../helpers/env.js';

function logText(size: number): Buffer {
  const lines: string[] = [];
  let n = 0;
  for (let i = 0; n < size; i++) {
    const line = `2026-11-24T12:${String(i % 60).padStart(2, '0')}:00Z sv-store[${1000 + (i % 97)}] INFO wrote chunk ${(i * 2654435761) >>> 0} size=${(i * 7919) % 65536}\n`;
    lines.push(line);
    n += line.length;
  }
  return Buffer.from(lines.join('').slice(0, size), 'latin1');
}

const data = Buffer.concat([logText(200_000), randomBytes(70_000), logText(62_144)]);
const batch = packBlocks(data, 65536, 1);
const zstdBlocks = Array.from({ length: batch.count }, (_, i) => blockAt(batch, i)).filter((b) => b.flag === BLOCK_FLAG.ZSTD);

t.test('the batch has zstd frames to check', async (t) => {
  t.ok(zstdBlocks.length >= 3, `${zstdBlocks.length} zstd blocks`);
});

t.test('zstd -d decodes every frame to the original block', async (t) => {
  const zstd = requireTool('zstd');
  for (const b of zstdBlocks) {
    const out = execFileSync(zstd, ['-d', '-q', '-c'], { input: b.payload, maxBuffer: 1 << 24 });
    t.ok(out.equals(data.subarray(b.index * 65536, b.index * 65536 + b.size)), `block ${b.index}`);
  }
});

t.test('the concatenated frames are one valid multi-frame zstd stream for the CLI', async (t) => {
  const zstd = requireTool('zstd');
  const frames = Buffer.concat(zstdBlocks.map((b) => b.payload));
  const out = execFileSync(zstd, ['-d', '-q', '-c'], { input: frames, maxBuffer: 1 << 24 });
  t.ok(out.equals(Buffer.concat(zstdBlocks.map((b) => data.subarray(b.index * 65536, b.index * 65536 + b.size)))));
});

t.test('zstd-napi decompress reads every frame', async (t) => {
  for (const b of zstdBlocks) t.ok((decompress(b.payload)).equals(data.subarray(b.index * 65536, b.index * 65536 + b.size)), `block ${b.index}`);
});

t.test('unpackBlock reads frames made by the zstd CLI and by zstd-napi', async (t) => {
  const zstd = requireTool('zstd');
  const block = logText(65536);
  const digest = hash(block);
  for (const level of ['-1', '-3', '-19']) {
    const frame = execFileSync(zstd, [level, '-q', '-c'], { input: block });
    t.ok((unpackBlock(frame, BLOCK_FLAG.ZSTD, digest, block.length)).equals(block), `zstd CLI ${level} (with checksum)`);
  }
  t.ok((unpackBlock(compress(block), BLOCK_FLAG.ZSTD, digest, block.length)).equals(block), 'zstd-napi compress');
});
