/**
 * Appliance configuration: where its state and store live, where it listens, and its limits. Defaults are
 * the embedded appliance on one machine: loopback only, a local volume store under the user's data folder.
 *
 * Layout of the data folder (default `$XDG_DATA_HOME/shadowvault`, else `~/.local/share/shadowvault`):
 *   store/          the volume store (unless `--store` points elsewhere)
 *   store-state/    local state of a store on S3 (`--store s3://...`): cache, locks, staging (`--state-dir`)
 *   appliance/      appliance state: groups.json, sources.json, jobs.json, tokens.json, points.json
 *   admin-token     the first admin token, mode 0600, written once on first start
 *   restores/       the default restore root (`--restore-root`)
 *   sources/        the default source root (`--source-root`): source disks must lie under a source root
 */
import { parseStoreUrl } from '../../storage/backend/open.js';
import { homedir } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import { SvError } from '../errors/index.js';

export const DEFAULT_PORT = 8470;
export const DEFAULT_HOST = '127.0.0.1';

export interface Limits {
  /** Jobs running at once on the appliance. */
  readonly maxConcurrentJobs: number;
  /** Jobs running at once against one source host (for a VM source: the node that runs the VM now). */
  readonly maxJobsPerHost: number;
  /** Jobs running at once against the nodes of one cluster (VM sources on hosts whose agent gave --cluster). */
  readonly maxJobsPerCluster: number;
  /** Attempts of a job interrupted by a crash or restart, counting the first. */
  readonly maxAttempts: number;
  /** Largest request body accepted, bytes. */
  readonly bodyLimit: number;
  /** Failed authentications from one address within `authWindowMs` before 429. */
  readonly authFailures: number;
  readonly authWindowMs: number;
  /** Finished jobs kept in the state file (older ones are dropped). */
  readonly keepFinishedJobs: number;
  /** Image downloads streaming at once on the appliance, and per API token (src/appliance/downloads.ts). */
  readonly maxDownloads: number;
  readonly maxDownloadsPerToken: number;
}

export const DEFAULT_LIMITS: Limits = {
  maxConcurrentJobs: 2,
  maxJobsPerHost: 1,
  maxJobsPerCluster: 2,
  maxAttempts: 3,
  bodyLimit: 64 * 1024,
  authFailures: 10,
  authWindowMs: 60_000,
  keepFinishedJobs: 500,
  maxDownloads: 4,
  maxDownloadsPerToken: 2,
};

export interface ApplianceConfig {
  readonly dataDir: string;
  /** Its name (`serve --name`); its id is made once and kept in the state folder (identity.json). */
  readonly name?: string;
  /** The volume store: a folder, or an s3:// URL (storage/backend/open.ts). */
  readonly storeDir: string;
  /** Local state of a store on object storage (cache, locks, staging): --state-dir, else <data-dir>/store-state. */
  readonly storeStateDir: string;
  readonly stateDir: string;
  readonly adminTokenFile: string;
  readonly host: string;
  readonly port: number;
  readonly tls?: { readonly certFile: string; readonly keyFile: string };
  /** Folders restores may write into (restore targets must resolve inside one of them). */
  readonly restoreRoots: readonly string[];
  /**
   * Where source disks may be: folders (a disk's real path must lie inside one) or block devices named
   * themselves. Default `<data-dir>/sources`: no disk outside the appliance's own folder until an admin says so.
   */
  readonly sourceRoots: readonly string[];
  readonly limits: Limits;
  /** Daily store maintenance (UTC "HH:MM"): gc reclaims pruned points' blocks, verify re-hashes the store. */
  readonly maintenance: { readonly gcTimes: readonly string[]; readonly verifyTimes: readonly string[] };
}

export const DEFAULT_MAINTENANCE = { gcTimes: ['02:30'], verifyTimes: ['03:30'] } as const;

function timesOfDay(list: string[] | undefined, opt: string, fallback: readonly string[]): string[] {
  if (list === undefined) return [...fallback];
  const out = list.flatMap((x) => x.split(',')).map((x) => x.trim()).filter((x) => x && x !== 'never');
  for (const x of out) if (!/^([01]\d|2[0-3]):[0-5]\d$/.test(x)) throw new SvError('SV_ERR_CLI_BAD_USAGE', `${opt} "${x}": expected HH:MM (UTC) or "never"`, { value: x });
  return out;
}

