/**
 * JSON schemas of the admin API: request bodies, parameters and replies. Routes use them for validation and
 * serialisation, and the OpenAPI document (openapi.ts) is built from them, so the document cannot drift.
 */
import { FALLBACK_REASONS } from '../appliance/fallback.js';

/** A copy of a schema with every `default` removed (PATCH bodies must not fill in absent fields). */
function withoutDefaults<T>(schema: T): T {
  return JSON.parse(JSON.stringify(schema, (k, v: unknown) => (k === 'default' ? undefined : v))) as T;
}

const id = { type: 'string', minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9-]+$' } as const;
const name = { type: 'string', minLength: 1, maxLength: 128, pattern: '^[A-Za-z0-9][A-Za-z0-9 ._@()+-]*$' } as const;
const diskName = { type: 'string', minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9][A-Za-z0-9._-]*$' } as const;
const absPath = { type: 'string', minLength: 2, maxLength: 4096, pattern: '^/[^\\u0000]*$' } as const;
/** How a source disk is read; absent: its name and content decide (see README "Virtual disks"). */
const diskFormat = { type: 'string', enum: ['raw', 'vhd', 'vhdx'] } as const;
const timeOfDay = { type: 'string', pattern: '^([01][0-9]|2[0-3]):[0-5][0-9]$' } as const;
const iso = { type: 'string' } as const;

export const errorReply = {
  $id: 'Error',
  type: 'object',
  required: ['code', 'message'],
  properties: { code: { type: 'string' }, message: { type: 'string' }, details: { type: 'object', additionalProperties: true } },
} as const;

export const idParams = { type: 'object', required: ['id'], properties: { id }, additionalProperties: false } as const;

const diskRef = {
  type: 'object',
  required: ['name', 'path'],
  additionalProperties: false,
  properties: { name: diskName, path: absPath, format: diskFormat },
} as const;

export const sourceBody = {
  type: 'object',
  // A path source names its disks; a VM source names its VM (by name or id, from the agents' inventory).
  anyOf: [{ required: ['name', 'disks'] }, { required: ['vm'] }],
  additionalProperties: false,
  properties: {
    name,
    host: { type: 'string', minLength: 1, maxLength: 253, pattern: '^[A-Za-z0-9][A-Za-z0-9.-]*$', default: 'local' },
    disks: { type: 'array', minItems: 1, maxItems: 64, items: diskRef },
    vm: { type: 'string', minLength: 1, maxLength: 128, description: 'protect this VM (name or id, as `vms` lists it) through its host agent, instead of disk paths' },
    online: { type: 'boolean', description: 'VM sources: allow online (application-consistent) backups when the VM meets the requirements (default true)' },
    takeOver: { type: 'boolean', description: 'VM sources: force the takeover of a VM another appliance protects (an admin\'s decision: logged, shown in `vms` on both appliances); without it such a VM is refused (SV_ERR_AGENT_VM_OWNED)' },
    attach: { type: 'boolean', description: 'continue the recovery points the store holds under this name (a re-added source); without it such a name is refused (SV_ERR_API_SOURCE_HAS_POINTS)' },
  },
} as const;

export const sourcePatch = withoutDefaults({ type: 'object', additionalProperties: false, properties: { name, host: sourceBody.properties.host, disks: sourceBody.properties.disks, online: sourceBody.properties.online } } as const);

export const source = {
  $id: 'DataSource',
  type: 'object',
  required: ['id', 'name', 'host', 'disks', 'createdAt'],
  properties: {
    id: { type: 'string' }, name: { type: 'string' }, host: { type: 'string' },
    disks: { type: 'array', items: { type: 'object', properties: { name: { type: 'string' }, path: { type: 'string' }, format: diskFormat } } },
    vm: { type: 'object', properties: { id: { type: 'string' }, name: { type: 'string' }, online: { type: 'boolean' }, takenOver: { type: 'object', properties: { from: { type: 'object', properties: { id: { type: 'string' }, name: { type: 'string' } } }, at: iso } } } },
    createdAt: iso,
  },
} as const;

const retention = {
  type: 'object',
  required: ['days', 'maxCount'],
  additionalProperties: false,
  properties: { days: { type: 'integer', minimum: 1, maximum: 3650 }, maxCount: { type: 'integer', minimum: 1, maximum: 10000 } },
} as const;

