/**
 * NTFS volumes made by Windows 10 (the win10-* fixtures: VHD and VHDX, fixed and dynamic, each one MBR
 * partition formatted by Windows), opened the way item-level restore opens them: openDisk → readPartitions →
 * the partition as a VolumeReader → the NTFS reader. The oracle is ntfs-3g's tools run on the partition bytes
 * as qemu-img converts them: label, the listings of / and /$Extend (metafiles included), the root's times,
 * and the bytes of metafiles Windows wrote ($UpCase, $AttrDef, $Boot, $LogFile, $Secure:$SDS). Then a VHD and a
 * VHDX are backed up and browsed from the store as a user does (`files volumes`, `files ls`, `files get` in this process):
 * the same label, listing and bytes.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, openSync, readFileSync, readSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { openDisk } from '../../src/formats/open.js';
import { NtfsFileSystem } from '../../src/volumes/fs/ntfs/index.js';
import { readPartitions } from '../../src/volumes/partitions/index.js';
import { cliInProcess } from '../helpers/cli.js';
import { requireTool, run, tempDir } from '../helpers/env.js';
import { closePool } from '../../src/pool/index.js';
import { fileRefs } from '../../src/sources/file.js';
import { backup } from '../../src/sync/index.js';
import { fixture } from '../formats/vhd-fixture-helpers.js';
import { ntfsinfoFile, ntfsinfoVolume, ntfslsNames } from './ntfs-images.js';
import { diskVolume } from './volume-readers.js';

/** `browse`: also backed up and browsed from the store (one VHD and one VHDX: the test-time budget). */
const IMAGES = [
  { name: 'win10-fixed.vhd.gz', format: 'vpc', browse: false },
  { name: 'win10-dynamic.vhd.gz', format: 'vpc', browse: true },
  { name: 'win10-fixed.vhdx.gz', format: 'vhdx', browse: true },
  { name: 'win10-dynamic.vhdx.gz', format: 'vhdx', browse: false },
];
/**
 * Metafiles (and one named stream) whose bytes Windows wrote: path, stream. Not $MFT: ntfscat returns it with
 * each record's update-sequence fixups applied, this reader returns the bytes as stored.
 */
const METAFILES: Array<[string, string]> = [['/$UpCase', ''], ['/$AttrDef', ''], ['/$Boot', ''], ['/$LogFile', ''], ['/$Secure', '$SDS']];

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

t.teardown(() => closePool());

/** The partition's bytes as qemu-img reads the disk, in a file for ntfs-3g's tools. */
function partitionFile(dir: string, image: string, format: string, offset: number, size: number): string {
  const raw = join(dir, 'disk.raw');
  run(requireTool('qemu-img'), ['convert', '-f', format, '-O', 'raw', image, raw]);
  const buf = Buffer.alloc(size);
  const fd = openSync(raw, 'r');
  readSync(fd, buf, 0, size, offset);
  closeSync(fd);
  const out = join(dir, 'part.ntfs');
  writeFileSync(out, buf);
  return out;
}

for (const { name, format, browse } of IMAGES) {
  t.test(name, async (t) => {
    const dir = tempDir(t);
    const disk = await openDisk(fixture(dir, name));
    t.teardown(() => disk.close());
    const table = await readPartitions(disk);
    t.equal(table.volumes.length, 1, 'one partition');
    const v = table.volumes[0]!;
    t.equal(v.type, '0x07', 'an NTFS/exFAT partition type');
    const fs = await NtfsFileSystem.open(diskVolume(disk, v.offset, v.size), { name: `${name} volume ${v.index}` });
    const part = partitionFile(dir, join(dir, name.replace(/\.gz$/u, '')), format, v.offset, v.size);

    t.equal(fs.label, ntfsinfoVolume(part).label, `label "${fs.label}" as ntfsinfo reads it`);
    t.same(fs.warnings, [], 'Windows $UpCase read');
    for (const d of ['/', '/$Extend']) {
      t.same((await fs.list(d)).map((e) => e.name).sort(), ntfslsNames(part, d).sort(), `${d}: the names ntfsls -a -s lists`);
    }
    const root = await fs.stat('/');
    t.equal(root.type, 'directory');
    t.same(Object.fromEntries(Object.entries(root.times).map(([k, ms]) => [k, Math.floor(ms / 1000) * 1000])),
      Object.fromEntries(Object.entries(ntfsinfoFile(part, '/').times)), 'root times as ntfsinfo prints them');
    for (const [m, stream] of METAFILES) {
      const h = await fs.open(m, stream);
      const ours = await h.read(0, h.size);
      const theirs = execFileSync(requireTool('ntfscat'), [...(stream ? ['-a', '0x80', '-n', stream] : []), part, m], { maxBuffer: 1 << 28 });
      t.equal(sha(ours), sha(theirs), `${m}${stream ? `:${stream}` : ''}: ${ours.length} bytes as ntfscat reads them`);
    }
    const mft = await fs.open('/$MFT');
    t.equal((await mft.read(0, 4)).toString('latin1'), 'FILE', '$MFT starts with record 0');
    t.same((await fs.streams('/$Secure')).map((s) => s.name), ['$SDS'], '$Secure lists its named $DATA stream');

    // Backed up, then browsed from the store (issue 12: "each inside VHDX and VHD disks, backed up, then browsed").
    if (!browse) return;
    const store = join(dir, 'store');
    await backup({ store, source: 'win10', disks: fileRefs([join(dir, name.replace(/\.gz$/u, ''))]) });
    const vols = await cliInProcess(['files', 'volumes', 'win10', '--store', store, '--json']);
    t.equal(vols.code, 0, vols.stderr);
    t.match(JSON.parse(vols.stdout), { volumes: [{ index: v.index, offset: v.offset, size: v.size, fs: { type: 'ntfs', label: fs.label } }] }, 'files volumes: the NTFS volume and its label');
    const ls = await cliInProcess(['files', 'ls', 'win10', '/', '--store', store, '--json']);
    t.equal(ls.code, 0, ls.stderr);
    t.same((JSON.parse(ls.stdout) as { entries: Array<{ name: string }> }).entries.map((e) => e.name).sort(), ntfslsNames(part, '/').sort(), 'files ls /: the names ntfsls lists');
    const out = join(dir, 'got');
    const got = await cliInProcess(['files', 'get', 'win10', '/$UpCase', '/$AttrDef', '--out', out, '--store', store]);
    t.equal(got.code, 0, got.stderr);
    for (const m of ['$UpCase', '$AttrDef']) {
      t.equal(sha(readFileSync(join(out, m))), sha(execFileSync(requireTool('ntfscat'), [part, `/${m}`], { maxBuffer: 1 << 28 })), `files get /${m}: the bytes ntfscat reads`);
    }
  });
}
