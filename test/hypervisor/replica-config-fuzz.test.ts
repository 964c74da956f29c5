/**
 * The `--replica` declaration parser (src/hypervisor/replica/config.ts): good specs, each kind of mistake
 * (coded SV_ERR_HYPERVISOR_REPLICA_CONFIG naming the field), then a seeded fuzz of mutated specs: every
 * outcome is a parsed config whose fields obey the rules, or that coded error; never anything else.
 */
import t from 'tap';
import { prng } from '../../bench/data.js';
import { parseReplicaSpec, parseReplicaSpecs } from '../../src/hypervisor/replica/config.js';
import { errorCode } from '../helpers/codes.js';

const GOOD = 'vm1=qsd=/run/qsd/vm1.qmp,node=replica0,nbd=/run/qsd/nbd.sock,primary=/run/primary/vm1.qmp,job=repl0';
const CODE = 'SV_ERR_HYPERVISOR_REPLICA_CONFIG';

t.test('a good spec', async (t) => {
  t.same(parseReplicaSpec(GOOD), { name: 'vm1', id: 'replica-vm1', qsd: '/run/qsd/vm1.qmp', node: 'replica0', nbd: '/run/qsd/nbd.sock', primary: '/run/primary/vm1.qmp', job: 'repl0' });
  t.equal(parseReplicaSpec(`${GOOD},id=6c2b4b1a-53f5-4d6e-9a4b-2f1a0c9e7d11`).id, '6c2b4b1a-53f5-4d6e-9a4b-2f1a0c9e7d11', 'an explicit id');
});

t.test('each mistake is coded and names the field', async (t) => {
  const cases: Array<[string, string | undefined]> = [
    ['', undefined], ['vm1', 'name'], ['=qsd=/a', 'name'], ['v m=qsd=/a', 'name'],
    [GOOD.replace(',job=repl0', ''), 'job'], [GOOD.replace('qsd=/run/qsd/vm1.qmp', 'qsd=run/qsd.qmp'), 'qsd'],
    [GOOD.replace('node=replica0', 'node=0bad'), 'node'], [`${GOOD},job=x`, 'job'], [`${GOOD},colour=red`, 'colour'],
    [GOOD.replace('primary=/run/primary/vm1.qmp', 'primary='), 'primary'], [`${GOOD},id=a/b`, 'id'],
  ];
  for (const [spec, field] of cases) {
    try {
      parseReplicaSpec(spec);
      t.fail(`accepted: ${spec}`);
    } catch (err) {
      t.equal((err as { code?: string }).code, CODE, `refused: ${spec}`);
      if (field) t.equal((err as { details: { field?: string } }).details.field, field, `names ${field}`);
    }
  }
  t.equal(errorCode(() => parseReplicaSpecs([GOOD, GOOD])), CODE, 'the same replica twice');
  t.equal(errorCode(() => parseReplicaSpec('x'.repeat(5000))), CODE, 'too long');
});

t.test('fuzz: parsed and valid, or the coded error', async (t) => {
  const rand = prng(0x7265706c);
  const alphabet = '=,/.-_ \0\u00e9aZ9:';
  let ok = 0;
  let refused = 0;
  for (let i = 0; i < 3000; i++) {
    const chars = [...GOOD];
    for (let k = 1 + Math.floor(rand() * 4); k > 0; k--) {
      const at = Math.floor(rand() * (chars.length + 1));
      const op = rand();
      if (op < 0.4) chars.splice(at, 1);
      else if (op < 0.8) chars.splice(at, 0, alphabet[Math.floor(rand() * alphabet.length)]!);
      else chars.splice(at, 0, ...chars.slice(0, Math.floor(rand() * 20)));
    }
    const spec = chars.join('');
    try {
      const c = parseReplicaSpec(spec);
      for (const p of [c.qsd, c.nbd, c.primary]) if (!p.startsWith('/') || p.includes('\0') || p.includes(',')) t.fail(`bad path accepted: ${JSON.stringify(spec)}`);
      for (const id of [c.node, c.job]) if (!/^[A-Za-z][A-Za-z0-9._-]{0,30}$/u.test(id)) t.fail(`bad QEMU id accepted: ${JSON.stringify(spec)}`);
      ok++;
    } catch (err) {
      if ((err as { code?: string }).code !== CODE) t.fail(`uncoded error for ${JSON.stringify(spec)}: ${String(err)}`);
      refused++;
    }
  }
  t.ok(ok > 0 && refused > 0, `${ok} parsed, ${refused} refused`);
});
