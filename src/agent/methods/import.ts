/**
 * Whole-VM restore on the host (issue 14): the appliance writes a point's configuration files and disks into
 * a new folder on the host, then asks the driver to import the VM from them (Hyper-V: Import-VM).
 *
 * - import.open {vmId, name}: a NEW folder `<first --restore-root>/<name>-import-<UTC time>-<4 hex>` (created
 *   through util/confined.ts: no symbolic link below the root is followed), returned with a handle. No
 *   restore root: SV_ERR_API_PATH_NOT_ALLOWED.
 * - restore.open/write/close with `into: handle, fileName`: each configuration file and each disk, by name
 *   (restore.ts).
 * - import.vm {handle, configuration, disks}: the description is parsed as hostile input (config.ts), every
 *   file it and `disks` name must exist in the folder as a regular file (configuration files of the described
 *   size), then driver.importVm; answers the new VM's id and name.
 * - import.close {handle, keep}: keep=false (a failed restore) removes the folder and what is in it; keep=true
 *   (after import.vm) leaves it: the imported VM's files live there. An idle handle expires as keep=false.
 * A kill -9 of the agent mid-import leaves the folder with its marker file `.shadowvault-import` (written at
 * import.open, removed once import.vm succeeded: from then on the folder holds an imported VM's files and is
 * never touched). import.open first removes, under the same root, every `*-import-*` folder that still has
 * the marker, untouched for STALE_TEMP_GRACE_MS, and is not an open handle's.
 * CONFINEMENT: util/confined.ts, on Linux through /proc/self/fd, on Windows (a Hyper-V host's agent) by its
 * 'path-walk' mode (no link or junction below the root, identities re-checked); see its top comment and
 * README "Hyper-V" (what is verified where).
 */
import { randomBytes } from 'node:crypto';
import { lstat, mkdir, rm, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SvError, wrapSystemError } from '../../errors/index.js';
import { checkConfigName, parseConfigDescription } from '../../hypervisor/config.js';
import { ConfinedDir } from '../../util/confined.js';
import { STALE_TEMP_GRACE_MS } from '../../util/stale-temps.js';
import type { AgentHandlers } from '../rpc.js';
import { DEFAULT_IDLE_MS, type MethodDeps } from './deps.js';
import { badParam, bool, obj, str } from './params.js';
import { safeName, type ImportFolders } from './restore.js';
import { Handles } from './sessions.js';

export type ImportMethod = 'import.open' | 'import.vm' | 'import.close';

interface ImportFolder {
  readonly folder: string;
  readonly root: string;
  readonly name: string;
}

/** Remove the folder (through its root, without following links: rm does not follow them). */
async function removeFolder(f: ImportFolder, roots: readonly string[]): Promise<void> {
  const root = await ConfinedDir.open(f.root, roots).catch(() => undefined);
  if (!root) return;
  try {
    await rm(root.at(f.name), { recursive: true, force: true });
  } finally {
    await root.close();
  }
}

const MARKER = '.shadowvault-import';
const IMPORT_DIR = /-import-\d{4}-\d\d-\d\dT[0-9-]+Z-[0-9a-f]{4}$/u;

/** Remove the unfinished imports a killed agent left under `top` (see the header). */
async function removeStaleImports(top: ConfinedDir, open: ReadonlySet<string>): Promise<void> {
  for (const e of await top.list()) {
    if (!e.isDirectory() || !IMPORT_DIR.test(e.name) || open.has(e.name)) continue;
    const marker = await lstat(join(top.at(e.name), MARKER)).catch(() => undefined);
    if (!marker?.isFile() || Date.now() - marker.mtimeMs < STALE_TEMP_GRACE_MS) continue;
    await rm(top.at(e.name), { recursive: true, force: true }).catch(() => undefined);
  }
}

