/**
 * The configuration of a running QEMU VM, as QMP describes it (QEMU has no configuration file of its own: a
 * VM is a process and its command line). `captureQemuConfig` asks read-only query commands and writes one
 * JSON file, `qemu-config.json`: QEMU version and target, name, UUID, machine type (qom-get /machine type),
 * vCPUs (query-cpus-fast), memory (query-memory-size-summary), block devices with their files, formats and
 * read-only flags (query-block), PCI devices (query-pci), character devices (query-chardev). It is what an
 * administrator needs to start the VM again on the restored disks; it is not a command line that can be
 * replayed blindly (devices added by hand at run time and backend options are not all visible over QMP).
 * A query the QEMU does not know (older versions, other targets) is recorded as `{"error": ...}` rather than
 * failing the point.
 */
import type { QmpClient } from '../../qemu/qmp.js';
import { queryBlock, queryChardev, queryName, queryUuid, qomGet } from '../../qemu/qmp-commands.js';
import type { VmConfiguration } from '../config.js';
import { checkConfiguration } from '../config.js';

export const QEMU_CONFIG_FILE = 'qemu-config.json';

interface QemuVersion { qemu: { major: number; minor: number; micro: number }; package: string }

async function attempt<T>(what: () => Promise<T>): Promise<T | { error: string }> {
  try {
    return await what();
  } catch (err) {
    return { error: (err as Error).message.slice(0, 500) };
  }
}

/** One QEMU's machine description as a configuration (format qemu-qmp-json). */
export async function captureQemuConfig(qmp: QmpClient, vmId: string): Promise<VmConfiguration> {
  const version = await qmp.execute<QemuVersion>('query-version');
  const v = `${version.qemu.major}.${version.qemu.minor}.${version.qemu.micro}`;
  const block = await queryBlock(qmp);
  const description = {
    format: 'shadowvault qemu-config (a description from QMP, not a command line)',
    qemu: { version: v, package: version.package },
    target: await attempt(() => qmp.execute<unknown>('query-target')),
    id: vmId,
    name: (await queryName(qmp)).name ?? null,
    uuid: (await queryUuid(qmp)).UUID,
    machine: await attempt(() => qomGet(qmp, '/machine', 'type')),
    cpus: await attempt(async () => (await qmp.execute<Array<Record<string, unknown>>>('query-cpus-fast')).map((c) => ({ index: c['cpu-index'], qomType: c['qom-type'] ?? null, target: c.target ?? null }))),
    memory: await attempt(() => qmp.execute<unknown>('query-memory-size-summary')),
    blockDevices: block.map((b) => ({
      device: b.device, qdev: b.qdev ?? null,
      medium: b.inserted ? { file: b.inserted.file, driver: b.inserted.drv, format: b.inserted.image.format, virtualSize: b.inserted.image['virtual-size'], readOnly: b.inserted.ro } : null,
    })),
    pci: await attempt(() => qmp.execute<unknown>('query-pci')),
    chardevs: await attempt(async () => (await queryChardev(qmp)).map((c) => ({ label: c.label, filename: c.filename }))),
  };
  return checkConfiguration({
    format: 'qemu-qmp-json', version: v, simulated: false,
    note: `${QEMU_CONFIG_FILE}: the machine as QMP describes it; start QEMU with the same machine type, CPUs, memory and devices on the restored disks`,
    files: [{ name: QEMU_CONFIG_FILE, data: Buffer.from(`${JSON.stringify(description, null, 1)}\n`) }],
  }, `VM ${vmId}`);
}
