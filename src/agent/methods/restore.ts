/**
 * Restore back to the host: the appliance streams a recovery point's disk to the agent, which writes it next
 * to the VM's disks for an administrator to attach.
 *
 * - restore.open: the VM must be one this agent's driver lists (an agent writes only for its own VMs); the
 *   folder is the one holding the VM's first disk, opened through util/confined.ts under the agent's
 *   --restore-root folders (no root, or a folder outside them: SV_ERR_API_PATH_NOT_ALLOWED). The output is a
 *   fresh temp file (util/stale-temps.ts name, O_EXCL) of the disk's size, sparse; the final name is
 *   `<name>-restored-<UTC time>.img` (raw: what every hypervisor can attach or convert).
 * - restore.write: payload at `offset`, inside the disk; all-zero payloads are skipped (the file stays sparse).
 * - restore.close: commit → fsync the file, check the folder is still inside its root, rename to the final
 *   name, fsync the folder; no commit → the temp file is removed. Idle handles expire the same way (removed).
 * A crash leaves at worst a temp file, which removeStaleTemps clears later; never a half disk under a real name.
 *
 * WHOLE-VM IMPORT (import.ts): with `into` (an import handle) and `fileName`, restore.open writes into that
 * import's folder under exactly `fileName` (one plain path component, config.ts checkConfigName; a file that
 * exists is refused), in any format (the appliance streams a whole image file: VHDX for Hyper-V), and the VM
 * need not be on this host any more (a deleted VM is what gets imported).
 */
import { lstat, open, rename, unlink, type FileHandle } from 'node:fs/promises';
import { dirname, isAbsolute, join } from 'node:path';
import { SvError, wrapSystemError } from '../../errors/index.js';
import { isZero } from '../../native/index.js';
import { ConfinedDir } from '../../util/confined.js';
import { removeStaleTemps, tempName } from '../../util/stale-temps.js';
import type { AgentHandlers } from '../rpc.js';
import { DEFAULT_IDLE_MS, MAX_CALL_BYTES, type MethodDeps } from './deps.js';
import { checkConfigName } from '../../hypervisor/config.js';
import { badParam, bool, int, obj, oneOf, str } from './params.js';
import { Handles } from './sessions.js';

export type RestoreMethod = 'restore.open' | 'restore.write' | 'restore.close';

interface Output {
  readonly dir: ConfinedDir;
  readonly fh: FileHandle;
  readonly tmp: string;
  readonly name: string;
  readonly virtualSize: number;
  /** The import handle this file belongs to (kept alive while it is written). */
  readonly into?: string;
  bytes: number;
}

async function discard(o: Output): Promise<void> {
  await o.fh.close().catch(() => undefined);
  await unlink(o.dir.at(o.tmp)).catch(() => undefined);
  await o.dir.close();
}

/** A file name from a disk name: letters, digits, dot, dash, underscore; never hidden, never empty. */
export function safeName(name: string): string {
  const s = name.replace(/[^A-Za-z0-9._-]/g, '_').replace(/^\.+/, '').slice(0, 100);
  return s || 'disk';
}

/** The import folders restore.open may write into (import.ts). */
export interface ImportFolders {
  /** The folder of an open import handle; an unknown handle throws SV_ERR_AGENT_RESTORE_FAILED. */
  folderOf(handle: string): string;
  /** Restart the import handle's idle time (its files are being written). */
  touch(handle: string): void;
}

