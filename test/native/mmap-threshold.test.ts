/**
 * setMmapThreshold (glibc mallopt M_MMAP_THRESHOLD, set by the host agent at start): accepted in range; out of
 * range SV_ERR_NATIVE_BAD_ARGUMENT. Its effect on the agent's resident memory is measured by the bench suite
 * `agent` (docs/BENCHMARKS.md), not here: it shows only with the agent's mix of threads and buffer sizes.
 */
import t from 'tap';
import { setMmapThreshold } from '../../src/native/index.js';

t.test('setMmapThreshold: in range accepted, out of range a coded error', async (t) => {
  t.equal(setMmapThreshold(1024 * 1024), true, '1 MiB accepted');
  t.throws(() => setMmapThreshold(0), { code: 'SV_ERR_NATIVE_BAD_ARGUMENT' }, '0');
  t.throws(() => setMmapThreshold(64 * 1024 * 1024), { code: 'SV_ERR_NATIVE_BAD_ARGUMENT' }, 'above 32 MiB');
});
