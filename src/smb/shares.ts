/**
 * SMB 3.0 shares as the agents see them.
 *
 * Host side (`--smb-share //SERVER[:PORT]/NAME=LOCAL_PATH`): the VMs' disk files live on share NAME of file
 * server SERVER. LOCAL_PATH is where this host's hypervisor opens them (on Windows the UNC path itself; here,
 * where no CIFS mount is possible, the share's folder as the file server has it: see the README's limits).
 * A disk is "on the share" when its path lies under LOCAL_PATH; its folder is the path between the share's
 * root and the file, '/'-separated ('' for the root).
 *
 * File-server side (`--share NAME=PATH`): the agent on the file server serves share NAME from its folder PATH
 * and reads disk files there for the appliance (share.open). A path inside the share is resolved with
 * `resolveInShare`: relative, no `..`, no link leading out of the share (SV_ERR_SMB_BAD_PATH otherwise).
 */
import { realpathSync } from 'node:fs';
import { isAbsolute, relative, resolve, sep } from 'node:path';
import { SvError } from '../errors/index.js';

export interface SmbShare {
  /** `//server[:port]/name` as given. */
  readonly unc: string;
  readonly server: string;
  readonly port?: number;
  readonly name: string;
  /** Where the host opens the share's files. */
  readonly localPath: string;
}

/** Where a file lies on a share. */
export interface OnShare {
  readonly share: SmbShare;
  /** Folder of the file inside the share ('/'-separated, '' = the share's root). */
  readonly folder: string;
  /** The file's path inside the share ('/'-separated). */
  readonly path: string;
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._$-]{0,79}$/u;

/** `//SERVER[:PORT]/NAME=LOCAL_PATH` (host side). */
export function parseSmbShare(spec: string): SmbShare {
  const m = /^\/\/([A-Za-z0-9.-]{1,253}|\[[0-9a-fA-F:]+\])(?::(\d{1,5}))?\/([^/=]+)=(\/.*)$/u.exec(spec);
  const port = m?.[2] === undefined ? undefined : Number(m[2]);
  if (!m || !NAME.test(m[3]!) || (port !== undefined && (port < 1 || port > 65535))) {
    throw new SvError('SV_ERR_SMB_BAD_SHARE', `--smb-share "${spec}": expected //SERVER[:PORT]/NAME=LOCAL_PATH (an absolute local path)`, { value: spec });
  }
  const unc = `//${m[1]!}${port !== undefined ? `:${port}` : ''}/${m[3]!}`;
  return { unc, server: m[1]!, ...(port !== undefined ? { port } : {}), name: m[3]!, localPath: resolve(m[4]!) };
}

/** `NAME=PATH` (file-server side). */
export function parseServedShare(spec: string): { readonly name: string; readonly path: string } {
  const i = spec.indexOf('=');
  const name = i > 0 ? spec.slice(0, i) : '';
  const path = i > 0 ? spec.slice(i + 1) : '';
  if (!NAME.test(name) || !isAbsolute(path)) throw new SvError('SV_ERR_SMB_BAD_SHARE', `--share "${spec}": expected NAME=PATH (an absolute folder)`, { value: spec });
  return { name, path: resolve(path) };
}

/** The share a host file lies on, or undefined. */
export function shareOf(shares: readonly SmbShare[], file: string): OnShare | undefined {
  const abs = resolve(file);
  for (const share of shares) {
    const rel = relative(share.localPath, abs);
    if (rel === '' || rel.startsWith('..') || isAbsolute(rel)) continue;
    const parts = rel.split(sep);
    return { share, folder: parts.slice(0, -1).join('/'), path: parts.join('/') };
  }
  return undefined;
}

/** The local file behind `path` inside a served share's folder `root` (SV_ERR_SMB_BAD_PATH when it leaves the share). */
export function resolveInShare(share: string, root: string, path: string): string {
  const bad = (why: string): SvError => new SvError('SV_ERR_SMB_BAD_PATH', `share ${share}: path "${path}" ${why}`, { share, path });
  if (typeof path !== 'string' || path.length === 0 || path.length > 4096 || path.includes('\0')) throw bad('is empty, too long or not text');
  if (path.startsWith('/') || path.startsWith('\\')) throw bad('is absolute (a path inside the share is wanted)');
  const parts = path.split(/[/\\]/u);
  if (parts.some((p) => p === '..' || p === '.' || p === '')) throw bad('has an empty, "." or ".." part');
  const full = resolve(root, ...parts);
  let real: string;
  let realRoot: string;
  try {
    real = realpathSync(full);
    realRoot = realpathSync(root);
  } catch (err) {
    throw new SvError('SV_ERR_SMB_BAD_PATH', `share ${share}: path "${path}" cannot be opened: ${(err as Error).message}`, { share, path }, { cause: err });
  }
  const rel = relative(realRoot, real);
  if (rel === '' || rel.startsWith('..') || isAbsolute(rel)) throw bad('leads out of the share (a link?)');
  return real;
}
