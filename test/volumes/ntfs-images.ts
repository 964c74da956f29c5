/**
 * NTFS images made by ntfs-3g for the NTFS reader tests, with the tree written into them (the expected
 * contents): mkntfs on a plain file, then the ntfs-3g FUSE driver (root) writes small resident files, large
 * random files (one written into a fragmented free space: hundreds of runs), a directory of 2,100 entries (index allocation, a
 * multi-level $I30 tree), hard links (one file with 40 links: its names overflow into extension records, an
 * $ATTRIBUTE_LIST), alternate data streams (streams_interface=windows), a sparse file, an 8.3 DOS name
 * (system.ntfs_dos_name), and LZNT1-compressed files (a directory with the compressed attribute, mount option
 * `compression`); ntfscp then copies one more file in without mounting. Also: the ntfs-3g tools' own view of
 * the image (ntfsinfo, ntfsls) to compare with.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, linkSync, rmSync, symlinkSync, mkdirSync, openSync, truncateSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { requireTool, run } from '../helpers/env.js';
import { blank } from './partition-images.js';
import type { ExpectedNode } from './fs-contract.js';

export const NTFS_IMAGE_BYTES = 96 << 20;
export const BIG_DIR_ENTRIES = 2100;
export const FRAGMENTED_BYTES = 24 << 20;

export interface NtfsImage {
  readonly path: string;
  readonly label: string;
  /** Every path the test wrote, with what it holds (directories included, root excluded). */
  readonly tree: Record<string, ExpectedNode>;
}

/** Pseudo-random but compressible text (for LZNT1 units that really compress). */
function text(bytes: number, seed: number): Buffer {
  const words = ['alpha', 'bravo', 'charlie', 'delta', 'echo', 'foxtrot', 'golf', 'hotel', 'india', 'juliet'];
  let s = seed;
  const parts: string[] = [];
  let n = 0;
  while (n < bytes) {
    s = (s * 1103515245 + 12345) >>> 0;
    const w = `${words[s % words.length]}${s % 7 === 0 ? '\n' : ' '}`;
    parts.push(w);
    n += w.length;
  }
  return Buffer.from(parts.join('')).subarray(0, bytes);
}

/** Reparse data of a Windows symbolic link (MS-FSCC 2.1.2.4): header, name offsets, flags 0, both names. */
function windowsSymlink(substitute: string, print: string): Buffer {
  const sub = Buffer.from(substitute, 'utf16le');
  const pr = Buffer.from(print, 'utf16le');
  const body = Buffer.alloc(12 + sub.length + pr.length);
  body.writeUInt16LE(0, 0);
  body.writeUInt16LE(sub.length, 2);
  body.writeUInt16LE(sub.length, 4);
  body.writeUInt16LE(pr.length, 6);
  body.writeUInt32LE(0, 8);
  sub.copy(body, 12);
  pr.copy(body, 12 + sub.length);
  const head = Buffer.alloc(8);
  head.writeUInt32LE(0xa000000c, 0);
  head.writeUInt16LE(body.length, 4);
  return Buffer.concat([head, body]);
}

/** Node has no xattr calls: set one through python3's os.setxattr (ntfs-3g's system.ntfs_* attributes). */
function setxattr(file: string, name: string, value: Buffer): void {
  run(requireTool('python3'), ['-c', 'import os,sys; os.setxattr(sys.argv[1], sys.argv[2], bytes.fromhex(sys.argv[3]))', file, name, value.toString('hex')]);
}

function getxattr(file: string, name: string): Buffer {
  return Buffer.from(run(requireTool('python3'), ['-c', 'import os,sys; print(os.getxattr(sys.argv[1], sys.argv[2]).hex())', file, name]).trim(), 'hex');
}

/** Mount `image` on `dir` with ntfs-3g (root, /dev/fuse); returns the unmount. */
export function mount(image: string, dir: string, options: string): () => void {
  run(requireTool('ntfs-3g'), ['-o', options, image, dir]);
  return () => {
    const r = spawnSync('umount', [dir]);
    if (r.status !== 0) spawnSync(requireTool('fusermount'), ['-u', '-z', dir]);
  };
}

