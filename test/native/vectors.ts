/**
 * BLAKE3 official test vectors (BLAKE3-team/BLAKE3, test_vectors/test_vectors.json): the input of length n
 * is bytes i % 251; `hash` is the first 32 bytes of the extended output, i.e. the default-length digest.
 */
export const BLAKE3_VECTORS: ReadonlyArray<{ readonly length: number; readonly hash: string }> = [
  { length: 0, hash: 'af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262' },
  { length: 1, hash: '2d3adedff11b61f14c886e35afa036736dcd87a74d27b5c1510225d0f592e213' },
  { length: 1023, hash: '10108970eeda3eb932baac1428c7a2163b0e924c9a9e25b35bba72b28f70bd11' },
  { length: 1024, hash: '42214739f095a406f3fc83deb889744ac00df831c10daa55189b5d121c855af7' },
  { length: 1025, hash: 'd00278ae47eb27b34faecf67b4fe263f82d5412916c1ffd97c8cb7fb814b8444' },
  { length: 2048, hash: 'e776b6028c7cd22a4d0ba182a8bf62205d2ef576467e838ed6f2529b85fba24a' },
  { length: 3072, hash: 'b98cb0ff3623be03326b373de6b9095218513e64f1ee2edd2525c7ad1e5cffd2' },
  { length: 4097, hash: '9b4052b38f1c5fc8b1f9ff7ac7b27cd242487b3d890d15c96a1c25b8aa0fb995' },
  { length: 8193, hash: 'bab6c09cb8ce8cf459261398d2e7aef35700bf488116ceb94a36d0f5f1b7bc3b' },
  { length: 16384, hash: 'f875d6646de28985646f34ee13be9a576fd515f76b5b0a26bb324735041ddde4' },
  { length: 31744, hash: '62b6960e1a44bcc1eb1a611a8d6235b6b4b78f32e7abc4fb4c6cdcce94895c47' },
  { length: 102400, hash: 'bc3e3d41a1146b069abffad3c0d44860cf664390afce4d9661f7902e7943e085' },
];

/** The vector input: bytes 0, 1, ..., 250, 0, 1, ... */
export function vectorInput(length: number): Buffer {
  const buf = Buffer.allocUnsafe(length);
  for (let i = 0; i < length; i++) buf[i] = i % 251;
  return buf;
}
