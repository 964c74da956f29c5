/**
 * Writable exports: writes, zeroes and trims from real clients (qemu-io, libnbd through nbdsh with 64
 * requests in flight) land in the scratch overlay. The export then reads exactly like a copy of the disk
 * given the same writes, and the exported image file is bit-identical to before.
 */
import { createHash } from 'node:crypto';
import { copyFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import type { Overlay } from '../../src/export/overlay.js';
import { requireTool, run, runAsync, tempDir } from '../helpers/env.js';
import { makeDisk, serveImage } from './serve-image.js';

const SIZE = 32 << 20;
const sha = (path: string): string => createHash('sha256').update(readFileSync(path)).digest('hex');

// Unaligned, partial-block, whole-block, zero and discard requests, some crossing 64 KiB overlay blocks.
const WRITES = ['write -P 0xab 1000 5000', 'write -P 0x11 65000 200000', 'write -z 4M 2M', 'discard 6M 1M', 'write -P 0x5a 31M 1M', 'write -z 100 300', 'write -P 0x77 6M 4096'];

t.test('writes go to the overlay; the image never changes', async (t) => {
  const dir = tempDir(t);
  const { raw, vhdx } = makeDisk(dir, SIZE, 31);
  const before = sha(vhdx);
  const served = await serveImage(t, dir, vhdx, { writable: true });
  t.match(await runAsync(requireTool('nbdinfo'), [served.uri()]), /is_read_only: false/, 'writable export');

  await runAsync(requireTool('qemu-io'), ['-f', 'raw', ...WRITES.flatMap((w) => ['-c', w]), served.uri()]);
  const expected = join(dir, 'expected.raw');
  copyFileSync(raw, expected);
  run('qemu-io', ['-f', 'raw', ...WRITES.flatMap((w) => ['-c', w]), expected]);
  t.match(await runAsync('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', expected, served.uri()]), /Images are identical/, 'export = a copy given the same writes');

  // libnbd: 64 writes then 64 reads in flight at once, each checked.
  const script = [
    'import os',
    'h.set_export_name("disk")',
    `h.connect_unix("${served.sock}")`,
    'n = 64; size = 65536; base = 8 << 20',
    'bufs = [bytes([i + 1]) * size for i in range(n)]',
    'cookies = [h.aio_pwrite(bufs[i], base + i * size) for i in range(n)]',
    'peak = h.aio_in_flight()',
    'while h.aio_in_flight() > 0: h.poll(-1)',
    'for c in cookies: assert h.aio_command_completed(c)',
    'outs = [nbd.Buffer(size) for i in range(n)]',
    'cookies = [h.aio_pread(outs[i], base + i * size) for i in range(n)]',
    'peak = max(peak, h.aio_in_flight())',
    'while h.aio_in_flight() > 0: h.poll(-1)',
    'for i in range(n): assert outs[i].to_bytearray() == bufs[i], i',
    'print("in-flight", peak)',
  ].join('\n');
  // nbdsh runs `python3 -m nbd`: the system python3 has the module (python3-libnbd), a PATH-first
  // python (pyenv) may not.
  const out = await runAsync(requireTool('nbdsh'), ['-c', script], { env: { ...process.env, PATH: `/usr/bin:${process.env.PATH ?? ''}` } });
  t.match(out, /in-flight 64/, 'nbdsh: 64 writes and 64 reads in flight, every read returns what was written');

  const overlay = served.backend as Overlay;
  t.ok(overlay.blocksWritten > 0, `overlay holds ${overlay.blocksWritten} blocks`);
  const ranges = overlay.writtenRanges();
  t.ok(ranges.some(([o, l]) => o <= 8 << 20 && o + l >= (8 << 20) + 64 * 65536), 'written ranges include the nbdsh writes');
  t.equal(sha(vhdx), before, 'the exported image is bit-identical to before');
});
