/** util/confined.ts: folders opened under a root without following links, names through the descriptor, re-checks. */
import { closeSync, mkdirSync, openSync, readdirSync, renameSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { ConfinedDir, assertOpenedInside } from '../../src/util/confined.js';
import { tempDir } from '../helpers/env.js';

const refused = { code: 'SV_ERR_API_PATH_NOT_ALLOWED' };

t.test('opening, creating and naming files under a root', async (t) => {
  const dir = tempDir(t, 'sv-confined-');
  const root = join(dir, 'root');
  const linkedRoot = join(dir, 'root-link');
  mkdirSync(root);
  symlinkSync(root, linkedRoot);
  const d = await ConfinedDir.open(join(linkedRoot, 'a', 'b'), [linkedRoot], { create: true });
  t.teardown(() => d.close());
  writeFileSync(d.at('f'), 'x', { flag: 'wx' });
  t.same(readdirSync(join(root, 'a', 'b')), ['f'], 'a root given through a link is followed (admin configuration)');
  for (const bad of ['', '.', '..', 'x/y']) t.throws(() => d.at(bad), refused, `name "${bad}"`);
  await t.rejects(ConfinedDir.open('/etc', [root]), refused, 'outside every root');
  await t.rejects(ConfinedDir.open(`${root}/a/../b`, [root]), refused, 'not normalised');
  await t.rejects(ConfinedDir.open(join(root, 'nope'), [root]), { code: 'SV_ERR_CORE_IO' }, 'missing without create');

  symlinkSync(dir, join(root, 'escape'));
  await t.rejects(ConfinedDir.open(join(root, 'escape', 'x'), [root], { create: true }), refused, 'a link below the root');
  t.same(readdirSync(dir).sort(), ['root', 'root-link'], 'nothing created through the link');

  const outside = join(dir, 'moved');
  renameSync(join(root, 'a'), outside);
  t.throws(() => d.check(), refused, 'the folder moved outside its root');
  renameSync(outside, join(root, 'a'));
  t.doesNotThrow(() => d.check(), 'and back');
});

t.test('assertOpenedInside: real path of the descriptor, devices only when named', async (t) => {
  const dir = tempDir(t, 'sv-confined-');
  mkdirSync(join(dir, 'root'));
  writeFileSync(join(dir, 'secret'), 's');
  symlinkSync(join(dir, 'secret'), join(dir, 'root', 'link'));
  writeFileSync(join(dir, 'root', 'disk'), 'd');
  const open = (p: string): number => {
    const fd = openSync(p, 'r');
    t.teardown(() => closeSync(fd));
    return fd;
  };
  t.doesNotThrow(() => assertOpenedInside(open(join(dir, 'root', 'disk')), 'disk', [join(dir, 'root')]));
  t.throws(() => assertOpenedInside(open(join(dir, 'root', 'link')), 'link', [join(dir, 'root')]), refused, 'a link leading outside');
  t.throws(() => assertOpenedInside(open('/dev/null'), '/dev/null', ['/nonexistent', join(dir, 'root')]), refused);
});
