/** `shadowvault disk info <image> [--format raw|vhd|vhdx] [--json]`: what the format reader knows about an image and its parent chain. */
import { inputFormat, printJson, parseCommandArgs } from '../args.js';
import type { Command } from '../command.js';
import { SvError } from '../../errors/index.js';
import { extentSummary } from '../../formats/common.js';
import { openDisk } from '../../formats/open.js';
import type { DiskInfo } from '../../formats/types.js';

const usage = 'shadowvault disk info <image> [--format raw|vhd|vhdx] [--json]';

function describe(info: DiskInfo): Record<string, unknown> {
  return {
    path: info.path,
    format: info.format,
    variant: info.variant,
    virtualSize: info.virtualSize,
    logicalSectorSize: info.logicalSectorSize,
    physicalSectorSize: info.physicalSectorSize,
    blockSize: info.blockSize,
    id: info.id ?? null,
    extra: info.extra,
  };
}

function chainOf(info: DiskInfo): DiskInfo[] {
  const out: DiskInfo[] = [];
  for (let i: DiskInfo | undefined = info; i; i = i.parent) out.push(i);
  return out;
}

export const diskInfoCommand: Command = {
  name: 'disk info',
  summary: 'Print what the reader knows about a VHD, VHDX or raw disk image (sizes, ids, parent chain, allocation)',
  usage,
  async run(args, io) {
    const { values, positionals } = parseCommandArgs(args, { json: { type: 'boolean' }, format: { type: 'string' } }, usage);
    if (positionals.length !== 1) throw new SvError('SV_ERR_CLI_BAD_USAGE', `expected one image path\nusage: ${usage}`);
    const format = inputFormat(values.format, '--format', usage);
    const image = await openDisk(positionals[0]!, { format });
    try {
      const allocation = extentSummary(await image.extents());
      const chain = chainOf(image.info).map(describe);
      if (values.json) {
        printJson(io, { ...chain[0], allocation, chain: chain.slice(1) });
        return 0;
      }
      const lines: string[] = [];
      chain.forEach((c, depth) => {
        const pad = '  '.repeat(depth);
        lines.push(`${pad}${depth === 0 ? 'image' : 'parent'}: ${String(c.path)}`);
        lines.push(`${pad}  format: ${String(c.format)} (${String(c.variant)})`);
        lines.push(`${pad}  virtual size: ${String(c.virtualSize)} bytes`);
        lines.push(`${pad}  sectors: logical ${String(c.logicalSectorSize)}, physical ${String(c.physicalSectorSize)}`);
        lines.push(`${pad}  block size: ${String(c.blockSize)}`);
        if (c.id) lines.push(`${pad}  id: ${String(c.id)}`);
        for (const [k, v] of Object.entries(c.extra as Record<string, unknown>)) {
          if (k === 'warnings' && Array.isArray(v) && v.length === 0) continue;
          lines.push(`${pad}  ${k}: ${typeof v === 'object' ? JSON.stringify(v) : String(v)}`);
        }
      });
      lines.push(`allocation (whole chain): data ${allocation.data}, zero ${allocation.zero}, unallocated ${allocation.unallocated} bytes`);
      io.stdout.write(`${lines.join('\n')}\n`);
      return 0;
    } finally {
      await image.close();
    }
  },
};
