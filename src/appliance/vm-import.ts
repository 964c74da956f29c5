/**
 * Whole-VM restore to a host (issue 14: `restore --to-host --import`, API `{"toHost": true, "import": true}`):
 * a point's configuration files and every disk are written into a new folder on the host through its agent,
 * then the agent's driver imports the VM from them (Hyper-V: Import-VM; src/agent/methods/import.ts).
 *
 * 1. The host: the agent whose host runs the VM now (locateVm); when no agent reports the VM any more (it was
 *    deleted: the usual reason for a whole-VM restore), the agent the source was added on.
 * 2. import.open → a fresh folder under the agent's first --restore-root.
 * 3. Each configuration file (engine.readConfiguration: read back from the store, SHA-256 checked) and each
 *    disk (engine.exportImage as VHDX for Hyper-V: a whole image file streamed in chunks of at most 8 MiB,
 *    all-zero chunks not sent) through restore.open/write/close with `into` and the file's own name.
 * 4. import.vm with the configuration's description and the disks' names → the new VM's id; import.close keep.
 * Any failure: the open file is closed without commit and import.close {keep: false} removes the folder, so
 * nothing half-restored stays on the host. A QEMU configuration is refused before anything is sent (QEMU has
 * no import: SV_ERR_HYPERVISOR_IMPORT_NOT_SUPPORTED; restore it with --config-to).
 */
import { SvError, hasCode } from '../errors/index.js';
import { describeConfiguration } from '../hypervisor/config.js';
import { isZero } from '../native/index.js';
import { diskFileName } from '../sync/restore-vm.js';
import type { Engine, EngineContext } from './engine/index.js';
import type { DataSource } from './model.js';
import { locateVm, type AgentAccess } from './vm-jobs.js';

const CHUNK = 8 * 1024 * 1024;

export interface VmImportResult {
  readonly host: string;
  readonly folder: string;
  readonly vmId: string;
  readonly name: string;
  readonly files: string[];
  readonly bytes: number;
}

/** The agent to import on (step 1). */
function importHost(source: DataSource, agents: AgentAccess): { agentId: string; host: string } {
  const vm = source.vm!;
  try {
    const at = locateVm(agents, vm.id, vm);
    return { agentId: at.agentId, host: at.host };
  } catch (err) {
    if (!hasCode(err, 'SV_ERR_AGENT_NO_HOST') || !vm.agentId) throw err;
    const host = agents.vms().find((v) => v.hostId === vm.agentId)?.host ?? vm.agentId;
    return { agentId: vm.agentId, host };
  }
}

export async function importVmToHost(source: DataSource, engine: Engine, agents: AgentAccess, req: { pointId: string }, ctx: EngineContext): Promise<VmImportResult> {
  const vm = source.vm;
  if (!vm) throw new SvError('SV_ERR_CORE_INVALID_ARGUMENT', `data source ${source.name} is not a VM source: restore it to a folder instead`, { source: source.name });
  const config = await engine.readConfiguration({ source: source.name, pointId: req.pointId });
  if (config.format === 'qemu-qmp-json') {
    throw new SvError('SV_ERR_HYPERVISOR_IMPORT_NOT_SUPPORTED', `point ${req.pointId} of ${source.name} holds a QEMU machine description: QEMU has no import; restore it with --config-to DIR and start QEMU from it`, { source: source.name });
  }
  const point = (await engine.listPoints(source.name)).find((p) => p.id === req.pointId);
  if (!point || point.damaged) throw new SvError('SV_ERR_STORE_POINT_NOT_FOUND', `no readable recovery point ${req.pointId} of ${source.name}`, { source: source.name, point: req.pointId });
  const { agentId, host } = importHost(source, agents);
  const rpc = agents.rpc;
  // The disks by the names the point recorded (the hypervisor's file names: the configuration refers to them).
  const names = point.disks.map((d, i) => diskFileName(d.name, i, 'vhdx'));
  const { handle, folder } = (await rpc.call(agentId, 'import.open', { vmId: vm.id, name: vm.name }, undefined, ctx.signal)).result;
  ctx.log(`importing ${source.name}@${req.pointId} on ${host}: folder ${folder}`);
  const files: string[] = [];
  let bytes = 0;
  /** One file into the import folder (restore.open/write/close with `into`). */
  const put = async (fileName: string, length: number, format: 'raw' | 'vhdx', chunks: AsyncIterable<Uint8Array>, total: number): Promise<void> => {
    const h = (await rpc.call(agentId, 'restore.open', { vmId: vm.id, name: fileName, virtualSize: length, format, into: handle, fileName }, undefined, ctx.signal)).result.handle;
    try {
      let done = 0;
      let parts: Buffer[] = [];
      let have = 0;
      const flush = async (): Promise<void> => {
        const all = Buffer.concat(parts, have);
        parts = [];
        have = 0;
        for (let o = 0; o < all.length; o += CHUNK) {
          const buf = all.subarray(o, Math.min(all.length, o + CHUNK));
          if (!isZero(buf)) await rpc.call(agentId, 'restore.write', { handle: h, offset: done }, buf, ctx.signal);
          done += buf.length;
          ctx.onProgress(bytes + done, total);
        }
      };
      for await (const c of chunks) {
        parts.push(Buffer.from(c.buffer, c.byteOffset, c.byteLength));
        have += c.byteLength;
        if (have >= CHUNK) await flush();
      }
      if (have) await flush();
      if (done !== length) throw new SvError('SV_ERR_CORE_INTERNAL', `${fileName}: the stream ended after ${done} of ${length} bytes`, { done, length });
      files.push((await rpc.call(agentId, 'restore.close', { handle: h, commit: true }, undefined, ctx.signal)).result.path);
      bytes += length;
    } catch (err) {
      await rpc.call(agentId, 'restore.close', { handle: h, commit: false }).catch(() => undefined);
      throw err;
    }
  };
  try {
    let total = config.files.reduce((n, f) => n + f.data.length, 0);
    for (const f of config.files) {
      await put(f.name, f.data.length, 'raw', (async function* () { yield f.data; })(), total);
    }
    for (const [i, name] of names.entries()) {
      const im = await engine.exportImage({ source: source.name, pointId: req.pointId, disk: i, format: 'vhdx' }, ctx.signal);
      total += im.length; // the total grows as each image's length is known
      await put(name, im.length, 'vhdx', im.stream() as AsyncIterable<Uint8Array>, total);
    }
    const made = (await rpc.call(agentId, 'import.vm', { handle, configuration: describeConfiguration(config), disks: names }, undefined, ctx.signal)).result;
    await rpc.call(agentId, 'import.close', { handle, keep: true }).catch(() => undefined);
    ctx.log(`imported VM ${made.name} (${made.vmId}) on ${host} from ${folder}`);
    return { host, folder, vmId: made.vmId, name: made.name, files, bytes };
  } catch (err) {
    await rpc.call(agentId, 'import.close', { handle, keep: false }).catch(() => undefined);
    throw err;
  }
}
