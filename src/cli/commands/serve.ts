/**
 * `shadowvault serve`: run the appliance (API, scheduler, job queue, /metrics) until SIGINT/SIGTERM.
 * Defaults: 127.0.0.1:8470, data folder $XDG_DATA_HOME/shadowvault (store in its store/ folder).
 */
import { readFileSync } from 'node:fs';
import { DEFAULT_PORT, makeConfig } from '../../appliance/config.js';
import { SvError } from '../../errors/index.js';
import { parseCommandArgs } from '../args.js';
import type { Command } from '../command.js';

/** Longest a SIGTERM/SIGINT shutdown may take; past it the state is saved synchronously and the process ends. */
const SHUTDOWN_MS = 10_000;

/**
 * End the process by `signal` with its default action. Used when an engine thread is stuck in a system call
 * (engine/threaded.ts): a normal exit would wait for it forever (libuv joins its threads at exit), a fatal
 * signal does not; service managers count an exit by SIGTERM/SIGINT as a clean stop.
 */
function endBySignal(signal: NodeJS.Signals): never {
  process.removeAllListeners(signal);
  process.kill(process.pid, signal);
  throw new SvError('SV_ERR_CORE_INTERNAL', `${signal} did not end the process`, {});
}

const usage = `shadowvault serve [--store DIR|s3://BUCKET/PREFIX?endpoint=URL&...] [--state-dir DIR] [--listen HOST:PORT] [--data-dir DIR] [--tls-cert FILE --tls-key FILE]
                         [--restore-root DIR]... [--source-root DIR|DEVICE]... [--max-jobs N] [--max-jobs-per-host N] [--max-jobs-per-cluster N] [--log-level LEVEL]
                         [--gc-at HH:MM[,HH:MM]|never] [--verify-at HH:MM[,HH:MM]|never]
                         [--max-downloads N] [--max-downloads-per-token N] [--name NAME]
  --name        this appliance's name, as host agents and other appliances show it in VM ownership
                (\`vms\`: protectedBy; default the host name)
  --listen      address to bind (default 127.0.0.1:${DEFAULT_PORT}; use 0.0.0.0:PORT only with TLS)
  --data-dir    appliance state and admin token (default $XDG_DATA_HOME/shadowvault or ~/.local/share/shadowvault)
  --store       volume store: a folder (default <data-dir>/store) or s3://BUCKET/PREFIX?endpoint=URL&region=R
                [&lock=COMPLIANCE:DAYS] (credentials: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or ~/.aws/credentials)
  --state-dir   local state of a store on S3: cache, locks, staging (default <data-dir>/store-state)
  --restore-root  folder restores may write into (repeatable; default <data-dir>/restores)
  --source-root   folder source disks must lie under, or one block device allowed as a disk (repeatable;
                default <data-dir>/sources only: give e.g. --source-root /var/lib/libvirt/images)
  --gc-at, --verify-at  daily store maintenance times, UTC (default gc 02:30, verify 03:30)
  --max-downloads, --max-downloads-per-token  image downloads streaming at once, in all and per API token
                (default 4 and 2; more get 429 SV_ERR_API_TOO_MANY_DOWNLOADS with Retry-After)`;

function positiveInt(v: string | undefined, opt: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 1024) throw new SvError('SV_ERR_CLI_BAD_USAGE', `${opt} "${v}": expected an integer 1..1024\nusage: ${usage}`, {});
  return n;
}

