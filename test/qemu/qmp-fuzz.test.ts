/**
 * Seeded fuzz of the QMP and guest-agent line decoders against a hostile server on a unix socket: mutated
 * greetings and replies, wrong ids, stray 0xFF, lines over the cap, bytes split at random, early closes.
 * Every call must settle (bounded), either with a value or with a catalogued SV_ERR_QEMU_* code; a line
 * over the cap must end the connection before the peer has sent it all (no unbounded buffering).
 */
import t, { type Test } from 'tap';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { prng } from '../../bench/data.js';
import { specOf } from '../../src/errors/catalogue.js';
import { LineDecoder } from '../../src/qemu/line-decoder.js';
import { GuestAgentClient } from '../../src/qemu/guest-agent.js';
import { QmpClient } from '../../src/qemu/qmp.js';
import { parseQmpLine } from '../../src/qemu/qmp-protocol.js';
import { tempDir } from '../helpers/env.js';

const CAP = 4096;
const GREETING = '{"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}, "package": "x"}, "capabilities": ["oob"]}}';
const dir = tempDir(t, 'sv-qmp-fuzz-');

type Rand = () => number;
const pick = <T>(rand: Rand, items: T[]): T => items[Math.floor(rand() * items.length)] as T;

/** A hostile variant of one line (without its newline); a quarter of the time the line itself. */
function mutate(line: string, rand: Rand): Buffer {
  let buf = Buffer.from(line);
  if (rand() < 0.25) return buf;
  switch (Math.floor(rand() * 9)) {
    case 0: return Buffer.from(line.replace('"return"', '"retrun"'));
    case 1: buf[Math.floor(rand() * buf.length)] = Math.floor(rand() * 256); return buf;
    case 2: return buf.subarray(0, Math.floor(rand() * buf.length));
    case 3: return Buffer.concat([buf.subarray(0, 5), Buffer.from([0xff]), buf.subarray(5)]);
    case 4: return Buffer.from(pick(rand, ['[]', '42', 'null', '"x"', '{}', '{"return": 1, "error": {}}', '{"event": 5}', '{"error": {"class": 1}}', GREETING, '{"event":"STOP","timestamp":{"seconds":1}}']));
    case 5: return Buffer.alloc(CAP + 1 + Math.floor(rand() * 3 * CAP), 0x20);
    case 6: buf = Buffer.from(line.replace(/"id": ?"sv-\d+"/u, '"id": "sv-999999"')); return buf;
    case 7: return Buffer.concat([Buffer.from('{"event":"RESUME","timestamp":{"seconds":1,"microseconds":2}}\n'), buf]);
    default: return Buffer.concat([buf, Buffer.from('\r')]);
  }
}

/** Write `data` in random chunks; sometimes close in the middle. */
function send(sock: Socket, data: Buffer, rand: Rand): void {
  let at = 0;
  while (at < data.length && !sock.destroyed) {
    const n = 1 + Math.floor(rand() * 200);
    sock.write(data.subarray(at, at + n));
    at += n;
    if (rand() < 0.01) sock.destroy();
  }
}

async function listen(path: string, onLine: (sock: Socket, line: Buffer) => void, onConnect: (sock: Socket) => void): Promise<Server> {
  const server = createServer((sock) => {
    sock.on('error', () => undefined);
    let pending = Buffer.alloc(0);
    sock.on('data', (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      for (let nl = pending.indexOf(10); nl >= 0; nl = pending.indexOf(10)) {
        onLine(sock, pending.subarray(0, nl));
        pending = pending.subarray(nl + 1);
      }
    });
    onConnect(sock);
  });
  await new Promise<void>((r) => server.listen(path, r));
  return server;
}

/** Settles with 'ok' or the error's code; fails the test for an uncatalogued error or a hang. */
async function outcome(t: Test, what: string, p: Promise<unknown>): Promise<string> {
  let guard: NodeJS.Timeout | undefined;
  const hang = new Promise<string>((r) => (guard = setTimeout(() => r('HANG'), 3000)));
  const result = await Promise.race([p.then(() => 'ok', (err: unknown) => String((err as { code?: unknown }).code ?? err)), hang]);
  clearTimeout(guard);
  if (result === 'HANG' || (result !== 'ok' && (!result.startsWith('SV_ERR_QEMU_') || !specOf(result)))) t.fail(`${what}: ${result}`);
  return result;
}

t.test('QMP client against a hostile server', async (t) => {
  const rand = prng(0x0e10);
  const path = join(dir, 'qmp.sock');
  const server = await listen(path, (sock, line) => {
    const id = /"id":"(sv-\d+)"/u.exec(line.toString())?.[1];
    send(sock, Buffer.concat([mutate(`{"return": {"status": "running", "running": true}, "id": "${id}"}`, rand), Buffer.from('\n')]), rand);
  }, (sock) => send(sock, Buffer.concat([mutate(GREETING, rand), Buffer.from('\n')]), rand));
  const codes = new Map<string, number>();
  for (let i = 0; i < 150; i++) {
    const run = (async () => {
      const qmp = await QmpClient.connect(path, { connectTimeoutMs: 150, commandTimeoutMs: 100, maxLineBytes: CAP });
      try {
        await Promise.all([qmp.execute('query-status'), qmp.execute('query-status')]);
      } finally {
        qmp.close();
      }
    })();
    const code = await outcome(t, `iteration ${i}`, run);
    codes.set(code, (codes.get(code) ?? 0) + 1);
  }
  server.close();
  t.ok((codes.get('ok') ?? 0) > 3 && (codes.get('SV_ERR_QEMU_PROTOCOL') ?? 0) > 10, JSON.stringify([...codes]));
});

