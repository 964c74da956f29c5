/**
 * Issue 9, D2: a VHD/VHDX with a damaged signature was silently read as a raw disk (the container bytes backed
 * up as the disk). Now a file named .vhd/.vhdx/.avhdx parses as that format or fails with its SV_ERR_VHD_* /
 * SV_ERR_VHDX_* error; content detection refuses the traces of a damaged VHD/VHDX instead of falling back to
 * raw; and `--format raw` (`--input-format raw` for disk convert) reads such a file as raw when that is meant.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { CATALOGUE } from '../../src/errors/catalogue.js';
import { openDisk } from '../../src/formats/open.js';
import { CLI, nodeCommand, tempDir } from '../helpers/env.js';
import { fixture, vhdSum } from '../formats/vhd-fixture-helpers.js';
import { cli, cliEnv, errorCode } from '../sync/formats-helpers.js';

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** A copy of `src` at `dir/name` with `edit` applied to its bytes. */
function edited(dir: string, src: string, name: string, edit: (b: Buffer) => void): string {
  const bytes = readFileSync(src);
  edit(bytes);
  const out = join(dir, name);
  writeFileSync(out, bytes);
  return out;
}

/** Opening `path` (as disk info, backup and check do) fails with `code`, and the message matches `says`. */
async function refused(t: Test, path: string, code: string, says?: RegExp): Promise<void> {
  t.ok(Object.hasOwn(CATALOGUE, code), `${code} is catalogued`);
  await t.rejects(openDisk(path), { code, ...(says ? { message: says } : {}) }, path);
}

/** Through the CLI: `disk info` and `backup` both refuse `path` with `code`. */
function refusedByCli(t: Test, store: string, path: string, code: string): void {
  const info = cli(['disk', 'info', path]);
  t.equal(info.code, 1, `disk info ${path} fails`);
  t.equal(errorCode(info.stderr), code, info.stderr.trim());
  const b = cli(['backup', path, '--store', store, '--source', 'vm', '--json']);
  t.equal(b.code, 1, `backup ${path} fails`);
  t.equal(errorCode(b.stderr), code, b.stderr.trim());
}

t.test('named VHD/VHDX files with a damaged signature fail with their format\'s error', async (t) => {
  const dir = tempDir(t);
  const vhdx = fixture(dir, 'win10-dynamic.vhdx.gz');
  const flipped = edited(dir, vhdx, 'flipped.vhdx', (b) => { b[0]! ^= 1; });
  await refused(t, flipped, 'SV_ERR_VHDX_SIGNATURE', /file identifier at offset 0/u);
  refusedByCli(t, join(dir, 'store'), flipped, 'SV_ERR_VHDX_SIGNATURE');
  await refused(t, edited(dir, vhdx, 'flipped.avhdx', (b) => { b[0]! ^= 1; }), 'SV_ERR_VHDX_SIGNATURE');
  const fixed = fixture(dir, 'win10-fixed.vhd.gz');
  await refused(t, edited(dir, fixed, 'fixed-cookie.vhd', (b) => { b[b.length - 512]! ^= 0x20; }), 'SV_ERR_VHD_BAD_FOOTER', /cookie/u);
  const dynamic = fixture(dir, 'win10-dynamic.vhd.gz');
  await refused(t, edited(dir, dynamic, 'both-cookies.vhd', (b) => { b[0]! ^= 1; b[b.length - 512]! ^= 1; }), 'SV_ERR_VHD_BAD_FOOTER');
  writeFileSync(join(dir, 'empty.vhdx'), Buffer.alloc(0));
  await refused(t, join(dir, 'empty.vhdx'), 'SV_ERR_VHDX_SIGNATURE', /0 bytes/u);
  writeFileSync(join(dir, 'empty.vhd'), Buffer.alloc(0));
  await refused(t, join(dir, 'empty.vhd'), 'SV_ERR_VHD_BAD_FOOTER', /0 bytes/u);
});

