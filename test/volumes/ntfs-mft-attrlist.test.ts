/**
 * An MFT so fragmented that record 0 needs an $ATTRIBUTE_LIST (its $DATA split over records 0 and 15), made
 * by ntfs-3g the way it happens on real volumes: a 16 MiB volume is filled with 4 KiB files to ENOSPC, every
 * other one is deleted (one-cluster holes), then empty files are created until the volume is full again; the
 * MFT grows one cluster at a time into the holes. ntfsinfo confirms the attribute list; our reader (through
 * record 0's first extent, then the list) must list every file created, including the ones whose records lie
 * in the MFT's later extents, and read the surviving 4 KiB files byte for byte.
 */
import { randomFillSync } from 'node:crypto';
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { NtfsFileSystem } from '../../src/volumes/fs/ntfs/index.js';
import { requireTool, run, tempDir } from '../helpers/env.js';
import { mount } from './ntfs-images.js';
import { fileVolume } from './volume-readers.js';

t.test('$MFT with an $ATTRIBUTE_LIST in record 0 (ntfs-3g, fragmented MFT)', async (t) => {
  const dir = tempDir(t, 'sv-ntfs-mftlist-');
  const image = join(dir, 'v.img');
  const mnt = join(dir, 'mnt');
  writeFileSync(image, Buffer.alloc(0));
  run(requireTool('truncate'), ['-s', '16M', image]);
  run(requireTool('mkntfs'), ['-Q', '-F', '-q', image]);
  mkdirSync(mnt);
  const umount = mount(image, mnt, 'rw');
  const kept = new Map<string, Buffer>();
  const empty: string[] = [];
  let fillNames: string[] = [];
  try {
    mkdirSync(join(mnt, 'fill'));
    const written: Array<[string, Buffer]> = [];
    for (let n = 0; ; n++) {
      const data = randomFillSync(Buffer.alloc(4096));
      try {
        writeFileSync(join(mnt, 'fill', String(n)), data);
      } catch {
        break; // ENOSPC: the volume is full
      }
      written.push([String(n), data]);
    }
    for (const [i, [name, data]] of written.entries()) {
      if (i % 2 === 0) rmSync(join(mnt, 'fill', name));
      else kept.set(name, data);
    }
    for (let i = 0; i < 8000; i++) {
      try {
        writeFileSync(join(mnt, `e${i}`), '');
      } catch {
        break;
      }
      empty.push(`e${i}`);
    }
    // A file whose write failed on ENOSPC may still exist (empty): the expected names are what the driver lists.
    fillNames = readdirSync(join(mnt, 'fill'));
  } finally {
    umount();
  }
  const info = run(requireTool('ntfsinfo'), ['-v', '-i', '0', image]);
  t.match(info, /\$ATTRIBUTE_LIST/, 'ntfsinfo: record 0 has an $ATTRIBUTE_LIST (the precondition of this test)');
  // Records past the end of the $DATA extent held in record 0 are found only through the attribute list.
  const firstExtent = /\$DATA \(0x80\) from mft record 0 [\s\S]*?Highest VCN:\s+(\d+)/.exec(info);
  t.ok(firstExtent, 'ntfsinfo shows the $DATA extent of record 0');
  const firstRecords = ((Number(firstExtent?.[1]) + 1) * 4096) / 1024;

  const fs = await NtfsFileSystem.open(fileVolume(t, image), { name: image });
  const root = await fs.list('/');
  const names = new Set(root.map((e) => e.name));
  const missing = empty.filter((n) => !names.has(n));
  t.same(missing.slice(0, 5), [], `every one of the ${empty.length} empty files is listed`);
  const ids = root.filter((e) => e.name.startsWith('e')).map((e) => e.id);
  const beyond = ids.filter((id) => id >= firstRecords).length;
  t.ok(beyond > 100, `${beyond} listed files have records beyond record 0's extent (records 0..${firstRecords - 1})`);
  const fill = await fs.list('/fill');
  t.same(fill.map((e) => e.name).sort(), [...fillNames].sort(), 'the fill folder lists what ntfs-3g lists');
  let same = 0;
  for (const [name, data] of kept) {
    const h = await fs.open(`/fill/${name}`);
    if ((await h.read(0, h.size)).equals(data)) same++;
  }
  t.equal(same, kept.size, `each of the ${kept.size} surviving 4 KiB files reads back byte for byte`);
});
