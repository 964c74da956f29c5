/**
 * The ext2/3/4 reader over images made by mke2fs -d (+ e2fsck -fyD for htree directories) in many flavours:
 * ext4 with 4 KiB blocks, 64bit + meta_bg with 1 KiB blocks, inline_data, block maps (ext4 without extents,
 * ext3, ext2 with triple-indirect blocks), and the three directory hashes (half-MD4, TEA, legacy). Each runs the shared contract suite (every
 * byte of every file compared with what was written, sparse ranges as zeros, symlinks, hard links), checks
 * metadata against `debugfs -R stat`, and counts the blocks an htree lookup reads. Then: an uninitialized
 * extent (debugfs fallocate) over non-zero blocks reads as zeros; unsupported INCOMPAT features are refused.
 */
import { openSync, closeSync, writeSync, readSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { hasCode } from '../../src/errors/index.js';
import { ExtFs, openExt } from '../../src/volumes/fs/ext/index.js';
import { INCOMPAT, INODE_FLAG, SUPERBLOCK, SUPERBLOCK_AT } from '../../src/volumes/fs/ext/structs.js';
import { openFileSystem } from '../../src/volumes/fs/probe.js';
import { requireTool, run, tempDir } from '../helpers/env.js';
import { checkFsContract } from './fs-contract.js';
import { BIG_DIR, bigDirName, debugfsStat, makeExtImage, SPARSE, writeSourceTree } from './ext-images.js';
import { fileVolume } from './volume-readers.js';

requireTool('debugfs');

/** `big`: the variant's tree has the 3000-entry directory (htree lookups checked); the others skip it to save time. */
const VARIANTS: Array<{ name: string; args: string[]; type: string; big?: boolean; hash?: string; sizeMiB?: number; check?: (fs: ExtFs) => string | undefined }> = [
  { name: 'ext4, 4 KiB blocks', args: ['-t', 'ext4', '-b', '4096'], type: 'ext4', big: true },
  {
    name: 'ext4, 64bit + meta_bg, 1 KiB blocks', args: ['-t', 'ext4', '-b', '1024', '-O', '64bit,meta_bg,^resize_inode'], type: 'ext4', sizeMiB: 320,
    check: (fs) => ((fs.geometry.incompat & (INCOMPAT.BIT64 | INCOMPAT.META_BG)) === (INCOMPAT.BIT64 | INCOMPAT.META_BG) && fs.geometry.descSize >= 64 && fs.geometry.groupCount > fs.geometry.blockSize / fs.geometry.descSize ? undefined : 'not a 64bit meta_bg volume with 2+ meta groups'),
  },
  { name: 'ext4, inline_data', args: ['-t', 'ext4', '-O', 'inline_data', '-I', '256'], type: 'ext4', check: (fs) => ((fs.geometry.incompat & INCOMPAT.INLINE_DATA) ? undefined : 'no inline_data') },
  { name: 'ext4 without extents (block maps), legacy directory hash', args: ['-t', 'ext4', '-O', '^extent,^64bit'], type: 'ext4', big: true, hash: 'legacy' },
  { name: 'ext3, 1 KiB blocks, TEA directory hash', args: ['-t', 'ext3', '-b', '1024'], type: 'ext3', big: true, hash: 'tea' },
  { name: 'ext2, 1 KiB blocks (triple indirect)', args: ['-t', 'ext2', '-b', '1024'], type: 'ext2' },
];

const dir = tempDir(t, 'sv-ext-');
const srcBig = join(dir, 'src-big');
const srcSmall = join(dir, 'src');
run('mkdir', [srcBig, srcSmall]);
const treeBig = writeSourceTree(srcBig, 7, true);
const treeSmall = writeSourceTree(srcSmall, 8, false);

for (const [i, v] of VARIANTS.entries()) {
  t.test(v.name, async (t) => {
    const image = join(dir, `v${i}.img`);
    const tree = v.big ? treeBig : treeSmall;
    makeExtImage(image, v.big ? srcBig : srcSmall, v.sizeMiB ?? 160, v.args, v.hash);
    const vol = fileVolume(t, image);
    const fs = await openFileSystem(vol, { name: image });
    t.ok(fs instanceof ExtFs, 'probed as ext');
    const ext = fs as ExtFs;
    t.equal(fs.type, v.type, `type ${v.type}`);
    t.equal(fs.label, 'sv-test', 'label from the superblock');
    t.match(run('dumpe2fs', ['-h', image]), new RegExp(`Filesystem UUID:\\s+${fs.uuid}`), 'UUID as dumpe2fs prints it');
    t.equal(v.check?.(ext), undefined, 'volume has the features under test');

    await checkFsContract(t, { fs, tree, extraName: (d, e) => d === '/' && e.name === 'lost+found' });

    // Metadata as debugfs reports it: inode number, size, links, exact times.
    for (const p of ['/tiny.txt', '/random-5m.bin', SPARSE.path, '/deep/er', '/slow-link', '/fast-link', ...(v.big ? [`${BIG_DIR}/${bigDirName(2999)}`] : [])]) {
      const want = debugfsStat(image, p);
      const got = await ext.inodeOf(p);
      const times = Object.fromEntries(Object.keys(want.times).map((k) => [k, got.exactTimes[k as 'atime']]));
      t.same({ inode: got.ino, size: got.size, links: got.linksCount, times }, want, `${p}: inode, size, links and times as debugfs`);
      const st = await fs.stat(p);
      t.equal(st.times.modified, want.times.mtime!.sec * 1000 + want.times.mtime!.nsec / 1e6, `${p}: stat mtime in ms`);
    }
    t.equal(Math.floor((await fs.stat('/tiny.txt')).times.modified! / 1000), 2_000_000_000, 'mtime copied from the source file');

    if (!v.big) return;
    // The big directory is an htree, and a lookup reads the index path and one leaf, not the directory.
    const big = await ext.inodeOf(BIG_DIR);
    t.ok(big.flags & INODE_FLAG.INDEX, `${BIG_DIR} is htree-indexed`);
    const dirBlocks = Math.ceil(big.size / fs.blockSize);
    await fs.stat(`${BIG_DIR}/${bigDirName(0)}`);
    const before = ext.cache.reads;
    const probes = [17, 555, 1234, 2001, 2999, 42, 2500, 999];
    for (const n of probes) t.equal((await fs.stat(`${BIG_DIR}/${bigDirName(n)}`)).name, bigDirName(n));
    const perLookup = (ext.cache.reads - before) / probes.length;
    t.ok(perLookup <= 4, `an htree lookup reads ${perLookup} blocks (the directory has ${dirBlocks})`);
    const miss = ext.cache.reads;
    t.ok(hasCode(await fs.stat(`${BIG_DIR}/not-there`).catch((e: unknown) => e), 'SV_ERR_FS_NOT_FOUND'), 'a missing name in an htree');
    t.ok(ext.cache.reads - miss <= 3, `a miss reads ${ext.cache.reads - miss} blocks, not the whole directory`);
  });
}

t.test('an uninitialized extent over non-zero blocks reads as zeros', async (t) => {
  const d = tempDir(t, 'sv-ext-uninit-');
  run('mkdir', [join(d, 'src')]);
  run('touch', [join(d, 'src', 'prealloc')]);
  const image = join(d, 'u.img');
  run('truncate', ['-s', '16M', image]);
  run('mke2fs', ['-q', '-F', '-t', 'ext4', '-b', '4096', '-d', join(d, 'src'), image]);
  run('debugfs', ['-w', '-R', 'fallocate /prealloc 0 9', image]);
  run('debugfs', ['-w', '-R', 'sif /prealloc size 40960', image]);
  const ex = run('debugfs', ['-R', 'ex /prealloc', image]);
  const m = /(\d+)\s*-\s*(\d+)\s+10\s+Uninit/u.exec(ex);
  t.ok(m, `debugfs shows an uninit extent: ${ex.trim().split('\n').at(-1)}`);
  const first = Number(m![1]);
  const fd = openSync(image, 'r+');
  writeSync(fd, Buffer.alloc(10 * 4096, 0xaa), 0, 10 * 4096, first * 4096);
  closeSync(fd);
  const fs = await openExt(fileVolume(t, image));
  const h = await fs.open('/prealloc');
  t.equal(h.size, 40960);
  t.ok((await h.read(0, 40960)).equals(Buffer.alloc(40960)), 'zeros, not the 0xAA bytes in its blocks');
});

t.test('unsupported INCOMPAT features are refused with a coded error naming them', async (t) => {
  const d = tempDir(t, 'sv-ext-feat-');
  const image = join(d, 'f.img');
  run('truncate', ['-s', '8M', image]);
  run('mke2fs', ['-q', '-F', '-t', 'ext4', image]);
  const fd = openSync(image, 'r+');
  const at = SUPERBLOCK_AT + SUPERBLOCK.fields.featureIncompat.offset;
  const b = Buffer.alloc(4);
  readSync(fd, b, 0, 4, at);
  const set = (bits: number) => { const v = Buffer.alloc(4); v.writeUInt32LE((b.readUInt32LE(0) | bits) >>> 0); writeSync(fd, v, 0, 4, at); };
  for (const [bits, name] of [[INCOMPAT.ENCRYPT, 'encrypt'], [INCOMPAT.COMPRESSION, 'compression'], [0x80000000, 'unknown feature 0x80000000']] as const) {
    set(bits);
    const err = await openExt(fileVolume(t, image)).catch((e: unknown) => e);
    t.ok(hasCode(err, 'SV_ERR_FS_EXT_UNSUPPORTED'), `${name}: SV_ERR_FS_EXT_UNSUPPORTED`);
    t.match((err as Error).message, name, `the message names ${name}`);
  }
  closeSync(fd);
});
