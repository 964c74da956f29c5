/**
 * The shared FileSystem contract suite (src/volumes/fs/types.ts): every reader (NTFS, ext, FAT) runs it over
 * an image whose contents the test wrote with the file system's own tools. Given the expected tree it checks:
 * each directory lists exactly its children (each once; names the tree does not mention must be accepted by
 * `extraName`, e.g. NTFS metafiles), entry types and sizes, `stat` of every path, the bytes of every file and
 * stream (whole, in pieces, and reads clamped at the end), hard links sharing an id, case-(in)sensitive lookup
 * as the reader declares, and the coded errors for a missing path, listing a file, opening a directory, a
 * missing stream and a relative path.
 */
import { createHash } from 'node:crypto';
import type { Test } from 'tap';
import { hasCode } from '../../src/errors/index.js';
import type { DirEntry, FileSystem } from '../../src/volumes/fs/types.js';

export interface ExpectedNode {
  readonly type: 'file' | 'directory' | 'symlink';
  readonly data?: Buffer;
  /** Named streams (NTFS alternate data streams) and their contents. */
  readonly streams?: Readonly<Record<string, Buffer>>;
  readonly dosName?: string;
  /** A hard link: same `id` as this other path. */
  readonly sameAs?: string;
  readonly target?: string;
  /** Informational (the reader decompresses it); not checked by the suite. */
  readonly compressed?: boolean;
}

export interface ContractInput {
  readonly fs: FileSystem;
  /** Absolute paths → what they hold; the root '/' is implied. */
  readonly tree: Readonly<Record<string, ExpectedNode>>;
  /** Names listed that the tree does not mention but are fine (file-system metadata). Default: none. */
  readonly extraName?: (dir: string, entry: DirEntry) => boolean;
  /** Read every file in pieces of this many bytes as well as whole (default 1 MiB + 1 odd byte). */
  readonly pieceSize?: number;
}

const parentOf = (p: string): string => p.slice(0, p.lastIndexOf('/')) || '/';
const baseOf = (p: string): string => p.slice(p.lastIndexOf('/') + 1);
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

async function readAll(fs: FileSystem, path: string, stream: string | undefined, piece: number): Promise<Buffer> {
  const h = await fs.open(path, stream);
  const parts: Buffer[] = [];
  for (let at = 0; at < h.size; at += piece) parts.push(await h.read(at, piece));
  return Buffer.concat(parts);
}

async function codeOf(p: Promise<unknown>): Promise<unknown> {
  return p.then(() => undefined, (e: unknown) => e);
}

