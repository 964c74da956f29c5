/** The benchmark suites `npm run bench` / `shadowvault bench` know. Add yours: one import + one entry. */
import { agentSuite } from './agent.js';
import { apiSuite } from './api.js';
import { clusterSuite } from './cluster.js';
import { filesSuite } from './files.js';
import { formatsSuite } from './formats.js';
import { hypervisorSuite } from './hypervisor.js';
import { nativeSuite } from './native.js';
import { nbdSuite } from './nbd.js';
import { ntfsSuite } from './ntfs.js';
import { exportSuite } from './export.js';
import { s3Suite } from './s3.js';
import { storeSuite } from './store.js';
import type { Suite } from './types.js';

export const SUITES: readonly Suite[] = [
  formatsSuite,
  nativeSuite,
  storeSuite,
  apiSuite,
  nbdSuite,
  agentSuite,
  clusterSuite,
  hypervisorSuite,
  filesSuite,
  ntfsSuite,
  exportSuite,
  s3Suite,
];
