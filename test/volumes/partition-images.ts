/**
 * Real partitioned disk images for the partition-table tests, made by sfdisk and sgdisk, and sfdisk's own
 * reading of them (`sfdisk --json`) to compare with ours.
 */
import { truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { requireTool, run } from '../helpers/env.js';

export const DISK_BYTES = 64 << 20;

/** MBR: 3 primaries (one bootable) + an extended partition holding 3 logicals (one LVM, one LDM). */
export function makeMbr(dir: string): string {
  const path = join(dir, 'mbr.raw');
  blank(path, DISK_BYTES);
  run(requireTool('sfdisk'), ['-q', path], {
    input: 'label: dos\n,8MiB,83,*\n,8MiB,7\n,8MiB,8e\n,,5\n,6MiB,83\n,6MiB,42\n,6MiB,82\n',
  });
  return path;
}

/** GPT by sgdisk: names and type codes (EF00, 0700, 8E00, 8300 and an LDM metadata partition). */
export function makeGpt(dir: string): string {
  const path = join(dir, 'gpt.raw');
  blank(path, DISK_BYTES);
  run(requireTool('sgdisk'), [
    '-n', '1:0:+8M', '-t', '1:EF00', '-c', '1:EFI system',
    '-n', '2:0:+8M', '-t', '2:0700', '-c', '2:Basic data',
    '-n', '3:0:+8M', '-t', '3:8E00', '-c', '3:lvm pv',
    '-n', '4:0:+4M', '-t', '4:4201', '-c', '4:LDM metadata',
    '-n', '6:0:0', '-t', '6:8300', '-c', '6:Linux données',
    path,
  ]);
  return path;
}

/** A new sparse file of zeros. */
export function blank(path: string, size: number): void {
  writeFileSync(path, '');
  truncateSync(path, size);
}

export interface SfdiskPart { index: number; offset: number; size: number; type: string; name?: string; guid?: string; bootable?: boolean }

/** sfdisk's reading of a disk, in our units (bytes, lowercase types), extended containers left out. */
export function sfdiskParts(path: string): { label: string; parts: SfdiskPart[] } {
  const out = JSON.parse(run(requireTool('sfdisk'), ['--json', path])) as {
    partitiontable: { label: string; sectorsize?: number; partitions: Array<{ node: string; start: number; size: number; type: string; name?: string; uuid?: string; bootable?: boolean }> };
  };
  const pt = out.partitiontable;
  const ss = pt.sectorsize ?? 512;
  const parts = pt.partitions
    .filter((p) => !['5', 'f', '85'].includes(p.type))
    .map((p) => ({
      index: Number(/(\d+)$/u.exec(p.node)?.[1]),
      offset: p.start * ss,
      size: p.size * ss,
      type: pt.label === 'dos' ? `0x${p.type.padStart(2, '0')}` : p.type.toLowerCase(),
      ...(p.name !== undefined ? { name: p.name } : {}),
      ...(p.uuid !== undefined ? { guid: p.uuid.toLowerCase() } : {}),
      ...(pt.label === 'dos' ? { bootable: p.bootable === true } : {}),
    }));
  return { label: pt.label, parts };
}