/** Build the image in `dir`. */
export function makeNtfs(dir: string): NtfsImage {
  const path = join(dir, 'ntfs.img');
  const label = 'SvTest Vol';
  blank(path, NTFS_IMAGE_BYTES);
  run(requireTool('mkntfs'), ['-F', '-Q', '-q', '-L', label, path]);
  const mnt = join(dir, 'mnt');
  mkdirSync(mnt);
  const tree: Record<string, ExpectedNode> = {};
  const file = (p: string, data: Buffer, extra: Partial<ExpectedNode> = {}) => {
    writeFileSync(join(mnt, p), data);
    tree[`/${p}`] = { type: 'file', data, ...extra };
  };
  const unmount = mount(path, mnt, 'streams_interface=windows,compression');
  try {
    file('hello.txt', Buffer.from('hello, resident world\n'));
    file('empty', Buffer.alloc(0));
    file('Café Ünïcode ✓.txt', Buffer.from('non-ASCII name\n'));
    file('random-3MiB.bin', randomBytes(3 << 20));
    file('A long file name with spaces.txt', Buffer.from('long name\n'));
    setxattr(join(mnt, 'A long file name with spaces.txt'), 'system.ntfs_dos_name', Buffer.from('ALONGF~1.TXT'));
    tree['/A long file name with spaces.txt'] = { ...tree['/A long file name with spaces.txt']!, dosName: 'ALONGF~1.TXT' };

    // Fragmentation: fill the volume with 64 KiB files, delete every other one, then write a 24 MiB file into
    // the holes: hundreds of runs, more than one MFT record holds, so its $DATA extents spread over extension
    // records through an $ATTRIBUTE_LIST. The fillers are removed afterwards.
    mkdirSync(join(mnt, 'fill'));
    const fillers: string[] = [];
    for (let i = 0; ; i++) {
      const f = join(mnt, 'fill', `f${i}`);
      try {
        writeFileSync(f, Buffer.alloc(64 << 10, 1));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOSPC') break;
        throw err;
      }
      fillers.push(f);
    }
    fillers.forEach((f, i) => { if (i % 2 === 0) rmSync(f); });
    file('fragmented.bin', randomBytes(FRAGMENTED_BYTES));
    rmSync(join(mnt, 'fill'), { recursive: true, force: true });

    // Alternate data streams, one resident and one non-resident.
    const adsMain = Buffer.from('main stream\n');
    const adsSmall = Buffer.from('zone identifier\n');
    const adsBig = randomBytes(100_000);
    writeFileSync(join(mnt, 'ads.txt'), adsMain);
    writeFileSync(join(mnt, 'ads.txt:Zone.Identifier'), adsSmall);
    writeFileSync(join(mnt, 'ads.txt:big'), adsBig);
    tree['/ads.txt'] = { type: 'file', data: adsMain, streams: { 'Zone.Identifier': adsSmall, big: adsBig } };

    // Sparse: 16 MiB with data only at 5 MiB and in the last bytes.
    const sparse = Buffer.alloc(16 << 20);
    const mark1 = randomBytes(10_000);
    const mark2 = Buffer.from('tail');
    mark1.copy(sparse, 5 << 20);
    mark2.copy(sparse, sparse.length - mark2.length);
    const sfd = openSync(join(mnt, 'sparse.bin'), 'w');
    truncateSync(join(mnt, 'sparse.bin'), sparse.length);
    writeSync(sfd, mark1, 0, mark1.length, 5 << 20);
    writeSync(sfd, mark2, 0, mark2.length, sparse.length - mark2.length);
    closeSync(sfd);
    tree['/sparse.bin'] = { type: 'file', data: sparse };

    // Hard links: one small file, 40 more names (its record overflows: $ATTRIBUTE_LIST).
    const linked = Buffer.from('one file, many names\n');
    file('links/original.txt', (mkdirSync(join(mnt, 'links')), linked));
    tree['/links'] = { type: 'directory' };
    for (let i = 0; i < 40; i++) {
      const name = `links/another-rather-long-link-name-${String(i).padStart(2, '0')}.txt`;
      linkSync(join(mnt, 'links/original.txt'), join(mnt, name));
      tree[`/${name}`] = { type: 'file', data: linked, sameAs: '/links/original.txt' };
    }

    // A directory large enough for a multi-level $I30 B+ tree.
    mkdirSync(join(mnt, 'many'));
    tree['/many'] = { type: 'directory' };
    for (let i = 0; i < BIG_DIR_ENTRIES; i++) {
      const name = `many/entry-${String(i).padStart(5, '0')}-${(i * 2654435761 >>> 0).toString(36)}.dat`;
      file(name, Buffer.from(`entry ${i}\n`));
    }
    mkdirSync(join(mnt, 'many/sub'));
    tree['/many/sub'] = { type: 'directory' };
    file('many/sub/deep.txt', Buffer.from('deep\n'));

    // LZNT1: files created inside a directory carrying the compressed attribute (0x800) are compressed.
    mkdirSync(join(mnt, 'packed'));
    const attr = getxattr(join(mnt, 'packed'), 'system.ntfs_attrib_be').readUInt32BE(0);
    const set = Buffer.alloc(4);
    set.writeUInt32BE(attr | 0x800);
    setxattr(join(mnt, 'packed'), 'system.ntfs_attrib_be', set);
    tree['/packed'] = { type: 'directory' };
    // Compressible text, then random (stored units), then text again: compressed, raw and partial units.
    file('packed/mixed.txt', Buffer.concat([text(300_000, 1), randomBytes(70_000), text(100_001, 2)]), { compressed: true });
    file('packed/small.txt', text(5_000, 3), { compressed: true });
    // A compressed file with a hole: units of zeros are not stored at all.
    const holed = Buffer.alloc(1 << 20);
    text(20_000, 4).copy(holed, 0);
    text(20_000, 5).copy(holed, 900_000);
    const hfd = openSync(join(mnt, 'packed/holed.txt'), 'w');
    writeSync(hfd, holed.subarray(0, 20_000), 0, 20_000, 0);
    writeSync(hfd, holed.subarray(900_000, 920_000), 0, 20_000, 900_000);
    truncateSync(join(mnt, 'packed/holed.txt'), holed.length);
    closeSync(hfd);
    tree['/packed/holed.txt'] = { type: 'file', data: holed, compressed: true };

    // Symbolic links: ntfs-3g's own (Interix: a SYSTEM file holding "IntxLNK\1" + the target), and a Windows
    // one (a $REPARSE_POINT with tag IO_REPARSE_TAG_SYMLINK, set through system.ntfs_reparse_data).
    symlinkSync('hello.txt', join(mnt, 'link-interix'));
    tree['/link-interix'] = { type: 'symlink', target: 'hello.txt' };
    writeFileSync(join(mnt, 'link-windows'), '');
    setxattr(join(mnt, 'link-windows'), 'system.ntfs_reparse_data', windowsSymlink('\\??\\C:\\Users\\target.txt', 'C:\\Users\\target.txt'));
    tree['/link-windows'] = { type: 'symlink', target: 'C:\\Users\\target.txt' };
  } finally {
    unmount();
  }
  // ntfscp writes without mounting.
  const viaNtfscp = randomBytes(200_000);
  const src = join(dir, 'ntfscp-src.bin');
  writeFileSync(src, viaNtfscp);
  run(requireTool('ntfscp'), ['-q', path, src, '/via-ntfscp.bin']);
  tree['/via-ntfscp.bin'] = { type: 'file', data: viaNtfscp };
  return { path, label, tree };
}

