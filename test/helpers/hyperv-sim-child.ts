/**
 * A driver process to kill -9 (test/hypervisor/hyperv-sim.test.ts): opens the SIMULATION's host, takes one view
 * of the VM, prints `{"checkpoint": "<name>"}` and waits to be killed (between checkpoint and commit).
 *   node hyperv-sim-child.js <sim root> <state dir> <vm id> <auto|offline>
 */
import { HyperVDriver } from '../../src/hypervisor/hyperv/driver.js';
import { SimulatedHyperVHost } from '../../src/hypervisor/hyperv/simulated-host.js';

const [root, stateDir, vmId, mode] = process.argv.slice(2) as [string, string, string, 'auto' | 'offline'];
const driver = new HyperVDriver({ host: new SimulatedHyperVHost(root), stateDir });
const view = await driver.createView(vmId, { mode });
process.stdout.write(`${JSON.stringify({ checkpoint: (view as unknown as { checkpoint: { name: string } }).checkpoint.name, consistency: view.consistency })}\n`);
setInterval(() => undefined, 1 << 30);
