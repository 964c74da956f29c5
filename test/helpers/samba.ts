/**
 * A throwaway Samba file server (real `smbd` from Debian) on a private loopback port, for the SMB 3.0 tests:
 * its own smb.conf and private/state/lock/cache/pid folders in a temp folder, SMB 3 only, a tdbsam account
 * database of its own, nothing in /etc/samba or /var/lib/samba. Started per test file (~1 s), stopped in
 * teardown (TERM, KILL after 5 s), under an `sh` guard that stops it when the test process goes away.
 *
 * Accounts: each `HOST$` machine account is a Samba user (normal account flags, so it can log on with a
 * password as the host's machine account does) mapped to a Unix user that exists only for smbd, through
 * nss_wrapper (libnss-wrapper): a passwd/group file of the test's own, LD_PRELOADed into smbd and pdbedit.
 * smbd runs as root and becomes that uid for each connection, so the Unix mode of a folder is the folder's
 * permission for that account, and `valid users` / `read only` are the share's.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, renameSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort, requireTool, runAsync, tempDir } from './env.js';

interface Teardown {
  teardown(fn: () => void | Promise<void>): void;
}

export interface SambaShareSpec {
  readonly name: string;
  readonly path: string;
  /** Accounts allowed to connect (`valid users`). */
  readonly validUsers: readonly string[];
  readonly readOnly?: boolean;
}

export interface SambaAccount {
  readonly name: string;
  readonly uid: number;
  /** smbclient authentication file (username=, password=, domain=). */
  readonly credentials: string;
}

export interface Samba {
  readonly dir: string;
  readonly port: number;
  /** `//127.0.0.1:PORT/NAME`. */
  unc(share: string): string;
  /** Add a Samba account standing for a host's machine account (e.g. `host-a$`). */
  addAccount(name: string): Promise<SambaAccount>;
  /** Rewrite the shares and make smbd reload its configuration. */
  setShares(shares: readonly SambaShareSpec[]): Promise<void>;
  stop(): Promise<void>;
}

const NSS_WRAPPER = ['/usr/lib/x86_64-linux-gnu/libnss_wrapper.so', '/usr/lib/aarch64-linux-gnu/libnss_wrapper.so', '/usr/lib/libnss_wrapper.so'];

/**
 * Replace a file that nss_wrapper serves to a running smbd: a new inode (rename) and a modification time at
 * least a second after the old one. nss_wrapper re-reads its files only when it sees them change, and an
 * account added in the same second as smbd's first lookup was missed ("User host-a$ in passdb, but
 * getpwnam() fails!" in log.smbd, NT_STATUS_LOGON_FAILURE for the client, in about one run of two).
 */
function replaceFile(path: string, text: string): void {
  const before = statSync(path).mtimeMs / 1000;
  const tmp = `${path}.new`;
  writeFileSync(tmp, text);
  const at = Math.max(Math.floor(before) + 1, Math.ceil(Date.now() / 1000));
  utimesSync(tmp, at, at);
  renameSync(tmp, path);
}

