/**
 * The CLI's client for a running appliance. `--url URL` (or SHADOWVAULT_URL; default the local appliance at
 * http://127.0.0.1:8470) and a token from SHADOWVAULT_TOKEN, `--token-file FILE`, or the local appliance's
 * admin-token file. Errors from the appliance come back as the same catalogued SvError (code, message,
 * details); a connection failure is SV_ERR_API_REMOTE. For a self-signed TLS certificate set
 * NODE_EXTRA_CA_CERTS=cert.pem.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DEFAULT_HOST, DEFAULT_PORT, defaultDataDir } from '../appliance/config.js';
import { SvError, fromWire, type WireError } from '../errors/index.js';

export { REMOTE_OPTIONS, REMOTE_USAGE } from './remote-options.js';

export class RemoteClient {
  constructor(readonly url: string, readonly token: string) {}

  async request<T>(method: 'GET' | 'POST' | 'PATCH' | 'DELETE', path: string, body?: unknown): Promise<T> {
    let res: Response;
    const target = new URL(path, this.url.endsWith('/') ? this.url : `${this.url}/`);
    try {
      res = await fetch(target, {
        method,
        headers: { authorization: `Bearer ${this.token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (err) {
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      throw new SvError('SV_ERR_API_REMOTE', `cannot reach the appliance at ${this.url}: ${[cause?.code, cause?.message ?? (err as Error).message].filter(Boolean).join(' ')}`, { url: this.url }, { cause: err });
    }
    const text = await res.text();
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      throw new SvError('SV_ERR_API_REMOTE', `the appliance at ${this.url} answered ${res.status} with non-JSON: ${text.slice(0, 200)}`, { url: this.url, status: res.status });
    }
    if (!res.ok) {
      const w = json as WireError | undefined;
      if (w && typeof w.code === 'string' && typeof w.message === 'string') throw fromWire(w);
      throw new SvError('SV_ERR_API_REMOTE', `the appliance at ${this.url} answered ${res.status}`, { url: this.url, status: res.status });
    }
    return json as T;
  }
}

/** The client for `--url`/`--token-file` (and the environment); the token must be found somewhere. */
export function remoteClient(values: { url?: string; 'token-file'?: string }, env: NodeJS.ProcessEnv): RemoteClient {
  const url = values.url ?? env.SHADOWVAULT_URL ?? `http://${DEFAULT_HOST}:${DEFAULT_PORT}`;
  if (!/^https?:\/\//.test(url)) throw new SvError('SV_ERR_CLI_BAD_USAGE', `--url "${url}": expected http://HOST:PORT or https://HOST:PORT`, { url });
  let token = values['token-file'] === undefined ? env.SHADOWVAULT_TOKEN : undefined;
  const file = values['token-file'] ?? (token ? undefined : join(defaultDataDir(env), 'admin-token'));
  if (!token && file) {
    try {
      token = readFileSync(file, 'utf8').trim();
    } catch (err) {
      throw new SvError('SV_ERR_CLI_BAD_USAGE', `no API token: set SHADOWVAULT_TOKEN or pass --token-file (cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, { file }, { cause: err });
    }
  }
  if (!token) throw new SvError('SV_ERR_CLI_BAD_USAGE', 'no API token: set SHADOWVAULT_TOKEN or pass --token-file', {});
  return new RemoteClient(url, token);
}

/** The id of the appliance's data source with this name (or id). */
export async function sourceIdByName(api: RemoteClient, name: string): Promise<string> {
  const sources = await api.request<{ id: string; name: string }[]>('GET', 'api/v1/sources');
  const s = sources.find((x) => x.name === name || x.id === name);
  if (!s) throw new SvError('SV_ERR_API_NOT_FOUND', `no data source named "${name}" on the appliance at ${api.url}`, { name });
  return s.id;
}

export interface RemoteJob {
  id: string;
  state: string;
  progress: { bytesDone: number; bytesTotal: number };
  result?: Record<string, unknown>;
  error?: WireError;
}

/**
 * Start a job on the appliance and wait for its end (polling); resolves with the finished job, rejects with
 * the job's own error (same code) when it failed. For `backup --url`, `verify --url`, ...:
 *   const job = await runRemoteJob(api, { kind: 'backup', sourceId: await sourceIdByName(api, source) });
 */
export async function runRemoteJob(api: RemoteClient, body: Record<string, unknown>, onProgress?: (done: number, total: number) => void, pollMs = 250): Promise<RemoteJob> {
  let job = await api.request<RemoteJob>('POST', 'api/v1/jobs', body);
  while (job.state === 'queued' || job.state === 'running') {
    await new Promise((r) => setTimeout(r, pollMs));
    job = await api.request<RemoteJob>('GET', `api/v1/jobs/${encodeURIComponent(job.id)}`);
    onProgress?.(job.progress.bytesDone, job.progress.bytesTotal);
  }
  if (job.state !== 'succeeded') throw job.error ? fromWire(job.error) : new SvError('SV_ERR_API_REMOTE', `job ${job.id} ended ${job.state}`, { id: job.id });
  return job;
}
