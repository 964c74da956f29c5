/**
 * `shadowvault export SOURCE[@POINT]`: instant recovery. Serves one disk of a recovery point over NBD until
 * SIGINT/SIGTERM (src/export/exporter.ts). Prints the export's URI (and, with --json, one JSON line when
 * serving and one when stopped).
 */
import { parseListen } from '../../appliance/config.js';
import { SvError } from '../../errors/index.js';
import { RecoveryExport, NBD_PORT } from '../../export/exporter.js';
import { readTlsPair } from '../../nbd/tls-files.js';
import { closePool } from '../../pool/index.js';
import { parseCommandArgs } from '../args.js';
import type { Command } from '../command.js';
import { formatBytes } from '../progress.js';
import { openCliStore, STORE_OPTIONS } from '../store-open.js';

const usage = `shadowvault export SOURCE[@POINT] [--store DIR|URL] [--state-dir DIR] [--disk N] [--listen HOST:PORT | --socket PATH]
                   [--writable [--keep] [--scratch DIR]] [--max-connections N] [--tls-cert FILE --tls-key FILE]
  Serves the disk over NBD until stopped (Ctrl-C / SIGTERM). Export name SOURCE@POINTID/DISK; the empty
  (default) export name is the same disk.
  --listen      TCP address (default 127.0.0.1:${NBD_PORT}; port 0 picks a free port)
  --socket      a unix socket instead of TCP
  --writable    clients may write; every write goes to a scratch overlay, the point never changes
  --keep        on stop, save the overlay as a new recovery point of SOURCE (made from this point)
  --scratch     folder for the overlay file (default: the system temp folder)
  --tls-cert/--tls-key  require TLS (NBD STARTTLS) with this certificate chain and key (PEM files, both or
                neither); the URI becomes nbds://. Without them, serving beyond loopback warns (plain NBD)`;

export const exportCommand: Command = {
  name: 'export',
  summary: 'Serve a recovery point as a live disk over NBD (instant recovery), read-only or with a writable overlay',
  usage,
  async run(args, io) {
    const { values, positionals } = parseCommandArgs(args, {
      ...STORE_OPTIONS, disk: { type: 'string' }, listen: { type: 'string' }, socket: { type: 'string' }, writable: { type: 'boolean' }, keep: { type: 'boolean' },
      scratch: { type: 'string' }, 'max-connections': { type: 'string' }, 'tls-cert': { type: 'string' }, 'tls-key': { type: 'string' }, json: { type: 'boolean' },
    }, usage);
    if (positionals.length !== 1) throw new SvError('SV_ERR_CLI_BAD_USAGE', `expected SOURCE[@POINT]\nusage: ${usage}`);
    if ((values['tls-cert'] === undefined) !== (values['tls-key'] === undefined)) throw new SvError('SV_ERR_CLI_BAD_USAGE', `TLS needs both --tls-cert and --tls-key\nusage: ${usage}`);
    if (values.listen !== undefined && values.socket !== undefined) throw new SvError('SV_ERR_CLI_BAD_USAGE', `--listen and --socket exclude each other\nusage: ${usage}`);
    if (values.keep && !values.writable) throw new SvError('SV_ERR_CLI_BAD_USAGE', '--keep saves the writes of a --writable export: add --writable');
    const disk = values.disk === undefined ? 0 : Number(values.disk);
    if (!Number.isSafeInteger(disk) || disk < 0) throw new SvError('SV_ERR_CLI_BAD_USAGE', `--disk must be a disk index (0, 1, ...), not ${values.disk}`);
    const maxConnections = values['max-connections'] === undefined ? undefined : Number(values['max-connections']);
    if (maxConnections !== undefined && (!Number.isSafeInteger(maxConnections) || maxConnections < 1)) throw new SvError('SV_ERR_CLI_BAD_USAGE', `--max-connections must be a positive integer`);
    const [source, point] = positionals[0]!.split('@', 2) as [string, string | undefined];
    const listen = values.socket !== undefined ? { path: values.socket } : values.listen !== undefined ? parseListen(values.listen) : undefined;
    const tls = values['tls-cert'] !== undefined && values['tls-key'] !== undefined ? await readTlsPair(values['tls-cert'], values['tls-key']) : undefined;
    const store = await openCliStore(values, io);
    const ex = await RecoveryExport.start({
      store, source, point, disk, listen, writable: values.writable === true, scratchDir: values.scratch, maxConnections, ...(tls ? { tls } : {}),
    }).catch(async (err: unknown) => {
      await store.close().catch(() => undefined);
      throw err;
    });
    const info = ex.info;
    if (!tls && 'host' in info.address && !['127.0.0.1', '::1', 'localhost'].includes(info.address.host)) {
      io.stderr.write(`warning: serving ${info.address.host} beyond loopback without TLS: the disk's data crosses the network in clear; pass --tls-cert and --tls-key\n`);
    }
    if (values.json) io.stdout.write(`${JSON.stringify({ event: 'serving', ...info })}\n`);
    else io.stdout.write(`serving ${info.name} (${formatBytes(info.virtualSize)}, ${info.writable ? `writable overlay${values.keep ? ', kept on stop' : ', discarded on stop'}` : 'read-only'}) at ${info.uri}\n`);
    const signal = await new Promise<NodeJS.Signals>((resolve) => {
      const onInt = (): void => done('SIGINT');
      const onTerm = (): void => done('SIGTERM');
      const done = (s: NodeJS.Signals): void => {
        process.off('SIGINT', onInt);
        process.off('SIGTERM', onTerm);
        resolve(s);
      };
      process.on('SIGINT', onInt);
      process.on('SIGTERM', onTerm);
    });
    try {
      const r = await ex.stop({ keep: values.keep === true });
      if (values.json) io.stdout.write(`${JSON.stringify({ event: 'stopped', signal, ...r })}\n`);
      else io.stdout.write(`stopped ${r.export.name} (${signal})${r.kept ? `; writes saved as point ${r.kept.source}@${r.kept.id}` : info.writable ? '; overlay discarded' : ''}\n`);
      return 0;
    } finally {
      await store.close().catch(() => undefined);
      await closePool();
    }
  },
};