export async function startSamba(t: Teardown): Promise<Samba> {
  requireTool('smbd');
  requireTool('pdbedit');
  requireTool('smbclient');
  const wrapper = NSS_WRAPPER.find((p) => existsSync(p));
  if (!wrapper) throw new Error('the Samba tests need nss_wrapper, which is not installed: run `sudo apt-get install -y libnss-wrapper` (or `npm run setup:test`)');
  if (process.getuid?.() !== 0) throw new Error('the Samba tests run smbd as root (it switches to each account\'s uid): run them as root');
  const dir = tempDir(t, 'sv-samba-');
  for (const d of ['private', 'state', 'lock', 'cache', 'pid', 'ncalrpc', 'log']) mkdirSync(join(dir, d), { recursive: true, mode: 0o755 });
  const passwd = join(dir, 'passwd');
  const group = join(dir, 'group');
  writeFileSync(passwd, 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n');
  writeFileSync(group, 'root:x:0:\nnogroup:x:65534:\n');
  const port = await freePort();
  const conf = join(dir, 'smb.conf');
  const env = { ...process.env, LD_PRELOAD: wrapper, NSS_WRAPPER_PASSWD: passwd, NSS_WRAPPER_GROUP: group };
  const write = (shares: readonly SambaShareSpec[]): void => {
    const global = [
      '[global]', 'server role = standalone server', 'workgroup = SVTEST', 'netbios name = SVFILES', `smb ports = ${port}`,
      'interfaces = 127.0.0.1', 'bind interfaces only = yes', 'server min protocol = SMB3', 'server max protocol = SMB3',
      `private dir = ${join(dir, 'private')}`, `state directory = ${join(dir, 'state')}`, `lock directory = ${join(dir, 'lock')}`,
      `cache directory = ${join(dir, 'cache')}`, `pid directory = ${join(dir, 'pid')}`, `ncalrpc dir = ${join(dir, 'ncalrpc')}`,
      `log file = ${join(dir, 'log', 'log.smbd')}`, 'log level = 1', `passdb backend = tdbsam:${join(dir, 'private', 'passdb.tdb')}`,
      'load printers = no', 'printing = bsd', 'printcap name = /dev/null', 'disable spoolss = yes', 'map to guest = never',
      'smbd:backgroundqueue = no', 'disable netbios = yes',
    ];
    const body = shares.flatMap((s) => [`[${s.name}]`, `path = ${s.path}`, `read only = ${s.readOnly ? 'yes' : 'no'}`, `valid users = ${s.validUsers.join(' ')}`, 'create mask = 0644']);
    writeFileSync(conf, [...global, ...body].join('\n  ') + '\n');
  };
  write([]);
  // the guard: smbd in the foreground of a background job; when our stdin closes (stop, or we died) → TERM it.
  // smbd starts samba-dcerpcd on demand as a daemon of its own (own session, parent init), which outlives
  // smbd: after smbd is gone, the guard kills every process started with this configuration file.
  const guard = 'trap "" INT; c=$1; shift; "$@" & p=$!; read _ || true; kill -TERM $p 2>/dev/null; wait $p; pkill -KILL -f -- "--configfile=$c" 2>/dev/null; exit 0';
  // stdout/stderr not piped: smbd's helper processes would inherit the pipes and keep this process alive
  // detached: a process group of its own, because smbd TERMs its whole process group when it stops (it took
  // the test process with it)
  const proc: ChildProcess = spawn('sh', ['-c', guard, 'sh', conf, 'smbd', '--foreground', '-s', conf], { stdio: ['pipe', 'ignore', 'ignore'], env, detached: true });
  const log = (): string => {
    try {
      return readFileSync(join(dir, 'log', 'log.smbd'), 'utf8').slice(-4000);
    } catch {
      return '(no log.smbd)';
    }
  };
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    proc.stdin!.end();
    const timer = setTimeout(() => proc.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  };
  t.teardown(stop);
  // ready: it answers a null session's share list
  for (let i = 0; ; i++) {
    const ok = await runAsync('smbclient', ['-L', '127.0.0.1', '-p', String(port), '-N', '-m', 'SMB3'], { timeoutMs: 10_000 }).then(() => true, (e: Error) => /NT_STATUS_(ACCESS_DENIED|LOGON_FAILURE)/u.test(e.message));
    if (ok) break;
    if (i > 100 || proc.exitCode !== null) throw new Error(`smbd did not come up on port ${port}: ${log()}`);
    await sleep(100);
  }
  let nextUid = 61000;
  const r: Samba = {
    dir, port,
    unc: (share) => `//127.0.0.1:${port}/${share}`,
    async addAccount(name) {
      const uid = nextUid++;
      replaceFile(passwd, `${readFileSync(passwd, 'utf8')}${name}:x:${uid}:${uid}:machine account:/nonexistent:/bin/false\n`);
      replaceFile(group, `${readFileSync(group, 'utf8')}g${uid}:x:${uid}:\n`);
      const password = `pw-${uid}-${Math.random().toString(36).slice(2)}`;
      await new Promise<void>((resolve, reject) => {
        const p = spawn('pdbedit', ['-s', conf, '-a', '-u', name, '-t'], { env, stdio: ['pipe', 'ignore', 'pipe'] });
        let err = '';
        p.stderr!.on('data', (d: Buffer) => (err += d.toString()));
        p.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`pdbedit -a ${name}: exit ${String(code)}: ${err}`))));
        p.stdin!.end(`${password}\n${password}\n`);
      });
      const credentials = join(dir, `${name.replace(/\$/gu, '_')}.cred`);
      writeFileSync(credentials, `username=${name}\npassword=${password}\ndomain=SVTEST\n`, { mode: 0o600 });
      return { name, uid, credentials };
    },
    async setShares(shares) {
      write(shares);
      const pid = Number(readFileSync(join(dir, 'pid', 'smbd.pid'), 'utf8').trim());
      process.kill(pid, 'SIGHUP');
      await sleep(300); // smbd re-reads on the signal; new connections see the new shares
    },
    stop,
  };
  return r;
}

/** A folder owned by `uid` with `mode` (the folder's permission for that account). */
export function folderFor(path: string, uid: number, mode: number): string {
  mkdirSync(path, { recursive: true });
  chownSync(path, uid, uid);
  chmodSync(path, mode);
  return path;
}
