/**
 * Issue 9, D4 (formats part): a source disk that is a FIFO, or a VHDX/VHD parent locator pointing at a FIFO,
 * hung the process forever (the "not a regular file" check ran after open(), which blocks on a FIFO with no
 * writer). Now the path is checked with stat first and refused with SV_ERR_FORMAT_NOT_A_DISK; a FIFO parent
 * candidate is reported as "not a disk" and the next candidate is tried.
 *
 * The CLI runs in child processes with a kill timeout: on the old code they hang, are killed, and the test
 * fails (instead of hanging the test run).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { renameSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { CLI, nodeCommand, tempDir } from '../helpers/env.js';
import { cliEnv, errorCode } from '../sync/formats-helpers.js';
import { makeChain } from './issue9-chain.js';

const HANG_GUARD_MS = 60_000;

function cli(args: string[]): { code: number | null; stderr: string; stdout: string } {
  const r = spawnSync(...nodeCommand([CLI, ...args]), { encoding: 'utf8', env: cliEnv(), timeout: HANG_GUARD_MS, killSignal: 'SIGKILL' });
  return { code: r.status, stderr: r.stderr, stdout: r.stdout };
}

t.test('a FIFO as a source disk is refused, not opened', async (t) => {
  const dir = tempDir(t);
  const fifo = join(dir, 'disk.vhdx');
  execFileSync('mkfifo', [fifo]);
  const plain = join(dir, 'disk.raw');
  execFileSync('mkfifo', [plain]);
  for (const path of [fifo, plain]) {
    const info = cli(['disk', 'info', path]);
    t.equal(info.code, 1, `disk info ${path} ends with exit 1 (no hang)`);
    t.equal(errorCode(info.stderr), 'SV_ERR_FORMAT_NOT_A_DISK', info.stderr.trim());
    t.match(info.stderr, /FIFO/u);
  }
  const b = cli(['backup', plain, '--store', join(dir, 'store'), '--source', 'vm', '--json']);
  t.equal(b.code, 1, 'backup ends with exit 1 (no hang)');
  t.equal(errorCode(b.stderr), 'SV_ERR_FORMAT_NOT_A_DISK', b.stderr.trim());
});

for (const format of ['vhdx', 'vhd'] as const) {
  t.test(`a ${format} parent locator pointing at a FIFO: refused as "not a disk", no hang`, async (t) => {
    const dir = tempDir(t);
    const base = join(dir, `base.${format}`);
    const child = join(dir, `child.${format === 'vhdx' ? 'avhdx' : 'avhd'}`);
    await makeChain(format, base, child);
    renameSync(base, join(dir, 'moved'));
    execFileSync('mkfifo', [base]);
    const info = cli(['disk', 'info', child]);
    t.equal(info.code, 1, 'disk info ends with exit 1 (no hang)');
    t.equal(errorCode(info.stderr), 'SV_ERR_FORMAT_PARENT_NOT_FOUND', info.stderr.trim());
    t.match(info.stderr, new RegExp(`${base.replace(/[.]/gu, '\\.')}: a FIFO \\(named pipe\\), not a disk image`, 'u'), 'the FIFO candidate and why it failed');
  });
}
