/**
 * /api/v1/jobs: the job queue. Listing and reading need viewer; starting and cancelling need operator.
 * Lists leave out job results and logs (GET /jobs/:id and /jobs/:id/log have them) and a serialised list is
 * reused for up to LIST_CACHE_MS (dropped at every job transition), so polling dashboards stay cheap while
 * backups run: progress figures in a list may be that much old.
 */
import type { FastifyInstance } from 'fastify';
import { SvError } from '../../errors/index.js';
import type { Job, JobKind, JobState } from '../../appliance/model.js';
import type { RouteDeps } from '../app.js';
import { ERROR_REPLIES, idParams, jobBody, jobLog, jobsQuery } from '../schemas.js';

const one = { $ref: 'Job#' } as const;
const LIST_CACHE_MS = 250;
const LIST_CACHE_ENTRIES = 64;

export async function jobRoutes(app: FastifyInstance, { appliance }: RouteDeps): Promise<void> {
  const tags = ['jobs'];
  const q = appliance.queue;
  const listCache = new Map<string, { at: number; body: string }>();
  q.on('transition', () => listCache.clear());
  const find = (id: string): Job => {
    const j = q.get(id);
    if (!j) throw new SvError('SV_ERR_API_NOT_FOUND', `no job ${id}`, { id });
    return j;
  };

  app.get<{ Querystring: { state?: JobState; kind?: JobKind; sourceId?: string; limit?: string } }>('/jobs', {
    config: { role: 'viewer' },
    schema: { summary: 'List jobs, newest first, without results and logs (filters: state, kind, sourceId; limit default 100, at most 1000)', tags, querystring: jobsQuery, response: { 200: { type: 'array', items: { $ref: 'JobSummary#' } }, ...ERROR_REPLIES } },
  }, async (req, reply) => {
    const now = Date.now();
    const hit = listCache.get(req.url);
    if (hit && now - hit.at < LIST_CACHE_MS) return reply.type('application/json; charset=utf-8').send(hit.body);
    const { state, kind, sourceId } = req.query;
    const limit = Math.min(Number(req.query.limit ?? 100), 1000);
    const out: Job[] = [];
    const all = q.list();
    for (let i = all.length - 1; i >= 0 && out.length < limit; i--) {
      const j = all[i];
      if ((state === undefined || j.state === state) && (kind === undefined || j.kind === kind) && (sourceId === undefined || j.sourceId === sourceId)) out.push(j);
    }
    const body = String(reply.serialize(out));
    if (listCache.size >= LIST_CACHE_ENTRIES) listCache.clear();
    listCache.set(req.url, { at: now, body });
    return reply.type('application/json; charset=utf-8').send(body);
  });

  app.get<{ Params: { id: string } }>('/jobs/:id', { config: { role: 'viewer' }, schema: { summary: 'One job: state, progress (bytes, rate, ETA), result or error', tags, params: idParams, response: { 200: one, ...ERROR_REPLIES } } }, async (req) => find(req.params.id));

  app.get<{ Params: { id: string } }>('/jobs/:id/log', { config: { role: 'viewer' }, schema: { summary: 'A job\'s log lines', tags, params: idParams, response: { 200: jobLog, ...ERROR_REPLIES } } }, async (req) => {
    const j = find(req.params.id);
    return { id: j.id, lines: j.log };
  });

  app.post<{ Body: { kind: Exclude<JobKind, 'restore'>; sourceId?: string; groupId?: string; full?: boolean; dryRun?: boolean } }>('/jobs', {
    config: { role: 'operator' },
    schema: { summary: 'Start a job now: backup, check or prune of a source; verify, gc or repair of the store (gc: `full` rebuilds its reference table; repair: `dryRun` only reports)', tags, body: jobBody, response: { 202: one, ...ERROR_REPLIES } },
  }, async (req, reply) => {
    const { kind, sourceId, groupId, full, dryRun } = req.body;
    if (full !== undefined && kind !== 'gc') throw new SvError('SV_ERR_API_VALIDATION', `full applies to gc jobs only, not ${kind}`, { kind });
    if (dryRun !== undefined && kind !== 'repair') throw new SvError('SV_ERR_API_VALIDATION', `dryRun applies to repair jobs only, not ${kind}`, { kind });
    const perSource = kind === 'backup' || kind === 'check' || kind === 'prune';
    if (perSource && sourceId === undefined) throw new SvError('SV_ERR_API_VALIDATION', `a ${kind} job needs sourceId`, { kind });
    if (!perSource && (sourceId !== undefined || groupId !== undefined)) throw new SvError('SV_ERR_API_VALIDATION', `a ${kind} job works on the whole store: leave out sourceId and groupId`, { kind });
    let job: Job | undefined;
    if (perSource) {
      const source = appliance.protection.source(sourceId as string);
      const group = groupId !== undefined ? appliance.protection.group(groupId) : appliance.protection.groups().find((g) => g.members.includes(source.id));
      if (group && !group.members.includes(source.id)) throw new SvError('SV_ERR_API_CONFLICT', `data source ${source.name} is not a member of group ${group.name}`, { sourceId, groupId });
      const pending = q.pending(kind, source.id);
      if (pending) throw new SvError('SV_ERR_JOB_SOURCE_BUSY', `a ${kind} job (${pending.id}) is already ${pending.state} for ${source.name}`, { jobId: pending.id });
      if (kind === 'prune') {
        job = await appliance.applyRetention(source);
        if (!job) job = await q.enqueue({ kind, trigger: 'api', sourceId: source.id, groupId: group?.id, params: { pointIds: [] } });
      } else {
        job = await q.enqueue({ kind, trigger: 'api', sourceId: source.id, groupId: group?.id, params: kind === 'backup' ? { tag: 'manual' } : {} });
      }
    } else {
      const pending = q.pending(kind, undefined);
      if (pending) throw new SvError('SV_ERR_JOB_SOURCE_BUSY', `a ${kind} job (${pending.id}) is already ${pending.state}`, { jobId: pending.id });
      job = await q.enqueue({ kind, trigger: 'api', ...(full ? { params: { full: true } } : {}), ...(dryRun ? { params: { dryRun: true } } : {}) });
    }
    return reply.status(202).send(job);
  });

  app.post<{ Params: { id: string } }>('/jobs/:id/cancel', {
    config: { role: 'operator' },
    schema: { summary: 'Cancel a queued or running job (409 when it has finished)', tags, params: idParams, response: { 200: one, ...ERROR_REPLIES } },
  }, async (req) => q.cancel(req.params.id));
}
