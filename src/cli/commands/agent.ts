/**
 * `shadowvault agent`: the host agent process (runs on each hypervisor host). Pairs with the appliance once
 * (--pair CODE; the credential is kept 0600 in --data-dir and reused by every later start; started again
 * with another --appliance and --pair it keeps the earlier pairings and serves every appliance it is paired
 * with, one control channel each: src/agent/agent-set.ts), keeps the control channel open, reconnects on its own, reports the VMs of its driver (QEMU behind QMP sockets, Hyper-V,
 * or the Hyper-V simulation: --driver) and serves the
 * appliance's calls until SIGINT/SIGTERM. Logs are JSON lines on stdout.
 */
import { readFileSync } from 'node:fs';
import { hostname, homedir } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import { SvError } from '../../errors/index.js';
import { parseCommandArgs } from '../args.js';
import type { Command } from '../command.js';
import type { HypervisorDriver } from '../../hypervisor/driver.js';

const usage = `shadowvault agent --appliance URL [--pair CODE] [--data-dir DIR] [--name HOST] [--cluster NAME]
                         [--driver qemu|hyperv|hyperv-sim] [--qmp PATH_OR_GLOB]... [--sim-root DIR]
                         [--replica NAME=qsd=SOCK,node=NODE,nbd=SOCK,primary=SOCK,job=ID[,id=VM_ID]]...
                         [--smb-share //SERVER[:PORT]/NAME=LOCAL_PATH]... [--smb-credentials FILE]
                         [--restore-root DIR]... [--poll SECONDS] [--log-level LEVEL]
       shadowvault agent --file-server --share NAME=PATH... --appliance URL [--pair CODE] [--data-dir DIR] [--name HOST]
  --appliance  the appliance's URL: https://HOST:PORT (http:// only on loopback)
  --pair       a pairing code from \`shadowvault agents pair\` (first start only; later starts reuse the credential).
               With a new --appliance URL2 --pair CODE2 the agent pairs with that appliance too, keeps the earlier
               pairings, and serves every appliance it is paired with (VM ownership: README "Two appliances")
  --data-dir   credential, pinned certificate and driver state (default $XDG_DATA_HOME/shadowvault-agent)
  --name       this host's name on the appliance (default the host name)
  --driver     the hypervisor: qemu (default; QEMU/KVM over QMP), hyperv (Hyper-V through PowerShell/CIM, on a
               Windows Server 2016+ host), hyperv-sim (a SIMULATION of Hyper-V over files in --sim-root, for tests
               and demonstrations: not a real hypervisor)
  --qmp        (qemu) QMP unix socket of a VM, or a glob of them (re-read at every poll: new VMs are picked up)
  --sim-root   (hyperv-sim) the simulation's folder (VM configurations and VHDX disks)
  --replica    a replica VM on this (secondary) host: qsd = QMP socket of the qemu-storage-daemon writing the replica,
               node = the replica's node in it, nbd = its NBD server socket, primary = a QMP socket of the primary's
               QEMU, job = the primary's blockdev-mirror job id (README "Replica VMs"); with only replicas, no --qmp
  --restore-root  a folder restores back to this host may be written in (next to a VM's disks, when they lie
               under it); none: restore to the host is refused
  --smb-share  (host) VM disks under LOCAL_PATH live on SMB 3.0 share NAME of SERVER: their points are taken by
               checkpoint and merge, read by that file server's agent, and the share and folder rights of the
               machine account are checked through the server (needs --smb-credentials)
  --smb-credentials  (host) smbclient authentication file of this host's machine account (username=HOST$,
               password=..., domain=...)
  --file-server  run as a file server's agent: no hypervisor; serves reads of the VM disk files on its shares
  --share      (file server) a share it serves: NAME=PATH (the share's folder on this server)
  --poll       seconds between inventory polls (default 5)`;

/** Longest a SIGINT/SIGTERM stop may take (views released, driver closed). */
const STOP_MS = 10_000;

function defaultAgentDir(env: NodeJS.ProcessEnv): string {
  if (env.SHADOWVAULT_AGENT_DIR) return resolve(env.SHADOWVAULT_AGENT_DIR);
  const xdg = env.XDG_DATA_HOME;
  return join(xdg && isAbsolute(xdg) ? xdg : join(env.HOME || homedir(), '.local', 'share'), 'shadowvault-agent');
}

