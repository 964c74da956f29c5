/** `shadowvault gc [--store DIR] [--full]`: reclaim blocks no recovery point names. */
import { parseCommandArgs, printJson } from '../args.js';
import type { Command } from '../command.js';
import { gc } from '../../sync/index.js';
import { formatBytes, storeDir } from '../progress.js';

const usage = 'shadowvault gc [--store DIR] [--full] [--json]';

export const gcCommand: Command = {
  name: 'gc',
  summary: 'Garbage-collect the volume store: delete and repack blocks no recovery point names',
  usage,
  async run(args, io) {
    const { values } = parseCommandArgs(args, { store: { type: 'string' }, full: { type: 'boolean' }, json: { type: 'boolean' } }, usage);
    const r = await gc({ store: storeDir(values.store, io), full: values.full === true });
    if (values.json) printJson(io, r);
    else io.stdout.write(`gc: ${r.pointsMarked} points (${r.mark} mark${r.fullReason ? `: ${r.fullReason}` : ''}, +${r.pointsAdded} -${r.pointsRemoved}, ${r.pagesRead} pages read), ${r.blobsDeleted} blobs deleted, ${formatBytes(r.bytesFreed)} freed (${r.packsDeleted} packs deleted, ${r.packsRepacked} repacked, ${r.orphansDeleted} orphans) in ${(r.durationMs / 1000).toFixed(2)} s\n`);
    return 0;
  },
};