export async function checkFsContract(t: Test, input: ContractInput): Promise<void> {
  const { fs, tree } = input;
  const piece = input.pieceSize ?? (1 << 20) + 1;
  const extra = input.extraName ?? (() => false);
  const dirs = ['/', ...Object.keys(tree).filter((p) => tree[p]!.type === 'directory')];
  const ids = new Map<string, number>();

  for (const dir of dirs) {
    const listed = await fs.list(dir);
    const names = listed.map((e) => e.name);
    const expected = Object.keys(tree).filter((p) => parentOf(p) === dir).map(baseOf).sort();
    const unknown = listed.filter((e) => !expected.includes(e.name) && !extra(dir, e)).map((e) => e.name);
    const missing = expected.filter((n) => !names.includes(n));
    t.same({ unknown, missing, duplicates: names.length - new Set(names).size }, { unknown: [], missing: [], duplicates: 0 }, `list ${dir}: ${listed.length} entries`);
    let wrong = 0;
    for (const e of listed) {
      const path = dir === '/' ? `/${e.name}` : `${dir}/${e.name}`;
      const want = tree[path];
      if (!want) continue;
      ids.set(path, e.id);
      const sizeOk = want.type !== 'file' || e.size === (want.data?.length ?? e.size);
      const dosOk = want.dosName === undefined || e.dosName === want.dosName;
      if (e.type !== want.type || !sizeOk || !dosOk) {
        if (wrong++ < 5) t.fail(`list ${dir}: ${e.name}: ${JSON.stringify({ type: e.type, size: e.size, dosName: e.dosName })} vs ${JSON.stringify({ type: want.type, size: want.data?.length, dosName: want.dosName })}`);
      }
    }
    t.equal(wrong, 0, `list ${dir}: types, sizes and DOS names as written`);
  }

  let checked = 0;
  for (const [path, want] of Object.entries(tree)) {
    const st = await fs.stat(path);
    if (st.type !== want.type || st.name !== baseOf(path) || st.id !== ids.get(path)) {
      t.fail(`stat ${path}: ${JSON.stringify({ type: st.type, name: st.name, id: st.id })}, expected ${want.type} ${baseOf(path)} id ${ids.get(path)}`);
    }
    if (want.sameAs !== undefined) t.equal(st.id, ids.get(want.sameAs), `${path} is a hard link of ${want.sameAs}`);
    if (want.type === 'symlink' && want.target !== undefined) t.equal(st.target, want.target, `${path} → ${want.target}`);
    if (want.type !== 'file' || !want.data) continue;
    const data = await readAll(fs, path, undefined, piece);
    if (sha(data) !== sha(want.data)) t.fail(`${path}: ${data.length} bytes read differ from the ${want.data.length} written`);
    else checked++;
    const h = await fs.open(path);
    if (h.size !== want.data.length) t.fail(`${path}: handle size ${h.size}, written ${want.data.length}`);
    if (want.data.length > 10) {
      const mid = Math.floor(want.data.length / 3);
      const got = await h.read(mid, 7777);
      if (!got.equals(want.data.subarray(mid, mid + 7777))) t.fail(`${path}: read(${mid}, 7777) differs`);
      const tail = await h.read(want.data.length - 3, 100);
      if (!tail.equals(want.data.subarray(want.data.length - 3))) t.fail(`${path}: a read past the end returns ${tail.length} bytes, not the last 3`);
    }
    if ((await h.read(want.data.length, 10)).length !== 0) t.fail(`${path}: a read at the end returns bytes`);
    const streams = await fs.streams(path);
    const wantStreams = want.streams ?? {};
    t.same(streams.map((s) => [s.name, s.size]).sort(), Object.entries(wantStreams).map(([n, b]) => [n, b.length]).sort(), `${path}: streams listed`);
    for (const [name, bytes] of Object.entries(wantStreams)) {
      t.ok((await readAll(fs, path, name, piece)).equals(bytes), `${path}:${name}: stream bytes as written`);
    }
  }
  t.equal(checked, Object.values(tree).filter((n) => n.type === 'file' && n.data).length, `every file's bytes as written (${checked} files)`);

  const aFile = Object.keys(tree).find((p) => tree[p]!.type === 'file')!;
  const aDir = dirs.find((d) => d !== '/') ?? '/';
  t.ok(hasCode(await codeOf(fs.stat('/no such thing/anywhere')), 'SV_ERR_FS_NOT_FOUND'), 'a missing path is SV_ERR_FS_NOT_FOUND');
  t.ok(hasCode(await codeOf(fs.list(aFile)), 'SV_ERR_FS_NOT_A_DIRECTORY'), 'listing a file is SV_ERR_FS_NOT_A_DIRECTORY');
  t.ok(hasCode(await codeOf(fs.open(aDir)), 'SV_ERR_FS_IS_A_DIRECTORY'), 'opening a directory is SV_ERR_FS_IS_A_DIRECTORY');
  t.ok(hasCode(await codeOf(fs.open(aFile, 'no-such-stream')), 'SV_ERR_FS_NOT_FOUND'), 'a missing stream is SV_ERR_FS_NOT_FOUND');
  t.ok(hasCode(await codeOf(fs.stat('relative/path')), 'SV_ERR_FS_BAD_PATH'), 'a relative path is SV_ERR_FS_BAD_PATH');
  t.ok(hasCode(await codeOf(fs.stat(`${aDir}/..`)), 'SV_ERR_FS_BAD_PATH'), "'..' is SV_ERR_FS_BAD_PATH (a reader never walks up)");
  t.ok(hasCode(await codeOf(fs.stat(`${aFile}\0`)), 'SV_ERR_FS_BAD_PATH'), 'NUL in a path is SV_ERR_FS_BAD_PATH');
  t.equal((await fs.stat(`/.//${aFile.slice(1).split('/').join('/./')}`)).id, ids.get(aFile), "'.' and empty components are ignored (src/volumes/fs/path.ts)");
  const mixed = Object.keys(tree).find((p) => p.toUpperCase() !== p && !Object.keys(tree).includes(p.toUpperCase()));
  if (mixed) {
    const got = await fs.stat(mixed.toUpperCase()).then((e) => e.id, (e: unknown) => e);
    if (fs.caseSensitive) t.ok(hasCode(got, 'SV_ERR_FS_NOT_FOUND'), `case-sensitive: ${mixed.toUpperCase()} is not found`);
    else t.equal(got, ids.get(mixed), `case-insensitive: ${mixed.toUpperCase()} is ${mixed}`);
  }
}
