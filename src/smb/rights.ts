/**
 * The share permission check, against the real SMB server, as the host's machine account (`HOST$`).
 *
 * DPM requires full share and folder permissions for the machine account of every Hyper-V host whose VMs keep
 * their disks on an SMB 3.0 share. The host agent checks them the way the hypervisor will use them: through
 * the SMB server, with that account's credentials (an smbclient authentication file: username=HOST$,
 * password=..., domain=...), SMB 3 only. One smbclient call per right, so a refusal names its right:
 *
 *   connect  (share)   tree connect to //SERVER/NAME (`pwd`)     NT_STATUS_ACCESS_DENIED, _BAD_NETWORK_NAME
 *   read     (folder)  list the folder (-D FOLDER, `ls`)           NT_STATUS_ACCESS_DENIED, _OBJECT_NAME_NOT_FOUND
 *   write    (folder)  create a probe file `.sv-rights-<random>`   NT_STATUS_ACCESS_DENIED (share read-only or folder ACL)
 *   delete   (folder)  delete that probe file                      NT_STATUS_ACCESS_DENIED
 *
 * Answers are kept `ttlMs` per share and folder (the inventory polls every few seconds; a backup asks with
 * `fresh`). A server that cannot be asked at all (smbclient missing, connection refused, logon refused) is
 * SV_ERR_SMB_CHECK_FAILED, not a missing right: nothing was learnt about the rights.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { SvError } from '../errors/index.js';
import type { SmbShare } from './shares.js';

const run = promisify(execFile);

export type SmbRight = 'connect' | 'read' | 'write' | 'delete';

export interface MissingRight {
  /** `//server[:port]/name`. */
  readonly share: string;
  /** Folder inside the share ('' = its root). */
  readonly folder: string;
  readonly right: SmbRight;
  /** Whose right: the share's (connect) or the folder's (read, write, delete: share or folder permission). */
  readonly scope: 'share' | 'folder';
  readonly account: string;
  /** The NT status the server answered. */
  readonly status: string;
  readonly reason: string;
}

export interface RightsCheckerOptions {
  /** smbclient authentication file of the host's machine account (username=HOST$, password=, domain=). */
  readonly credentials: string;
  readonly smbclient?: string;
  readonly ttlMs?: number;
}

interface Answer {
  readonly ok: boolean;
  readonly status: string;
  readonly text: string;
}

/** The account named in an smbclient authentication file (its `username` line). */
export function accountOf(credentials: string): string {
  let text: string;
  try {
    text = readFileSync(credentials, 'utf8');
  } catch (err) {
    throw new SvError('SV_ERR_SMB_CHECK_FAILED', `cannot read the machine account's credentials ${credentials}: ${(err as Error).message}`, { credentials }, { cause: err });
  }
  const user = /^\s*username\s*=\s*(\S+)\s*$/mu.exec(text)?.[1];
  if (!user) throw new SvError('SV_ERR_SMB_CHECK_FAILED', `${credentials} has no username= line (an smbclient authentication file is wanted)`, { credentials });
  return user;
}

/** Statuses of a lost or refused connection, not of a right (see #smb). */
const CONNECTION_LOST = /NT_STATUS_(CONNECTION_(DISCONNECTED|RESET|REFUSED|ABORTED)|IO_TIMEOUT|NETWORK_UNREACHABLE|HOST_UNREACHABLE)/u;

export class RightsChecker {
  readonly #o: RightsCheckerOptions;
  readonly account: string;
  readonly #cache = new Map<string, { at: number; missing: Promise<MissingRight[]> }>();
  #empty: string | undefined;

  constructor(o: RightsCheckerOptions) {
    this.#o = o;
    this.account = accountOf(o.credentials);
  }