t.test('content detection refuses traces of a damaged VHD/VHDX (any other name) and says what it recognised', async (t) => {
  const dir = tempDir(t);
  const fixed = fixture(dir, 'win10-fixed.vhd.gz');
  // Cookie damaged (so the checksum no longer matches either): the footer's version and disk type remain.
  await refused(t, edited(dir, fixed, 'fixed-cookie.img', (b) => { b[b.length - 512]! ^= 0x20; }), 'SV_ERR_VHD_BAD_FOOTER',
    /damaged VHD \(recognised footer at offset 10485760 \(format version 1\.0, disk type 2\)/u);
  // Only the checksum damaged: a VHD with a bad footer checksum (as before), never raw.
  await refused(t, edited(dir, fixed, 'fixed-sum.img', (b) => { b.writeUInt32BE((vhdSum(b, b.length - 512) + 1) >>> 0, b.length - 512 + 64); }), 'SV_ERR_VHD_FOOTER_CHECKSUM');
  const dynamic = fixture(dir, 'win10-dynamic.vhd.gz');
  await refused(t, edited(dir, dynamic, 'both-cookies.bin', (b) => { b[0]! ^= 1; b[b.length - 512]! ^= 1; }), 'SV_ERR_VHD_BAD_FOOTER', /dynamic disk header "cxsparse" at offset 512/u);
  const vhdx = fixture(dir, 'win10-dynamic.vhdx.gz');
  const noId = edited(dir, vhdx, 'vhdx-id.img', (b) => { b.write('VHDXFILE', 0, 'latin1'); });
  await refused(t, noId, 'SV_ERR_VHDX_SIGNATURE',
    /damaged VHDX \(recognised header "head" at 64 KiB, header "head" at 128 KiB, region table "regi" at 192 KiB, region table "regi" at 256 KiB\)/u);
  refusedByCli(t, join(dir, 'store'), noId, 'SV_ERR_VHDX_SIGNATURE');
  // A raw disk that merely contains text is still raw.
  writeFileSync(join(dir, 'plain.img'), Buffer.alloc(1 << 20, 'head regi conectix cxsparse '));
  const plain = await openDisk(join(dir, 'plain.img'));
  t.equal(plain.info.format, 'raw');
  await plain.close();
});

t.test('--format raw (and disk convert --input-format raw) read such a file as a raw disk', async (t) => {
  const dir = tempDir(t);
  const store = join(dir, 'store');
  const damaged = edited(dir, fixture(dir, 'win10-dynamic.vhdx.gz'), 'lun.vhdx', (b) => { b[0]! ^= 1; });
  const bytes = readFileSync(damaged);
  const info = cli(['disk', 'info', damaged, '--format', 'raw', '--json']);
  t.equal(info.code, 0, info.stderr);
  t.match(JSON.parse(info.stdout), { format: 'raw', virtualSize: bytes.length });
  t.equal(errorCode(cli(['disk', 'info', damaged, '--format', 'qcow2']).stderr), 'SV_ERR_CLI_BAD_USAGE');

  const cat = spawnSync(...nodeCommand([CLI, 'disk', 'cat', damaged, '--format', 'raw']), { maxBuffer: 64 << 20, env: cliEnv() });
  t.equal(cat.status, 0, String(cat.stderr));
  t.equal(sha(cat.stdout), sha(bytes), 'disk cat --format raw: the file itself');

  const converted = join(dir, 'out.raw');
  const conv = cli(['disk', 'convert', damaged, converted, '--input-format', 'raw', '--format', 'raw']);
  t.equal(conv.code, 0, conv.stderr);
  t.equal(sha(readFileSync(converted)), sha(bytes), 'disk convert --input-format raw');

  // Two disks, one --format for both; then one --format per disk (auto = the name and content decide).
  const other = edited(dir, damaged, 'lun2.img', () => undefined);
  const b = cli(['backup', damaged, other, '--store', store, '--source', 'vm', '--format', 'raw', '--json']);
  t.equal(b.code, 0, b.stderr);
  t.match(JSON.parse(b.stdout), { disks: [{ format: 'raw', virtualSize: bytes.length }, { format: 'raw', virtualSize: bytes.length }] });
  const good = fixture(dir, 'win10-fixed.vhdx.gz');
  const per = cli(['backup', damaged, good, '--store', store, '--source', 'vm2', '--format', 'raw', '--format', 'auto', '--json']);
  t.equal(per.code, 0, per.stderr);
  t.match(JSON.parse(per.stdout), { disks: [{ format: 'raw' }, { format: 'vhdx', virtualSize: 10485760 }] });
  t.equal(errorCode(cli(['backup', damaged, good, other, '--store', store, '--source', 'vm3', '--format', 'raw', '--format', 'raw']).stderr), 'SV_ERR_CLI_BAD_USAGE', 'two formats for three disks');
  const out = join(dir, 'restored.raw');
  t.equal(cli(['restore', 'vm', '--store', store, '--out', out, '--format', 'raw']).code, 0);
  t.equal(sha(readFileSync(out)), sha(bytes), 'restores to the file bytes');
  t.equal(statSync(out).size, bytes.length);
  const check = cli(['check', damaged, other, '--store', store, '--source', 'vm', '--format', 'raw', '--json']);
  t.equal(check.code, 0, check.stderr);
});
