/** Shared steps of the issue 9 D4 tests: a served appliance with sources, polling jobs, bounded exits. */
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Job } from '../../src/appliance/model.js';
import { api, serve, type Served } from '../api/serve-helper.js';

/** Upper bound for anything these tests wait on: a hang fails the test instead of the suite. */
export const HANG_MS = 30_000;

export interface Appl extends Served {
  token: string;
}

export async function start(data: string): Promise<Appl> {
  const s = await serve(['--data-dir', data, '--source-root', tmpdir()], { SHADOWVAULT_WORKERS: '1' });
  return { ...s, token: readFileSync(join(data, 'admin-token'), 'utf8').trim() };
}

export async function addSource(s: Appl, name: string, path: string): Promise<string> {
  const r = await api<{ id: string }>(s, s.token, 'POST', '/api/v1/sources', { name, disks: [{ name: 'disk0', path }] });
  if (r.status !== 201) throw new Error(`adding ${name}: ${JSON.stringify(r.json)}`);
  return r.json.id;
}

export async function backup(s: Appl, sourceId: string): Promise<Job> {
  return (await api<Job>(s, s.token, 'POST', '/api/v1/jobs', { kind: 'backup', sourceId })).json;
}

/** Poll a job until `until` holds; throws after HANG_MS. */
export async function waitJob(s: Appl, id: string, until: (j: Job) => boolean): Promise<Job> {
  const end = Date.now() + HANG_MS;
  for (;;) {
    const j = (await api<Job>(s, s.token, 'GET', `/api/v1/jobs/${id}`)).json;
    if (until(j)) return j;
    if (Date.now() > end) throw new Error(`job ${id} still ${j.state} after ${HANG_MS} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export const finished = (j: Job): boolean => !['queued', 'running'].includes(j.state);

/** Resolves with how the process ended, or 'hung' if it is still alive after HANG_MS (then it is killed). */
export function ended(s: Served): Promise<{ code: number | null; signal: NodeJS.Signals | null } | 'hung'> {
  return new Promise((resolve) => {
    if (s.proc.exitCode !== null || s.proc.signalCode !== null) {
      resolve({ code: s.proc.exitCode, signal: s.proc.signalCode });
      return;
    }
    const timer = setTimeout(() => {
      s.proc.kill('SIGKILL');
      resolve('hung');
    }, HANG_MS);
    s.proc.once('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal });
    });
  });
}
