/**
 * Store locations (storage/backend/open.ts parseStoreUrl) and object keys (keys.ts checkKey) under random
 * input: mutations of valid s3:// URLs and random strings either parse into a well-formed reference or are
 * refused with SV_ERR_BACKEND_BAD_URL (keys: SV_ERR_BACKEND_BAD_KEY); nothing else is ever thrown, and a
 * parsed reference always satisfies the rules the S3 backend relies on (a valid bucket, a prefix of key
 * segments ending with '/', an http(s) endpoint without a path).
 */
import t from 'tap';
import { prng } from '../../bench/gen-disk.js';
import { hasCode } from '../../src/errors/index.js';
import { checkKey, isValidKey } from '../../storage/backend/keys.js';
import { parseStoreUrl } from '../../storage/backend/open.js';

const ROUNDS = process.env.SHADOWVAULT_SOAK ? 200_000 : 5_000;
const SEEDS = [
  's3://backups/site-a/vms?endpoint=http://127.0.0.1:7480&region=eu-1',
  's3://b-1.x/p?lock=COMPLIANCE:30&rate=100&readOnly=true&pathStyle=false',
  's3://bucket',
  '/var/lib/store',
];
const ALPHABET = 's3:/?&=.%@#-_ aZ09:\u00e9\0\\[]';

function mutate(rand: () => number, text: string): string {
  const chars = [...text];
  const edits = 1 + Math.floor(rand() * 4);
  for (let i = 0; i < edits; i++) {
    const at = Math.floor(rand() * (chars.length + 1));
    const c = ALPHABET[Math.floor(rand() * ALPHABET.length)]!;
    const op = rand();
    if (op < 0.4) chars.splice(at, 1);
    else if (op < 0.8) chars.splice(at, 0, c);
    else chars[at] = c;
  }
  return chars.join('');
}

t.test('parseStoreUrl: a valid reference or SV_ERR_BACKEND_BAD_URL', async (t) => {
  const rand = prng(1313);
  let parsed = 0;
  let refused = 0;
  for (let i = 0; i < ROUNDS; i++) {
    const text = mutate(rand, SEEDS[i % SEEDS.length]!);
    try {
      const ref = parseStoreUrl(text, '/cwd');
      parsed++;
      if (ref.kind === 'fs') {
        if (!ref.dir.startsWith('/')) t.fail(`${JSON.stringify(text)}: relative dir ${ref.dir}`);
        continue;
      }
      const ok = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(ref.bucket)
        && (ref.prefix === '' || (ref.prefix.endsWith('/') && isValidKey(ref.prefix.slice(0, -1))))
        && (ref.endpoint === null || /^https?:\/\/[^/?#@]+$/.test(ref.endpoint))
        && Number.isFinite(ref.rateLimit) && ref.rateLimit >= 0;
      if (!ok) t.fail(`${JSON.stringify(text)} parsed into a bad reference ${JSON.stringify(ref)}`);
    } catch (err) {
      refused++;
      if (!hasCode(err, 'SV_ERR_BACKEND_BAD_URL')) t.fail(`${JSON.stringify(text)}: ${(err as Error).message}`);
    }
  }
  t.ok(parsed > 0 && refused > 0, `${parsed} parsed, ${refused} refused`);
});

t.test('checkKey: valid keys pass, everything else is SV_ERR_BACKEND_BAD_KEY', async (t) => {
  const rand = prng(7);
  const seeds = ['packs/0011223344556677.pack', 'points/vm1/20260101T000000000Z-abcdef.json', 'store.json'];
  let bad = 0;
  for (let i = 0; i < ROUNDS; i++) {
    const key = mutate(rand, seeds[i % seeds.length]!);
    try {
      checkKey(key);
      const parts = key.split('/');
      if (parts.some((p) => p === '' || p === '.' || p === '..' || !/^[A-Za-z0-9._-]+$/.test(p)) || parts.length > 8) t.fail(`${JSON.stringify(key)} accepted`);
    } catch (err) {
      bad++;
      if (!hasCode(err, 'SV_ERR_BACKEND_BAD_KEY')) t.fail(`${JSON.stringify(key)}: ${(err as Error).message}`);
    }
  }
  t.ok(bad > 0, `${bad} refused`);
});
