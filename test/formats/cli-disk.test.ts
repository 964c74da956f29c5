/**
 * `shadowvault disk info|cat|convert` as a user runs them: info and cat through the real launcher in a child
 * process (exit codes, stdout/stderr, a closed pipe); the convert cases run the CLI's main() in this process
 * (test/helpers/cli.ts: the same code without a process start per call).
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { cliInProcessBytes as cliIn } from '../helpers/cli.js';
import { childEnv, CLI, nodeCommand, requireTool, run, tempDir } from '../helpers/env.js';
import { fixture } from './vhd-fixture-helpers.js';

function cli(args: string[], opts: { maxBuffer?: number } = {}) {
  const r = spawnSync(...nodeCommand([CLI, ...args]), { maxBuffer: opts.maxBuffer ?? 64 << 20, env: childEnv() });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr.toString() };
}

t.test('disk info --json and text', async (t) => {
  const dir = tempDir(t);
  const path = fixture(dir, 'win10-dynamic.vhd.gz');
  const r = cli(['disk', 'info', path, '--json']);
  t.equal(r.code, 0, r.stderr);
  const info = JSON.parse(r.stdout.toString()) as Record<string, unknown> & { allocation: Record<string, number>; extra: Record<string, unknown> };
  t.match(info, { format: 'vhd', variant: 'dynamic', virtualSize: 10485760, blockSize: 2097152, id: /^[0-9a-f-]{36}$/u });
  t.same(info.allocation, { data: 6291456, zero: 0, unallocated: 4194304 });
  t.equal(info.extra.creatorApplication, 'win ');
  const text = cli(['disk', 'info', path]);
  t.equal(text.code, 0);
  t.match(text.stdout.toString(), /format: vhd \(dynamic\)/u);
  t.match(text.stdout.toString(), /allocation \(whole chain\): data 6291456/u);
  const bad = cli(['disk', 'info', fixture(dir, 'bad-footer-checksum.vhd.gz')]);
  t.equal(bad.code, 1);
  t.match(bad.stderr, /^error SV_ERR_VHD_FOOTER_CHECKSUM: .*bad-footer-checksum\.vhd: VHD footer at offset \d+/u);
  t.equal(cli(['disk', 'info']).code, 2, 'usage error');
});

t.test('disk cat streams the virtual disk; a closed pipe ends it quietly', async (t) => {
  const dir = tempDir(t);
  const r = cli(['disk', 'cat', fixture(dir, 'qemu-ext2.vhd.gz')]);
  t.equal(r.code, 0, r.stderr);
  t.equal(createHash('sha256').update(r.stdout).digest('hex'), '870be7ae16c1fa8faab05c6eb9205dc9a7ae35c5f552c5cf8a267c0bc6a5cb99');
  const big = fixture(dir, 'hyperv2012r2-dynamic.vhd.bz2'); // 127 GiB of zeros
  const head = spawnSync('bash', ['-c', `set -o pipefail; env -u NODE_OPTIONS "${process.execPath}" "${CLI}" disk cat "${big}" | head -c 100000 | wc -c`], { encoding: 'utf8', env: childEnv() });
  t.equal(head.status, 0, `EPIPE is not an error: ${head.stderr}`);
  t.equal(head.stdout.trim(), '100000');
  t.notMatch(head.stderr, /error/u);
});

t.test('disk convert: format from the extension, --force, round trip through qemu-img compare', async (t) => {
  const qemuImg = requireTool('qemu-img');
  const dir = tempDir(t);
  const src = fixture(dir, 'win10-dynamic.vhd.gz');
  for (const [out, fmt] of [['out.vhd', 'vpc'], ['out.raw', 'raw'], ['out.img', 'raw']] as const) {
    const r = await cliIn(['disk', 'convert', src, join(dir, out)]);
    t.equal(r.code, 0, r.stderr);
    t.doesNotThrow(() => run(qemuImg, ['compare', '-q', '-f', 'vpc', '-F', fmt, src, join(dir, out)]), `${out} equals the source`);
  }
  const fixed = await cliIn(['disk', 'convert', src, join(dir, 'fixed.bin'), '--format', 'vhd', '--variant', 'fixed']);
  t.equal(fixed.code, 0, fixed.stderr);
  t.doesNotThrow(() => run(qemuImg, ['compare', '-q', '-f', 'vpc', '-F', 'vpc', src, join(dir, 'fixed.bin')]));
  const exists = await cliIn(['disk', 'convert', src, join(dir, 'out.vhd')]);
  t.equal(exists.code, 1);
  t.match(exists.stderr, /SV_ERR_CLI_OUTPUT_EXISTS/u);
  writeFileSync(join(dir, 'junk.vhd'), 'x');
  t.equal((await cliIn(['disk', 'convert', src, join(dir, 'junk.vhd'), '--force'])).code, 0, '--force replaces');
  t.doesNotThrow(() => run(qemuImg, ['compare', '-q', '-f', 'vpc', '-F', 'vpc', src, join(dir, 'junk.vhd')]));
  const unknown = await cliIn(['disk', 'convert', src, join(dir, 'out.qcow2')]);
  t.equal(unknown.code, 2);
  t.match(unknown.stderr, /SV_ERR_CLI_BAD_USAGE/u);
});

t.test('disk convert across formats: VHD → VHDX (qemu-img check) and VHDX → VHD', async (t) => {
  const qemuImg = requireTool('qemu-img');
  const dir = tempDir(t);
  const vhd = fixture(dir, 'win10-dynamic.vhd.gz');
  const r1 = await cliIn(['disk', 'convert', vhd, join(dir, 'out.vhdx')]);
  t.equal(r1.code, 0, r1.stderr);
  t.doesNotThrow(() => run(qemuImg, ['check', '-q', '-f', 'vhdx', join(dir, 'out.vhdx')]), 'qemu-img check passes');
  t.doesNotThrow(() => run(qemuImg, ['compare', '-q', '-f', 'vpc', '-F', 'vhdx', vhd, join(dir, 'out.vhdx')]));
  const vhdx = fixture(dir, 'iotest-dynamic-1G.vhdx.bz2');
  const r2 = await cliIn(['disk', 'convert', vhdx, join(dir, 'back.vhd')]);
  t.equal(r2.code, 0, r2.stderr);
  t.doesNotThrow(() => run(qemuImg, ['compare', '-q', '-f', 'vhdx', '-F', 'vpc', vhdx, join(dir, 'back.vhd')]));
});

t.test('disk convert --variant differencing --parent stores only the changes', async (t) => {
  const qemuIo = requireTool('qemu-io');
  const dir = tempDir(t);
  const base = fixture(dir, 'win10-dynamic.vhd.gz');
  const raw = join(dir, 'changed.raw');
  t.equal((await cliIn(['disk', 'convert', base, raw])).code, 0);
  run(qemuIo, ['-f', 'raw', '-c', 'write -P 0x33 4096 1024', '-c', 'write -P 0x44 9M 512', raw]);
  const child = join(dir, 'child.vhd');
  const r = await cliIn(['disk', 'convert', raw, child, '--variant', 'differencing', '--parent', base]);
  t.equal(r.code, 0, r.stderr);
  const { readFileSync, statSync } = await import('node:fs');
  const cat = await cliIn(['disk', 'cat', child]);
  t.ok(cat.stdout.equals(readFileSync(raw)), 'child + parent read as the changed disk');
  t.ok(statSync(child).size < 5 << 20, `child holds two blocks (${statSync(child).size} bytes)`);
  const info = JSON.parse((await cliIn(['disk', 'info', '--json', child])).stdout.toString()) as { variant: string; chain: Array<{ path: string }> };
  t.equal(info.variant, 'differencing');
  t.equal(info.chain[0]?.path, base);
  t.equal((await cliIn(['disk', 'convert', raw, join(dir, 'x.vhd'), '--variant', 'differencing'])).code, 2, '--parent required');
});

// Regression: a block the input leaves zero/unallocated was written as "the parent's", so the child showed the
// parent's data where the input had zeros (found by test/sync/formats-roundtrip.test.ts; fixed by
// src/formats/diff-source.ts). VHDX children also stored every block instead of only the changed sectors.
t.test('disk convert --variant differencing: zero/unallocated input over parent data reads zero (VHD and VHDX)', async (t) => {
  const qemuImg = requireTool('qemu-img');
  const dir = tempDir(t);
  const { readFileSync } = await import('node:fs');
  for (const [fx, fmt, ext] of [['win10-dynamic.vhdx.gz', 'vhdx', 'avhdx'], ['win10-dynamic.vhd.gz', 'vpc', 'avhd']] as const) {
    const base = fixture(dir, fx);
    const empty = join(dir, `empty.${fmt}`);
    run(qemuImg, ['create', '-q', '-f', fmt, ...(fmt === 'vpc' ? ['-o', 'force_size=on'] : []), empty, '10M']);
    const child = join(dir, `child-empty.${ext}`);
    const r = await cliIn(['disk', 'convert', empty, child, '--variant', 'differencing', '--parent', base]);
    t.equal(r.code, 0, r.stderr);
    const cat = await cliIn(['disk', 'cat', child]);
    t.ok(cat.stdout.length === 10 << 20 && cat.stdout.every((b) => b === 0), `${ext}: an empty image over the parent reads all zero`);
    // A few changed sectors: the VHDX child stores them as PARTIALLY_PRESENT blocks, not whole blocks.
    const raw = join(dir, `changed-${fmt}.raw`);
    run(qemuImg, ['convert', '-f', fmt, '-O', 'raw', base, raw]);
    run(requireTool('qemu-io'), ['-f', 'raw', '-c', 'write -z 0 4096', '-c', 'write -P 0x61 5M 512', raw]);
    const child2 = join(dir, `child-changed.${ext}`);
    t.equal((await cliIn(['disk', 'convert', raw, child2, '--variant', 'differencing', '--parent', base])).code, 0);
    t.ok((await cliIn(['disk', 'cat', child2])).stdout.equals(readFileSync(raw)), `${ext}: child + parent read as the changed disk`);
    const info = JSON.parse((await cliIn(['disk', 'info', '--json', child2])).stdout.toString()) as { extra: { blockStates?: Record<string, number> } };
    if (fmt === 'vhdx') t.same(info.extra.blockStates, { NOT_PRESENT: 3, PARTIALLY_PRESENT: 2 }, 'only the changed sectors are stored');
  }
});
