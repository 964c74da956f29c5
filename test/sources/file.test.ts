/**
 * The `file` disk source through the shared contract (test/sources/contract.ts): a raw file, and the same
 * bytes in a dynamic VHDX made by qemu-img (read through our own reader, hashed by the workers, which open
 * the image themselves).
 */
import { join } from 'node:path';
import t from 'tap';
import { closePool } from '../../src/pool/index.js';
import { run, requireTool } from '../helpers/env.js';
import { sourceContract } from './contract.js';

t.teardown(closePool);

sourceContract(t, 'file (raw)', async (_t, rawPath) => ({ kind: 'file', path: rawPath }), { transfer: 'none' });

sourceContract(t, 'file (vhdx)', async (_t, rawPath, dir) => {
  const vhdx = join(dir, 'disk.vhdx');
  run(requireTool('qemu-img'), ['convert', '-f', 'raw', '-O', 'vhdx', '-o', 'subformat=dynamic', rawPath, vhdx]);
  return { kind: 'file', path: vhdx, format: 'vhdx' };
}, { transfer: 'none' });
