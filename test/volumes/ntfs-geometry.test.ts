/**
 * The NTFS reader over other geometries made by mkntfs: clusters smaller than an MFT record and an index block
 * (512 B: records span clusters, index VCNs count clusters), clusters larger than an index block (64 KiB: index
 * VCNs count 512-byte units), 4 KiB sectors (4 KiB records, eight fixup strides). Each through the shared
 * contract suite, with the geometry checked against what mkntfs was asked for.
 */
import t from 'tap';
import { NtfsFileSystem } from '../../src/volumes/fs/ntfs/index.js';
import { tempDir } from '../helpers/env.js';
import { checkFsContract } from './fs-contract.js';
import { makeGeometryNtfs } from './ntfs-images.js';
import { fileVolume } from './volume-readers.js';

const CASES = [
  { args: ['-c', '512'], cluster: 512, record: 1024, sector: 512 },
  { args: ['-c', '65536'], cluster: 65536, record: 1024, sector: 512 },
  { args: ['-s', '4096', '-c', '4096'], cluster: 4096, record: 4096, sector: 4096 },
];

for (const c of CASES) {
  t.test(`mkntfs ${c.args.join(' ')}`, async (t) => {
    const img = makeGeometryNtfs(tempDir(t), c.args);
    const fs = await NtfsFileSystem.open(fileVolume(t, img.path), { name: img.path });
    t.match(fs.geometry, { clusterSize: c.cluster, recordSize: c.record, bytesPerSector: c.sector }, 'geometry');
    await checkFsContract(t, { fs, tree: img.tree, extraName: (dir, e) => dir === '/' && e.name.startsWith('$') });
  });
}
