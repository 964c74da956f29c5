/**
 * Seeded fuzz of the SMB share parsers (src/smb/shares.ts): `--smb-share` and `--share` values, and the paths
 * a file server's agent is asked for (share.open: a hostile appliance or a confused host). Mutations of valid
 * values and random text: each parse either returns a well-formed share or throws SV_ERR_SMB_BAD_SHARE; each
 * path either resolves to a file inside the share's folder or throws SV_ERR_SMB_BAD_PATH; never anything else.
 */
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join, relative, isAbsolute } from 'node:path';
import t from 'tap';
import { prng } from '../../bench/data.js';
import { hasCode } from '../../src/errors/index.js';
import { parseServedShare, parseSmbShare, resolveInShare, shareOf } from '../../src/smb/shares.js';
import { tempDir } from '../helpers/env.js';
import { SOAK } from '../helpers/soak.js';

const ITERATIONS = SOAK ? 50_000 : 4000;
const rand = prng(11);
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
const ALPHABET = ['/', '\\', '=', ':', '.', '..', '$', '[', ']', '\0', ' ', 'a', 'Z', '9', '-', '_', '%', '\n', 'é', '//', '../', '0', '65536'];

function mutate(s: string): string {
  let out = s;
  for (let n = 1 + Math.floor(rand() * 4); n > 0; n--) {
    const at = Math.floor(rand() * (out.length + 1));
    const op = rand();
    if (op < 0.4) out = out.slice(0, at) + pick(ALPHABET) + out.slice(at);
    else if (op < 0.7) out = out.slice(0, at) + out.slice(at + 1 + Math.floor(rand() * 3));
    else out = out.slice(0, at) + out.slice(at).split('').reverse().join('');
  }
  return out;
}

t.test('--smb-share and --share values: a share or SV_ERR_SMB_BAD_SHARE', async (t) => {
  const seeds = ['//files1/vmstore=/mnt/vmstore', '//127.0.0.1:445/vms=/srv/a/b', '//[::1]:4450/x$=/x'];
  let ok = 0;
  for (let i = 0; i < ITERATIONS; i++) {
    const v = i % 10 === 0 ? Array.from({ length: Math.floor(rand() * 40) }, () => pick(ALPHABET)).join('') : mutate(pick(seeds));
    try {
      const s = parseSmbShare(v);
      ok++;
      if (!s.unc.startsWith('//') || !isAbsolute(s.localPath) || s.name.includes('/') || (s.port !== undefined && !(s.port >= 1 && s.port <= 65535))) t.fail(`malformed share from ${JSON.stringify(v)}: ${JSON.stringify(s)}`);
    } catch (err) {
      if (!hasCode(err, 'SV_ERR_SMB_BAD_SHARE')) t.fail(`${JSON.stringify(v)}: ${String(err)}`);
    }
    try {
      const s = parseServedShare(mutate('vmstore=/srv/vmstore'));
      if (!isAbsolute(s.path) || !s.name) t.fail(`malformed served share ${JSON.stringify(s)}`);
    } catch (err) {
      if (!hasCode(err, 'SV_ERR_SMB_BAD_SHARE')) t.fail(String(err));
    }
  }
  t.ok(ok > 0, `${ok} of ${ITERATIONS} mutated values were still valid shares`);
  const s = parseSmbShare('//files1:4450/vmstore=/mnt/vmstore/');
  t.match(s, { unc: '//files1:4450/vmstore', server: 'files1', port: 4450, name: 'vmstore', localPath: '/mnt/vmstore' });
  t.match(shareOf([s], '/mnt/vmstore/vms/a.raw'), { folder: 'vms', path: 'vms/a.raw' });
  t.equal(shareOf([s], '/mnt/vmstore2/a.raw'), undefined, 'a sibling folder is not the share');
  t.equal(shareOf([s], '/mnt/vmstore/../x/a.raw'), undefined);
});

t.test('share.open paths: a file inside the share or SV_ERR_SMB_BAD_PATH', async (t) => {
  const dir = tempDir(t, 'sv-smb-fuzz-');
  const root = join(dir, 'share');
  mkdirSync(join(root, 'vms', 'sub'), { recursive: true });
  writeFileSync(join(root, 'vms', 'a.raw'), 'x');
  writeFileSync(join(root, 'vms', 'sub', 'b.raw'), 'x');
  writeFileSync(join(dir, 'secret'), 'x');
  symlinkSync(join(dir, 'secret'), join(root, 'vms', 'out'));
  symlinkSync(dir, join(root, 'up'));
  const seeds = ['vms/a.raw', 'vms/sub/b.raw', 'vms/out', 'up/secret', '../secret', 'vms\\a.raw'];
  let inside = 0;
  for (let i = 0; i < ITERATIONS; i++) {
    const p = mutate(pick(seeds));
    try {
      const file = resolveInShare('vmstore', root, p);
      const rel = relative(root, file);
      if (rel.startsWith('..') || isAbsolute(rel)) t.fail(`${JSON.stringify(p)} resolved outside the share: ${file}`);
      inside++;
    } catch (err) {
      if (!hasCode(err, 'SV_ERR_SMB_BAD_PATH')) t.fail(`${JSON.stringify(p)}: ${String(err)}`);
    }
  }
  t.ok(inside > 0, `${inside} paths resolved inside the share`);
  for (const p of ['vms/out', 'up/secret', '../secret', '/etc/passwd', 'vms/./a.raw', '']) {
    t.ok(hasCode((() => { try { resolveInShare('vmstore', root, p); return null; } catch (e) { return e; } })(), 'SV_ERR_SMB_BAD_PATH'), `refused: ${JSON.stringify(p)}`);
  }
  t.equal(resolveInShare('vmstore', root, 'vms/sub/b.raw'), join(root, 'vms', 'sub', 'b.raw'));
});
