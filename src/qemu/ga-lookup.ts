/**
 * Find a VM's guest-agent socket from QMP alone. qemu-ga listens on the virtio-serial port named
 * `org.qemu.guest_agent.0`; on the host that port is a `virtserialport` device whose `chardev` property
 * names a chardev, and `query-chardev` gives that chardev's filename, "unix:PATH,server=on" for a unix
 * socket ("disconnected:" in front while no client is connected).
 *
 * Devices live in the QOM tree under /machine/peripheral (those given an id) and /machine/peripheral-anon
 * (the others); a child's type is "child<virtserialport>".
 */
import { SvError } from '../errors/index.js';
import type { QmpClient } from './qmp.js';
import { qomGet, qomList, queryChardev } from './qmp-commands.js';

export const GUEST_AGENT_PORT = 'org.qemu.guest_agent.0';
const DEVICE_ROOTS = ['/machine/peripheral', '/machine/peripheral-anon'];

/** The unix socket path behind `org.qemu.guest_agent.0`, or SV_ERR_QEMU_GUEST_AGENT_MISSING saying what is missing. */
export async function findGuestAgentSocket(qmp: QmpClient, portName = GUEST_AGENT_PORT): Promise<string> {
  const chardevId = await findPortChardev(qmp, portName);
  const chardev = (await queryChardev(qmp)).find((c) => c.label === chardevId);
  if (!chardev) throw missing(`port ${portName} names chardev ${chardevId}, which query-chardev does not list`, { chardev: chardevId });
  const path = unixPath(chardev.filename);
  if (path === undefined) throw missing(`chardev ${chardevId} of port ${portName} is ${JSON.stringify(chardev.filename)}, expected a unix socket ("unix:PATH,...")`, { chardev: chardevId, filename: chardev.filename });
  return path;
}

/** The id of the chardev behind the virtserialport named `portName`. */
async function findPortChardev(qmp: QmpClient, portName: string): Promise<string> {
  const ports: string[] = [];
  for (const root of DEVICE_ROOTS) {
    for (const child of await qomList(qmp, root)) {
      if (child.type !== 'child<virtserialport>') continue;
      const path = `${root}/${child.name}`;
      const name = await qomGet(qmp, path, 'name');
      ports.push(`${path} (${String(name)})`);
      if (name !== portName) continue;
      const chardev = await qomGet(qmp, path, 'chardev');
      if (typeof chardev !== 'string' || chardev === '') throw missing(`port ${portName} (${path}) has no chardev`, { device: path });
      return chardev;
    }
  }
  throw missing(`no virtserialport named ${portName}; ports found: ${ports.length ? ports.join(', ') : 'none'}`, { ports });
}

/** "unix:/run/vm.qga,server=on" or "disconnected:unix:/run/vm.qga,server=on" → "/run/vm.qga". */
export function unixPath(filename: string): string | undefined {
  const rest = filename.replace(/^disconnected:/u, '');
  if (!rest.startsWith('unix:')) return undefined;
  const path = rest.slice('unix:'.length).split(',')[0];
  return path ? path : undefined;
}

function missing(message: string, details: Record<string, unknown>): SvError {
  return new SvError('SV_ERR_QEMU_GUEST_AGENT_MISSING', message, details);
}