/** ntfs-3g's own view of one file: sizes and $STANDARD_INFORMATION times (seconds) from `ntfsinfo -F`. */
export function ntfsinfoFile(image: string, path: string): { dataSize?: number; times: Record<string, number> } {
  const out = run(requireTool('ntfsinfo'), ['-F', path, image]);
  const si = out.split(/Dumping attribute /u).find((s) => s.startsWith('$STANDARD_INFORMATION')) ?? '';
  const time = (label: string) => {
    const m = new RegExp(`${label}:\\s+(.+ UTC)`, 'u').exec(si);
    return m ? Date.parse(m[1]!.replace(/\s+/gu, ' ')) : Number.NaN;
  };
  const data = out.split(/Dumping attribute /u).find((s) => /^\$DATA \(0x80\)/u.test(s) && !/Attribute name/u.test(s));
  const size = data ? /(?:Data size|Attribute Data Size):\s+(\d+)/u.exec(data)?.[1] : undefined;
  return {
    ...(size !== undefined ? { dataSize: Number(size) } : {}),
    times: { created: time('File Creation Time'), modified: time('File Altered Time'), changed: time('MFT Changed Time'), accessed: time('Last Accessed Time') },
  };
}

/** `ntfsls -a` of a directory: every name (metafiles included), '.' and '..' left out. */
export function ntfslsNames(image: string, dir: string): string[] {
  return run(requireTool('ntfsls'), ['-a', '-s', '-p', dir, image]).split('\n').filter((n) => n !== '' && n !== '.' && n !== '..');
}

/** Volume label and serial as `ntfsinfo -m` prints them. */
export function ntfsinfoVolume(image: string): { label: string } {
  const out = run(requireTool('ntfsinfo'), ['-m', image]);
  return { label: /Volume Name:\s*(.*)/u.exec(out)?.[1]?.trim() ?? '' };
}

/**
 * A small image for the fuzz tests (16 MiB): a resident file, a non-resident one, a 300-entry directory (two
 * index levels), a file with 30 hard links (an $ATTRIBUTE_LIST), a sparse file, ADS, and an LZNT1-compressed
 * file. Returns the image path and the paths worth reading.
 */
