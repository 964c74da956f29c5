/**
 * A driver process to kill -9 (test/hypervisor/hyperv-sim.test.ts): opens the SIMULATION's host and stops at one
 * step of a point, printing one JSON line when it got there, then waits to be killed:
 *   auto | offline  one view taken (between checkpoint and commit): `{"checkpoint": "<name>", "consistency"}`
 *   saved           an offline view of a running VM, stopped after the save, before the checkpoint (the VM is
 *                   left saved): `{"saved": "<vm id>"}`
 *   converted       a view committed up to ConvertToReferencePoint, stopped before the older reference points
 *                   are destroyed: `{"checkpoint": "<name>", "converted": true}`
 * The stops are the host layer's calls that never answer (the process is killed in them).
 *   node hyperv-sim-child.js <sim root> <state dir> <vm id> <auto|offline|saved|converted>
 */
import type { HyperVHost } from '../../src/hypervisor/hyperv/host.js';
import { HyperVDriver } from '../../src/hypervisor/hyperv/driver.js';
import { SimulatedHyperVHost } from '../../src/hypervisor/hyperv/simulated-host.js';

type Mode = 'auto' | 'offline' | 'saved' | 'converted';
const [root, stateDir, vmId, mode] = process.argv.slice(2) as [string, string, string, Mode];
const say = (o: object): void => void process.stdout.write(`${JSON.stringify(o)}\n`);
const never = (): Promise<never> => new Promise(() => undefined);
const sim = new SimulatedHyperVHost(root);
let checkpointName = '';
const stops: Partial<Record<keyof HyperVHost, () => Promise<never>>> = {
  ...(mode === 'saved' ? { createRecoveryCheckpoint: () => (say({ saved: vmId }), never()) } : {}),
  ...(mode === 'converted' ? { destroyReferencePoint: () => (say({ checkpoint: checkpointName, converted: true }), never()) } : {}),
};
const host = new Proxy(sim, {
  get(target, prop, receiver) {
    const stop = stops[prop as keyof HyperVHost];
    if (stop) return stop;
    const v = Reflect.get(target, prop, receiver) as unknown;
    return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
  },
}) as HyperVHost;
const driver = new HyperVDriver({ host, stateDir });
const view = await driver.createView(vmId, { mode: mode === 'saved' ? 'offline' : mode === 'converted' ? 'auto' : mode });
checkpointName = (view as unknown as { checkpoint: { name: string } }).checkpoint.name;
if (mode === 'converted') await view.commit();
say({ checkpoint: checkpointName, consistency: view.consistency });
setInterval(() => undefined, 1 << 30);