  /** The rights the account lacks on `folder` of `share` (empty: every right is there). */
  check(share: SmbShare, folder: string, fresh = false): Promise<MissingRight[]> {
    const key = `${share.unc}|${folder}`;
    const hit = this.#cache.get(key);
    if (!fresh && hit && Date.now() - hit.at < (this.#o.ttlMs ?? 30_000)) return hit.missing;
    const missing = this.#check(share, folder);
    this.#cache.set(key, { at: Date.now(), missing });
    missing.catch(() => this.#cache.delete(key));
    return missing;
  }

  async #check(share: SmbShare, folder: string): Promise<MissingRight[]> {
    const miss = (right: SmbRight, a: Answer, why: string): MissingRight[] => [{
      share: share.unc, folder, right, scope: right === 'connect' ? 'share' : 'folder', account: this.account, status: a.status,
      reason: `${this.account} ${why} ${right === 'connect' ? `share ${share.unc}` : `folder "${folder || '\\'}" of share ${share.unc}`} (${a.status})`,
    }];
    const connect = await this.#smb(share, '', 'pwd');
    if (!connect.ok) {
      if (/NT_STATUS_ACCESS_DENIED|NT_STATUS_BAD_NETWORK_NAME/u.test(connect.status)) return miss('connect', connect, 'cannot connect to');
      throw this.#failed(share, connect);
    }
    const read = await this.#smb(share, folder, 'ls');
    if (!read.ok) return miss('read', read, 'cannot list');
    const probe = `.sv-rights-${randomBytes(6).toString('hex')}`;
    const write = await this.#smb(share, folder, `put ${this.#emptyFile()} ${probe}`);
    if (!write.ok) return miss('write', write, 'cannot create files in');
    const del = await this.#smb(share, folder, `del ${probe}`);
    if (!del.ok) return miss('delete', del, 'cannot delete files in');
    return [];
  }

  /** A local empty file to put (smbclient puts regular files only, not /dev/null). */
  #emptyFile(): string {
    if (!this.#empty) {
      this.#empty = join(mkdtempSync(join(tmpdir(), 'sv-rights-')), 'empty');
      writeFileSync(this.#empty, '');
    }
    return this.#empty;
  }

  #failed(share: SmbShare, a: Answer): SvError {
    return new SvError('SV_ERR_SMB_CHECK_FAILED', `cannot check the rights of ${this.account} on ${share.unc}: ${a.status} (${a.text.trim().split('\n').at(-1) ?? ''})`, { share: share.unc, status: a.status });
  }

  /**
   * One smbclient command. A connection lost or refused says nothing about rights: it is tried once more, and
   * if it fails again the check fails (SV_ERR_SMB_CHECK_FAILED) instead of reporting a right as missing.
   */
  async #smb(share: SmbShare, folder: string, command: string): Promise<Answer> {
    let a = await this.#smbOnce(share, folder, command);
    if (!a.ok && CONNECTION_LOST.test(a.status)) a = await this.#smbOnce(share, folder, command);
    if (!a.ok && CONNECTION_LOST.test(a.status)) throw this.#failed(share, a);
    return a;
  }

  async #smbOnce(share: SmbShare, folder: string, command: string): Promise<Answer> {
    const args = [`//${share.server}/${share.name}`, '-m', 'SMB3', '-A', this.#o.credentials, ...(share.port ? ['-p', String(share.port)] : []), ...(folder ? ['-D', folder] : []), '-c', command];
    try {
      const { stdout, stderr } = await run(this.#o.smbclient ?? 'smbclient', args, { timeout: 30_000, env: { ...process.env, LC_ALL: 'C' } });
      const text = stdout + stderr;
      // smbclient exits 0 after some failed commands: a status in the output is the answer
      const status = /NT_STATUS_[A-Z_]+/u.exec(text)?.[0];
      return status ? { ok: false, status, text } : { ok: true, status: 'NT_STATUS_OK', text };
    } catch (err) {
      const e = err as NodeJS.ErrnoException & { stdout?: string; stderr?: string };
      if (e.code === 'ENOENT') throw new SvError('SV_ERR_SMB_CHECK_FAILED', 'smbclient is not installed (Debian: apt-get install smbclient)', { share: share.unc });
      const text = `${e.stdout ?? ''}${e.stderr ?? ''}`;
      return { ok: false, status: /NT_STATUS_[A-Z_]+/u.exec(text)?.[0] ?? `exit ${String(e.code)}`, text };
    }
  }
}
