/**
 * util/confined.ts: folders opened under a root without following links, names inside the held folder,
 * re-checks. Every case runs in both modes on Linux: 'proc-fd' (Linux) and 'path-walk' (the mode a Windows
 * agent uses; the same code, chosen here by the `mode` option), plus the cases only 'path-walk' has.
 */
import { closeSync, mkdirSync, openSync, readdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { ConfinedDir, assertOpenedInside, confinementFor, type ConfineMode } from '../../src/util/confined.js';
import { tempDir } from '../helpers/env.js';

const refused = { code: 'SV_ERR_API_PATH_NOT_ALLOWED' };

t.test('the platform picks the mode: /proc/self/fd on Linux, the path walk on Windows', async (t) => {
  t.equal(confinementFor('linux'), 'proc-fd');
  t.equal(confinementFor('win32'), 'path-walk');
  const dir = tempDir(t, 'sv-confined-');
  const d = await ConfinedDir.open(dir, [dir]);
  t.equal(d.mode, 'proc-fd', 'this Linux test machine holds folders by descriptor by default');
  await d.close();
});

for (const mode of ['proc-fd', 'path-walk'] as const satisfies readonly ConfineMode[]) {
  t.test(`${mode}: opening, creating and naming files under a root`, async (t) => {
    const dir = tempDir(t, 'sv-confined-');
    const root = join(dir, 'root');
    const linkedRoot = join(dir, 'root-link');
    mkdirSync(root);
    symlinkSync(root, linkedRoot);
    const d = await ConfinedDir.open(join(linkedRoot, 'a', 'b'), [linkedRoot], { create: true, mode });
    t.teardown(() => d.close());
    t.equal(d.mode, mode);
    writeFileSync(d.at('f'), 'x', { flag: 'wx' });
    t.same(readdirSync(join(root, 'a', 'b')), ['f'], 'a root given through a link is followed (admin configuration)');
    t.same((await d.list()).map((e) => e.name), ['f']);
    for (const bad of ['', '.', '..', 'x/y']) t.throws(() => d.at(bad), refused, `name "${bad}"`);
    await t.rejects(ConfinedDir.open('/etc', [root], { mode }), refused, 'outside every root');
    await t.rejects(ConfinedDir.open(`${root}/a/../b`, [root], { mode }), refused, 'not normalised');
    await t.rejects(ConfinedDir.open(join(root, 'nope'), [root], { mode }), { code: 'SV_ERR_CORE_IO' }, 'missing without create');

    symlinkSync(dir, join(root, 'escape'));
    await t.rejects(ConfinedDir.open(join(root, 'escape', 'x'), [root], { create: true, mode }), refused, 'a link below the root');
    t.same(readdirSync(dir).sort(), ['root', 'root-link'], 'nothing created through the link');
    writeFileSync(join(root, 'plain'), 'p');
    await t.rejects(ConfinedDir.open(join(root, 'plain', 'x'), [root], { create: true, mode }), refused, 'a file where a folder is expected');

    const outside = join(dir, 'moved');
    renameSync(join(root, 'a'), outside);
    t.throws(() => d.check(), refused, 'the folder moved outside its root');
    renameSync(outside, join(root, 'a'));
    t.doesNotThrow(() => d.check(), 'and back');
    await d.sync();
    await d.setAttributes({ mode: 0o750 });
  });

  t.test(`${mode}: verifyOpened: the descriptor is the file in the folder`, async (t) => {
    const dir = tempDir(t, 'sv-confined-');
    const d = await ConfinedDir.open(join(dir, 'root', 'out'), [join(dir, 'root')], { create: true, mode });
    t.teardown(() => d.close());
    const fh = await open(d.at('disk.tmp'), 'wx');
    t.teardown(() => fh.close());
    t.doesNotThrow(() => d.verifyOpened(fh.fd, 'disk.tmp'));
    renameSync(d.at('disk.tmp'), d.at('other'));
    writeFileSync(d.at('disk.tmp'), 'another file');
    t.throws(() => d.verifyOpened(fh.fd, 'disk.tmp'), refused, 'another file now has the name');
    rmSync(d.at('disk.tmp'));
    t.throws(() => d.verifyOpened(fh.fd, 'disk.tmp'), refused, 'no file has the name');
  });

  t.test(`${mode}: assertOpenedInside: real path of the descriptor, devices only when named`, async (t) => {
    const dir = tempDir(t, 'sv-confined-');
    mkdirSync(join(dir, 'root'));
    writeFileSync(join(dir, 'secret'), 's');
    symlinkSync(join(dir, 'secret'), join(dir, 'root', 'link'));
    writeFileSync(join(dir, 'root', 'disk'), 'd');
    const openFd = (p: string): number => {
      const fd = openSync(p, 'r');
      t.teardown(() => closeSync(fd));
      return fd;
    };
    const roots = [join(dir, 'root')];
    t.doesNotThrow(() => assertOpenedInside(openFd(join(dir, 'root', 'disk')), join(dir, 'root', 'disk'), roots, mode));
    t.throws(() => assertOpenedInside(openFd(join(dir, 'root', 'link')), join(dir, 'root', 'link'), roots, mode), refused, 'a link leading outside');
    t.throws(() => assertOpenedInside(openFd('/dev/null'), '/dev/null', ['/nonexistent', ...roots], mode), refused);
  });
}

t.test('path-walk only: what a descriptor would have pinned is caught by the re-checks', async (t) => {
  const dir = tempDir(t, 'sv-confined-');
  const root = join(dir, 'root');
  mkdirSync(join(dir, 'outside'));
  const d = await ConfinedDir.open(join(root, 'a', 'b'), [root], { create: true, mode: 'path-walk' });
  t.teardown(() => d.close());
  for (const bad of ['x\\y', 'disk.img:stream', 'disk.img.', 'disk ', 'NUL', 'nul.vhdx', 'COM1.img', 'conout$']) t.throws(() => d.at(bad), refused, `name "${bad}" (not a plain file name on Windows)`);
  t.doesNotThrow(() => d.at('console.vhdx'), 'a name that only starts like a device');

  // A component swapped for a link (a junction on Windows) to a folder outside holding the same names.
  mkdirSync(join(dir, 'outside', 'b'));
  renameSync(join(root, 'a'), join(dir, 'a-away'));
  symlinkSync(join(dir, 'outside'), join(root, 'a'));
  t.throws(() => d.check(), refused, 'check(): a link below the root');
  const fh = await open(d.at('x.tmp'), 'wx'); // the create a swap between two checks can misdirect, once
  t.teardown(() => fh.close());
  t.throws(() => d.verifyOpened(fh.fd, 'x.tmp'), refused, 'verifyOpened refuses the file created through the link');
  rmSync(join(root, 'a'));
  renameSync(join(dir, 'a-away'), join(root, 'a'));
  t.throws(() => d.verifyOpened(fh.fd, 'x.tmp'), refused, 'and still refuses once the link is swapped back');
  t.doesNotThrow(() => d.check(), 'the original folder is back');

  // The folder replaced by another real folder: a different identity.
  renameSync(join(root, 'a', 'b'), join(dir, 'b-away'));
  mkdirSync(join(root, 'a', 'b'));
  t.throws(() => d.check(), refused, 'a different folder at the same path');
});