t.test('guest-agent client against a hostile agent', async (t) => {
  const rand = prng(0x9a);
  const path = join(dir, 'ga.sock');
  const server = await listen(path, (sock, raw) => {
    const line = raw.toString('latin1').replace(/^\xff/u, '');
    const sync = /"id":(\d+)/u.exec(line)?.[1];
    const reply = sync ? `{"return": ${rand() < 0.1 ? Number(sync) + 1 : sync}}` : '{"return": {}}';
    const stale = rand() < 0.3 ? Buffer.from('{"return": 7}\n{"ret') : Buffer.alloc(0);
    if (rand() < 0.5) return void sock.write(Buffer.concat([sync ? Buffer.from([0xff]) : Buffer.alloc(0), Buffer.from(`${reply}\n`)]));
    send(sock, Buffer.concat([stale, sync && rand() < 0.8 ? Buffer.from([0xff]) : Buffer.alloc(0), mutate(reply, rand), Buffer.from('\n')]), rand);
  }, () => undefined);
  const codes = new Map<string, number>();
  for (let i = 0; i < 120; i++) {
    const run = (async () => {
      const ga = await GuestAgentClient.connect(path, { connectTimeoutMs: 150, commandTimeoutMs: 60, maxLineBytes: CAP });
      try {
        await ga.ping();
        await ga.fsfreezeStatus();
      } finally {
        ga.close();
      }
    })();
    const code = await outcome(t, `iteration ${i}`, run);
    codes.set(code, (codes.get(code) ?? 0) + 1);
  }
  server.close();
  t.ok((codes.get('ok') ?? 0) > 5 && (codes.get('SV_ERR_QEMU_PROTOCOL') ?? 0) > 5 && (codes.get('SV_ERR_QEMU_TIMEOUT') ?? 0) > 5, JSON.stringify([...codes]));
});

t.test('a line over the cap ends the connection before the peer has sent it', async (t) => {
  const path = join(dir, 'long.sock');
  let written = 0;
  const server = await listen(path, () => undefined, (sock) => {
    const chunk = Buffer.alloc(64 << 10, 0x41);
    const pump = (): void => {
      while (!sock.destroyed && written < (256 << 20)) {
        written += chunk.length;
        if (!sock.write(chunk)) return void sock.once('drain', pump);
      }
    };
    pump();
  });
  const err = await QmpClient.connect(path, { maxLineBytes: 1 << 20 }).catch((e: unknown) => e);
  server.close();
  t.match(err, { code: 'SV_ERR_QEMU_PROTOCOL', details: { maxLineBytes: 1 << 20 } });
  t.ok(written < (64 << 20), `the server wrote ${written} bytes before the client hung up`);
});

t.test('LineDecoder: random chunking gives the same lines; parseQmpLine only coded errors', async (t) => {
  const rand = prng(77);
  for (let iter = 0; iter < 300; iter++) {
    const lines = Array.from({ length: 1 + Math.floor(rand() * 8) }, () => mutate(`{"return": ${Math.floor(rand() * 1e6)}, "id": "sv-1"}`, rand).toString('latin1').replace(/[\n\r\xff]/gu, ' ').slice(0, 200));
    const stream = Buffer.from(lines.map((l) => `${l}\n`).join(''), 'latin1');
    const decoder = new LineDecoder('fuzz', 256);
    const got: string[] = [];
    for (let at = 0; at < stream.length;) {
      const n = 1 + Math.floor(rand() * 40);
      got.push(...decoder.push(stream.subarray(at, at + n)));
      at += n;
    }
    const want = lines.filter((l) => l.length > 0).map((l) => Buffer.from(l, 'latin1').toString('utf8'));
    if (JSON.stringify(got) !== JSON.stringify(want)) t.fail(`iteration ${iter}: ${JSON.stringify(got)} != ${JSON.stringify(want)}`);
    for (const line of got) {
      try {
        parseQmpLine('fuzz', line);
      } catch (err) {
        if ((err as { code?: string }).code !== 'SV_ERR_QEMU_PROTOCOL') t.fail(`iteration ${iter}: ${String(err)}`);
      }
    }
  }
  const decoder = new LineDecoder('fuzz', 8);
  t.throws(() => decoder.push(Buffer.from('123456789')), { code: 'SV_ERR_QEMU_PROTOCOL' });
  t.throws(() => decoder.push(Buffer.from('\n')), { code: 'SV_ERR_QEMU_PROTOCOL' }, 'stays poisoned');
  const resync = new LineDecoder('fuzz', 64);
  resync.resync();
  t.same(resync.push(Buffer.from('stale\n{"ret\xff{"return": 1}\n', 'latin1')), ['{"return": 1}']);
});
