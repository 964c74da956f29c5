/**
 * The shared contract suite of storage/backend/types.ts: every backend and every wrapper stack runs it
 * (restic's backend tests). `backendContract(t, name, make)` opens one backend with `make()` and checks every
 * clause of the contract on it, each in its own subtest with its own keys; `cleanup` runs at the end (also on
 * failure). Bodies are small (a few KiB) except one `{file}` put of `bigFileBytes` (default 6 MiB: above S3's
 * 5 MiB multipart part size, so an S3 backend uploads it in parts).
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Test } from 'tap';
import { hasCode } from '../../src/errors/index.js';
import type { Backend, ObjectInfo } from '../../storage/backend/types.js';

export interface ContractOptions {
  /** Size of the large `{file}` put (default 6 MiB). */
  readonly bigFileBytes?: number;
}

/** Every object a listing yields. */
export async function listAll(b: Backend, prefix: string): Promise<ObjectInfo[]> {
  const out: ObjectInfo[] = [];
  for await (const o of b.list(prefix)) out.push(o);
  return out;
}

/** Does the promise reject with this code? (a helper so tests never compare codes by hand) */
async function rejectsWith(t: Test, p: Promise<unknown>, code: Parameters<typeof hasCode>[1], what: string): Promise<void> {
  try {
    await p;
    t.fail(`${what}: resolved, expected ${code}`);
  } catch (err) {
    t.ok(hasCode(err, code), `${what}: ${code} (got ${(err as { code?: unknown }).code}: ${(err as Error).message})`);
  }
}

