/**
 * Which format a disk image is: by its name first, then by its content; raw only when nothing says otherwise.
 *
 * 1. Name: `.vhd`/`.avhd` is a VHD and `.vhdx`/`.avhdx` a VHDX, whatever the content: such a file parses as
 *    that format or fails with that format's error (a damaged signature is never read as raw container bytes).
 * 2. Content (any other name, block devices too): "vhdxfile" at offset 0 → VHDX; "conectix" in the last 512
 *    bytes (the VHD footer), or at offset 0 (the footer copy of a dynamic VHD whose end footer is damaged) → VHD.
 * 3. Traces of a damaged known format refuse the file instead of falling back to raw:
 *    - VHDX: at least two of the four signatures behind the file identifier ("head" at 64 KiB and 128 KiB,
 *      "regi" at 192 KiB and 256 KiB) → SV_ERR_VHDX_SIGNATURE;
 *    - VHD: the last 512 bytes (or the first 512) hold a footer whose cookie is damaged but whose format
 *      version (1.0, offset 12) and disk type (2, 3 or 4, offset 60) are intact, or the dynamic disk header
 *      cookie "cxsparse" sits at offset 512 → SV_ERR_VHD_BAD_FOOTER.
 *    The messages say what was recognised and that `--format raw` reads the file as a raw disk anyway.
 * 4. Anything else is raw (an explicit format, e.g. --format raw, skips all of this).
 */
import { extname } from 'node:path';
import { SvError } from '../errors/index.js';
import type { ImageFile } from './file.js';
import type { DiskFormat } from './types.js';
import { DYN_COOKIE, FOOTER, FOOTER_COOKIE, FOOTER_SIZE, FORMAT_VERSION } from './vhd/structs.js';
import { shownSignature } from '../errors/bad-input.js';
import { HEADER_OFFSETS, REGION_TABLE_OFFSETS, SIG_FILE, SIG_HEADER, SIG_REGION } from './vhdx/layout.js';

const BY_NAME: Readonly<Record<string, DiskFormat>> = { '.vhd': 'vhd', '.avhd': 'vhd', '.vhdx': 'vhdx', '.avhdx': 'vhdx' };

/** The format a file's name commits it to (`.vhd`, `.avhd`, `.vhdx`, `.avhdx`, any case), if any. */
export function formatByName(path: string): DiskFormat | undefined {
  return BY_NAME[extname(path).toLowerCase()];
}

const RAW_HINT = 'if it really is a raw disk, open it with --format raw';

/** Which format a file holds, by its content (see the top of this file); throws on traces of a damaged one. */
export async function detectFormat(file: ImageFile): Promise<DiskFormat> {
  const head = file.size >= 8 ? (await file.readAt(0, 8, 'format magic')).toString('latin1') : '';
  if (head === SIG_FILE) return 'vhdx';
  if (file.size >= FOOTER_SIZE) {
    const tail = await file.readAt(file.size - FOOTER_SIZE, 8, 'VHD footer cookie');
    if (tail.toString('latin1') === FOOTER_COOKIE) return 'vhd';
  }
  // A footer copy at 0 (dynamic/differencing VHD) whose end footer is missing: a VHD, even when too short to
  // hold one (the VHD opener then says truncated), rather than a raw disk of a few bytes.
  if (head === FOOTER_COOKIE) return 'vhd';
  await refuseVhdxTraces(file, head);
  await refuseVhdTraces(file);
  return 'raw';
}

async function signatureAt(file: ImageFile, offset: number, length: number): Promise<string | undefined> {
  if (offset + length > file.size) return undefined;
  return (await file.readAt(offset, length, 'format trace')).toString('latin1');
}

async function refuseVhdxTraces(file: ImageFile, head: string): Promise<void> {
  const found: string[] = [];
  for (const [offsets, sig, what] of [[HEADER_OFFSETS, SIG_HEADER, 'header'], [REGION_TABLE_OFFSETS, SIG_REGION, 'region table']] as const) {
    for (const offset of offsets) if ((await signatureAt(file, offset, sig.length)) === sig) found.push(`${what} "${sig}" at ${offset / 1024} KiB`);
  }
  if (found.length < 2) return;
  throw new SvError('SV_ERR_VHDX_SIGNATURE',
    `${file.path}: a damaged VHDX (recognised ${found.join(', ')}), but the file identifier at offset 0 is ${shownSignature(head)}, expected "${SIG_FILE}"; refused rather than read as raw (${RAW_HINT})`,
    { path: file.path, structure: 'file identifier', offset: 0, expected: SIG_FILE, found: head, recognised: 'vhdx', traces: found });
}

async function refuseVhdTraces(file: ImageFile): Promise<void> {
  const found: string[] = [];
  const offsets = file.size >= FOOTER_SIZE ? [...new Set([file.size - FOOTER_SIZE, 0])] : [];
  for (const offset of offsets) {
    const f = FOOTER.decode(await file.readAt(offset, FOOTER_SIZE, 'VHD footer'));
    if (f.formatVersion === FORMAT_VERSION && f.diskType >= 2 && f.diskType <= 4) {
      found.push(`footer at offset ${offset} (format version 1.0, disk type ${f.diskType}) with cookie ${shownSignature(f.cookie)}`);
    }
  }
  if ((await signatureAt(file, FOOTER_SIZE, DYN_COOKIE.length)) === DYN_COOKIE) found.push(`dynamic disk header "${DYN_COOKIE}" at offset ${FOOTER_SIZE}`);
  if (!found.length) return;
  throw new SvError('SV_ERR_VHD_BAD_FOOTER',
    `${file.path}: a damaged VHD (recognised ${found.join(', ')}), but no footer with the cookie "${FOOTER_COOKIE}"; refused rather than read as raw (${RAW_HINT})`,
    { path: file.path, structure: 'VHD footer', offset: Math.max(0, file.size - FOOTER_SIZE), expected: FOOTER_COOKIE, recognised: 'vhd', traces: found });
}
