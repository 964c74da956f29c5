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
 * CONFINEMENT: util/confined.ts resolves names through /proc/self/fd, which only Linux has. An agent on another
 * OS (a Windows Hyper-V host) refuses import.open with SV_ERR_AGENT_RESTORE_FAILED naming that limit, instead
 * of writing unconfined (README "Hyper-V": what is verified where).
 */
import { randomBytes } from 'node:crypto';
import { lstat, mkdir, rm } from 'node:fs/promises';
import { SvError, wrapSystemError } from '../../errors/index.js';
import { checkConfigName, parseConfigDescription } from '../../hypervisor/config.js';
import { ConfinedDir } from '../../util/confined.js';
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

export function importHandlers(deps: MethodDeps): { handlers: Pick<AgentHandlers, ImportMethod>; folders: ImportFolders; close(): Promise<void> } {
  const handles = new Handles<ImportFolder>({
    idleMs: deps.idleMs ?? DEFAULT_IDLE_MS,
    expire: (f) => removeFolder(f, deps.restoreRoots),
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
      if (process.platform !== 'linux') {
        throw new SvError('SV_ERR_AGENT_RESTORE_FAILED', `a whole-VM import needs confined file access through /proc/self/fd, which ${process.platform} does not have: restore the configuration and disks as files (restore --config-to) and import them by hand`, { platform: process.platform });
      }
      const root = deps.restoreRoots[0];
      if (root === undefined) throw new SvError('SV_ERR_API_PATH_NOT_ALLOWED', 'this agent has no --restore-root: it restores nothing', { allowedRoots: [] });
      const dirName = `${name}-import-${new Date().toISOString().replace(/[:.]/g, '-')}-${randomBytes(2).toString('hex')}`;
      const top = await ConfinedDir.open(root, deps.restoreRoots, { create: true });
      try {
        await mkdir(top.at(dirName), { mode: 0o750 }).catch((err: unknown) => { throw wrapSystemError(err, `create ${root}/${dirName}`); });
        await top.sync();
      } finally {
        await top.close();
      }
      const f: ImportFolder = { folder: `${root.replace(/\/+$/u, '')}/${dirName}`, root, name: dirName };
      return { result: { handle: handles.add(f), folder: f.folder } };
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
        return { result: { vmId: vm.vmId, name: vm.name, folder: f.folder } };
      });
    },
    'import.close': async (p) => {
      const m = 'import.close';
      const o = obj(m, p);
      const keep = bool(m, 'keep', o.keep);
      const f = handles.take(str(m, 'handle', o.handle, 64));
      if (f && !keep) await removeFolder(f, deps.restoreRoots);
      return { result: { folder: f?.folder ?? '' } };
    },
  };
  return { handlers, folders, close: () => handles.closeAll() };
}