export function backendContract(
  t: Test, name: string, make: () => Promise<{ backend: Backend; cleanup: () => Promise<void> }>, options: ContractOptions = {},
): Promise<void> {
  return t.test(`backend contract: ${name}`, async (t) => {
    const { backend: b, cleanup } = await make();
    const scratch = mkdtempSync(join(tmpdir(), 'sv-contract-'));
    t.teardown(async () => {
      rmSync(scratch, { recursive: true, force: true });
      await b.close();
      await b.close(); // idempotent
      await cleanup();
    });
    const run = `c${randomBytes(4).toString('hex')}`; // keys of this run (a shared bucket may hold others)

    await t.test('ref and location', async (t) => {
      t.ok(b.ref.kind === 'fs' || b.ref.kind === 's3', 'ref has a kind');
      t.type(b.location, 'string');
      t.ok(JSON.parse(JSON.stringify(b.ref)), 'ref is serialisable');
    });

    await t.test('put then get, stat, list', async (t) => {
      const key = `packs/${run}-a.pack`;
      const body = randomBytes(3000);
      const before = Date.now();
      await b.put(key, body);
      t.same(await b.get(key), body, 'get returns the whole object');
      const st = await b.stat(key);
      t.equal(st.key, key);
      t.equal(st.size, body.length, 'stat size');
      t.ok(st.createdMs > before - 5 * 60_000 && st.createdMs < Date.now() + 5 * 60_000, `createdMs ${st.createdMs} is about now (clock skew allowed)`);
      const listed = await listAll(b, `packs/${run}-a`);
      t.same(listed.map((o) => [o.key, o.size]), [[key, body.length]], 'list yields it with its size');
    });

    await t.test('put is create-only: EXISTS, existing object unchanged', async (t) => {
      const key = `index/${run}-b.idx`;
      const first = randomBytes(100);
      await b.put(key, first);
      await rejectsWith(t, b.put(key, randomBytes(200)), 'SV_ERR_BACKEND_EXISTS', 'second put');
      const file = join(scratch, 'again');
      writeFileSync(file, randomBytes(50));
      await rejectsWith(t, b.put(key, { file }), 'SV_ERR_BACKEND_EXISTS', 'second put of a file');
      t.same(await b.get(key), first, 'the first object is unchanged');
    });

    await t.test('concurrent puts on one key: exactly one wins', async (t) => {
      const key = `points/${run}/c.json`;
      const bodies = Array.from({ length: 8 }, (_, i) => Buffer.from(`body ${i} ${randomBytes(8).toString('hex')}`));
      const results = await Promise.all(bodies.map((body) => b.put(key, body).then(() => null, (err: unknown) => err)));
      const winners = results.flatMap((r, i) => (r === null ? [i] : []));
      t.equal(winners.length, 1, 'one put resolved');
      t.ok(results.every((r) => r === null || hasCode(r, 'SV_ERR_BACKEND_EXISTS')), `the others failed with EXISTS (${results.map((r) => (r as Error | null)?.message ?? 'ok').join('; ')})`);
      t.same(await b.get(key), bodies[winners[0]!], 'the object is the winner\'s body, whole');
    });

    await t.test('getRange: exact bytes, past the end SHORT_READ', async (t) => {
      const key = `packs/${run}-r.pack`;
      const body = randomBytes(10_000);
      await b.put(key, body);
      t.same(await b.getRange(key, 0, 10), body.subarray(0, 10), 'head');
      t.same(await b.getRange(key, 4321, 1234), body.subarray(4321, 5555), 'middle');
      t.same(await b.getRange(key, 9990, 10), body.subarray(9990), 'up to the end exactly');
      const many = await Promise.all(Array.from({ length: 20 }, (_, i) => b.getRange(key, i * 500, 500)));
      t.same(Buffer.concat(many), body, 'concurrent ranges');
      await rejectsWith(t, b.getRange(key, 9990, 11), 'SV_ERR_BACKEND_SHORT_READ', 'range one byte past the end');
      await rejectsWith(t, b.getRange(key, 20_000, 5), 'SV_ERR_BACKEND_SHORT_READ', 'range starting past the end');
    });

    await t.test('missing keys: NOT_FOUND', async (t) => {
      const key = `packs/${run}-missing.pack`;
      await rejectsWith(t, b.get(key), 'SV_ERR_BACKEND_NOT_FOUND', 'get');
      await rejectsWith(t, b.getRange(key, 0, 1), 'SV_ERR_BACKEND_NOT_FOUND', 'getRange');
      await rejectsWith(t, b.stat(key), 'SV_ERR_BACKEND_NOT_FOUND', 'stat');
    });

    await t.test('bad keys: BAD_KEY, nothing touched', async (t) => {
      for (const key of ['', '/packs/x', 'packs/x/', 'packs//x', '../x', 'packs/../x', 'packs/./x', 'a/b/c/d/e/f/g/h/i', 'packs/x y', 'packs/\u00e9']) {
        await rejectsWith(t, b.put(key, Buffer.from('x')), 'SV_ERR_BACKEND_BAD_KEY', `put ${JSON.stringify(key)}`);
        await rejectsWith(t, b.get(key), 'SV_ERR_BACKEND_BAD_KEY', `get ${JSON.stringify(key)}`);
      }
    });

    await t.test('list: complete, each once, by prefix, no temporaries', async (t) => {
      const keys = [
        ...Array.from({ length: 40 }, (_, i) => `packs/${run}-l${String(i).padStart(3, '0')}.pack`),
        ...Array.from({ length: 5 }, (_, i) => `points/${run}-l/vm${i % 2}/p${i}.json`),
      ];
      await Promise.all(keys.map((k) => b.put(k, Buffer.from(k))));
      const packs = await listAll(b, `packs/${run}-l`);
      t.same(packs.map((o) => o.key).sort(), keys.filter((k) => k.startsWith('packs/')).sort(), 'every pack once');
      const vm0 = await listAll(b, `points/${run}-l/vm0/`);
      t.same(vm0.map((o) => o.key).sort(), keys.filter((k) => k.includes('/vm0/')).sort(), 'a folder-like prefix');
      const all = await listAll(b, `points/${run}-l/`);
      t.equal(all.length, 5, 'nested prefix');
      for (const o of [...packs, ...all]) t.equal(o.size, Buffer.byteLength(o.key), `${o.key} size`);
      t.same(await listAll(b, `packs/${run}-nothing`), [], 'an empty prefix range');
    });

    await t.test('delete: gone from get and list, idempotent', async (t) => {
      const key = `packs/${run}-d.pack`;
      await b.put(key, Buffer.from('to delete'));
      await b.delete(key);
      await rejectsWith(t, b.get(key), 'SV_ERR_BACKEND_NOT_FOUND', 'get after delete');
      t.same(await listAll(b, `packs/${run}-d`), [], 'not listed');
      await b.delete(key);
      t.pass('a second delete is not an error');
      await b.put(key, Buffer.from('again'));
      t.same(await b.get(key), Buffer.from('again'), 'the key can be put again after delete');
    });

    await t.test('put of a {file} body', async (t) => {
      const small = join(scratch, 'small');
      const smallBody = randomBytes(777);
      writeFileSync(small, smallBody);
      await b.put(`index/${run}-f.idx`, { file: small });
      t.same(await b.get(`index/${run}-f.idx`), smallBody, 'small file');
      const big = join(scratch, 'big');
      const bigBody = randomBytes(options.bigFileBytes ?? 6 * 1024 * 1024);
      writeFileSync(big, bigBody);
      await b.put(`packs/${run}-big.pack`, { file: big });
      t.equal((await b.stat(`packs/${run}-big.pack`)).size, bigBody.length, 'big file size');
      t.same(await b.get(`packs/${run}-big.pack`), bigBody, 'big file content');
      t.same(await b.getRange(`packs/${run}-big.pack`, bigBody.length - 100_000, 100_000), bigBody.subarray(-100_000), 'a range of it');
    });

    await t.test('replace: creates, overwrites whole, readers see old or new', async (t) => {
      const key = `sources/${run}.json`;
      await b.replace(key, Buffer.from('{"v":1}'));
      t.same(await b.get(key), Buffer.from('{"v":1}'), 'created');
      const a = Buffer.alloc(64 * 1024, 'a');
      const c = Buffer.alloc(64 * 1024, 'c');
      await b.replace(key, a);
      const reads = await Promise.all(Array.from({ length: 10 }, async (_, i) => {
        if (i % 2) await b.replace(key, i % 4 === 1 ? c : a);
        return b.get(key);
      }));
      t.ok(reads.every((r) => r.equals(a) || r.equals(c)), 'every read is one whole version');
      t.equal((await listAll(b, `sources/${run}`)).length, 1, 'listed once, no temporaries');
    });

    await t.test('cleanup keeps completed objects', async (t) => {
      const key = `packs/${run}-k.pack`;
      await b.put(key, Buffer.from('keep'));
      const n = await b.cleanup(0);
      t.ok(Number.isInteger(n) && n >= 0, `cleanup returned a count (${n})`);
      t.same(await b.get(key), Buffer.from('keep'), 'a completed object survives cleanup(0)');
    });
  }).then(() => undefined);
}
