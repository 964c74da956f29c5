/**
 * CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320), table-driven, one byte at a time: GPT checksums its
 * header (92 bytes) and entries array (16 KiB typical), so speed does not matter. Node 20's zlib has no
 * `crc32` (it comes with Node 22); src/formats/crc32c.ts is the Castagnoli CRC, which GPT does not use.
 * Check value: crc32("123456789") = 0xCBF43926.
 */

const TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0xedb88320 : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC-32 of `buf`, counting the `zeroSize` bytes at `zeroAt` as zero (GPT's header CRC field). */
export function crc32(buf: Uint8Array, zeroAt = -1, zeroSize = 0): number {
  let c = 0xffffffff;
  for (let i = 0; i < buf.length; i++) {
    const b = i >= zeroAt && i < zeroAt + zeroSize ? 0 : buf[i]!;
    c = TABLE[(c ^ b) & 0xff]! ^ (c >>> 8);
  }
  return (c ^ 0xffffffff) >>> 0;
}
