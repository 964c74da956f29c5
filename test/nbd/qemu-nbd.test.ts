/**
 * The NBD client against qemu-nbd: a raw and a qcow2 image with seeded random data and holes are read
 * completely with many requests in flight (SHA-256 equal to the file's), and base:allocation extents match
 * `qemu-img map --output=json`.
 */
import { createHash } from 'node:crypto';
import { closeSync, openSync, readFileSync, writeSync, ftruncateSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { prng } from '../../bench/data.js';
import { NbdClient, type NbdExtent } from '../../src/nbd/client.js';
import { CONTEXT, STATE } from '../../src/nbd/protocol.js';
import { requireTool, run, tempDir } from '../helpers/env.js';
import { qemuNbd } from './peers.js';

const SIZE = 48 << 20;
const MiB = 1 << 20;

/** A sparse raw file: random data runs (64 KiB-aligned) separated by holes. */
function makeRaw(path: string): void {
  const rand = prng(1010);
  const fd = openSync(path, 'w');
  ftruncateSync(fd, SIZE);
  for (let at = 0; at < SIZE; ) {
    const run = (1 + Math.floor(rand() * 24)) * 65536;
    const len = Math.min(run, SIZE - at);
    if (rand() < 0.5) {
      const data = Buffer.alloc(len);
      for (let i = 0; i < len; i += 4) data.writeUInt32LE((rand() * 0x100000000) >>> 0 || 1, i);
      writeSync(fd, data, 0, len, at);
    }
    at += len;
  }
  closeSync(fd);
}

interface MapEntry {
  start: number;
  length: number;
  data: boolean;
  zero: boolean;
}

/** Ranges as [start, length, hole, zero], adjacent equal ones merged. */
function merge(items: { start: number; length: number; hole: boolean; zero: boolean }[]): [number, number, boolean, boolean][] {
  const out: [number, number, boolean, boolean][] = [];
  for (const e of items) {
    const last = out[out.length - 1];
    if (last && last[2] === e.hole && last[3] === e.zero && last[0] + last[1] === e.start) last[1] += e.length;
    else out.push([e.start, e.length, e.hole, e.zero]);
  }
  return out;
}

async function allExtents(client: NbdClient): Promise<NbdExtent[]> {
  const out: NbdExtent[] = [];
  for (let at = 0; at < client.size; ) {
    const extents = await client.blockStatus(at, client.size - at, CONTEXT.BASE_ALLOCATION);
    out.push(...extents);
    at = extents[extents.length - 1]!.offset + extents[extents.length - 1]!.length;
  }
  return out;
}

for (const format of ['raw', 'qcow2'] as const) {
  t.test(`qemu-nbd ${format}: full read with requests in flight, extents equal qemu-img map`, async (t) => {
    requireTool('qemu-img');
    const dir = tempDir(t);
    const raw = join(dir, 'disk.raw');
    makeRaw(raw);
    let image = raw;
    if (format === 'qcow2') {
      image = join(dir, 'disk.qcow2');
      run('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', raw, image]);
    }
    const sock = await qemuNbd(t, dir, image, format);
    const client = await NbdClient.connect({ target: { path: sock }, metaContexts: [CONTEXT.BASE_ALLOCATION], maxInFlight: 8, maxRequestBytes: MiB });
    t.teardown(() => client.close());
    t.equal(client.size, SIZE);
    t.ok(client.structuredReplies);
    t.ok(client.readOnly);
    t.same(client.contexts, [CONTEXT.BASE_ALLOCATION]);

    // 48 requests of 1 MiB, at most 8 outstanding: sample how many are in flight as each completes.
    let peak = 0;
    const parts: Promise<Buffer>[] = [];
    for (let at = 0; at < SIZE; at += MiB) {
      parts.push(
        client.read(at, MiB).then((b) => {
          peak = Math.max(peak, client.inFlight);
          return b;
        }),
      );
    }
    const whole = Buffer.concat(await Promise.all(parts));
    t.ok(peak >= 7, `requests in flight when the first ones completed: ${peak}`);
    const want = createHash('sha256').update(readFileSync(raw)).digest('hex');
    t.equal(createHash('sha256').update(whole).digest('hex'), want, 'chunked reads equal the file');
    // One read() call splits into maxRequestBytes requests itself.
    t.equal(createHash('sha256').update(await client.read(0, SIZE)).digest('hex'), want, 'one split read equals the file');

    const map = JSON.parse(run('qemu-img', ['map', '--output=json', '-f', format, image])) as MapEntry[];
    const expected = merge(map.map((m) => ({ start: m.start, length: m.length, hole: !m.data, zero: m.zero })));
    const got = merge((await allExtents(client)).map((e) => ({ start: e.offset, length: e.length, hole: (e.flags & STATE.HOLE) !== 0, zero: (e.flags & STATE.ZERO) !== 0 })));
    t.same(got, expected, 'base:allocation equals qemu-img map');
    t.ok(got.length > 4, `${got.length} extents`);
  });
}

t.test('qemu-nbd: unknown export, missing context, bad requests are coded errors', async (t) => {
  const dir = tempDir(t);
  const raw = join(dir, 'small.raw');
  run('qemu-img', ['create', '-f', 'raw', raw, '1M']);
  const sock = await qemuNbd(t, dir, raw, 'raw', ['-x', 'disk']);
  await t.rejects(NbdClient.connect({ target: { path: sock }, exportName: 'nope' }), { code: 'SV_ERR_NBD_EXPORT_NOT_FOUND' });
  await t.rejects(NbdClient.connect({ target: { path: sock }, exportName: 'disk', metaContexts: ['qemu:dirty-bitmap:none'] }), { code: 'SV_ERR_NBD_NO_META_CONTEXT' });
  await t.rejects(NbdClient.connect({ target: { path: join(dir, 'absent.sock') } }), { code: 'SV_ERR_NBD_CONNECT' });
  await t.rejects(NbdClient.connect({ target: { path: sock }, maxInFlight: 0 }), { code: 'SV_ERR_CORE_INVALID_ARGUMENT' });
  const client = await NbdClient.connect({ target: { path: sock }, exportName: 'disk' });
  await t.rejects(client.read(MiB - 512, 1024), { code: 'SV_ERR_NBD_BAD_REQUEST' });
  await t.rejects(client.read(0, 0), { code: 'SV_ERR_NBD_BAD_REQUEST' });
  await t.rejects(client.blockStatus(0, 512, CONTEXT.BASE_ALLOCATION), { code: 'SV_ERR_NBD_NO_META_CONTEXT' });
  t.equal((await client.read(0, 4096)).length, 4096);
  await client.close();
  await t.rejects(client.read(0, 512), { code: 'SV_ERR_NBD_CLOSED' });
});
