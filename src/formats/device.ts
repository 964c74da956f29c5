/**
 * What a disk image path may be, checked BEFORE it is opened: a regular file or a block device (LVM volume,
 * raw LUN, loop device, partition). Anything else is refused with SV_ERR_FORMAT_NOT_A_DISK: opening a FIFO
 * blocks until a writer appears, opening a character device can have side effects (a tape rewinds, a
 * watchdog arms), a directory or socket is no disk, and a file of a pseudo file system (/proc, /sys, ...)
 * reports a size that is not its content (0 for most, 4096 in sysfs, the address space for /proc/kcore).
 *
 * A block device's stat size is 0: its size comes from /sys/dev/block/MAJ:MIN/size (512-byte sectors, exact,
 * also for partitions), else from probing with 1-byte reads (a read at or past the end returns 0 bytes).
 */
import type { Stats } from 'node:fs';
import { readFile, statfs, type FileHandle } from 'node:fs/promises';
import { SvError } from '../errors/index.js';

/** statfs f_type of pseudo file systems whose files are not disks (linux/magic.h). */
const PSEUDO_FS: ReadonlyMap<number, string> = new Map([
  [0x9fa0, 'proc'], [0x62656572, 'sysfs'], [0x64626720, 'debugfs'], [0x74726163, 'tracefs'], [0x73636673, 'securityfs'],
  [0x27e0eb, 'cgroup'], [0x63677270, 'cgroup2'], [0x62656570, 'configfs'], [0x6165676c, 'pstore'], [0xde5e81e4, 'efivarfs'],
  [0xcafe4a11, 'bpf'],
]);

function kindOf(st: Stats): string {
  if (st.isFile()) return 'regular file';
  if (st.isBlockDevice()) return 'block device';
  if (st.isDirectory()) return 'directory';
  if (st.isFIFO()) return 'FIFO (named pipe)';
  if (st.isSocket()) return 'socket';
  if (st.isCharacterDevice()) return 'character device';
  if (st.isSymbolicLink()) return 'symbolic link';
  return 'special file';
}

function notADisk(path: string, found: string, why: string): SvError {
  return new SvError('SV_ERR_FORMAT_NOT_A_DISK', `${path}: a ${found}, not a disk image (${why})`, {
    path, expected: 'a regular file or a block device', found,
  });
}

/**
 * Throws SV_ERR_FORMAT_NOT_A_DISK unless `st` (from stat(2), symbolic links followed) is a regular file on a
 * real file system or a block device. Never opens the path.
 */
export async function checkDiskPath(path: string, st: Stats): Promise<void> {
  if (st.isBlockDevice()) return;
  if (!st.isFile()) throw notADisk(path, kindOf(st), 'only regular files and block devices are read');
  const fs = await statfs(path).catch(() => undefined);
  const pseudo = fs ? PSEUDO_FS.get(fs.type) : undefined;
  if (pseudo) throw notADisk(path, `file of the ${pseudo} pseudo file system`, 'its size and content are not a disk');
}

/** Throws SV_ERR_FORMAT_NOT_A_DISK when the path now names another file than `before` (replaced meanwhile). */
export function checkSameFile(path: string, before: Stats, after: Stats): void {
  if (before.dev !== after.dev || before.ino !== after.ino || kindOf(before) !== kindOf(after)) {
    throw notADisk(path, kindOf(after), `the path was replaced between stat and open (was a ${kindOf(before)})`);
  }
}

/** The size in bytes of the open block device `fh` whose stat is `st`. */
export async function blockDeviceSize(path: string, st: Stats, fh: FileHandle): Promise<number> {
  const fromSys = await sysfsSize(st.rdev);
  if (fromSys !== undefined) return fromSys;
  try {
    return await probeSize(fh);
  } catch (err) {
    throw new SvError('SV_ERR_FORMAT_DEVICE_SIZE', `${path}: block device ${major(st.rdev)}:${minor(st.rdev)}: size unknown (no /sys/dev/block entry, and reading it failed)`, {
      path, device: `${major(st.rdev)}:${minor(st.rdev)}`,
    }, { cause: err });
  }
}

/** Linux dev_t split (glibc gnu_dev_major/minor); rdev fits a double exactly for every real device number. */
function major(rdev: number): number {
  return Number(((BigInt(rdev) >> 8n) & 0xfffn) | ((BigInt(rdev) >> 32n) & ~0xfffn));
}
function minor(rdev: number): number {
  return Number((BigInt(rdev) & 0xffn) | ((BigInt(rdev) >> 12n) & ~0xffn));
}

async function sysfsSize(rdev: number): Promise<number | undefined> {
  const text = await readFile(`/sys/dev/block/${major(rdev)}:${minor(rdev)}/size`, 'latin1').catch(() => undefined);
  const sectors = text === undefined ? NaN : Number(text.trim());
  return Number.isSafeInteger(sectors * 512) && sectors >= 0 ? sectors * 512 : undefined;
}

/** The device size found by 1-byte reads: doubling to a first offset past the end, then bisecting (~2 log2(size) reads). */
export async function probeSize(fh: FileHandle): Promise<number> {
  const byte = Buffer.alloc(1);
  const has = async (at: number): Promise<boolean> => (await fh.read(byte, 0, 1, at)).bytesRead === 1;
  if (!(await has(0))) return 0;
  let lo = 0; // a readable offset
  let hi = 512;
  while (await has(hi)) {
    lo = hi;
    hi *= 2;
    if (hi > Number.MAX_SAFE_INTEGER) throw new Error('device reads past 2^53 bytes');
  }
  while (hi - lo > 1) {
    const mid = lo + Math.floor((hi - lo) / 2);
    if (await has(mid)) lo = mid;
    else hi = mid;
  }
  return hi;
}
