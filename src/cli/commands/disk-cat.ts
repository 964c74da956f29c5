/**
 * `shadowvault disk cat <image> [--format raw|vhd|vhdx]`: the raw virtual disk on stdout, streamed in 4 MiB reads with backpressure;
 * zero and unallocated extents are written from a shared zero buffer without reading. A closed pipe (EPIPE,
 * e.g. `| head`) ends the command quietly with exit code 0.
 */
import { inputFormat, parseCommandArgs } from '../args.js';
import type { Command } from '../command.js';
import { SvError } from '../../errors/index.js';
import { openDisk } from '../../formats/open.js';

const usage = 'shadowvault disk cat <image> [--format raw|vhd|vhdx]';
const CHUNK = 4 << 20;
const ZEROS = Buffer.alloc(CHUNK);

class PipeClosed extends Error {}

export const diskCatCommand: Command = {
  name: 'disk cat',
  summary: 'Write the raw virtual disk of a VHD, VHDX or raw image to stdout',
  usage,
  async run(args, io) {
    const { values, positionals } = parseCommandArgs(args, { format: { type: 'string' } }, usage);
    if (positionals.length !== 1) throw new SvError('SV_ERR_CLI_BAD_USAGE', `expected one image path\nusage: ${usage}`);
    const format = inputFormat(values.format, '--format', usage);
    const out = io.stdout;
    let failure: NodeJS.ErrnoException | undefined;
    const onError = (err: NodeJS.ErrnoException) => { failure ??= err; };
    out.on('error', onError);
    const check = () => {
      if (failure?.code === 'EPIPE') throw new PipeClosed();
      if (failure) throw failure;
    };
    const write = async (buf: Buffer) => {
      check();
      if (out.write(buf)) return;
      await new Promise<void>((res) => {
        const done = () => { out.off('drain', done); out.off('error', done); out.off('close', done); res(); };
        out.on('drain', done);
        out.on('error', done);
        out.on('close', done);
      });
      check();
    };
    const image = await openDisk(positionals[0]!, { format });
    try {
      for (const e of await image.extents()) {
        for (let o = e.offset; o < e.offset + e.length; o += CHUNK) {
          const n = Math.min(CHUNK, e.offset + e.length - o);
          await write(e.kind === 'data' ? await image.read(o, n) : ZEROS.subarray(0, n));
        }
      }
      return 0;
    } catch (err) {
      if (err instanceof PipeClosed) return 0;
      throw err;
    } finally {
      out.off('error', onError);
      await image.close();
    }
  },
};
