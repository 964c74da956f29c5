/**
 * A host agent as its own process, for the end-to-end tests that kill it (kill -9) or cut its connection:
 * the real HostAgent (channel), the real QEMU driver and the agent methods, with its own worker pool.
 *
 *   node build/test/helpers/agent-child.js '{"appliance": URL, "pair": CODE?, "dataDir": DIR, "qmp": [GLOB...],
 *                                            "stateDir": DIR, "restoreRoots": [DIR...], "idleMs"?: N,
 *                                            "name"?: HOST, "cluster"?: NAME, "replicas"?: [SPEC...],
 *                                            "smbShares"?: ["//S:P/NAME=PATH"...], "smbCredentials"?: FILE,
 *                                            "served"?: {NAME: PATH}}'
 * With `served` it is a file server's agent (no hypervisor); with `smbShares`, a host whose VMs' disks may lie
 * on those shares (checkpoint views, the permission check as the machine account of `smbCredentials`).
 *
 * Prints `connected` on stdout each time the channel to `appliance` is up (`connected ORIGIN` for another
 * appliance it is paired with: its data dir keeps every pairing). SIGTERM stops it cleanly.
 */
import pino from 'pino';
import { startAgentSet } from '../../src/agent/agent-set.js';
import { createMethods } from '../../src/agent/methods/index.js';
import { join } from 'node:path';
import { QemuDriver } from '../../src/hypervisor/qemu/driver.js';
import { parseReplicaSpecs } from '../../src/hypervisor/replica/config.js';
import { ReplicaDriver } from '../../src/hypervisor/replica/driver.js';
import { closePool } from '../../src/pool/index.js';
import { openDiskSource } from '../../src/sources/registry.js';
import type { HypervisorDriver } from '../../src/hypervisor/driver.js';
import { NO_HYPERVISOR } from '../../src/smb/file-server.js';
import { SmbHostDriver } from '../../src/smb/host-driver.js';
import { RightsChecker } from '../../src/smb/rights.js';
import { parseSmbShare } from '../../src/smb/shares.js';

interface ChildOptions {
  appliance: string;
  pair?: string;
  dataDir: string;
  qmp: string[];
  stateDir: string;
  restoreRoots: string[];
  idleMs?: number;
  name?: string;
  /** Inventory poll interval (default 300 ms: tests want changes seen fast; the agent's own default is 5 s). */
  pollMs?: number;
  cluster?: string;
  /** `--replica` specs: the QEMU driver wrapped in the ReplicaDriver (its state in `<stateDir>/replica`). */
  replicas?: string[];
  smbShares?: string[];
  smbCredentials?: string;
  served?: Record<string, string>;
}

const o = JSON.parse(process.argv[2] ?? '{}') as ChildOptions;
const log = pino({ level: process.env.SV_TEST_AGENT_LOG ?? 'warn' }, pino.destination(2));
const shares = (o.smbShares ?? []).map((x) => parseSmbShare(x));
const served = new Map(Object.entries(o.served ?? {}));
const qemu = new QemuDriver({ qmp: o.qmp, stateDir: o.stateDir, checkpointIn: shares.map((x) => x.localPath) });
let driver: HypervisorDriver = o.served ? NO_HYPERVISOR : o.replicas?.length ? new ReplicaDriver({ inner: qemu, replicas: parseReplicaSpecs(o.replicas), stateDir: join(o.stateDir, 'replica') }) : qemu;
if (shares.length) driver = new SmbHostDriver(driver, shares, new RightsChecker({ credentials: o.smbCredentials!, ttlMs: 1000 }));
// Every appliance this agent is paired with (the one given first; then the others kept in its data dir).
const agents = await startAgentSet({
  appliance: new URL(o.appliance), dataDir: o.dataDir, pairCode: o.pair, name: o.name ?? 'host-e2e', cluster: o.cluster ?? null, version: '0.0.0-e2e',
  driver, log, pollMs: o.pollMs ?? 300, keepaliveMs: 10_000, backoffMs: { min: 100, max: 800 },
  methods: () => createMethods({ driver, open: openDiskSource, restoreRoots: o.restoreRoots, idleMs: o.idleMs, shares, served }),
  ...(o.served ? { fileServer: { shares: [...served.keys()] } } : {}),
  // `connected` for the appliance given in the options, `connected ORIGIN` for another one it is paired with
  onConnected: (origin) => process.stdout.write(origin === new URL(o.appliance).origin ? 'connected\n' : `connected ${origin}\n`),
});
void agents.allRefused.then(() => process.exit(3));
// Nothing else need hold the event loop while the agent waits to reconnect: keep the process up until SIGTERM.
const alive = setInterval(() => undefined, 1 << 30);
const stop = (): void => {
  clearInterval(alive);
  clearInterval(orphan);
  void (async () => {
    await agents.stop();
    await driver.close();
    await closePool();
    process.exit(0);
  })();
};
// A test process that died (a tap timeout, a kill) must not leave this agent running: when it is re-parented,
// it stops as on SIGTERM (views released, tracking rolled back).
const parent = process.ppid;
const orphan = setInterval(() => {
  if (process.ppid !== parent) stop();
}, 1000);
process.on('SIGTERM', stop);