export function restoreHandlers(deps: MethodDeps, imports: ImportFolders): { handlers: Pick<AgentHandlers, RestoreMethod>; close(): Promise<void> } {
  const outputs = new Handles<Output>({
    idleMs: deps.idleMs ?? DEFAULT_IDLE_MS,
    expire: discard,
    unknown: (id) => new SvError('SV_ERR_AGENT_RESTORE_FAILED', `no restore handle ${id} on this agent (closed, or expired after its idle timeout)`, { handle: id }),
  });
  const handle = (m: string, p: unknown): { o: Record<string, unknown>; id: string } => {
    const o = obj(m, p);
    return { o, id: str(m, 'handle', o.handle, 64) };
  };

  const handlers: Pick<AgentHandlers, RestoreMethod> = {
    'restore.open': async (p) => {
      const m = 'restore.open';
      const o = obj(m, p);
      const vmId = str(m, 'vmId', o.vmId);
      const name = str(m, 'name', o.name);
      const virtualSize = int(m, 'virtualSize', o.virtualSize, 0, 2 ** 50);
      const format = oneOf(m, 'format', o.format, ['raw', 'vhdx', 'vhd', 'qcow2'] as const);
      let dir: ConfinedDir;
      let final: string;
      const into = o.into === undefined ? undefined : str(m, 'into', o.into, 64);
      if (into !== undefined) {
        const folder = imports.folderOf(into);
        final = checkConfigName(o.fileName, `${m} fileName`);
        dir = await ConfinedDir.open(folder, deps.restoreRoots);
        if (await lstat(dir.at(final)).then(() => true, () => false)) {
          await dir.close();
          throw new SvError('SV_ERR_AGENT_RESTORE_FAILED', `${folder}/${final} exists already`, { path: `${folder}/${final}` });
        }
      } else {
        if (o.fileName !== undefined) throw badParam(m, 'fileName', 'is only allowed with into');
        if (virtualSize === 0) throw badParam(m, 'virtualSize', 'must be at least 1', 0);
        if (format !== 'raw') throw new SvError('SV_ERR_AGENT_RESTORE_FAILED', `restore to the host writes raw images; ${format} is not supported (convert it with qemu-img afterwards)`, { format });
        const vm = (await deps.driver.listVms()).find((v) => v.id === vmId);
        if (!vm) throw new SvError('SV_ERR_AGENT_VM_NOT_HOSTED', `VM ${vmId} is not on this host: an agent restores only next to its own VMs' disks`, { vmId });
        const first = vm.disks.find((d) => isAbsolute(d.path));
        if (!first) throw new SvError('SV_ERR_AGENT_RESTORE_FAILED', `VM ${vm.name} has no disk file to restore next to`, { vmId });
        dir = await ConfinedDir.open(dirname(first.path), deps.restoreRoots);
        final = `${safeName(name)}-restored-${new Date().toISOString().replace(/[:.]/g, '-')}.img`;
      }
      const tmp = tempName(final);
      let fh: FileHandle | undefined;
      try {
        await removeStaleTemps(dir);
        fh = await open(dir.at(tmp), 'wx', 0o640);
        dir.verifyOpened(fh.fd, tmp);
        await fh.truncate(virtualSize);
      } catch (err) {
        await fh?.close().catch(() => undefined);
        if (fh) await unlink(dir.at(tmp)).catch(() => undefined);
        await dir.close();
        throw wrapSystemError(err, `create the restored disk in ${dir.path}`);
      }
      const id = outputs.add({ dir, fh, tmp, name: final, virtualSize, bytes: 0, ...(into !== undefined ? { into } : {}) });
      return { result: { handle: id, path: join(dir.path, final) } };
    },
    'restore.write': async (p, payload) => {
      const { o, id } = handle('restore.write', p);
      return outputs.use(id, async (out) => {
        if (out.into !== undefined) imports.touch(out.into);
        const data = payload ?? new Uint8Array(0);
        const offset = int('restore.write', 'offset', o.offset, 0, out.virtualSize);
        int('restore.write', 'payload length', data.length, 0, Math.min(MAX_CALL_BYTES, out.virtualSize - offset));
        if (data.length && !isZero(data)) {
          let done = 0;
          while (done < data.length) done += (await out.fh.write(data, done, data.length - done, offset + done)).bytesWritten;
        }
        out.bytes += data.length;
        return { result: { written: data.length } };
      });
    },
    'restore.close': async (p) => {
      const { o, id } = handle('restore.close', p);
      const commit = bool('restore.close', 'commit', o.commit);
      const out = outputs.take(id);
      if (!out) throw new SvError('SV_ERR_AGENT_RESTORE_FAILED', `no restore handle ${id} on this agent (closed, or expired after its idle timeout)`, { handle: id });
      if (!commit) {
        await discard(out);
        return { result: { path: '', bytes: 0 } };
      }
      try {
        await out.fh.sync();
        await out.fh.close();
        out.dir.check();
        await rename(out.dir.at(out.tmp), out.dir.at(out.name));
        await out.dir.sync();
      } catch (err) {
        await discard(out);
        throw wrapSystemError(err, `finish the restored disk ${out.name} in ${out.dir.path}`);
      }
      await out.dir.close();
      return { result: { path: join(out.dir.path, out.name), bytes: out.bytes } };
    },
  };
  return { handlers, close: () => outputs.closeAll() };
}
