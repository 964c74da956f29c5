/**
 * `shadowvault bench [--json] [--suite NAME]... [--quick]`: the benchmark suites, same runner as `npm run bench`
 * (bench/main.ts). Loaded lazily so that other commands do not import the suites.
 */
import type { Command } from '../command.js';

export const benchCommand: Command = {
  name: 'bench',
  summary: 'Measure the hot paths (native packBlocks vs the zstd CLI, and every registered suite)',
  usage: 'shadowvault bench [--json] [--suite NAME]... [--quick]',
  run: async (args, io) => (await import('../../../bench/main.js')).runBench(args, io),
};
