/**
 * Shared test helpers: where things are (repo root, ../shared fixtures), temporary folders that clean up,
 * and `requireTool`, which fails a test with the install command when a peer program is missing (never skips).
 */
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

function findRoot(start: string): string {
  let dir = start;
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error(`no package.json above ${start}`);
    dir = up;
  }
  return dir;
}

/** The checkout (the folder holding package.json). */
export const REPO_ROOT = findRoot(dirname(fileURLToPath(import.meta.url)));
/**
 * ../shared next to the checkout: fixtures, guest. A git worktree one level deeper (e.g. wt/NAME next to
 * main) finds it at ../../shared; SV_SHARED_DIR overrides both.
 */
export const SHARED_DIR = process.env.SV_SHARED_DIR
  ?? [resolve(REPO_ROOT, '..', 'shared'), resolve(REPO_ROOT, '..', '..', 'shared')].find((d) => existsSync(d))
  ?? resolve(REPO_ROOT, '..', 'shared');
export const FIXTURE_IMAGES = join(SHARED_DIR, 'fixtures', 'images');
/** The CLI launcher. */
export const CLI = join(REPO_ROOT, 'bin', 'shadowvault.js');

interface Teardown {
  teardown(fn: () => void | Promise<void>): void;
}

/** A fresh temporary folder removed when the test ends. */
export function tempDir(t: Teardown, prefix = 'sv-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const TOOL_PACKAGES: Record<string, string> = {
  'qemu-img': 'qemu-utils',
  'qemu-io': 'qemu-utils',
  'qemu-nbd': 'qemu-utils',
  'qemu-system-x86_64': 'qemu-system-x86',
  prometheus: 'prometheus',
  promtool: 'prometheus',
  zstd: 'zstd',
  b3sum: 'b3sum',
  nasm: 'nasm',
  'mkfs.ext4': 'e2fsprogs',
  'ntfs-3g': 'ntfs-3g',
  nbdinfo: 'libnbd-bin',
  nbdcopy: 'libnbd-bin',
  nbdfuse: 'libnbd-bin',
  nbdkit: 'nbdkit',
  nbdsh: 'python3-libnbd',
  fusermount: 'fuse3',
  'qemu-storage-daemon': 'qemu-system-common',
  bzip2: 'bzip2',
  losetup: 'mount',
  e2fsck: 'e2fsprogs',
  debugfs: 'e2fsprogs',
  busybox: 'busybox-static',
  'qemu-ga': 'qemu-guest-agent',
  cpio: 'cpio',
  sfdisk: 'fdisk', sgdisk: 'gdisk',
  mke2fs: 'e2fsprogs', dumpe2fs: 'e2fsprogs',
  'mkfs.fat': 'dosfstools', mcopy: 'mtools', mdir: 'mtools', mmd: 'mtools', mdel: 'mtools', mattrib: 'mtools',
  smbd: 'samba', pdbedit: 'samba', smbclient: 'smbclient',
  tar: 'tar', mkntfs: 'ntfs-3g', ntfscp: 'ntfs-3g', ntfsinfo: 'ntfs-3g', ntfsls: 'ntfs-3g', python3: 'python3',
};

/** Path of a peer program, or an Error telling how to install it (tests call this and let it throw). */
export function requireTool(name: string): string {
  const found = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' });
  const path = found.stdout.trim();
  if (found.status === 0 && path) return path;
  const pkg = TOOL_PACKAGES[name] ?? name;
  throw new Error(`test needs \`${name}\`, which is not installed: run \`sudo apt-get install -y ${pkg}\` (or \`npm run setup\`)`);
}

/** Run a program and return stdout; throws with stderr on a non-zero exit. */
export function run(cmd: string, args: string[], opts: { input?: Buffer | string; cwd?: string } = {}): string {
  return execFileSync(cmd, args, { encoding: 'utf8', maxBuffer: 1 << 30, input: opts.input, cwd: opts.cwd, stdio: ['pipe', 'pipe', 'pipe'] });
}

/**
 * The environment for a child process of a test (the CLI, `serve`): the test's own environment plus `extra`,
 * without the `--import=...@tapjs/processinfo...` hooks tap puts into NODE_OPTIONS. Those hooks slow each
 * CLI child ~2.5x and once crashed one inside Node's module loader ("v8::Module::IsGraphAsync must be used on
 * an instantiated module"); coverage is disabled in this project, so children run without them.
 * This alone does not keep them out: tap's processinfo also patches child_process.spawn (process-on-spawn) and
 * puts its `--import` back into the NODE_OPTIONS of every child, whatever env the caller passed. Start a Node
 * child with nodeCommand() to be rid of them.
 */
export function childEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extra };
  const opts = (env.NODE_OPTIONS ?? '').split(/\s+/u).filter((o) => o && !o.includes('@tapjs/'));
  if (opts.length) env.NODE_OPTIONS = opts.join(' ');
  else delete env.NODE_OPTIONS;
  return env;
}

/**
 * The program and arguments that start Node on `args` without tap's processinfo hook (see childEnv):
 * `env -u NODE_OPTIONS <node> ARGS`. `env` removes the NODE_OPTIONS that tap's spawn patch put back, then execs
 * Node in the same process, so `child.pid` is Node's pid (kill -9 of it kills the CLI). Pass childEnv() as the
 * env; a NODE_OPTIONS of the caller's own is dropped too. Measured: a CLI child that loads the S3 client starts
 * with ~0.35 CPU-s instead of ~1.0 (with the hook, every module import is a round trip to tap's loader thread).
 */
export function nodeCommand(args: readonly string[]): [string, string[]] {
  return ['env', ['-u', 'NODE_OPTIONS', process.execPath, ...args]];
}

/**
 * `run` without blocking the event loop: for peers that talk to a server running in the test's own process
 * (an in-process NBD server cannot answer while execFileSync waits). Rejects with stderr on a non-zero exit.
 */
export function runAsync(cmd: string, args: string[], opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { encoding: 'utf8', maxBuffer: 1 << 30, timeout: opts.timeoutMs ?? 120_000, env: opts.env ?? process.env }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')} failed: ${err.message}\n${stderr}`));
      else resolve(stdout);
    });
  });
}

/** A TCP port on 127.0.0.1 that nothing listens on now (for a server a test starts). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}
