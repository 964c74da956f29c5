/**
 * VM ownership records in a loop, for the kill -9 test of src/agent/owner.ts: the agent's claim, takeover and
 * release, as appliances A and B ask for them, until the parent kills this process. Usage:
 * node owner-child.js DISK_PATH. Prints READY, then one line per finished operation.
 */
import { claimOwner, releaseOwner } from '../../src/agent/owner.js';
import type { VmInfo } from '../../src/hypervisor/driver.js';

const [disk] = process.argv.slice(2);
if (!disk) throw new Error('usage: owner-child.js DISK_PATH');
const vm = { id: 'vm-kill', disks: [{ path: disk }] } as unknown as Pick<VmInfo, 'id' | 'disks'>;
const A = { id: 'appliance-a-id', name: 'appliance-a' };
const B = { id: 'appliance-b-id', name: 'appliance-b' };
const say = (line: string): void => void process.stdout.write(`${line}\n`);
say('READY');
for (let i = 0; ; i++) {
  const [me, other] = i % 2 === 0 ? [A, B] : [B, A];
  await claimOwner(vm, me, 'host-1').catch(() => claimOwner(vm, me, 'host-1', { takeOver: true }));
  say(`CLAIMED ${me.name}`);
  await claimOwner(vm, other, 'host-1', { takeOver: true });
  say(`TAKEN ${other.name}`);
  await releaseOwner(vm, other);
  say(`RELEASED ${other.name}`);
}
