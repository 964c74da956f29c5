/** `shadowvault gc [--store DIR] [--full]`: reclaim blocks no recovery point names. */
import { parseCommandArgs, printJson } from '../args.js';
import type { Command } from '../command.js';
import { gc } from '../../sync/index.js';
import { formatBytes } from '../progress.js';
import { STORE_OPTIONS, withCliStore } from '../store-open.js';

const usage = 'shadowvault gc [--store DIR|URL] [--state-dir DIR] [--full] [--json]';

export const gcCommand: Command = {
  name: 'gc',
  summary: 'Garbage-collect the volume store: delete and repack blocks no recovery point names',
  usage,
  async run(args, io) {
    const { values } = parseCommandArgs(args, { ...STORE_OPTIONS, full: { type: 'boolean' }, json: { type: 'boolean' } }, usage);
    const r = await withCliStore(values, io, (store) => gc({ store, full: values.full === true }));
    if (values.json) printJson(io, r);
    else io.stdout.write(`gc: ${r.pointsMarked} points (${r.mark} mark${r.fullReason ? `: ${r.fullReason}` : ''}, +${r.pointsAdded} -${r.pointsRemoved}, ${r.pagesRead} pages read), ${r.blobsDeleted} blobs deleted, ${formatBytes(r.bytesFreed)} freed (${r.packsDeleted} packs deleted, ${r.packsRepacked} repacked, ${r.orphansDeleted} orphans${r.lockedSkipped ? `, ${r.lockedSkipped} kept by Object Lock` : ''}) in ${(r.durationMs / 1000).toFixed(2)} s\n`);
    return 0;
  },
};
