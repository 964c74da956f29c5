/**
 * The worker module every pool thread loads (compiled: build/workers/index.js). One export per task of
 * TaskMap (workers/tasks.ts); piscina's `name` option selects the export. Add a task: one TaskMap entry +
 * one line here.
 */
import { echoTask } from './echo.js';
import { handler } from './handler.js';
import { packTask } from './pack.js';
import { backupRangeTask, backupSpansTask, readBlobsTask } from './store-task.js';

export const pack = handler('pack', packTask);
export const echo = handler('echo', echoTask);
export const storeBackupRange = handler('storeBackupRange', backupRangeTask);
export const storeBackupSpans = handler('storeBackupSpans', backupSpansTask);
export const storeReadBlobs = handler('storeReadBlobs', readBlobsTask);
