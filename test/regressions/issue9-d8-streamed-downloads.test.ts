/**
 * Issue 9, D8: image downloads were unbounded. Every `?format=vhd|vhdx` download first wrote a full temporary
 * copy under store/tmp-export (12 slow downloads: 12 copies), nothing limited how many ran at once, and Range
 * was ignored. Against a real `shadowvault serve` with a 100 MiB disk with holes (data at 0, at 70 MiB and in
 * the last 64 KiB; VHDX blocks of 32 MiB: present, absent, present, present-and-short):
 * (a) VHDX and VHD downloads start streaming with no file appearing anywhere in the store, and the result is
 *     valid for qemu-img (check, compare with the source) and for our reader;
 * (b) downloads past --max-downloads-per-token / --max-downloads get 429 SV_ERR_API_TOO_MANY_DOWNLOADS with
 *     Retry-After, and a slot comes back when its client goes away;
 * (c) Range on raw: first bytes, a middle range, a suffix, an open end, 416 past the end, multi-range → 200.
 */
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { get, type IncomingMessage } from 'node:http';
import { join } from 'node:path';
import t from 'tap';
import { decompress } from 'zstd-napi';
import { openDisk } from '../../src/formats/open.js';
import { requireTool, run, tempDir } from '../helpers/env.js';
import { api, cli, serve } from '../api/serve-helper.js';

const MiB = 1 << 20;
const SIZE = 100 * MiB;

function pattern(length: number, seed: number): Buffer {
  const line = `d8 seed ${seed} streamed download test data `;
  return Buffer.from(line.repeat(Math.ceil(length / line.length)).slice(0, length), 'latin1');
}

/** The source disk: sparse file, data at 0 (1 MiB), at 70 MiB (128 KiB) and in the last 64 KiB. */
function makeDisk(path: string): Buffer {
  const buf = Buffer.alloc(SIZE);
  pattern(MiB, 1).copy(buf, 0);
  pattern(128 * 1024, 2).copy(buf, 70 * MiB);
  pattern(64 * 1024, 3).copy(buf, SIZE - 64 * 1024);
  writeFileSync(path, buf);
  return buf;
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => !e.isDirectory()).map((e) => join(e.parentPath, e.name)).sort();
}

/** GET with node:http (so a download can be held open without reading it). */
function open(url: string, token: string, headers: Record<string, string> = {}): Promise<{ res: IncomingMessage; abort(): void }> {
  return new Promise((resolve, reject) => {
    const req = get(url, { headers: { authorization: `Bearer ${token}`, ...headers } }, (res) => {
      res.pause();
      resolve({ res, abort: () => req.destroy() });
    });
    req.on('error', reject);
  });
}

async function body(res: IncomingMessage): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of res) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

