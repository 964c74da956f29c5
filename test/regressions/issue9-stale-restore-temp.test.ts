/**
 * Issue 9: a killed restore left its full-size `.NAME.tmp-PID-*` file behind and nothing cleaned it up. Now
 * the appliance removes stale temp files (process gone AND untouched for the grace period) under its restore
 * roots when it starts, and in the target folder before each restore; a live writer's temp file stays.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readdirSync, statSync, utimesSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t, { type Test } from 'tap';
import { STALE_TEMP_GRACE_MS } from '../../src/util/stale-temps.js';
import { closePool } from '../../src/pool/index.js';
import { startTestAppliance } from '../api/helpers.js';
import { tempDir } from '../helpers/env.js';
import { backedUpAppliance } from './issue9-helpers.js';

t.teardown(() => closePool());

const WRITE_JS = fileURLToPath(new URL('../../src/formats/write.js', import.meta.url));
/** A process writing an 8 MiB raw image to argv[2] that stalls after its first block (until killed). */
const WRITER = `
const { writeDisk } = await import(process.argv[1]);
setInterval(() => undefined, 1000);
const source = { virtualSize: 8 << 20, blockSize: 65536, async *blocks() {
  yield { index: 0, data: Buffer.alloc(65536, 7) };
  process.stdout.write('writing\\n');
  await new Promise(() => undefined);
} };
await writeDisk('raw', source, process.argv[2], {});
`;

/** Start a writer of `out`; resolves with the process and its temp file once the temp file exists. */
function startWriter(t: Test, out: string): Promise<{ proc: ChildProcess; temp: string }> {
  const proc = spawn(process.execPath, ['--input-type=module', '-e', WRITER, WRITE_JS, out], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(() => void proc.kill('SIGKILL'));
  return new Promise((resolve, reject) => {
    proc.stdout!.on('data', () => {
      const temp = readdirSync(dirname(out)).find((n) => n.startsWith(`.${basename(out)}.tmp-${proc.pid}-`));
      if (temp) resolve({ proc, temp: join(dirname(out), temp) });
    });
    proc.on('exit', (code) => reject(new Error(`writer exited (${code}) before writing`)));
  });
}

async function killed(t: Test, out: string, aged: boolean): Promise<string> {
  const { proc, temp } = await startWriter(t, out);
  const exited = new Promise((r) => proc.on('exit', r));
  proc.kill('SIGKILL');
  await exited;
  if (aged) age(temp);
  return temp;
}

function age(path: string): void {
  const old = (Date.now() - STALE_TEMP_GRACE_MS - 60_000) / 1000;
  utimesSync(path, old, old);
}

const exists = (p: string): boolean => readdirSync(dirname(p)).includes(basename(p));

t.test('at appliance start: stale temp files under the restore roots go, live or recent ones stay', async (t) => {
  const data = join(tempDir(t, 'sv-stale-'), 'data');
  for (const d of ['a', 'b', 'a/deep']) mkdirSync(join(data, 'restores', d), { recursive: true });
  const stale = await killed(t, join(data, 'restores', 'a', 'x.img'), true);
  t.equal(statSync(stale).size, 8 << 20, 'the killed restore left a full-size temp file');
  const staleDeep = await killed(t, join(data, 'restores', 'a', 'deep', 'x.img'), true);
  const recent = await killed(t, join(data, 'restores', 'b', 'z.img'), false);
  const live = await startWriter(t, join(data, 'restores', 'a', 'y.img'));
  age(live.temp);

  await startTestAppliance(t, { dir: data });
  t.notOk(exists(stale), 'stale temp file removed');
  t.notOk(exists(staleDeep), 'stale temp file in a sub-folder removed');
  t.ok(exists(live.temp), 'a live writer\'s temp file is kept');
  t.ok(exists(recent), 'a temp file younger than the grace period is kept');
  live.proc.kill('SIGKILL');
});

t.test('before a restore: stale temp files in the target folder go', async (t) => {
  const dir = tempDir(t, 'sv-stale-');
  const { a, sourceId, pointId } = await backedUpAppliance(t, dir);
  mkdirSync(join(a.dir, 'restores', 'c'), { recursive: true });
  const stale = await killed(t, join(a.dir, 'restores', 'c', 'w.img'), true);
  const r = await a.call('operator', 'POST', `/api/v1/sources/${sourceId}/points/${pointId}/restore`, { disk: 'disk0', target: join(a.dir, 'restores', 'c', 'v.img'), format: 'raw' });
  t.equal((await a.appliance.queue.waitFor((r.json() as { id: string }).id)).state, 'succeeded');
  t.notOk(exists(stale), 'the killed restore\'s temp file is gone');
  t.same(readdirSync(join(a.dir, 'restores', 'c')), ['v.img']);
});
