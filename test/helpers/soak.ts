/**
 * Test sizes: quick by default (every case still hit, the suite within its CI budget), soak size with
 * SHADOWVAULT_SOAK=1 (more kill -9 rounds, more repetitions; for a machine with time to spare).
 */

/** True when SHADOWVAULT_SOAK=1: tests run their soak size. */
export const SOAK = process.env.SHADOWVAULT_SOAK === '1';

/** `quick` normally, `soak` under SHADOWVAULT_SOAK=1. */
export function rounds(quick: number, soak: number): number {
  return SOAK ? soak : quick;
}
