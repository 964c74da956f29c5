/**
 * The two test guests behind one interface, for rigs that run either (test/cluster/*): the 512-byte writer
 * (writer-guest.ts; its rule: the ring and header on the raw disk) and the Linux guest (linux-guest.ts; its
 * rule: `e2fsck -fn` clean and every checksummed file intact). A rig makes the disk, starts QEMU with
 * `guestVmOptions` (a migration's destination too: same devices, its own console log and guest-agent socket),
 * waits with `guestReady`, and checks a restored point with `checkGuestImage`.
 */
import { checkLinuxImage, linuxVmOptions, makeExt4Disk, waitForGuestFiles } from './linux-guest.js';
import type { VmOptions } from './vm.js';
import { checkWriterImage, makeWriterDisk, waitForHeader } from './writer-guest.js';

export type Guest = 'writer' | 'linux';

export type GuestVmOptions = Pick<VmOptions, 'memoryMb' | 'kernel' | 'initrd' | 'append' | 'serialLog' | 'guestAgentSocket'>;

let starts = 0;
/** The Linux guest writes a file a second once booted: enough change between points, little CPU (TCG). */
export const LINUX_PACE_S = 1;

/** QEMU options of one process of the guest `name` besides its disks and monitors; files in `dir`. */
export function guestVmOptions(guest: Guest, dir: string, name: string): GuestVmOptions {
  return guest === 'linux' ? linuxVmOptions(dir, `${name}-${process.pid}-${starts++}`, { paceS: LINUX_PACE_S }) : { memoryMb: 32 };
}

/** A new 64 MiB raw disk for the guest: the writer's program, or an empty ext4 file system. */
export function makeGuestDisk(guest: Guest, path: string): string {
  return guest === 'linux' ? makeExt4Disk(path, 64) : makeWriterDisk(path, 'raw');
}

/** Wait until a guest started with `opts` has written enough for its rule (the writer's ring full; eight files). */
export async function guestReady(guest: Guest, disk: string, opts: GuestVmOptions): Promise<void> {
  if (guest === 'linux') await waitForGuestFiles(opts.serialLog!, 240_000);
  else await waitForHeader(disk, 300, 'raw', 240_000);
}

/**
 * The guest's rule on a restored raw image. A Linux point that is not application-consistent has its journal
 * replayed first (the copy is changed); an application-consistent one must be clean as it is.
 */
export function checkGuestImage(guest: Guest, image: string, workDir: string, consistency: string | undefined): { ok: boolean; problems: string[] } {
  if (guest === 'writer') return checkWriterImage(image);
  return checkLinuxImage(image, workDir, { replayJournal: consistency !== 'application' });
}
