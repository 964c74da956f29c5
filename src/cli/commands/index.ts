/**
 * The one list of CLI commands: each command's name and how to load its module. Add a command by appending an
 * entry here (its `name` must be the loaded command's name: test/cli/lazy-commands.test.ts checks every entry).
 *
 * Modules are loaded when a command runs, not when the CLI starts: a process pays only for the command it runs
 * (`files ls` does not load the API server, the backup engine or the hypervisor drivers). `--help` loads all.
 */
import type { Command } from '../command.js';

export interface CommandEntry {
  /** The words after `shadowvault` (sub-commands use a space: "disk info"). */
  readonly name: string;
  load(): Promise<Command>;
}

export const COMMAND_ENTRIES: readonly CommandEntry[] = [
  { name: 'serve', load: async () => (await import('./serve.js')).serveCommand },
  { name: 'sources', load: async () => (await import('./sources.js')).sourcesCommand },
  { name: 'groups', load: async () => (await import('./groups.js')).groupsCommand },
  { name: 'jobs', load: async () => (await import('./jobs.js')).jobsCommand },
  { name: 'agent', load: async () => (await import('./agent.js')).agentCommand },
  { name: 'agents', load: async () => (await import('./agents.js')).agentsCommand },
  { name: 'hosts', load: async () => (await import('./inventory.js')).hostsCommand },
  { name: 'clusters', load: async () => (await import('./inventory.js')).clustersCommand },
  { name: 'vms', load: async () => (await import('./inventory.js')).vmsCommand },
  { name: 'hyperv-sim', load: async () => (await import('./hyperv-sim.js')).hypervSimCommand },
  { name: 'disk info', load: async () => (await import('./disk-info.js')).diskInfoCommand },
  { name: 'disk cat', load: async () => (await import('./disk-cat.js')).diskCatCommand },
  { name: 'disk convert', load: async () => (await import('./disk-convert.js')).diskConvertCommand },
  { name: 'bench', load: async () => (await import('./bench.js')).benchCommand },
  { name: 'backup', load: async () => (await import('./backup.js')).backupCommand },
  { name: 'points', load: async () => (await import('./points.js')).pointsCommand },
  { name: 'restore', load: async () => (await import('./restore.js')).restoreCommand },
  { name: 'export', load: async () => (await import('./export.js')).exportCommand },
  { name: 'files volumes', load: async () => (await import('./files-volumes.js')).filesVolumesCommand },
  { name: 'files ls', load: async () => (await import('./files-ls.js')).filesLsCommand },
  { name: 'files get', load: async () => (await import('./files-get.js')).filesGetCommand },
  { name: 'files find', load: async () => (await import('./files-find.js')).filesFindCommand },
  { name: 'files volume-restore', load: async () => (await import('./files-volume-restore.js')).filesVolumeRestoreCommand },
  { name: 'check', load: async () => (await import('./check.js')).checkCommand },
  { name: 'verify', load: async () => (await import('./verify.js')).verifyCommand },
  { name: 'prune', load: async () => (await import('./prune.js')).pruneCommand },
  { name: 'gc', load: async () => (await import('./gc.js')).gcCommand },
  { name: 'repair', load: async () => (await import('./repair.js')).repairCommand },
  { name: 'store extend-lock', load: async () => (await import('./store-extend-lock.js')).storeExtendLockCommand },
];

/** Every command, loaded (for `--help` and group help), in the order of COMMAND_ENTRIES. */
export function loadCommands(entries: readonly CommandEntry[] = COMMAND_ENTRIES): Promise<Command[]> {
  return Promise.all(entries.map((e) => e.load()));
}
