/**
 * Wire.write corks a tick's writes together (src/nbd/wire.ts): many small requests written in one tick reach
 * the peer in a few reads, not one per request, in order; the socket is uncorked on setImmediate, so a
 * write of a later tick goes out too. A real unix socket server counts the chunks it receives.
 */
import { createServer, Socket } from 'node:net';
import { join } from 'node:path';
import { setImmediate as tick } from 'node:timers/promises';
import t from 'tap';
import { Wire } from '../../src/nbd/wire.js';
import { tempDir } from '../helpers/env.js';

t.test('writes of one tick go out corked together, in order', async (t) => {
  const path = join(tempDir(t, 'sv-wire-'), 'w.sock');
  const got: Buffer[] = [];
  let peer: Socket | undefined;
  const server = createServer((s) => {
    peer = s;
    s.on('data', (d: Buffer) => got.push(d));
  });
  await new Promise<void>((r) => server.listen(path, r));
  const wire = await Wire.open({ path }, 5000);
  t.teardown(async () => {
    peer?.destroy();
    await wire.end(1000);
    server.close();
  });
  while (!peer) await tick();
  const requests = Array.from({ length: 500 }, (_, i) => Buffer.from(`request ${String(i).padStart(4, '0')};`));
  // Count the socket's writes to its handle (one _write per uncorked write; one _writev per uncork).
  const proto = Socket.prototype as unknown as Record<'_write' | '_writev', (...a: unknown[]) => unknown>;
  const calls = { write: 0, writev: 0 };
  const orig = { write: proto._write, writev: proto._writev };
  proto._write = function (this: unknown, ...a: unknown[]) { calls.write++; return orig.write.apply(this, a); };
  proto._writev = function (this: unknown, ...a: unknown[]) { calls.writev++; return orig.writev.apply(this, a); };
  t.teardown(() => Object.assign(proto, { _write: orig.write, _writev: orig.writev }));
  for (const r of requests) wire.write(r);
  await tick();
  t.ok(calls.write + calls.writev <= 2, `500 writes of one tick: ${calls.writev} writev and ${calls.write} write call(s) on the socket`);
  const total = requests.reduce((n, r) => n + r.length, 0);
  while (got.reduce((n, b) => n + b.length, 0) < total) await tick();
  t.ok(Buffer.concat(got).equals(Buffer.concat(requests)), 'every byte, in order');
  got.length = 0;
  wire.write(Buffer.from('later'));
  while (got.reduce((n, b) => n + b.length, 0) < 5) await tick();
  t.equal(Buffer.concat(got).toString(), 'later', 'a write of a later tick goes out (uncorked on setImmediate)');
});