function version(): string {
  return (JSON.parse(readFileSync(new URL('../../../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
}

export const agentCommand: Command = {
  name: 'agent',
  summary: 'Run the host agent on a hypervisor host (pairs with the appliance, reports and serves its VMs)',
  usage,
  async run(args, io) {
    const { values } = parseCommandArgs(args, {
      appliance: { type: 'string' },
      pair: { type: 'string' },
      'data-dir': { type: 'string' },
      name: { type: 'string' },
      cluster: { type: 'string' },
      driver: { type: 'string' },
      qmp: { type: 'string', multiple: true },
      'sim-root': { type: 'string' },
      replica: { type: 'string', multiple: true },
      'restore-root': { type: 'string', multiple: true },
      poll: { type: 'string' },
      'log-level': { type: 'string' },
      'smb-share': { type: 'string', multiple: true },
      'smb-credentials': { type: 'string' },
      'file-server': { type: 'boolean' },
      share: { type: 'string', multiple: true },
    }, usage);
    const fileServer = values['file-server'] === true;
    if (fileServer && (values.qmp?.length || values.driver || values.replica?.length || values['smb-share']?.length)) throw new SvError('SV_ERR_CLI_BAD_USAGE', `agent --file-server runs no hypervisor: --qmp, --driver, --replica and --smb-share do not apply\nusage: ${usage}`, {});
    if (fileServer && !values.share?.length) throw new SvError('SV_ERR_CLI_BAD_USAGE', `agent --file-server needs at least one --share NAME=PATH\nusage: ${usage}`, {});
    if (!fileServer && values.share?.length) throw new SvError('SV_ERR_CLI_BAD_USAGE', `--share is for a file server's agent (--file-server); a host names its shares with --smb-share\nusage: ${usage}`, {});
    if (values['smb-share']?.length && !values['smb-credentials']) throw new SvError('SV_ERR_CLI_BAD_USAGE', `--smb-share needs --smb-credentials FILE (the machine account's smbclient authentication file)\nusage: ${usage}`, {});
    const driverName = values.driver ?? 'qemu';
    if (driverName !== 'qemu' && driverName !== 'hyperv' && driverName !== 'hyperv-sim') {
      throw new SvError('SV_ERR_CLI_BAD_USAGE', `--driver "${driverName}": expected qemu, hyperv or hyperv-sim\nusage: ${usage}`, {});
    }
    if (!values.appliance) throw new SvError('SV_ERR_CLI_BAD_USAGE', `agent needs --appliance URL\nusage: ${usage}`, {});
    if (driverName === 'qemu' && !fileServer && !values.qmp?.length && !values.replica?.length) throw new SvError('SV_ERR_CLI_BAD_USAGE', `agent --driver qemu needs at least one --qmp\nusage: ${usage}`, {});
    if (driverName === 'hyperv-sim' && !values['sim-root']) throw new SvError('SV_ERR_CLI_BAD_USAGE', `agent --driver hyperv-sim needs --sim-root DIR (the simulation's folder)\nusage: ${usage}`, {});
    let appliance: URL;
    try {
      appliance = new URL(values.appliance);
    } catch {
      throw new SvError('SV_ERR_CLI_BAD_USAGE', `--appliance "${values.appliance}": expected https://HOST:PORT\nusage: ${usage}`, {});
    }
    const poll = values.poll === undefined ? 5 : Number(values.poll);
    if (!(poll >= 0.1 && poll <= 3600)) throw new SvError('SV_ERR_CLI_BAD_USAGE', `--poll "${values.poll}": expected seconds, 0.1..3600`, {});
    const name = values.name ?? hostname();
    const dataDir = resolve(values['data-dir'] ?? defaultAgentDir(io.env));
    const [{ default: pino }, { startAgentSet }, { openDriver }, { createMethods }, { openDiskSource }, { closePool }] = await Promise.all([
      import('pino'),
      import('../../agent/agent-set.js'),
      import('../../hypervisor/open-driver.js'),
      import('../../agent/methods/index.js'),
      import('../../sources/registry.js'),
      import('../../pool/index.js'),
    ]);
    const restoreRoots = (values['restore-root'] ?? []).map((r) => resolve(r));
    const log = pino({ name: 'shadowvault-agent', level: values['log-level'] ?? io.env.SHADOWVAULT_LOG_LEVEL ?? 'info' }, pino.destination({ dest: 1, sync: true }));
    const { parseServedShare, parseSmbShare } = await import('../../smb/shares.js');
    const served = new Map((values.share ?? []).map((x) => {
      const sh = parseServedShare(x);
      return [sh.name, sh.path] as const;
    }));
    const smbShares = (values['smb-share'] ?? []).map((x) => parseSmbShare(x));
    let driver: HypervisorDriver;
    if (fileServer) {
      driver = (await import('../../smb/file-server.js')).NO_HYPERVISOR;
    } else {
      driver = await openDriver({ driver: driverName, qmp: values.qmp ?? [], simRoot: values['sim-root'] ? resolve(values['sim-root']) : '', dataDir, replicas: values.replica ?? [], checkpointIn: smbShares.map((x) => x.localPath) });
      if (smbShares.length) {
        const [{ SmbHostDriver }, { RightsChecker }] = await Promise.all([import('../../smb/host-driver.js'), import('../../smb/rights.js')]);
        driver = new SmbHostDriver(driver, smbShares, new RightsChecker({ credentials: resolve(values['smb-credentials']!) }));
      }
    }
    const keepalive = Number(io.env.SHADOWVAULT_AGENT_KEEPALIVE_MS ?? 15_000);
    let refused: unknown;
    let signalled!: () => void;
    const signal = new Promise<void>((done) => (signalled = done));
    for (const s of ['SIGINT', 'SIGTERM'] as const) process.once(s, () => signalled());
    // The agent runs until a signal or a refusal, even while nothing else holds the event loop (waiting to reconnect).
    const alive = setInterval(() => undefined, 1 << 30);
    let set: Awaited<ReturnType<typeof startAgentSet>> | undefined;
    try {
      // One HostAgent per appliance this agent is paired with; each has its own views, ranges hashed and
      // compressed on this process's worker pool, and restores to this host.
      set = await startAgentSet({
        appliance, dataDir, pairCode: values.pair, name, cluster: values.cluster ?? null, version: version(), driver, log,
        methods: () => createMethods({ driver, open: openDiskSource, restoreRoots, shares: smbShares, served }),
        pollMs: poll * 1000,
        keepaliveMs: Number.isFinite(keepalive) && keepalive >= 0 ? keepalive : 15_000,
        ...(fileServer ? { fileServer: { shares: [...served.keys()] } } : {}),
      });
      const ended = Promise.race([signal, set.allRefused.then((err) => {
        refused = err;
      })]);
      log.info({
        appliance: appliance.origin, appliances: set.agents.length, agentId: set.agents[0]?.agentId, name, dataDir, pid: process.pid, driver: driverName,
        hypervisor: `${driver.hypervisor.name} ${driver.hypervisor.version}`, ...(values.qmp ? { qmp: values.qmp } : {}),
      }, fileServer ? 'shadowvault file server agent running' : driverName === 'hyperv-sim' ? 'shadowvault agent running on the Hyper-V SIMULATION (hyperv-sim), not a real Hyper-V host' : 'shadowvault agent running');
      await ended;
    } finally {
      clearInterval(alive);
      // bounded: a QMP socket or a connection that does not answer must not keep the agent from stopping
      const watchdog = setTimeout(() => {
        log.error({ waitedMs: STOP_MS, resources: process.getActiveResourcesInfo() }, 'stopping did not finish in time: ending the process');
        process.exit(1);
      }, STOP_MS);
      await set?.stop();
      await driver.close();
      await closePool();
      clearTimeout(watchdog);
    }
    // the daemon's work is over: whatever handle is still open (a socket being torn down) must not keep it alive
    setTimeout(() => {
      log.warn({ resources: process.getActiveResourcesInfo() }, 'handles still open after the stop: ending the process');
      process.exit(process.exitCode ?? 0);
    }, 2000).unref();
    if (refused) throw refused;
    log.info('agent stopped');
    return 0;
  },
};
