/** Coded errors from unpackBlock (corrupt payloads, wrong digests) and from loading the addon. */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { BLOCK_FLAG, blockAt, hash, packBlocks, unpackBlock, ZERO_DIGEST } from '../../src/native/index.js';
import { REPO_ROOT, tempDir } from '../helpers/env.js';

const text = Buffer.from('shadowvault keeps every block once; '.repeat(3000).slice(0, 65536), 'latin1');
const packed = blockAt(packBlocks(text, 65536, 1), 0);

t.test('the fixture block is a zstd frame', async (t) => {
  t.equal(packed.flag, BLOCK_FLAG.ZSTD);
});

t.test('wrong digest → SV_ERR_NATIVE_DIGEST_MISMATCH, for every block kind', async (t) => {
  const wrong = Buffer.from(packed.digest);
  wrong[5] ^= 0x40;
  t.throws(() => unpackBlock(packed.payload, BLOCK_FLAG.ZSTD, wrong, 65536), { name: 'SvError', code: 'SV_ERR_NATIVE_DIGEST_MISMATCH' }, 'zstd');
  const raw = Buffer.from('raw bytes');
  t.throws(() => unpackBlock(raw, BLOCK_FLAG.RAW, ZERO_DIGEST, raw.length), { code: 'SV_ERR_NATIVE_DIGEST_MISMATCH' }, 'raw');
  t.throws(() => unpackBlock(Buffer.alloc(0), BLOCK_FLAG.ZERO, hash(Buffer.alloc(4)), 4), { code: 'SV_ERR_NATIVE_DIGEST_MISMATCH' }, 'zero');
  try {
    unpackBlock(packed.payload, BLOCK_FLAG.ZSTD, wrong, 65536);
  } catch (err) {
    const e = err as Error & { details: Record<string, unknown> };
    t.match(e.message, wrong.toString('hex'), 'the message names the expected digest');
    t.match(e.message, packed.digest.toString('hex'), 'and the actual one');
    t.same(e.details, { flag: BLOCK_FLAG.ZSTD, size: 65536, payloadLength: packed.payload.length });
  }
});

t.test('corrupt payloads → SV_ERR_NATIVE_CORRUPT_PAYLOAD', async (t) => {
  const cases: Array<[string, () => unknown]> = [
    ['not a zstd frame', () => unpackBlock(Buffer.from('definitely not zstd'), BLOCK_FLAG.ZSTD, packed.digest, 65536)],
    ['truncated frame', () => unpackBlock(packed.payload.subarray(0, packed.payload.length - 3), BLOCK_FLAG.ZSTD, packed.digest, 65536)],
    ['empty frame', () => unpackBlock(Buffer.alloc(0), BLOCK_FLAG.ZSTD, packed.digest, 65536)],
    ['frame decodes to more than size', () => unpackBlock(packed.payload, BLOCK_FLAG.ZSTD, packed.digest, 65535)],
    ['frame decodes to less than size', () => unpackBlock(packed.payload, BLOCK_FLAG.ZSTD, packed.digest, 65537)],
    ['raw payload of the wrong length', () => unpackBlock(text.subarray(0, 100), BLOCK_FLAG.RAW, hash(text.subarray(0, 100)), 101)],
    ['zero block with a payload', () => unpackBlock(Buffer.alloc(3), BLOCK_FLAG.ZERO, ZERO_DIGEST, 3)],
    ['unknown flag', () => unpackBlock(packed.payload, 7, packed.digest, 65536)],
  ];
  for (const [what, fn] of cases) t.throws(fn, { name: 'SvError', code: 'SV_ERR_NATIVE_CORRUPT_PAYLOAD' }, what);
});

t.test('a RAW result shares memory with the payload (no copy)', async (t) => {
  const raw = Buffer.from('0123456789');
  const out = unpackBlock(raw, BLOCK_FLAG.RAW, hash(raw), raw.length);
  t.equal(out.buffer, raw.buffer);
});

function loadIn(env: Record<string, string>): { status: number | null; stderr: string } {
  const script = `import('${join(REPO_ROOT, 'build/src/native/index.js')}').then((m) => m.hash(Buffer.alloc(1))).then(
    () => process.exit(0), (e) => { process.stderr.write(e.code + ' ' + e.message); process.exit(3); })`;
  const r = spawnSync(process.execPath, ['-e', script], { env: { ...process.env, ...env }, encoding: 'utf8' });
  return { status: r.status, stderr: r.stderr };
}

t.test('a missing addon is SV_ERR_NATIVE_NOT_BUILT naming npm run build:native', async (t) => {
  const r = loadIn({ SHADOWVAULT_NATIVE_ADDON: join(tempDir(t), 'nope.node') });
  t.equal(r.status, 3);
  t.match(r.stderr, /^SV_ERR_NATIVE_NOT_BUILT /);
  t.match(r.stderr, 'npm run build:native');
});

t.test('a file that is not an addon is SV_ERR_NATIVE_LOAD_FAILED', async (t) => {
  const r = loadIn({ SHADOWVAULT_NATIVE_ADDON: join(REPO_ROOT, 'package.json') });
  t.equal(r.status, 3);
  t.match(r.stderr, /^SV_ERR_NATIVE_LOAD_FAILED /);
});
