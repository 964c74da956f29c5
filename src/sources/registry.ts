/**
 * The registry of disk source openers: a serialisable DiskSourceRef (types.ts) in, an open DiskSource out.
 * Every process and thread that opens sources has its own registry (a module-level map): the CLI, the
 * appliance's engine thread, the host agent.
 *
 * - `file` and `nbd` are built in (file.ts, nbd.ts).
 * - Other kinds are registered late, by the code that can serve them: `registerOpener('agent', opener)` in the
 *   appliance (the agent channel lives there). In the engine thread, a module that registers an opener when
 *   it is imported is named in ThreadedEngine's `openerModules` (src/appliance/engine/threaded.ts): the thread
 *   imports it before it runs any operation.
 * - `openDiskSource` checks the reference's shape first (`checkSourceRef`: it may come from JSON, the API or
 *   another thread), so an opener only ever sees a well-formed reference of its kind.
 *
 * ADDING A KIND: its reference in types.ts (DiskSourceRef union), its shape check in ref.ts, its opener
 * (a module of its own) registered here or late; then run the shared suite test/sources/contract.ts over it.
 */
import { SvError } from '../errors/index.js';
import { openFileSource } from './file.js';
import { openNbdSource } from './nbd.js';
import { checkSourceRef } from './ref.js';
import type { DiskSource, DiskSourceKind, DiskSourceOpener, DiskSourceRef } from './types.js';

export { checkSourceRef, sourceName } from './ref.js';

type OpenerOf<K extends DiskSourceKind> = DiskSourceOpener<Extract<DiskSourceRef, { kind: K }>>;

const openers = new Map<DiskSourceKind, DiskSourceOpener<never>>([
  ['file', openFileSource],
  ['nbd', openNbdSource],
]);

/**
 * Register (or, with `replace`, replace) the opener of one kind of source in this process/thread. Registering
 * a kind twice without `replace` throws SV_ERR_CORE_INVALID_ARGUMENT (two modules claiming one kind is a bug).
 */
export function registerOpener<K extends DiskSourceKind>(kind: K, opener: OpenerOf<K>, options: { replace?: boolean } = {}): void {
  if (openers.has(kind) && !options.replace) {
    throw new SvError('SV_ERR_CORE_INVALID_ARGUMENT', `an opener for disk sources of kind "${kind}" is already registered`, { kind });
  }
  openers.set(kind, opener as DiskSourceOpener<never>);
}

/** Is there an opener for this kind here? */
export function hasOpener(kind: DiskSourceKind): boolean {
  return openers.has(kind);
}

/** Open a disk source. Throws SV_ERR_SOURCE_BAD_REF for a malformed reference, SV_ERR_SOURCE_NO_OPENER for a kind nobody registered here. */
export async function openDiskSource(ref: DiskSourceRef, signal?: AbortSignal): Promise<DiskSource> {
  checkSourceRef(ref);
  const opener = openers.get(ref.kind) as DiskSourceOpener | undefined;
  if (!opener) {
    throw new SvError('SV_ERR_SOURCE_NO_OPENER', `no opener for disk sources of kind "${ref.kind}" in this process or thread (registered: ${[...openers.keys()].join(', ')})`, {
      kind: ref.kind, registered: [...openers.keys()],
    });
  }
  return opener(ref, signal);
}

/** Open every reference, in order; on a failure the ones already open are closed. */
export async function openDiskSources(refs: readonly DiskSourceRef[], signal?: AbortSignal): Promise<DiskSource[]> {
  const out: DiskSource[] = [];
  try {
    for (const ref of refs) out.push(await openDiskSource(ref, signal));
    return out;
  } catch (err) {
    for (const s of out) await s.close().catch(() => undefined);
    throw err;
  }
}
