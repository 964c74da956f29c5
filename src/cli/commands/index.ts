/** The one list of CLI commands. Add a command by importing it here and appending it to COMMANDS. */
import type { Command } from '../command.js';
import { agentCommand } from './agent.js';
import { agentsCommand } from './agents.js';
import { hypervSimCommand } from './hyperv-sim.js';
import { backupCommand } from './backup.js';
import { checkCommand } from './check.js';
import { gcCommand } from './gc.js';
import { pointsCommand } from './points.js';
import { pruneCommand } from './prune.js';
import { repairCommand } from './repair.js';
import { restoreCommand } from './restore.js';
import { exportCommand } from './export.js';
import { verifyCommand } from './verify.js';
import { benchCommand } from './bench.js';
import { diskCatCommand } from './disk-cat.js';
import { diskConvertCommand } from './disk-convert.js';
import { diskInfoCommand } from './disk-info.js';
import { groupsCommand } from './groups.js';
import { hostsCommand, vmsCommand } from './inventory.js';
import { jobsCommand } from './jobs.js';
import { serveCommand } from './serve.js';
import { sourcesCommand } from './sources.js';
import { filesFindCommand } from './files-find.js';
import { filesGetCommand } from './files-get.js';
import { filesLsCommand } from './files-ls.js';
import { filesVolumeRestoreCommand } from './files-volume-restore.js';
import { filesVolumesCommand } from './files-volumes.js';

export const COMMANDS: readonly Command[] = [
  serveCommand,
  sourcesCommand,
  groupsCommand,
  jobsCommand,
  agentCommand,
  agentsCommand,
  hypervSimCommand,
  hostsCommand,
  vmsCommand,
  diskInfoCommand,
  diskCatCommand,
  diskConvertCommand,
  benchCommand,
  backupCommand,
  pointsCommand,
  restoreCommand,
  exportCommand,
  filesVolumesCommand,
  filesLsCommand,
  filesGetCommand,
  filesFindCommand,
  filesVolumeRestoreCommand,
  checkCommand,
  verifyCommand,
  pruneCommand,
  gcCommand,
  repairCommand,
];
