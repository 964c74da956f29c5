/**
 * Streamed image exports (src/sync/image-stream.ts + src/formats/{vhd,vhdx}/stream.ts): for a point with holes
 * and a size that is not a multiple of any block size, the streamed VHDX, VHD and raw are byte-identical to
 * what the writers produce through restore (given the writers' identity: GUIDs, unique id, time stamp); any
 * byte range of a stream is the same slice of the whole; a store block size larger than the VHD block size
 * still gives an image that reads back identically (then possibly with an extra all-zero block stored).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { openDisk } from '../../src/formats/open.js';
import { closePool } from '../../src/pool/index.js';
import { exportImage, type ImageExportOptions } from '../../src/sync/image-stream.js';
import { backup, openStore, restore, fileRefs } from '../../src/sync/index.js';
import { run, requireTool, tempDir } from '../helpers/env.js';

t.teardown(closePool);

const MiB = 1 << 20;
/** 70 MiB and 3 sectors: VHDX blocks (32 MiB) present, absent, present and short; VHD's last block short. */
const SIZE = 70 * MiB + 3 * 512;

function makeDisk(path: string): Buffer {
  const buf = Buffer.alloc(SIZE);
  const fill = (at: number, n: number, seed: number) => {
    const line = `image stream ${seed} `;
    buf.write(line.repeat(Math.ceil(n / line.length)).slice(0, n), at, 'latin1');
  };
  fill(0, 300_000, 1);
  fill(5 * MiB + 4096, 70_000, 2);
  fill(66 * MiB, 64 * 1024, 3);
  fill(SIZE - 1000, 1000, 4);
  writeFileSync(path, buf);
  return buf;
}

async function collect(opts: ImageExportOptions, range?: { start: number; end: number }): Promise<{ length: number; bytes: Buffer }> {
  const exp = await exportImage(opts);
  const parts: Buffer[] = [];
  for await (const c of exp.stream(range)) parts.push(c as Buffer);
  return { length: exp.length, bytes: Buffer.concat(parts) };
}

t.test('streamed vhdx, vhd and raw equal the writers\' output byte for byte', async (t) => {
  const qemuImg = requireTool('qemu-img');
  const dir = tempDir(t, 'sv-imgstream-');
  const diskPath = join(dir, 'disk.raw');
  const disk = makeDisk(diskPath);
  const storeDir = join(dir, 'store');
  await backup({ store: storeDir, source: 'vm', disks: fileRefs([diskPath]) });
  const store = await openStore(storeDir);
  const point = (await store.resolvePoint('vm', undefined)).id;
  const base = { store, source: 'vm', point, disk: 0 } as const;

  const written: Record<string, Buffer> = {};
  for (const format of ['vhdx', 'vhd', 'raw'] as const) {
    const out = join(dir, `restored.${format}`);
    await restore({ store: storeDir, source: 'vm', point, out, format });
    written[format] = readFileSync(out);
    const image = await openDisk(out);
    const info = image.info;
    await image.close();
    const identity = format === 'vhdx'
      ? { vhdxIdentity: { dataWriteGuid: info.id!, fileWriteGuid: String(info.extra.fileWriteGuid), page83: String(info.extra.page83Data) } }
      : format === 'vhd'
        ? { vhdIdentity: { uniqueId: Buffer.from(info.id!.replace(/-/g, ''), 'hex'), timeStamp: Number(info.extra.timeStampRaw) } }
        : {};
    const streamed = await collect({ ...base, format, ...identity });
    t.equal(streamed.length, written[format].length, `${format}: announced length`);
    t.ok(streamed.bytes.equals(written[format]), `${format}: byte-identical to the writer's image`);

    const own = await collect({ ...base, format });
    const file = join(dir, `streamed.${format}`);
    writeFileSync(file, own.bytes);
    if (format !== 'raw') run(qemuImg, ['compare', '-f', format === 'vhd' ? 'vpc' : 'vhdx', '-F', 'raw', file, diskPath]);
    const back = await openDisk(file);
    t.ok((await back.read(0, SIZE)).equals(disk), `${format} (point identity): reads back as the disk`);
    await back.close();

    // seeded ranges: each is the same slice of the whole stream
    let seed = 99;
    const rnd = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    for (let i = 0; i < 12; i++) {
      const start = i === 0 ? 0 : rnd(own.length);
      const end = Math.min(own.length - 1, start + rnd(3 * MiB));
      const part = await collect({ ...base, format }, { start, end });
      t.ok(part.bytes.equals(own.bytes.subarray(start, end + 1)), `${format}: range ${start}-${end}`);
    }
  }
});

t.test('a store block larger than the VHD block: the image still reads back identically', async (t) => {
  const dir = tempDir(t, 'sv-imgstream-big-');
  const diskPath = join(dir, 'disk.raw');
  const disk = makeDisk(diskPath);
  const storeDir = join(dir, 'store');
  await backup({ store: storeDir, source: 'vm', disks: fileRefs([diskPath]), blockSize: 4 * MiB });
  const store = await openStore(storeDir);
  const point = (await store.resolvePoint('vm', undefined)).id;
  const { bytes } = await collect({ store, source: 'vm', point, disk: 0, format: 'vhd' });
  const file = join(dir, 'big.vhd');
  writeFileSync(file, bytes);
  const back = await openDisk(file);
  t.ok((await back.read(0, SIZE)).equals(disk), 'reads back as the disk');
  await back.close();
});
