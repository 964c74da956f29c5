/**
 * The NTFS reader over an image made by mkntfs and written by the ntfs-3g driver and ntfscp (ntfs-images.ts):
 * the shared FileSystem contract suite over everything written (resident, non-resident, fragmented with an
 * attribute list, sparse, LZNT1-compressed, streams, hard links, DOS names, a 2,100-entry directory), then
 * ntfs-3g's own tools as the oracle for the label, the listings, sizes and times; and what a read costs.
 */
import t from 'tap';
import { hasCode } from '../../src/errors/index.js';
import { NtfsFileSystem } from '../../src/volumes/fs/ntfs/index.js';
import { openFileSystem } from '../../src/volumes/fs/probe.js';
import { requireTool, run, tempDir } from '../helpers/env.js';
import { checkFsContract } from './fs-contract.js';
import { BIG_DIR_ENTRIES, FRAGMENTED_BYTES, makeNtfs, ntfsinfoFile, ntfsinfoVolume, ntfslsNames } from './ntfs-images.js';
import { fileVolume } from './volume-readers.js';

const img = makeNtfs(tempDir(t, 'sv-ntfs-'));
const vol = fileVolume(t, img.path);
const fs = await NtfsFileSystem.open(vol, { name: img.path });

t.test('contract suite over the ntfs-3g image', async (t) => {
  await checkFsContract(t, { fs, tree: img.tree, extraName: (dir, e) => dir === '/' && e.name.startsWith('$') });
});

t.test('probe.ts picks the NTFS reader', async (t) => {
  const opened = await openFileSystem(vol, { name: img.path });
  t.equal(opened.type, 'ntfs');
  t.equal(opened.label, img.label);
  t.equal(opened.uuid, fs.uuid);
  t.match(fs.uuid, /^[0-9A-F]{16}$/u);
  t.equal(fs.blockSize, 4096);
  t.same(fs.warnings, [], 'the $UpCase table was read');
});

t.test('label and listings agree with ntfsinfo and ntfsls', async (t) => {
  t.equal(fs.label, ntfsinfoVolume(img.path).label, 'label');
  for (const dir of ['/', '/many', '/links', '/packed', '/many/sub']) {
    const ours = (await fs.list(dir)).map((e) => e.name).sort();
    t.same(ours, ntfslsNames(img.path, dir).sort(), `ntfsls -a -s ${dir}: same names`);
  }
  t.equal((await fs.list('/many')).length, BIG_DIR_ENTRIES + 1, `/many: ${BIG_DIR_ENTRIES} files and a directory`);
});

t.test('sizes and $STANDARD_INFORMATION times agree with ntfsinfo', async (t) => {
  const paths = ['/hello.txt', '/random-3MiB.bin', '/fragmented.bin', '/sparse.bin', '/packed/mixed.txt', '/packed/holed.txt',
    '/links/original.txt', '/many/sub/deep.txt', '/ads.txt', '/via-ntfscp.bin', '/A long file name with spaces.txt', '/many', '/$MFT'];
  for (const p of paths) {
    const ours = await fs.stat(p);
    const theirs = ntfsinfoFile(img.path, p);
    const seconds = Object.fromEntries(Object.entries(ours.times).map(([k, v]) => [k, Math.floor(v / 1000) * 1000]));
    const expected = Object.fromEntries(Object.entries(theirs.times).filter(([, v]) => v > 0));
    t.same(seconds, expected, `${p}: times (to the second, as ntfsinfo prints them)`);
    if (theirs.dataSize !== undefined) t.equal(ours.size, theirs.dataSize, `${p}: size ${ours.size}`);
  }
});

t.test('the image holds the structures the tests mean to exercise (ntfsinfo)', async (t) => {
  const info = (p: string, verbose = false) => run(requireTool('ntfsinfo'), [...(verbose ? ['-v'] : []), '-F', p, img.path]);
  t.match(info('/links/original.txt'), /\$ATTRIBUTE_LIST/u, 'the 41-name file has an attribute list');
  const frag = info('/fragmented.bin', true);
  t.match(frag, /\$ATTRIBUTE_LIST/u, 'the fragmented file has an attribute list');
  const runs = [...frag.matchAll(/Total runs: (\d+)/gu)].reduce((n, m) => n + Number(m[1]), 0);
  t.ok(runs > 100, `the fragmented file has ${runs} runs over several records`);
  t.match(info('/packed/mixed.txt'), /COMPRESSED/u, 'packed/mixed.txt is compressed');
  t.match(info('/many'), /\$INDEX_ALLOCATION/u, '/many has index blocks');
  t.match(info('/sparse.bin'), /SPARSE/u, 'sparse.bin is sparse');
  const mftRuns = Number(/Total runs: (\d+)/u.exec(run(requireTool('ntfsinfo'), ['-v', '-i', '0', img.path]))?.[1]);
  t.ok(mftRuns > 1, `the MFT itself is fragmented (${mftRuns} runs): records are found through record 0's runlist`);
});

t.test('lookup: case-insensitive through $UpCase, by DOS name, hard links share a record', async (t) => {
  const id = (await fs.stat('/Café Ünïcode ✓.txt')).id;
  t.equal((await fs.stat('/CAFÉ ÜNÏCODE ✓.TXT')).id, id, 'non-ASCII upper case resolves');
  t.equal((await fs.stat('/alongf~1.txt')).id, (await fs.stat('/A long file name with spaces.txt')).id, 'the 8.3 name resolves');
  t.equal((await fs.stat('/MANY/ENTRY-01234-' + ((1234 * 2654435761) >>> 0).toString(36).toUpperCase() + '.DAT')).name,
    `entry-01234-${((1234 * 2654435761) >>> 0).toString(36)}.dat`, 'a name deep in the B+ tree, any case; the stored name is returned');
  const links = (await fs.list('/links')).filter((e) => e.type === 'file');
  t.equal(new Set(links.map((e) => e.id)).size, 1, `${links.length} names, one record`);
  t.ok(hasCode(await fs.stat('/many/entry-99999.dat').catch((e: unknown) => e), 'SV_ERR_FS_NOT_FOUND'), 'a missing name in a big directory');
});

t.test('reads fetch only the clusters asked for', async (t) => {
  const h = await fs.open('/fragmented.bin');
  const before = { reads: vol.reads, bytes: vol.bytes };
  const got = await h.read(FRAGMENTED_BYTES - 5000, 100);
  t.equal(got.length, 100);
  t.ok(vol.bytes - before.bytes <= 8192, `100 bytes near the end of a fragmented file: ${vol.bytes - before.bytes} bytes read from the volume`);
  const sparse = await fs.open('/sparse.bin');
  const b2 = vol.bytes;
  t.ok((await sparse.read(0, 4 << 20)).equals(Buffer.alloc(4 << 20)), 'a hole reads as zeros');
  t.equal(vol.bytes - b2, 0, 'without reading the volume');
  const packed = await fs.open('/packed/mixed.txt');
  const b3 = vol.bytes;
  await packed.read(200_000, 10);
  t.ok(vol.bytes - b3 <= 64 << 10, `10 bytes of a compressed file: one compression unit at most (${vol.bytes - b3} bytes)`);
});