export function importHandlers(deps: MethodDeps): { handlers: Pick<AgentHandlers, ImportMethod>; folders: ImportFolders; close(): Promise<void> } {
  /** Open handles → their folder names (never swept). */
  const open = new Map<string, string>();
  const handles = new Handles<ImportFolder>({
    idleMs: deps.idleMs ?? DEFAULT_IDLE_MS,
    expire: (f, id) => {
      open.delete(id);
      return removeFolder(f, deps.restoreRoots);
    },
    unknown: (id) => new SvError('SV_ERR_AGENT_RESTORE_FAILED', `no import handle ${id} on this agent (closed, or expired after its idle timeout)`, { handle: id }),
  });
  const folders: ImportFolders = {
    folderOf(handle) {
      const f = handles.peek(handle);
      if (!f) throw new SvError('SV_ERR_AGENT_RESTORE_FAILED', `no import handle ${handle} on this agent (closed, or expired after its idle timeout)`, { handle });
      return f.folder;
    },
    touch(handle) {
      handles.peek(handle);
    },
  };

  const handlers: Pick<AgentHandlers, ImportMethod> = {
    'import.open': async (p) => {
      const m = 'import.open';
      const o = obj(m, p);
      str(m, 'vmId', o.vmId);
      const name = safeName(str(m, 'name', o.name));
      const root = deps.restoreRoots[0];
      if (root === undefined) throw new SvError('SV_ERR_API_PATH_NOT_ALLOWED', 'this agent has no --restore-root: it restores nothing', { allowedRoots: [] });
      const dirName = `${name}-import-${new Date().toISOString().replace(/[:.]/g, '-')}-${randomBytes(2).toString('hex')}`;
      const top = await ConfinedDir.open(root, deps.restoreRoots, { create: true });
      try {
        await removeStaleImports(top, new Set([...open.values()]));
        await mkdir(top.at(dirName), { mode: 0o750 }).catch((err: unknown) => { throw wrapSystemError(err, `create ${root}/${dirName}`); });
        await writeFile(join(top.at(dirName), MARKER), `${JSON.stringify({ pid: process.pid, started: new Date().toISOString() })}\n`, { flag: 'wx' });
        await top.sync();
      } finally {
        await top.close();
      }
      const f: ImportFolder = { folder: join(root, dirName), root, name: dirName };
      const id = handles.add(f);
      open.set(id, dirName);
      return { result: { handle: id, folder: f.folder } };
    },
    'import.vm': async (p) => {
      const m = 'import.vm';
      const o = obj(m, p);
      const id = str(m, 'handle', o.handle, 64);
      return handles.use(id, async (f) => {
        const configuration = parseConfigDescription(o.configuration, `${m} configuration`);
        if (!Array.isArray(o.disks) || o.disks.length === 0 || o.disks.length > 64) throw badParam(m, 'disks', 'must be a list of 1..64 file names');
        const disks = o.disks.map((d: unknown) => checkConfigName(d, `${m} disks`));
        const dir = await ConfinedDir.open(f.folder, deps.restoreRoots);
        try {
          const want = [...configuration.files.map((c) => ({ name: c.name, size: c.size as number | undefined })), ...disks.map((d) => ({ name: d, size: undefined }))];
          for (const w of want) {
            const st = await lstat(dir.at(w.name)).catch(() => undefined);
            if (!st?.isFile() || (w.size !== undefined && st.size !== w.size)) {
              throw new SvError('SV_ERR_AGENT_RESTORE_FAILED', `import of ${f.folder}: ${w.name} is ${st ? (st.isFile() ? `${st.size} bytes, expected ${String(w.size)}` : 'not a regular file') : 'missing'}`, { folder: f.folder, file: w.name });
            }
          }
          dir.check();
        } finally {
          await dir.close();
        }
        const vm = await deps.driver.importVm({ folder: f.folder, configuration, disks });
        // Imported: the folder now holds the VM's files; without the marker no sweep ever touches it.
        const done = await ConfinedDir.open(f.folder, deps.restoreRoots);
        try {
          await unlink(done.at(MARKER)).catch(() => undefined);
          await done.sync();
        } finally {
          await done.close();
        }
        return { result: { vmId: vm.vmId, name: vm.name, folder: f.folder } };
      });
    },
    'import.close': async (p) => {
      const m = 'import.close';
      const o = obj(m, p);
      const keep = bool(m, 'keep', o.keep);
      const id = str(m, 'handle', o.handle, 64);
      const f = handles.take(id);
      open.delete(id);
      if (f && !keep) await removeFolder(f, deps.restoreRoots);
      return { result: { folder: f?.folder ?? '' } };
    },
  };
  return { handlers, folders, close: () => handles.closeAll() };
}
