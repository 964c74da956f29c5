/**
 * The htree directory name hashes (dx_root hash_version): legacy, half-MD4 and TEA, each in a signed-char and
 * an unsigned-char variant (the superblock's s_flags say which one the volume was made with). Written from the
 * ext4 disk-layout description: the name is packed into 32-bit words with a length-derived pad, then mixed
 * into a 4-word state seeded by s_hash_seed (or the MD4 constants when the seed is all zero). The low bit of
 * the result is cleared: in dx entries it marks a hash collision that continues in the next block.
 */

export const DX_HASH = { LEGACY: 0, HALF_MD4: 1, TEA: 2, LEGACY_UNSIGNED: 3, HALF_MD4_UNSIGNED: 4, TEA_UNSIGNED: 5 } as const;

const u32 = (n: number) => n >>> 0;
const rol = (x: number, s: number) => u32((x << s) | (x >>> (32 - s)));

/** Pack name bytes into `num` words (4 bytes each, big-end first within a word), padded with a length pattern. */
function packWords(name: Uint8Array, from: number, len: number, num: number, signed: boolean): number[] {
  let pad = u32(len | (len << 8));
  pad = u32(pad | (pad << 16));
  let val = pad;
  const out: number[] = [];
  const n = Math.min(len, num * 4);
  for (let i = 0; i < n; i++) {
    const b = name[from + i]!;
    const c = signed && b > 127 ? b - 256 : b;
    val = u32(c + u32(val << 8));
    if (i % 4 === 3) {
      out.push(val);
      val = pad;
    }
  }
  if (out.length < num && n % 4 !== 0) out.push(val);
  while (out.length < num) out.push(pad);
  return out;
}

const K2 = 0o13240474631;
const K3 = 0o15666365641;

function halfMd4(buf: number[], w: number[]): void {
  let [a, b, c, d] = buf as [number, number, number, number];
  const F = (x: number, y: number, z: number) => z ^ (x & (y ^ z));
  const G = (x: number, y: number, z: number) => u32((x & y) + ((x ^ y) & z));
  const H = (x: number, y: number, z: number) => x ^ y ^ z;
  type Fn = (x: number, y: number, z: number) => number;
  const r = (f: Fn, p: number, x: number, y: number, z: number, k: number, s: number) => rol(u32(p + f(x, y, z) + k), s);
  // Round 1
  a = r(F, a, b, c, d, w[0]!, 3); d = r(F, d, a, b, c, w[1]!, 7); c = r(F, c, d, a, b, w[2]!, 11); b = r(F, b, c, d, a, w[3]!, 19);
  a = r(F, a, b, c, d, w[4]!, 3); d = r(F, d, a, b, c, w[5]!, 7); c = r(F, c, d, a, b, w[6]!, 11); b = r(F, b, c, d, a, w[7]!, 19);
  // Round 2
  a = r(G, a, b, c, d, u32(w[1]! + K2), 3); d = r(G, d, a, b, c, u32(w[3]! + K2), 5); c = r(G, c, d, a, b, u32(w[5]! + K2), 9); b = r(G, b, c, d, a, u32(w[7]! + K2), 13);
  a = r(G, a, b, c, d, u32(w[0]! + K2), 3); d = r(G, d, a, b, c, u32(w[2]! + K2), 5); c = r(G, c, d, a, b, u32(w[4]! + K2), 9); b = r(G, b, c, d, a, u32(w[6]! + K2), 13);
  // Round 3
  a = r(H, a, b, c, d, u32(w[3]! + K3), 3); d = r(H, d, a, b, c, u32(w[7]! + K3), 9); c = r(H, c, d, a, b, u32(w[2]! + K3), 11); b = r(H, b, c, d, a, u32(w[6]! + K3), 15);
  a = r(H, a, b, c, d, u32(w[1]! + K3), 3); d = r(H, d, a, b, c, u32(w[5]! + K3), 9); c = r(H, c, d, a, b, u32(w[0]! + K3), 11); b = r(H, b, c, d, a, u32(w[4]! + K3), 15);
  buf[0] = u32(buf[0]! + a); buf[1] = u32(buf[1]! + b); buf[2] = u32(buf[2]! + c); buf[3] = u32(buf[3]! + d);
}

function tea(buf: number[], w: number[]): void {
  let sum = 0;
  let b0 = buf[0]!;
  let b1 = buf[1]!;
  const [a, b, c, d] = w as [number, number, number, number];
  for (let n = 0; n < 16; n++) {
    sum = u32(sum + 0x9e3779b9);
    b0 = u32(b0 + (u32(u32(b1 << 4) + a) ^ u32(b1 + sum) ^ u32((b1 >>> 5) + b)));
    b1 = u32(b1 + (u32(u32(b0 << 4) + c) ^ u32(b0 + sum) ^ u32((b0 >>> 5) + d)));
  }
  buf[0] = u32(buf[0]! + b0);
  buf[1] = u32(buf[1]! + b1);
}

function legacy(name: Uint8Array, signed: boolean): number {
  let h0 = 0x12a3fe2d;
  let h1 = 0x37abe8f9;
  for (const byte of name) {
    const c = signed && byte > 127 ? byte - 256 : byte;
    let h = u32(h1 + u32(h0 ^ u32(Math.imul(c, 7152373))));
    if (h & 0x80000000) h = u32(h - 0x7fffffff);
    h1 = h0;
    h0 = h;
  }
  return u32(h0 << 1);
}

/** The major hash of `name`, or undefined for a hash version this reader does not know (lookups then scan). */
export function dxHash(name: Uint8Array, version: number, seed: readonly number[]): number | undefined {
  if (version > DX_HASH.TEA_UNSIGNED) return undefined;
  const signed = version <= DX_HASH.TEA;
  const base = version % 3;
  let hash: number;
  if (base === DX_HASH.LEGACY) {
    hash = legacy(name, signed);
  } else {
    const buf = seed.some((s) => s !== 0) ? [...seed] : [0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476];
    const words = base === DX_HASH.HALF_MD4 ? 8 : 4;
    for (let at = 0; at < name.length; at += words * 4) {
      const w = packWords(name, at, name.length - at, words, signed);
      if (base === DX_HASH.HALF_MD4) halfMd4(buf, w); else tea(buf, w);
    }
    hash = base === DX_HASH.HALF_MD4 ? buf[1]! : buf[0]!;
  }
  hash = u32(hash & ~1);
  if (hash === u32(0x7fffffff << 1)) hash = u32((0x7fffffff - 1) << 1);
  return hash;
}