/** `$XDG_DATA_HOME/shadowvault`, else `~/.local/share/shadowvault`. */
export function defaultDataDir(env: NodeJS.ProcessEnv): string {
  if (env.SHADOWVAULT_DATA_DIR) return resolve(env.SHADOWVAULT_DATA_DIR);
  const xdg = env.XDG_DATA_HOME;
  const base = xdg && isAbsolute(xdg) ? xdg : join(env.HOME || homedir(), '.local', 'share');
  return join(base, 'shadowvault');
}

/** Parse `HOST:PORT`, `:PORT`, `PORT` or `[v6]:PORT`. */
export function parseListen(text: string): { host: string; port: number } {
  const t = text.trim();
  const m = /^(\d{1,5})$/.exec(t) ?? /^\[([0-9a-fA-F:.]+)\]:(\d{1,5})$/.exec(t) ?? /^([^:[\]\s\u0000]*):(\d{1,5})$/.exec(t);
  const host = m && m.length === 3 ? m[1] || DEFAULT_HOST : DEFAULT_HOST;
  const port = m ? Number(m[m.length - 1]) : NaN;
  if (!m || !(port >= 0 && port <= 65535)) {
    throw new SvError('SV_ERR_CLI_BAD_USAGE', `--listen "${text}": expected HOST:PORT (e.g. 127.0.0.1:${DEFAULT_PORT})`, { listen: text });
  }
  return { host, port };
}

export interface ConfigInput {
  dataDir?: string;
  /** The appliance's name for people (VM ownership records, other appliances' `vms`); default the host name. */
  name?: string;
  store?: string;
  /** --state-dir: local state of a store on object storage. */
  storeStateDir?: string;
  listen?: string;
  tlsCert?: string;
  tlsKey?: string;
  restoreRoots?: string[];
  sourceRoots?: string[];
  limits?: Partial<Limits>;
  gcAt?: string[];
  verifyAt?: string[];
}

export function makeConfig(input: ConfigInput, env: NodeJS.ProcessEnv): ApplianceConfig {
  const dataDir = resolve(input.dataDir ?? defaultDataDir(env));
  const { host, port } = input.listen ? parseListen(input.listen) : { host: DEFAULT_HOST, port: DEFAULT_PORT };
  if (Boolean(input.tlsCert) !== Boolean(input.tlsKey)) {
    throw new SvError('SV_ERR_CLI_BAD_USAGE', 'TLS needs both --tls-cert and --tls-key', {});
  }
  const restoreRoots = (input.restoreRoots?.length ? input.restoreRoots : [join(dataDir, 'restores')]).map((r) => resolve(r));
  const sourceRoots = (input.sourceRoots?.length ? input.sourceRoots : [join(dataDir, 'sources')]).map((r) => resolve(r));
  if (input.name !== undefined && !/^[^\u0000-\u001f]{1,255}$/.test(input.name)) throw new SvError('SV_ERR_CLI_BAD_USAGE', `--name "${input.name}": 1..255 printable characters`, {});
  return {
    dataDir,
    ...(input.name !== undefined ? { name: input.name } : {}),
    storeDir: input.store !== undefined && parseStoreUrl(input.store).kind !== 'fs' ? input.store : resolve(input.store ?? join(dataDir, 'store')),
    storeStateDir: resolve(input.storeStateDir ?? join(dataDir, 'store-state')),
    stateDir: join(dataDir, 'appliance'),
    adminTokenFile: join(dataDir, 'admin-token'),
    host,
    port,
    tls: input.tlsCert && input.tlsKey ? { certFile: resolve(input.tlsCert), keyFile: resolve(input.tlsKey) } : undefined,
    restoreRoots,
    sourceRoots,
    limits: { ...DEFAULT_LIMITS, ...input.limits },
    maintenance: { gcTimes: timesOfDay(input.gcAt, '--gc-at', DEFAULT_MAINTENANCE.gcTimes), verifyTimes: timesOfDay(input.verifyAt, '--verify-at', DEFAULT_MAINTENANCE.verifyTimes) },
  };
}
