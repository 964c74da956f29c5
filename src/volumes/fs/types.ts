/**
 * The file-system reader interface (item-level restore): NTFS (ntfs/), ext2/3/4 (ext/) and FAT12/16/32 (fat/)
 * implement it, read-only, over a `VolumeReader` (a byte range of a virtual disk: a partition of a recovery
 * point opened as a DiskImage). `probe.ts` picks the reader from the volume's first sectors; LVM, XFS, ReFS,
 * Windows dynamic disks and anything unknown get SV_ERR_VOLUME_UNSUPPORTED naming what was found.
 *
 * CONTRACT (one shared suite, test/volumes/fs-contract.ts, runs over every reader):
 * - Paths are '/'-separated from the volume root ('/' is the root). Lookup is exact-case for ext, and
 *   case-insensitive for NTFS and FAT (as their own drivers resolve it); `list` returns names as stored.
 * - `list(dir)` returns every entry of a directory except '.' and '..', each once (NTFS: the Win32 name when a
 *   file has both a Win32 and a DOS name; hard links appear under each of their names).
 * - `open(path)` gives a file handle; `read(offset, length)` returns exactly min(length, size - offset) bytes;
 *   sparse ranges read as zeros; only the blocks needed are read from the volume. The buffer returned may be
 *   the volume's own (no copy: a file's contents go out as the point image decoded them): callers read it and
 *   must not modify it.
 * - `streams(path)` lists alternate data streams (NTFS; empty elsewhere); `open(path, stream)` opens one.
 * - Every parser defends itself: a corrupt structure throws a catalogued SV_ERR_VOLUME_* / SV_ERR_FS_* error
 *   naming the structure and where it is; cycles (directory loops, runlists or FAT chains pointing back) are
 *   detected; no allocation is sized from an unchecked on-disk number; nothing hangs.
 * - Read-only: nothing is ever written through a VolumeReader.
 */

/** A byte range of a disk, read-only. `read` returns exactly `length` bytes inside [0, size). */
export interface VolumeReader {
  readonly size: number;
  read(offset: number, length: number): Promise<Buffer>;
}

export type EntryType = 'file' | 'directory' | 'symlink' | 'other';

export interface FileTimes {
  /** Milliseconds since the epoch (UTC); undefined when the file system does not record it. */
  readonly modified?: number;
  readonly accessed?: number;
  readonly created?: number;
  /** Inode/MFT record change time. */
  readonly changed?: number;
}

export interface DirEntry {
  readonly name: string;
  readonly type: EntryType;
  readonly size: number;
  readonly times: FileTimes;
  /** Inode number / MFT record number / first cluster: stable id within the volume. */
  readonly id: number;
  /** ext: the target of a symlink. */
  readonly target?: string;
  /** NTFS: the short (8.3) name when there is one. */
  readonly dosName?: string;
  /** POSIX mode bits where the file system has them (ext), FAT/NTFS attribute bits otherwise. */
  readonly mode?: number;
  readonly attributes?: number;
}

export interface StreamInfo {
  readonly name: string;
  readonly size: number;
}

export interface FileHandle {
  readonly size: number;
  read(offset: number, length: number): Promise<Buffer>;
}

export interface FileSystem {
  readonly type: 'ntfs' | 'ext2' | 'ext3' | 'ext4' | 'fat12' | 'fat16' | 'fat32';
  readonly label: string;
  /** Volume id/serial/UUID as the file system's own tools print it. */
  readonly uuid: string;
  readonly blockSize: number;
  readonly caseSensitive: boolean;
  stat(path: string): Promise<DirEntry>;
  list(path: string): Promise<DirEntry[]>;
  open(path: string, stream?: string): Promise<FileHandle>;
  streams(path: string): Promise<StreamInfo[]>;
}
