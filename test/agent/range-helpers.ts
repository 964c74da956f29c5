/** The worker task's answer for a byte range of a real file: the reference the range codec is checked against. */
import { runTask } from '../../src/pool/index.js';
import type { RangeResult } from '../../src/sources/types.js';

export async function workerRange(path: string, offset: number, length: number, blockSize: number, oldDigests: Uint8Array | null): Promise<RangeResult> {
  return runTask('storeBackupRange', { input: { kind: 'file', ref: { kind: 'file', path, format: 'raw' } }, offset, length, blockSize, level: 3, oldDigests });
}
