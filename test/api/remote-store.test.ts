/**
 * The CLI's remote point/disk references (src/cli/remote-store.ts) in process: "latest", ids, unique prefixes,
 * disk index or name, when the CLI is remote; and a bounded fuzz of both references (only catalogued errors).
 */
import t from 'tap';
import { isRemote, remoteDisk, resolveRemotePoint, summaryOf, type RemotePoint } from '../../src/cli/remote-store.js';
import { SvError } from '../../src/errors/index.js';

const pt = (id: string): RemotePoint => ({ id, sourceId: 's1', time: '2026-01-01T00:00:00.000Z', tag: 'sync', disks: [{ name: 'disk0', file: 'a.vhdx', virtualSize: 4 }, { name: 'data', file: 'b.img', virtualSize: 8 }] });
const points = [pt('20260101T000000Z-aaaa'), pt('20260102T000000Z-bbbb'), pt('20260102T000000Z-bbcc')];

t.test('point references', async (t) => {
  t.equal(resolveRemotePoint(points, 'vm', undefined).id, points[2]!.id, 'none: the newest');
  t.equal(resolveRemotePoint(points, 'vm', 'latest').id, points[2]!.id);
  t.equal(resolveRemotePoint(points, 'vm', points[1]!.id).id, points[1]!.id, 'an exact id');
  t.equal(resolveRemotePoint(points, 'vm', '20260101').id, points[0]!.id, 'a unique prefix');
  t.throws(() => resolveRemotePoint(points, 'vm', '20260102T000000Z-bb'), { code: 'SV_ERR_STORE_POINT_NOT_FOUND', message: /2 points start with/ });
  t.throws(() => resolveRemotePoint(points, 'vm', 'x'), { code: 'SV_ERR_STORE_POINT_NOT_FOUND', message: /no point "x"/ });
  t.throws(() => resolveRemotePoint([], 'vm', undefined), { code: 'SV_ERR_STORE_POINT_NOT_FOUND', message: /no recovery points/ });
});

t.test('disk references', async (t) => {
  t.same(remoteDisk(points[0]!, undefined), { index: 0, name: 'disk0' }, 'default: disk 0');
  t.same(remoteDisk(points[0]!, '1'), { index: 1, name: 'data' }, 'an index');
  t.same(remoteDisk(points[0]!, 'data'), { index: 1, name: 'data' }, 'a name');
  for (const bad of ['2', '-1', '1.0', '', 'disk9', '0x1']) t.throws(() => remoteDisk(points[0]!, bad), { code: 'SV_ERR_SYNC_DISK_NOT_FOUND' }, `--disk "${bad}"`);
});

t.test('remote or local', async (t) => {
  t.equal(isRemote({}, {}), false);
  t.equal(isRemote({ url: 'http://h:1' }, {}), true);
  t.equal(isRemote({ 'token-file': '/t' }, {}), true);
  t.equal(isRemote({}, { SHADOWVAULT_URL: 'http://h:1' }), true, 'SHADOWVAULT_URL alone');
  t.equal(isRemote({ store: '/s' }, { SHADOWVAULT_URL: 'http://h:1' }), false, 'an explicit --store wins over the environment');
});

t.test('summary: the engine details, or what the appliance knows', async (t) => {
  const details = { id: 'p', source: 'vm', kind: 'initial' };
  t.same(summaryOf({ ...pt('p'), details }, 'vm'), details);
  t.match(summaryOf(pt('p'), 'vm'), { id: 'p', source: 'vm', kind: 'sync', disks: [{ index: 0, name: 'a.vhdx', virtualSize: 4 }, { index: 1, name: 'b.img' }] });
});

t.test('fuzz: random references give a point, a disk or a catalogued error (bounded)', async (t) => {
  let seed = 12345;
  const next = (): number => (seed = (seed * 1103515245 + 12345) & 0x7fffffff);
  const alphabet = '0123456789abcdefTZ-_.@/ %\u0000\u00e9';
  let errors = 0;
  for (let i = 0; i < 3000; i++) {
    const ref = Array.from({ length: next() % 24 }, () => alphabet[next() % alphabet.length]).join('');
    for (const f of [() => resolveRemotePoint(points, 'vm', ref), () => remoteDisk(points[next() % 3]!, ref)]) {
      try {
        f();
      } catch (err) {
        if (!(err instanceof SvError)) throw err;
        errors++;
      }
    }
  }
  t.ok(errors > 0, `${errors} refused, all with catalogued codes`);
});