export const serveCommand: Command = {
  name: 'serve',
  summary: 'Run the appliance: admin API, scheduler, jobs and /metrics',
  usage,
  async run(args, io) {
    const { values } = parseCommandArgs(args, {
      store: { type: 'string' },
      'state-dir': { type: 'string' },
      listen: { type: 'string' },
      'data-dir': { type: 'string' },
      'tls-cert': { type: 'string' },
      'tls-key': { type: 'string' },
      'restore-root': { type: 'string', multiple: true },
      'source-root': { type: 'string', multiple: true },
      'max-jobs': { type: 'string' },
      'max-jobs-per-host': { type: 'string' },
      'max-jobs-per-cluster': { type: 'string' },
      'max-downloads': { type: 'string' },
      'max-downloads-per-token': { type: 'string' },
      'log-level': { type: 'string' },
      name: { type: 'string' },
      'gc-at': { type: 'string', multiple: true },
      'verify-at': { type: 'string', multiple: true },
    }, usage);
    const config = makeConfig({
      dataDir: values['data-dir'],
      name: values.name,
      store: values.store,
      storeStateDir: values['state-dir'],
      listen: values.listen,
      tlsCert: values['tls-cert'],
      tlsKey: values['tls-key'],
      restoreRoots: values['restore-root'],
      sourceRoots: values['source-root'],
      gcAt: values['gc-at'],
      verifyAt: values['verify-at'],
      limits: Object.fromEntries(Object.entries({
        maxConcurrentJobs: positiveInt(values['max-jobs'], '--max-jobs'),
        maxJobsPerHost: positiveInt(values['max-jobs-per-host'], '--max-jobs-per-host'),
        maxJobsPerCluster: positiveInt(values['max-jobs-per-cluster'], '--max-jobs-per-cluster'),
        maxDownloads: positiveInt(values['max-downloads'], '--max-downloads'),
        maxDownloadsPerToken: positiveInt(values['max-downloads-per-token'], '--max-downloads-per-token'),
      }).filter(([, v]) => v !== undefined)),
    }, io.env);
    let https: { cert: Buffer; key: Buffer } | undefined;
    if (config.tls) {
      try {
        https = { cert: readFileSync(config.tls.certFile), key: readFileSync(config.tls.keyFile) };
      } catch (err) {
        throw new SvError('SV_ERR_APPLIANCE_TLS', `cannot read TLS certificate or key: ${(err as Error).message}`, { cert: config.tls.certFile, key: config.tls.keyFile }, { cause: err });
      }
    }
    // loaded here so other commands do not pay for fastify, prom-client and the engine
    const [{ default: pino }, { Appliance }, { loadEngine }, { buildApp }] = await Promise.all([
      import('pino'),
      import('../../appliance/appliance.js'),
      import('../../appliance/engine/load.js'),
      import('../../api/app.js'),
    ]);
    const log = pino({ name: 'shadowvault', level: values['log-level'] ?? io.env.SHADOWVAULT_LOG_LEVEL ?? 'info' }, pino.destination({ dest: 1, sync: true }));
    const engine = await loadEngine(config.storeDir, log, config.storeDir.startsWith('s3://') ? config.storeStateDir : undefined);
    const appliance = await Appliance.open(config, { engine, logger: log });
    if (appliance.createdAdminTokenFile) {
      log.warn({ tokenFile: appliance.createdAdminTokenFile }, `first start: an admin API token was written to ${appliance.createdAdminTokenFile} (mode 0600); use it as "Authorization: Bearer <token>" or SHADOWVAULT_TOKEN`);
    }
    const app = await buildApp(appliance, { https });
    appliance.start();
    try {
      await app.listen({ host: config.host, port: config.port });
    } catch (err) {
      await appliance.stop();
      throw new SvError('SV_ERR_CORE_IO', `cannot listen on ${config.host}:${config.port}: ${(err as Error).message}`, { host: config.host, port: config.port }, { cause: err });
    }
    const addr = app.server.address();
    const port = typeof addr === 'object' && addr ? addr.port : config.port;
    const url = `${https ? 'https' : 'http'}://${config.host.includes(':') ? `[${config.host}]` : config.host}:${port}`;
    if (!https && !['127.0.0.1', '::1', 'localhost'].includes(config.host)) {
      log.warn({ host: config.host }, 'listening beyond loopback without TLS: API tokens cross the network in clear; pass --tls-cert and --tls-key');
    }
    log.info({ url, store: config.storeDir, dataDir: config.dataDir, sourceRoots: config.sourceRoots, restoreRoots: config.restoreRoots, tokenFile: config.adminTokenFile, engine: engine.available, pid: process.pid }, `shadowvault appliance listening on ${url}`);
    const signal = await new Promise<NodeJS.Signals>((resolve) => {
      const stop = (signal: NodeJS.Signals): void => {
        process.off('SIGINT', onInt);
        process.off('SIGTERM', onTerm);
        log.info({ signal }, 'shutting down');
        resolve(signal);
      };
      const onInt = (): void => stop('SIGINT');
      const onTerm = (): void => stop('SIGTERM');
      process.on('SIGINT', onInt);
      process.on('SIGTERM', onTerm);
    });
    // bounded: a job stuck in a system call must not keep the appliance from stopping
    const watchdog = setTimeout(() => {
      log.error({ signal, waitedMs: SHUTDOWN_MS }, 'shutdown did not finish in time: saving the job records and ending the process');
      appliance.db.jobs.saveSync();
      endBySignal(signal);
    }, SHUTDOWN_MS);
    await app.close();
    await appliance.stop();
    clearTimeout(watchdog);
    if ((engine.abandoned?.() ?? 0) > 0) {
      log.warn({ signal, stuckThreads: engine.abandoned?.() }, 'stopped; an engine thread is blocked in a system call, so the process ends by its signal');
      endBySignal(signal);
    }
    log.info('stopped');
    return 0;
  },
};