t.test('D8: streamed, limited, ranged image downloads', async (t) => {
  const qemuImg = requireTool('qemu-img');
  const dir = tempDir(t, 'sv-d8-');
  const data = join(dir, 'data');
  const store = join(data, 'store');
  const diskPath = join(dir, 'vm-d8-disk0.img');
  const disk = makeDisk(diskPath);
  const backup = await cli(['backup', diskPath, '--source', 'vm-d8', '--store', store, '--json'], { HOME: dir });
  t.equal(backup.code, 0, backup.stderr);
  const pointId = (JSON.parse(backup.stdout) as { id: string }).id;

  const s = await serve(['--data-dir', data, '--source-root', dir, '--max-downloads', '2', '--max-downloads-per-token', '1'], { SHADOWVAULT_WORKERS: '1' });
  t.teardown(() => s.proc.kill('SIGKILL'));
  const admin = readFileSync(join(data, 'admin-token'), 'utf8').trim();
  const src = await api<{ id: string }>(s, admin, 'POST', '/api/v1/sources', { name: 'vm-d8', disks: [{ name: 'disk0', path: diskPath }], attach: true });
  t.equal(src.status, 201, JSON.stringify(src.json));
  const tokens: string[] = [];
  for (const name of ['a', 'b', 'c']) {
    const r = await api<{ token: string }>(s, admin, 'POST', '/api/v1/tokens', { name, role: 'operator' });
    t.equal(r.status, 201);
    tokens.push(r.json.token);
  }
  const [ta, tb, tc] = tokens as [string, string, string];
  const imageUrl = (q: string) => `${s.url}/api/v1/sources/${src.json.id}/points/${pointId}/disks/disk0/image?${q}`;

  await t.test('(a) vhdx and vhd stream with no file in the store, valid for qemu-img and our reader', async (t) => {
    const before = filesUnder(store);
    for (const [format, qemuFormat] of [['vhdx', 'vhdx'], ['vhd', 'vpc']] as const) {
      const { res } = await open(imageUrl(`format=${format}`), ta);
      t.equal(res.statusCode, 200, format);
      const length = Number(res.headers['content-length']);
      t.ok(length > 3 * MiB, `${format}: exact Content-Length known up front (${length})`);
      const first = (await res[Symbol.asyncIterator]().next()) as IteratorResult<Buffer>;
      t.notOk(first.done, `${format}: the first bytes arrive`);
      t.same(filesUnder(store), before, `${format}: no file appeared in the store while streaming (no tmp-export copy)`);
      const out = join(dir, `dl.${format}`);
      writeFileSync(out, Buffer.concat([first.value as Buffer, await body(res)]));
      t.equal(statSync(out).size, length, `${format}: as many bytes as announced`);
      if (format === 'vhdx') run(qemuImg, ['check', '-f', 'vhdx', out]);
      run(qemuImg, ['compare', '-f', qemuFormat, '-F', 'raw', out, diskPath]);
      t.pass(`${format}: qemu-img ${format === 'vhdx' ? 'check passes and ' : ''}compare says identical to the source`);
      const image = await openDisk(out);
      try {
        t.equal(image.info.format, format);
        t.equal(image.info.virtualSize, SIZE);
        t.ok((await image.read(0, SIZE)).equals(disk), `${format}: our reader reads back the source bytes`);
      } finally {
        await image.close();
      }
    }
    const vhdx = readFileSync(join(dir, 'dl.vhdx'));
    t.equal(vhdx.length, 4 * MiB + 3 * 32 * MiB, 'VHDX: header, log, metadata, BAT, then 3 of the 4 blocks (the hole is not stored)');
    const again = await fetch(imageUrl('format=vhdx'), { headers: { authorization: `Bearer ${ta}` } });
    t.ok(Buffer.from(await again.arrayBuffer()).equals(vhdx), 'the same point streams the same bytes every time');
    const zst = await fetch(imageUrl('format=vhdx&compression=zstd'), { headers: { authorization: `Bearer ${ta}` } });
    t.equal(zst.status, 200);
    t.equal(zst.headers.get('x-uncompressed-length'), String(vhdx.length));
    t.ok(decompress(Buffer.from(await zst.arrayBuffer())).equals(vhdx), 'compression=zstd: the same VHDX, one zstd stream');
    const tail = await fetch(imageUrl('format=vhdx'), { headers: { authorization: `Bearer ${ta}`, range: 'bytes=-3000000' } });
    t.equal(tail.status, 206);
    t.ok(Buffer.from(await tail.arrayBuffer()).equals(vhdx.subarray(vhdx.length - 3_000_000)), 'Range on a VHDX: its last bytes');
  });

  await t.test('(b) parallel downloads past the limits get 429 with the code and Retry-After', async (t) => {
    const refused = async (token: string, scope: string) => {
      const r = await fetch(imageUrl('format=vhdx'), { headers: { authorization: `Bearer ${token}` } });
      t.equal(r.status, 429, `${scope}: 429`);
      t.ok(Number(r.headers.get('retry-after')) > 0, `${scope}: Retry-After`);
      t.match(await r.json(), { code: 'SV_ERR_API_TOO_MANY_DOWNLOADS', details: { scope } });
    };
    const a1 = await open(imageUrl('format=vhdx'), ta);
    t.equal(a1.res.statusCode, 200, 'token a: first download runs');
    await refused(ta, 'token');
    const b1 = await open(imageUrl('format=raw'), tb);
    t.equal(b1.res.statusCode, 200, 'token b: its first download runs (2 on the appliance)');
    await refused(tc, 'appliance');
    a1.abort();
    // The slot comes back once the server has seen the client go (polled, not timed).
    let status = 429;
    for (let i = 0; i < 100 && status === 429; i++) {
      const c1 = await open(imageUrl('format=raw'), tc);
      status = c1.res.statusCode ?? 0;
      if (status === 429) await new Promise((r) => setTimeout(r, 50));
      c1.abort();
    }
    t.equal(status, 200, 'token c runs once token a went away');
    b1.abort();
  });

  await t.test('(c) Range on raw downloads', async (t) => {
    const ranged = async (range: string) => {
      let r: Response | undefined;
      for (let i = 0; i < 100; i++) { // wait for the slots of (b)'s aborted downloads
        r = await fetch(imageUrl('format=raw'), { headers: { authorization: `Bearer ${ta}`, range } });
        if (r.status !== 429) break;
        await r.arrayBuffer();
        await new Promise((res) => setTimeout(res, 50));
      }
      return r!;
    };
    const cases: [string, number, number][] = [
      ['bytes=0-99', 0, 99],
      [`bytes=${70 * MiB - 1000}-${70 * MiB + 200_000}`, 70 * MiB - 1000, 70 * MiB + 200_000],
      ['bytes=-70000', SIZE - 70000, SIZE - 1],
      [`bytes=${SIZE - 100_000}-`, SIZE - 100_000, SIZE - 1],
      [`bytes=${SIZE - 10}-${SIZE + 1000}`, SIZE - 10, SIZE - 1],
    ];
    for (const [range, start, end] of cases) {
      const r = await ranged(range);
      t.equal(r.status, 206, `${range}: 206`);
      t.equal(r.headers.get('content-range'), `bytes ${start}-${end}/${SIZE}`);
      t.equal(r.headers.get('content-length'), String(end - start + 1));
      t.ok(Buffer.from(await r.arrayBuffer()).equals(disk.subarray(start, end + 1)), `${range}: the restored raw's bytes`);
    }
    const past = await ranged(`bytes=${SIZE}-`);
    t.equal(past.status, 416, 'a range past the end: 416');
    t.equal(past.headers.get('content-range'), `bytes */${SIZE}`);
    t.match(await past.json(), { code: 'SV_ERR_API_RANGE_NOT_SATISFIABLE' });
    const multi = await ranged('bytes=0-1,5-6');
    t.equal(multi.status, 200, 'multi-range: the whole image, 200');
    t.equal(multi.headers.get('accept-ranges'), 'bytes');
    t.ok(Buffer.from(await multi.arrayBuffer()).equals(disk), 'the whole raw image is the source disk');
  });
});
