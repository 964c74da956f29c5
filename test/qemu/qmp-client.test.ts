/**
 * QMP client behaviour that a real QEMU rarely shows, against a scripted server on a unix socket: a command
 * that times out while the connection stays usable (its late reply ignored), event waiters, a reply without
 * an id ending the connection, and the connect errors.
 */
import t from 'tap';
import { createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { QmpClient } from '../../src/qemu/qmp.js';
import { tempDir } from '../helpers/env.js';

const GREETING = '{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, "package": ""}, "capabilities": []}}\n';
const dir = tempDir(t, 'sv-qmp-client-');

/** A server that greets, then answers each command with `script(command, id, socket)`. */
async function scripted(name: string, script: (command: string, id: string, sock: Socket) => void, greet = true): Promise<string> {
  const path = join(dir, name);
  const server = createServer((sock) => {
    sock.on('error', () => undefined);
    if (greet) sock.write(GREETING);
    let buf = '';
    sock.on('data', (d: Buffer) => {
      buf += d.toString();
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        const msg = JSON.parse(buf.slice(0, nl)) as { execute: string; id: string };
        buf = buf.slice(nl + 1);
        if (msg.execute === 'qmp_capabilities') sock.write(`{"return": {}, "id": "${msg.id}"}\n`);
        else script(msg.execute, msg.id, sock);
      }
    });
  });
  await new Promise<void>((r) => server.listen(path, r));
  t.teardown(() => void server.close());
  return path;
}

t.test('a timed-out command leaves the connection usable; its late reply is ignored', async (t) => {
  let slowId = '';
  const path = await scripted('slow.sock', (command, id, sock) => {
    if (command === 'slow') slowId = id;
    else sock.write(`{"return": {"late": true}, "id": "${slowId}"}\n{"return": {"ok": 1}, "id": "${id}"}\n`);
  });
  const qmp = await QmpClient.connect(path);
  t.teardown(() => qmp.close());
  await t.rejects(qmp.execute('slow', undefined, { timeoutMs: 50 }), { code: 'SV_ERR_QEMU_TIMEOUT', details: { command: 'slow', timeoutMs: 50 } });
  t.same(await qmp.execute('fast'), { ok: 1 });
  t.equal(qmp.ended, undefined);
});

t.test('events reach listeners and waiters; a waiter times out with a code', async (t) => {
  const path = await scripted('events.sock', (_command, id, sock) => {
    sock.write('{"event": "JOB_STATUS_CHANGE", "data": {"id": "j1", "status": "running"}, "timestamp": {"seconds": 1, "microseconds": 5}}\n');
    sock.write('{"event": "JOB_STATUS_CHANGE", "data": {"id": "j1", "status": "concluded"}, "timestamp": {"seconds": 2, "microseconds": 0}}\n');
    sock.write(`{"return": {}, "id": "${id}"}\n`);
  });
  const qmp = await QmpClient.connect(path);
  t.teardown(() => qmp.close());
  const seen: string[] = [];
  const off = qmp.onEvent((e) => seen.push(`${e.event}:${String(e.data.status)}`));
  const concluded = qmp.waitForEvent('JOB_STATUS_CHANGE', (d) => d.status === 'concluded');
  await qmp.execute('go');
  t.match(await concluded, { event: 'JOB_STATUS_CHANGE', data: { id: 'j1' }, timestampUs: 2_000_000 });
  t.same(seen, ['JOB_STATUS_CHANGE:running', 'JOB_STATUS_CHANGE:concluded']);
  off();
  await t.rejects(qmp.waitForEvent('BLOCK_JOB_COMPLETED', undefined, 30), { code: 'SV_ERR_QEMU_TIMEOUT' });
});

t.test('a reply without our id ends the connection with SV_ERR_QEMU_PROTOCOL', async (t) => {
  const path = await scripted('noid.sock', (_command, _id, sock) => void sock.write('{"return": {}}\n'));
  const qmp = await QmpClient.connect(path);
  const waiter = qmp.waitForEvent('STOP');
  await t.rejects(qmp.execute('x'), { code: 'SV_ERR_QEMU_PROTOCOL', message: /unknown id undefined/ });
  await t.rejects(waiter, { code: 'SV_ERR_QEMU_PROTOCOL' }, 'event waiters end with the connection');
  await t.rejects(qmp.execute('y'), { code: 'SV_ERR_QEMU_PROTOCOL' });
});

t.test('connect errors', async (t) => {
  await t.rejects(QmpClient.connect(join(dir, 'missing.sock')), { code: 'SV_ERR_QEMU_CONNECT', message: /ENOENT/ });
  const silent = await scripted('silent.sock', () => undefined, false);
  await t.rejects(QmpClient.connect(silent, { connectTimeoutMs: 100 }), { code: 'SV_ERR_QEMU_CONNECT', message: /no greeting within 100 ms/ });
});
