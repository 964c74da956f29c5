/**
 * Suite `ntfs`: the NTFS reader alone (no store, no disk format), cold: a new reader per run, so nothing is
 * cached but the OS page cache of the image file. An ntfs-3g image (mkntfs, then the FUSE driver: needs root
 * and /dev/fuse) holds a directory of 10,000 files (`--quick`: 2,000) and a 1 MiB file. Timed: open the volume
 * + list the directory (stat of every entry from its MFT record); open the volume + read the 1 MiB file.
 * These are the reader's share of the issue-12 targets (`files ls` of 10,000 entries < 1 s, a 1 MiB file
 * < 0.2 s, end to end from a store).
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, fstatSync, mkdirSync, mkdtempSync, openSync, readSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NtfsFileSystem } from '../src/volumes/fs/ntfs/index.js';
import type { VolumeReader } from '../src/volumes/fs/types.js';
import type { BenchOptions, BenchRow, Suite, SuiteResult } from './types.js';

function sh(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.error?.message ?? r.stderr}`);
}

function fileVolume(fd: number): VolumeReader & { bytes: number } {
  const size = fstatSync(fd).size;
  const vol = {
    size, bytes: 0,
    async read(offset: number, length: number): Promise<Buffer> {
      const b = Buffer.allocUnsafe(length);
      readSync(fd, b, 0, length, offset);
      vol.bytes += length;
      return b;
    },
  };
  return vol;
}

/** Wall and CPU milliseconds (best and median of `runs` after one warm-up): CPU shows the cost on a busy host. */
async function timed(runs: number, fn: () => Promise<void>): Promise<{ best: number; median: number; cpuBest: number }> {
  await fn();
  const ms: number[] = [];
  const cpu: number[] = [];
  for (let i = 0; i < runs; i++) {
    const c = process.cpuUsage();
    const start = process.hrtime.bigint();
    await fn();
    ms.push(Number(process.hrtime.bigint() - start) / 1e6);
    const u = process.cpuUsage(c);
    cpu.push((u.user + u.system) / 1000);
  }
  ms.sort((a, b) => a - b);
  return { best: ms[0]!, median: ms[ms.length >> 1]!, cpuBest: Math.min(...cpu) };
}

export const ntfsSuite: Suite = {
  name: 'ntfs',
  description: 'NTFS reader: cold listing of a 10,000-entry directory, cold read of a 1 MiB file',
  async run(options: BenchOptions): Promise<SuiteResult> {
    const entries = options.quick ? 2000 : 10_000;
    const runs = options.quick ? 2 : 7;
    const dir = mkdtempSync(join(tmpdir(), 'sv-bench-ntfs-'));
    const image = join(dir, 'ntfs.img');
    const mnt = join(dir, 'mnt');
    try {
      options.log(`ntfs: mkntfs + ${entries} files through ntfs-3g`);
      writeFileSync(image, '');
      truncateSync(image, 256 << 20);
      sh('mkntfs', ['-F', '-Q', '-q', image]);
      mkdirSync(mnt);
      sh('ntfs-3g', [image, mnt]);
      try {
        mkdirSync(join(mnt, 'big'));
        for (let i = 0; i < entries; i++) writeFileSync(join(mnt, 'big', `document-${String(i).padStart(6, '0')}.txt`), `file ${i}\n`);
        writeFileSync(join(mnt, 'one-MiB.bin'), randomBytes(1 << 20));
      } finally {
        sh('umount', [mnt]);
      }
      const fd = openSync(image, 'r');
      try {
        const rows: BenchRow[] = [];
        let listed = 0;
        let bytes = 0;
        const list = await timed(runs, async () => {
          const vol = fileVolume(fd);
          const fs = await NtfsFileSystem.open(vol);
          listed = (await fs.list('/big')).length;
          bytes = vol.bytes;
        });
        if (listed !== entries) throw new Error(`listed ${listed} of ${entries}`);
        rows.push({ operation: `open + list ${entries} entries`, 'ms best': list.best, 'ms median': list.median, 'CPU ms best': list.cpuBest, 'volume bytes read': bytes, runs });
        const read = await timed(runs, async () => {
          const vol = fileVolume(fd);
          const fs = await NtfsFileSystem.open(vol);
          const h = await fs.open('/one-MiB.bin');
          if ((await h.read(0, h.size)).length !== 1 << 20) throw new Error('short read');
          bytes = vol.bytes;
        });
        rows.push({ operation: 'open + read a 1 MiB file', 'ms best': read.best, 'ms median': read.median, 'CPU ms best': read.cpuBest, 'volume bytes read': bytes, runs });
        return { rows, notes: ['256 MiB image file in the page cache; a new reader per run (no reader cache carried over)'] };
      } finally {
        closeSync(fd);
      }
    } finally {
      spawnSync('umount', [mnt]);
      rmSync(dir, { recursive: true, force: true });
    }
  },
};