export const groupBody = {
  type: 'object',
  required: ['name', 'syncFrequencyMinutes', 'recoveryPointTimes', 'retention'],
  additionalProperties: false,
  properties: {
    name,
    members: { type: 'array', maxItems: 1000, uniqueItems: true, items: id, default: [] },
    syncFrequencyMinutes: { type: 'integer', minimum: 15, maximum: 1440 },
    recoveryPointTimes: { type: 'array', minItems: 1, maxItems: 24, uniqueItems: true, items: timeOfDay },
    retention,
    consistencyCheckTimes: { type: 'array', maxItems: 24, uniqueItems: true, items: timeOfDay, default: [] },
    disks: { type: 'array', maxItems: 64, uniqueItems: true, items: diskName, default: [] },
    enabled: { type: 'boolean', default: true },
  },
} as const;

export const groupPatch = withoutDefaults({ ...groupBody, required: [] });

export const group = {
  $id: 'ProtectionGroup',
  type: 'object',
  required: ['id', 'name', 'members', 'syncFrequencyMinutes', 'recoveryPointTimes', 'retention', 'consistencyCheckTimes', 'disks', 'enabled', 'createdAt'],
  properties: {
    id: { type: 'string' },
    name: { type: 'string' },
    members: { type: 'array', items: { type: 'string' } },
    syncFrequencyMinutes: { type: 'integer' },
    recoveryPointTimes: { type: 'array', items: { type: 'string' } },
    retention: { type: 'object', properties: { days: { type: 'integer' }, maxCount: { type: 'integer' } } },
    consistencyCheckTimes: { type: 'array', items: { type: 'string' } },
    disks: { type: 'array', items: { type: 'string' } },
    enabled: { type: 'boolean' },
    createdAt: iso,
  },
} as const;

export const job = {
  $id: 'Job',
  type: 'object',
  required: ['id', 'kind', 'state', 'trigger', 'attempt', 'createdAt', 'progress'],
  properties: {
    id: { type: 'string' },
    kind: { type: 'string', enum: ['backup', 'check', 'verify', 'prune', 'gc', 'restore', 'repair'] },
    state: { type: 'string', enum: ['queued', 'running', 'succeeded', 'failed', 'cancelled', 'interrupted'] },
    trigger: { type: 'string' },
    sourceId: { type: 'string' },
    groupId: { type: 'string' },
    params: { type: 'object', additionalProperties: true },
    attempt: { type: 'integer' },
    retryOf: { type: 'string' },
    retryCode: { type: 'string' },
    createdAt: iso,
    startedAt: iso,
    finishedAt: iso,
    progress: {
      type: 'object',
      properties: { bytesDone: { type: 'number' }, bytesTotal: { type: 'number' }, rate: { type: 'number' }, etaSeconds: { type: ['number', 'null'] } },
    },
    result: { type: 'object', additionalProperties: true },
    error: { $ref: 'Error#' },
  },
} as const;

/** A job in lists: everything but its result (GET /jobs/:id has it) and its log (GET /jobs/:id/log). */
export const jobSummary = {
  $id: 'JobSummary',
  type: 'object',
  required: job.required,
  properties: Object.fromEntries(Object.entries(job.properties).filter(([k]) => k !== 'result')),
} as const;

export const jobLog = {
  type: 'object',
  required: ['id', 'lines'],
  properties: {
    id: { type: 'string' },
    lines: { type: 'array', items: { type: 'object', properties: { time: iso, level: { type: 'string' }, message: { type: 'string' } } } },
  },
} as const;

export const jobBody = {
  type: 'object',
  required: ['kind'],
  additionalProperties: false,
  properties: {
    kind: { type: 'string', enum: ['backup', 'check', 'verify', 'prune', 'gc', 'repair'] },
    sourceId: id,
    groupId: id,
    /** gc only: rebuild the reference table from every point (a full mark). */
    full: { type: 'boolean' },
    /** repair only: report what a repair would do, change nothing. */
    dryRun: { type: 'boolean' },
  },
} as const;

export const jobsQuery = {
  type: 'object',
  additionalProperties: false,
  properties: {
    state: { type: 'string', enum: ['queued', 'running', 'succeeded', 'failed', 'cancelled', 'interrupted'] },
    kind: { type: 'string', enum: ['backup', 'check', 'verify', 'prune', 'gc', 'restore', 'repair'] },
    sourceId: id,
    limit: { type: 'string', pattern: '^[0-9]{1,4}$' },
  },
} as const;

