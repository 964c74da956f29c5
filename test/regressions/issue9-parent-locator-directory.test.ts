/**
 * Issue 9: a VHDX or VHD parent locator whose relative path resolved to a directory failed at once instead of
 * trying the next locator entry. Now every candidate is tried in order, and when none fits, the error lists each
 * candidate and why it failed.
 *
 * Layout: the child in vm/ was made with its parent at parents/base.*; its locators name ../parents/base.* (relative),
 * the absolute path, and (by file name) vm/base.*. The parent is moved next to the child and a directory takes its
 * old place, so the first candidates are a directory and the last is the parent.
 */
import { mkdirSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { openDisk } from '../../src/formats/open.js';
import { tempDir } from '../helpers/env.js';
import { chainContent, makeChain } from './issue9-chain.js';

for (const format of ['vhdx', 'vhd'] as const) {
  t.test(`${format}: a locator that resolves to a directory falls through to the next candidate`, async (t) => {
    const dir = tempDir(t);
    mkdirSync(join(dir, 'vm'));
    mkdirSync(join(dir, 'parents'));
    const base = join(dir, 'parents', `base.${format}`);
    const child = join(dir, 'vm', `child.${format === 'vhdx' ? 'avhdx' : 'avhd'}`);
    await makeChain(format, base, child);
    const next = join(dir, 'vm', `base.${format}`);
    renameSync(base, next);
    mkdirSync(base);

    const img = await openDisk(child);
    t.equal(img.info.parent?.path, next, 'the parent found by the next candidate');
    t.ok((await img.read(0, img.info.virtualSize)).equals(chainContent()), 'the chain reads right');
    await img.close();

    // None fits: the directory, and another image of that name (another identity) next to the child.
    renameSync(next, join(dir, 'elsewhere'));
    await makeChain(format, next, join(dir, `other-child.${format}`));
    const err = await openDisk(child).then(() => undefined, (e: unknown) => e as Error & { code: string; details: { tried: Array<{ path: string; code: string; reason: string }> } });
    t.ok(err, 'opening fails');
    t.equal(err?.code, 'SV_ERR_FORMAT_PARENT_MISMATCH', 'the code of the candidate that exists but is not the parent');
    t.match(err?.message, new RegExp(`${base.replace(/[.]/gu, '\\.')}: a directory, not a disk image`, 'u'), 'the directory and why');
    t.match(err?.message, new RegExp(`${next.replace(/[.]/gu, '\\.')}: `, 'u'), 'the file with the wrong identity');
    t.same(err?.details.tried.map((c) => c.code), ['SV_ERR_FORMAT_NOT_A_DISK', 'SV_ERR_FORMAT_PARENT_MISMATCH'], 'every candidate in the details');
  });
}