export function makeSmallNtfs(dir: string): { path: string; files: string[]; dirs: string[] } {
  const path = join(dir, 'small.img');
  blank(path, 16 << 20);
  run(requireTool('mkntfs'), ['-F', '-Q', '-q', '-L', 'Fuzz', path]);
  const mnt = join(dir, 'mnt');
  mkdirSync(mnt);
  const unmount = mount(path, mnt, 'streams_interface=windows,compression');
  try {
    writeFileSync(join(mnt, 'small.txt'), 'small\n');
    writeFileSync(join(mnt, 'big.bin'), randomBytes(300_000));
    writeFileSync(join(mnt, 'big.bin:stream'), randomBytes(5_000));
    mkdirSync(join(mnt, 'dir'));
    for (let i = 0; i < 300; i++) writeFileSync(join(mnt, `dir/file-number-${String(i).padStart(4, '0')}.txt`), `${i}\n`);
    writeFileSync(join(mnt, 'linked.txt'), 'linked\n');
    for (let i = 0; i < 30; i++) linkSync(join(mnt, 'linked.txt'), join(mnt, `dir/a-long-hard-link-name-number-${i}.txt`));
    const fd = openSync(join(mnt, 'sparse.bin'), 'w');
    writeSync(fd, Buffer.from('x'), 0, 1, 3 << 20);
    closeSync(fd);
    mkdirSync(join(mnt, 'packed'));
    const attr = getxattr(join(mnt, 'packed'), 'system.ntfs_attrib_be').readUInt32BE(0);
    const set = Buffer.alloc(4);
    set.writeUInt32BE(attr | 0x800);
    setxattr(join(mnt, 'packed'), 'system.ntfs_attrib_be', set);
    writeFileSync(join(mnt, 'packed/text.txt'), Buffer.concat([text(150_000, 7), randomBytes(10_000)]));
  } finally {
    unmount();
  }
  return {
    path,
    files: ['/small.txt', '/big.bin', '/linked.txt', '/sparse.bin', '/packed/text.txt', '/dir/file-number-0150.txt'],
    dirs: ['/', '/dir', '/packed'],
  };
}

/** First cluster and cluster count of a file's first $DATA run, from `ntfsinfo -v` (to aim mutations at it). */
export function firstRun(image: string, path: string): { lcn: number; clusters: number } {
  const out = run(requireTool('ntfsinfo'), ['-v', '-F', path, image]);
  const m = /Runlist:\s+VCN\s+LCN\s+Length\s+0x0\s+(0x[0-9a-f]+)\s+(0x[0-9a-f]+)/iu.exec(out);
  if (!m) throw new Error(`no runlist for ${path} in ntfsinfo output`);
  return { lcn: Number(m[1]), clusters: Number(m[2]) };
}

/**
 * An image with other geometry (`mkntfs` options: `-c 512` clusters smaller than a record and an index block,
 * `-c 65536` clusters larger than an index block, `-s 4096` sectors, hence 4 KiB MFT records): a resident
 * file, a random non-resident file, a sparse file and a 300-entry directory, written by ntfs-3g.
 */
export function makeGeometryNtfs(dir: string, mkntfsArgs: string[]): { path: string; tree: Record<string, ExpectedNode> } {
  const path = join(dir, 'geometry.img');
  blank(path, 64 << 20);
  run(requireTool('mkntfs'), ['-F', '-Q', '-q', ...mkntfsArgs, path]);
  const mnt = join(dir, 'mnt');
  mkdirSync(mnt);
  const tree: Record<string, ExpectedNode> = {};
  const unmount = mount(path, mnt, 'streams_interface=windows');
  try {
    const file = (p: string, data: Buffer) => {
      writeFileSync(join(mnt, p), data);
      tree[`/${p}`] = { type: 'file', data };
    };
    file('resident.txt', Buffer.from('resident\n'));
    file('random.bin', randomBytes(1_000_003));
    const sparse = Buffer.alloc(3 << 20);
    sparse.write('end', sparse.length - 3);
    const fd = openSync(join(mnt, 'sparse.bin'), 'w');
    writeSync(fd, sparse, sparse.length - 3, 3, sparse.length - 3);
    closeSync(fd);
    tree['/sparse.bin'] = { type: 'file', data: sparse };
    mkdirSync(join(mnt, 'dir'));
    tree['/dir'] = { type: 'directory' };
    for (let i = 0; i < 300; i++) file(`dir/name-${i}-${'x'.repeat(i % 40)}.txt`, Buffer.from(`${i}\n`));
  } finally {
    unmount();
  }
  return { path, tree };
}
