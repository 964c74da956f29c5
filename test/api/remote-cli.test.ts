/**
 * The store commands against a running appliance: a real `shadowvault serve` process on loopback with a
 * temporary data folder, real small disk images (raw, and a VHDX made by qemu-img), the real CLI with --url.
 * backup --url makes the same point shape as a local backup; points --json --url equals the local listing of
 * the appliance's own store; restore --url (download, or on the appliance) gives back the source bytes; bad
 * usage, a wrong token and a target outside the restore roots are refused with their codes and exit codes.
 * A few commands run as real child processes (exit codes, stderr, empty stdout on error); the others run the
 * CLI's main() in this process (test/helpers/cli.ts) against the same appliance process, over HTTP.
 */
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { requireTool, run, tempDir } from '../helpers/env.js';
import { makeRawImage, sha256, sha256File } from '../appliance/images.js';
import { cliInProcess as cliIn } from '../helpers/cli.js';
import { cli, serve } from './serve-helper.js';

interface Point {
  id: string;
  source: string;
  kind: string;
  disks: { index: number; name: string; format: string; virtualSize: number }[];
}

t.test('backup, points and restore with --url against a real appliance', async (t) => {
  const qemuImg = requireTool('qemu-img');
  const dir = tempDir(t, 'sv-remote-cli-');
  const data = join(dir, 'data');
  const disk0 = join(dir, 'vm-r-disk0.img');
  const disk1raw = join(dir, 'vm-r-disk1.raw');
  const disk1 = join(dir, 'vm-r-disk1.vhdx');
  const first0 = makeRawImage(disk0, 4, 2, 1);
  const bytes1 = makeRawImage(disk1raw, 2, 1, 9);
  run(qemuImg, ['convert', '-f', 'raw', '-O', 'vhdx', disk1raw, disk1]);

  const s = await serve(['--data-dir', data, '--source-root', dir], { SHADOWVAULT_WORKERS: '1' });
  t.teardown(() => s.proc.kill('SIGKILL'));
  const tokenFile = join(data, 'admin-token');
  const token = readFileSync(tokenFile, 'utf8').trim();
  // The token from SHADOWVAULT_TOKEN; the URL from --url (below) or SHADOWVAULT_URL.
  const env = { SHADOWVAULT_TOKEN: token, HOME: dir, XDG_DATA_HOME: join(dir, 'nodata') };
  const url = ['--url', s.url];

  const add = await cliIn(['sources', 'add', '--name', 'vm-r', '--disk', `disk0=${disk0}`, '--disk', `disk1=${disk1}`, ...url], env);
  t.equal(add.code, 0, add.stderr);

  // backup --url: a job on the appliance, the new point printed like a local backup
  const b1 = await cli(['backup', '--source', 'vm-r', ...url, '--json'], env);
  t.equal(b1.code, 0, b1.stderr);
  const p1 = JSON.parse(b1.stdout) as Point & Record<string, unknown>;
  t.match(p1, { source: 'vm-r', kind: 'initial', disks: [{ index: 0 }, { index: 1, format: 'vhdx' }] });
  const local = await cliIn(['backup', disk0, disk1, '--source', 'vm-r', '--store', join(dir, 'local-store'), '--json'], env);
  t.equal(local.code, 0, local.stderr);
  t.same(Object.keys(p1).sort(), Object.keys(JSON.parse(local.stdout) as object).sort(), 'same --json shape as a local backup');

  const second0 = makeRawImage(disk0, 4, 3, 2);
  const b2 = await cliIn(['backup', '--source', 'vm-r'], { ...env, SHADOWVAULT_URL: s.url });
  t.equal(b2.code, 0, b2.stderr);
  t.match(b2.stdout, /^point vm-r@\S+ \((incremental|express-full), crash\)/, 'SHADOWVAULT_URL alone selects the appliance; text output');

  const checked = await cliIn(['check', '--source', 'vm-r', ...url, '--json'], env);
  t.equal(checked.code, 0, checked.stderr);
  t.match(JSON.parse(checked.stdout), { source: 'vm-r', kind: 'consistency-check', blocksRepaired: 0 }, 'check --url: a consistency check job');

  // points --url equals the local listing of the appliance's store
  const remotePoints = await cliIn(['points', 'vm-r', ...url, '--json'], env);
  t.equal(remotePoints.code, 0, remotePoints.stderr);
  const localPoints = await cliIn(['points', 'vm-r', '--store', join(data, 'store'), '--json'], env);
  t.equal(localPoints.code, 0, localPoints.stderr);
  const listed = JSON.parse(remotePoints.stdout) as Point[];
  t.same(listed, JSON.parse(localPoints.stdout), 'points --json --url equals the local listing');
  t.equal(listed.length, 3);
  t.equal(listed[0]!.id, p1.id, 'oldest first');
  const all = await cliIn(['points', '--token-file', tokenFile, '--url', s.url, '--json'], { HOME: dir });
  t.equal(all.code, 0, all.stderr);
  t.same(JSON.parse(all.stdout), listed, 'all sources (one here), token from --token-file');
  const text = await cliIn(['points', ...url], env);
  t.match(text.stdout, new RegExp(`^vm-r@${p1.id}\\s`));

  // restore --url --out: downloaded to this machine
  const out = join(dir, 'out');
  const latest = await cliIn(['restore', 'vm-r', ...url, '--out', join(dir, 'latest0.img'), '--json'], env);
  t.equal(latest.code, 0, latest.stderr);
  t.match(JSON.parse(latest.stdout), { source: 'vm-r', point: listed[2]!.id, disk: 0, format: 'raw', virtualSize: second0.length });
  t.equal(sha256File(join(dir, 'latest0.img')), sha256(second0), '@latest disk 0 equals the source bytes');
  const older = await cliIn(['restore', `vm-r@${p1.id}`, ...url, '--disk', '0', '--out', join(dir, 'first0.img')], env);
  t.equal(older.code, 0, older.stderr);
  t.match(older.stdout, /^restored vm-r@/);
  t.equal(sha256File(join(dir, 'first0.img')), sha256(first0), 'an older point equals its source bytes');
  const d1 = await cliIn(['restore', 'vm-r', ...url, '--disk', 'disk1', '--format', 'raw', '--out', join(dir, 'disk1.img')], env);
  t.equal(d1.code, 0, d1.stderr);
  t.equal(sha256File(join(dir, 'disk1.img')), sha256(bytes1), 'the VHDX disk (by name) as raw equals its data');
  const asVhdx = await cliIn(['restore', 'vm-r', ...url, '--disk', '1', '--out', join(dir, 'disk1.vhdx')], env);
  t.equal(asVhdx.code, 0, asVhdx.stderr);
  run(qemuImg, ['compare', '-f', 'vhdx', '-F', 'raw', join(dir, 'disk1.vhdx'), disk1raw]);
  t.pass('default format of a VHDX disk is VHDX; qemu-img compare: identical');

  writeFileSync(join(dir, 'exists.img'), 'keep me');
  const refused = await cliIn(['restore', 'vm-r', ...url, '--out', join(dir, 'exists.img')], env);
  t.equal(refused.code, 1);
  t.match(refused.stderr, /^error SV_ERR_FORMAT_OUTPUT_EXISTS: /);
  t.equal(readFileSync(join(dir, 'exists.img'), 'utf8'), 'keep me', 'existing output untouched');
  const forced = await cli(['restore', 'vm-r', ...url, '--out', join(dir, 'exists.img'), '--force'], env);
  t.equal(forced.code, 0, forced.stderr);
  t.equal(sha256File(join(dir, 'exists.img')), sha256(second0), '--force replaces it');
  t.same(readdirSync(dir).filter((f) => f.endsWith('.part')), [], 'no temporary files left');

  // restore --url --target: on the appliance, under its restore root
  const target = join(data, 'restores', 'vm-r', 'disk0.img');
  const onAppliance = await cliIn(['restore', 'vm-r', ...url, '--disk', '0', '--target', target, '--json'], env);
  t.equal(onAppliance.code, 0, onAppliance.stderr);
  t.match(JSON.parse(onAppliance.stdout), { point: listed[2]!.id, disk: 0, files: [target] });
  t.equal(sha256File(target), sha256(second0), 'restored on the appliance: the source bytes');
  const outside = await cliIn(['restore', 'vm-r', ...url, '--target', join(dir, 'elsewhere.img')], env);
  t.equal(outside.code, 1);
  t.match(outside.stderr, /^error SV_ERR_API_PATH_NOT_ALLOWED: /);
  t.notOk(existsSync(join(dir, 'elsewhere.img')));

  // refused usage (exit 2) and remote errors (exit 1)
  const images = await cli(['backup', disk0, '--source', 'vm-r', ...url], env);
  t.equal(images.code, 2);
  t.match(images.stderr, /^error SV_ERR_CLI_BAD_USAGE: with --url the appliance backs up the source's configured disks/);
  const changed = await cliIn(['backup', '--source', 'vm-r', '--block-size', '65536', ...url], env);
  t.equal(changed.code, 2);
  t.match(changed.stderr, /SV_ERR_CLI_BAD_USAGE: --block-size: not with --url/);
  const both = await cliIn(['restore', 'vm-r', ...url, '--out', join(out, 'x.img'), '--target', target], env);
  t.equal(both.code, 2);
  const localTarget = await cliIn(['restore', 'vm-r', '--store', join(data, 'store'), '--target', target], env);
  t.equal(localTarget.code, 2);
  t.match(localTarget.stderr, /--target and --to-host restore through an appliance: it needs --url/);
  const noSource = await cliIn(['points', 'vm-nope', ...url], env);
  t.equal(noSource.code, 1);
  t.match(noSource.stderr, /^error SV_ERR_API_NOT_FOUND: /);
  const noPoint = await cliIn(['restore', 'vm-r@ffffffff', ...url, '--out', join(dir, 'nope.img')], env);
  t.equal(noPoint.code, 1);
  t.match(noPoint.stderr, /^error SV_ERR_STORE_POINT_NOT_FOUND: /);
  const ambiguous = await cliIn(['restore', `vm-r@${p1.id.slice(0, 2)}`, ...url, '--out', join(dir, 'nope.img')], env);
  t.equal(ambiguous.code, 1);
  t.match(ambiguous.stderr, /^error SV_ERR_STORE_POINT_NOT_FOUND: .*3 points start with/);
  const noDisk = await cliIn(['restore', 'vm-r', ...url, '--disk', '7', '--out', join(dir, 'nope.img')], env);
  t.equal(noDisk.code, 1);
  t.match(noDisk.stderr, /^error SV_ERR_SYNC_DISK_NOT_FOUND: .*no disk "7"/);
  const wrong = { ...env, SHADOWVAULT_TOKEN: 'svt_wrong' };
  const badPoints = await cli(['points', ...url, '--json'], wrong);
  t.equal(badPoints.code, 1);
  t.match(badPoints.stderr, /^error SV_ERR_API_UNAUTHENTICATED: /);
  t.equal(badPoints.stdout, '');
  const badBackup = await cliIn(['backup', '--source', 'vm-r', ...url], wrong);
  t.equal(badBackup.code, 1);
  t.match(badBackup.stderr, /^error SV_ERR_API_UNAUTHENTICATED: /);
  const gone = await cli(['restore', 'vm-r', '--url', 'http://127.0.0.1:9', '--out', join(dir, 'nope.img')], env);
  t.equal(gone.code, 1);
  t.match(gone.stderr, /^error SV_ERR_API_REMOTE: /);
  t.notOk(existsSync(join(dir, 'nope.img')));
});