export const point = {
  $id: 'RecoveryPoint',
  type: 'object',
  required: ['id', 'sourceId', 'time', 'tag', 'disks'],
  properties: {
    id: { type: 'string' },
    sourceId: { type: 'string' },
    time: iso,
    tag: { type: 'string', enum: ['sync', 'scheduled', 'manual'] },
    /** How the point in time was taken (issue 10 §4); absent on a damaged point. */
    consistency: { type: 'string', enum: ['application', 'crash', 'offline'] },
    /** Every unmet online-backup requirement that made it less than application-consistent. */
    reasons: { type: 'array', items: { type: 'string' } },
    pauseMs: { type: 'number' },
    freezeMs: { type: 'number' },
    /** Bytes that crossed a process or network boundary (0 for local files). */
    bytesSent: { type: 'number' },
    disks: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          name: { type: 'string' }, file: { type: 'string' }, virtualSize: { type: 'number' }, initial: { type: 'boolean' }, reason: { type: 'string' },
          tracking: { type: 'object', required: ['method'], properties: { method: { type: 'string', enum: ['bitmap', 'digest', 'initial'] }, reason: { type: 'string' }, fallback: { type: 'string', enum: [...FALLBACK_REASONS] } } },
          bytesSent: { type: 'number' },
        },
      },
    },
    /** The VM's configuration kept with the point (issue 14): format, version, simulated, files (name, size, sha256). */
    configuration: {
      type: 'object',
      required: ['format', 'version', 'simulated', 'files'],
      properties: {
        format: { type: 'string' }, version: { type: 'string' }, simulated: { type: 'boolean' }, note: { type: 'string' },
        files: { type: 'array', items: { type: 'object', properties: { name: { type: 'string' }, size: { type: 'number' }, sha256: { type: 'string' } } } },
      },
    },
    details: { type: 'object', additionalProperties: true },
    /** Present when the point's manifest cannot be read: its coded error (the point has no disks then). */
    damaged: { type: 'object', required: ['code', 'message'], properties: { code: { type: 'string' }, message: { type: 'string' } } },
  },
} as const;

export const pointParams = {
  type: 'object',
  required: ['id', 'pointId'],
  additionalProperties: false,
  properties: { id, pointId: { type: 'string', minLength: 1, maxLength: 128, pattern: '^[A-Za-z0-9._:-]+$' } },
} as const;

export const imageParams = {
  type: 'object',
  required: ['id', 'pointId', 'disk'],
  additionalProperties: false,
  properties: { ...pointParams.properties, disk: diskName },
} as const;

export const imageQuery = {
  type: 'object',
  additionalProperties: false,
  properties: {
    format: { type: 'string', enum: ['raw', 'vhd', 'vhdx'] },
    /** zstd: the image is sent as one zstd stream (zstd-napi), e.g. over a slow link; `zstd -d` decodes it. */
    compression: { type: 'string', enum: ['none', 'zstd'] },
  },
} as const;

export const restoreBody = {
  type: 'object',
  anyOf: [{ required: ['target'] }, { required: ['toHost'] }],
  additionalProperties: false,
  properties: {
    disk: diskName,
    target: absPath,
    toHost: { type: 'boolean', description: 'VM sources: write the disk back to the VM\'s host, next to its disks (under the agent\'s --restore-root), as a raw image' },
    import: { type: 'boolean', description: 'With toHost: the whole VM (its configuration files and every disk) written into a new folder under the agent\'s first --restore-root and imported there (Hyper-V: Import-VM); the point must hold a configuration' },
    format: { type: 'string', enum: ['raw', 'vhd', 'vhdx'], default: 'raw' },
  },
} as const;

export const tokenBody = {
  type: 'object',
  required: ['name', 'role'],
  additionalProperties: false,
  properties: { name, role: { type: 'string', enum: ['admin', 'operator', 'viewer'] } },
} as const;

export const token = {
  $id: 'Token',
  type: 'object',
  required: ['id', 'name', 'role', 'createdAt'],
  properties: { id: { type: 'string' }, name: { type: 'string' }, role: { type: 'string' }, createdAt: iso, lastUsedAt: iso },
} as const;

export const SHARED_SCHEMAS = [errorReply, source, group, job, jobSummary, point, token] as const;

/** Error replies every authenticated route can give. */
export const ERROR_REPLIES = {
  400: { $ref: 'Error#' },
  401: { $ref: 'Error#' },
  403: { $ref: 'Error#' },
  404: { $ref: 'Error#' },
  409: { $ref: 'Error#' },
  413: { $ref: 'Error#' },
  429: { $ref: 'Error#' },
  500: { $ref: 'Error#' },
} as const;
