/**
 * `shadowvault disk convert <in> <out> [--format vhdx|vhd|raw] [--input-format raw|vhd|vhdx] [--variant
 * dynamic|fixed|differencing] [--parent P] [--block-size N] [--force]`: reads any image (with its parent chain;
 * --input-format forces how <in> is read, since --format names the OUTPUT format) and writes it in the asked
 * format (default: from the output's extension), zero and unallocated ranges left unallocated; a differencing output
 * stores only what differs from --parent. Written atomically (temp file + rename).
 */
import { access } from 'node:fs/promises';
import { extname } from 'node:path';
import { inputFormat, parseCommandArgs } from '../args.js';
import type { Command } from '../command.js';
import { SvError } from '../../errors/index.js';
import { openDisk } from '../../formats/open.js';
import { parentDiffSource } from '../../formats/diff-source.js';
import { imageBlockSource } from '../../formats/source.js';
import type { DiskFormat } from '../../formats/types.js';
import { writeDisk } from '../../formats/write.js';

const usage = 'shadowvault disk convert <in> <out> [--format vhdx|vhd|raw] [--input-format raw|vhd|vhdx] [--variant dynamic|fixed|differencing] [--parent IMAGE] [--block-size BYTES] [--force]';

const BY_EXTENSION: Record<string, DiskFormat> = {
  '.vhd': 'vhd', '.vhdx': 'vhdx', '.avhdx': 'vhdx', '.avhd': 'vhd', '.raw': 'raw', '.img': 'raw', '.bin': 'raw',
};

export const diskConvertCommand: Command = {
  name: 'disk convert',
  summary: 'Convert a disk image between VHDX, VHD and raw (sparse)',
  usage,
  async run(args, io) {
    const { values, positionals } = parseCommandArgs(args, {
      format: { type: 'string' }, 'input-format': { type: 'string' }, variant: { type: 'string' }, parent: { type: 'string' }, 'block-size': { type: 'string' }, force: { type: 'boolean' },
    }, usage);
    if (positionals.length !== 2) throw new SvError('SV_ERR_CLI_BAD_USAGE', `expected an input and an output path\nusage: ${usage}`);
    const [input, output] = positionals as [string, string];
    const format = (values.format ?? BY_EXTENSION[extname(output).toLowerCase()]) as DiskFormat | undefined;
    if (format !== 'vhd' && format !== 'vhdx' && format !== 'raw') {
      throw new SvError('SV_ERR_CLI_BAD_USAGE', `cannot tell the output format of ${output}${values.format ? ` (--format ${values.format})` : ''}: use --format vhdx|vhd|raw\nusage: ${usage}`);
    }
    const variant = values.variant;
    if (variant !== undefined && variant !== 'dynamic' && variant !== 'fixed' && variant !== 'differencing') {
      throw new SvError('SV_ERR_CLI_BAD_USAGE', `--variant must be dynamic, fixed or differencing, not ${variant}\nusage: ${usage}`);
    }
    if ((variant === 'differencing') !== (values.parent !== undefined)) {
      throw new SvError('SV_ERR_CLI_BAD_USAGE', `--variant differencing and --parent go together\nusage: ${usage}`);
    }
    const blockSize = values['block-size'] === undefined ? undefined : Number(values['block-size']);
    if (blockSize !== undefined && (!Number.isSafeInteger(blockSize) || blockSize <= 0)) {
      throw new SvError('SV_ERR_CLI_BAD_USAGE', `--block-size must be a positive number of bytes\nusage: ${usage}`);
    }
    if (!values.force && (await access(output).then(() => true, () => false))) {
      throw new SvError('SV_ERR_CLI_OUTPUT_EXISTS', `${output} exists; use --force to replace it`, { path: output });
    }
    const inFormat = inputFormat(values['input-format'], '--input-format', usage);
    const image = await openDisk(input, { format: inFormat });
    try {
      // A differencing child stores what differs from its parent (null blocks mean "the parent's" to the writers).
      const parent = values.parent === undefined ? undefined : await openDisk(values.parent);
      try {
        const source = parent ? parentDiffSource(imageBlockSource(image), parent) : imageBlockSource(image);
        await writeDisk(format, source, output, { overwrite: values.force === true, variant, blockSize, parentPath: values.parent });
      } finally {
        await parent?.close();
      }
    } finally {
      await image.close();
    }
    io.stderr.write(`${input} (${image.info.format} ${image.info.variant}, ${image.info.virtualSize} bytes) → ${output} (${format})\n`);
    return 0;
  },
};
