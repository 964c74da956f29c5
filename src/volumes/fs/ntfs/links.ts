/**
 * Symbolic links on NTFS, in the two forms found on real volumes: Windows symbolic links and junctions (a
 * $REPARSE_POINT attribute, tags IO_REPARSE_TAG_SYMLINK / MOUNT_POINT; the print name is the target shown to
 * users), and Interix links as ntfs-3g writes them (a SYSTEM file whose data is "IntxLNK\1" + the UTF-16
 * target). Other reparse points (dedup, cloud files, WSL) are not links: their entry keeps its type.
 */
import type { NtfsFile } from './file.js';
import { attributeHandle } from './handles.js';
import type { Mft } from './mft.js';
import {
  AT, FILE_ATTR_REPARSE_POINT, FILE_ATTR_SYSTEM, INTERIX_SYMLINK_MAGIC, REPARSE_HEADER, REPARSE_LINK,
  REPARSE_TAG_MOUNT_POINT, REPARSE_TAG_SYMLINK,
} from './structs.js';

const MAX_LINK_BYTES = 16 << 10;
const FIRST_USER_RECORD = 16;

/** The target when `file` is a symbolic link or junction, else undefined. */
export async function linkTarget(mft: Mft, file: NtfsFile, attributes: number, isDir: boolean): Promise<string | undefined> {
  if (attributes & FILE_ATTR_REPARSE_POINT) return reparseTarget(mft, file);
  if (attributes & FILE_ATTR_SYSTEM && !isDir && file.record >= FIRST_USER_RECORD) return interixTarget(mft, file);
  return undefined;
}

async function reparseTarget(mft: Mft, file: NtfsFile): Promise<string | undefined> {
  const attr = file.attributes.find((a) => a.type === AT.REPARSE_POINT);
  if (!attr) return undefined;
  const v = await attributeHandle(mft, file, attr).read(0, MAX_LINK_BYTES);
  if (v.length < REPARSE_HEADER.size + REPARSE_LINK.size) return undefined;
  const { tag } = REPARSE_HEADER.decode(v);
  if (tag !== REPARSE_TAG_SYMLINK && tag !== REPARSE_TAG_MOUNT_POINT) return undefined;
  const names = REPARSE_LINK.decode(v, REPARSE_HEADER.size);
  const buffer = REPARSE_HEADER.size + REPARSE_LINK.size + (tag === REPARSE_TAG_SYMLINK ? 4 : 0);
  const [offset, length] = names.printLength > 0 ? [names.printOffset, names.printLength] : [names.substituteOffset, names.substituteLength];
  if (buffer + offset + length > v.length) return undefined;
  return v.toString('utf16le', buffer + offset, buffer + offset + length);
}

async function interixTarget(mft: Mft, file: NtfsFile): Promise<string | undefined> {
  const data = file.attributes.find((a) => a.type === AT.DATA && a.name === '');
  const size = data?.value?.length ?? data?.nonResident?.dataSize ?? 0;
  if (!data || size <= INTERIX_SYMLINK_MAGIC.length || size > MAX_LINK_BYTES) return undefined;
  const v = await attributeHandle(mft, file, data).read(0, size);
  if (v.toString('latin1', 0, INTERIX_SYMLINK_MAGIC.length) !== INTERIX_SYMLINK_MAGIC) return undefined;
  return v.toString('utf16le', INTERIX_SYMLINK_MAGIC.length);
}

