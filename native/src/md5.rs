//! MD5 (RFC 1321) of several equal-sized parts at once, one part per SIMD lane: the Content-MD5 of every part of
//! an S3 multipart upload (storage/backend/s3-upload.ts). MD5 is one long dependency chain per message, so one
//! message cannot go faster than ~5 cycles a byte; eight messages side by side share each instruction (AVX2 or
//! AVX-512VL vectors of eight u32 lanes: the compiler vectorises the lane loops below).
//!
//! `md5_parts(data, part)` cuts `data` into parts of `part` bytes (the last may be shorter; an empty input is one
//! empty part), runs the 64-byte blocks that up to LANES parts have in common through the lanes together, then
//! finishes each part (its remaining bytes and the padding) on its own. Checked against OpenSSL's MD5 by
//! test/native/md5.test.ts over many lengths and part sizes.

const LANES: usize = 8;

const K: [u32; 64] = [
    0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a, 0xa8304613, 0xfd469501, 0x698098d8,
    0x8b44f7af, 0xffff5bb1, 0x895cd7be, 0x6b901122, 0xfd987193, 0xa679438e, 0x49b40821, 0xf61e2562, 0xc040b340,
    0x265e5a51, 0xe9b6c7aa, 0xd62f105d, 0x02441453, 0xd8a1e681, 0xe7d3fbc8, 0x21e1cde6, 0xc33707d6, 0xf4d50d87,
    0x455a14ed, 0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a, 0xfffa3942, 0x8771f681, 0x6d9d6122, 0xfde5380c,
    0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70, 0x289b7ec6, 0xeaa127fa, 0xd4ef3085, 0x04881d05, 0xd9d4d039,
    0xe6db99e5, 0x1fa27cf8, 0xc4ac5665, 0xf4292244, 0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92,
    0xffeff47d, 0x85845dd1, 0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1, 0xf7537e82, 0xbd3af235, 0x2ad7d2bb,
    0xeb86d391,
];
const S: [[u32; 4]; 4] = [[7, 12, 17, 22], [5, 9, 14, 20], [4, 11, 16, 23], [6, 10, 15, 21]];
const INIT: [u32; 4] = [0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476];

/// The message word step `i` (0..64) adds.
const fn word(i: usize) -> usize {
    match i / 16 {
        0 => i,
        1 => (5 * i + 1) % 16,
        2 => (3 * i + 5) % 16,
        _ => (7 * i) % 16,
    }
}

type V = [u32; LANES];

/// One MD5 block for every lane: `m[w][l]` is word `w` of lane `l`'s block. The same step sequence as the scalar
/// `compress` below, lane by lane (macro-unrolled, so shifts and word indices are constants).
#[inline(always)]
fn compress_lanes(state: &mut [V; 4], m: &[V; 16]) {
    let [mut a, mut b, mut c, mut d] = *state;
    macro_rules! step {
        ($i:expr, $f:expr) => {{
            const I: usize = $i;
            const W: usize = word(I);
            const R: u32 = S[I / 16][I % 4];
            let mut nb = [0u32; LANES];
            for l in 0..LANES {
                let f: u32 = $f(b[l], c[l], d[l]);
                let t = f.wrapping_add(a[l]).wrapping_add(K[I]).wrapping_add(m[W][l]);
                nb[l] = b[l].wrapping_add(t.rotate_left(R));
            }
            a = d;
            d = c;
            c = b;
            b = nb;
        }};
    }
    macro_rules! steps {
        ($f:expr; $($i:expr),*) => { $( step!($i, $f); )* };
    }
    let ff = |b: u32, c: u32, d: u32| (b & c) | (!b & d);
    let gg = |b: u32, c: u32, d: u32| (b & d) | (c & !d);
    let hh = |b: u32, c: u32, d: u32| b ^ c ^ d;
    let ii = |b: u32, c: u32, d: u32| c ^ (b | !d);
    steps!(ff; 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    steps!(gg; 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31);
    steps!(hh; 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47);
    steps!(ii; 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63);
    for l in 0..LANES {
        state[0][l] = state[0][l].wrapping_add(a[l]);
        state[1][l] = state[1][l].wrapping_add(b[l]);
        state[2][l] = state[2][l].wrapping_add(c[l]);
        state[3][l] = state[3][l].wrapping_add(d[l]);
    }
}

/// `blocks` 64-byte blocks of each lane's slice (each at least blocks * 64 bytes long) into `state`.
#[inline(always)]
fn run_lanes(state: &mut [V; 4], lanes: &[&[u8]; LANES], blocks: usize) {
    let mut m = [[0u32; LANES]; 16];
    for blk in 0..blocks {
        for (l, lane) in lanes.iter().enumerate() {
            let bytes = &lane[blk * 64..blk * 64 + 64];
            for (w, row) in m.iter_mut().enumerate() {
                row[l] = u32::from_le_bytes([bytes[4 * w], bytes[4 * w + 1], bytes[4 * w + 2], bytes[4 * w + 3]]);
            }
        }
        compress_lanes(state, &m);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl")]
unsafe fn run_lanes_avx512(state: &mut [V; 4], lanes: &[&[u8]; LANES], blocks: usize) {
    run_lanes(state, lanes, blocks)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn run_lanes_avx2(state: &mut [V; 4], lanes: &[&[u8]; LANES], blocks: usize) {
    run_lanes(state, lanes, blocks)
}

fn run_lanes_best(state: &mut [V; 4], lanes: &[&[u8]; LANES], blocks: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("avx512vl") {
            // SAFETY: the CPU has the features the function is compiled for.
            return unsafe { run_lanes_avx512(state, lanes, blocks) };
        }
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: as above.
            return unsafe { run_lanes_avx2(state, lanes, blocks) };
        }
    }
    run_lanes(state, lanes, blocks)
}

/// One scalar MD5 block.
fn compress(state: &mut [u32; 4], block: &[u8]) {
    let mut s: [V; 4] = [[0; LANES]; 4];
    let mut m = [[0u32; LANES]; 16];
    for i in 0..4 {
        s[i][0] = state[i];
    }
    for (w, row) in m.iter_mut().enumerate() {
        row[0] = u32::from_le_bytes([block[4 * w], block[4 * w + 1], block[4 * w + 2], block[4 * w + 3]]);
    }
    compress_lanes(&mut s, &m);
    for i in 0..4 {
        state[i] = s[i][0];
    }
}

/// Finish a message whose first `done` bytes (a multiple of 64) are in `state`: its other blocks, the padding
/// and the length; the 16-byte digest.
fn finish(mut state: [u32; 4], msg: &[u8], done: usize) -> [u8; 16] {
    let mut at = done;
    while msg.len() - at >= 64 {
        compress(&mut state, &msg[at..at + 64]);
        at += 64;
    }
    let rest = &msg[at..];
    let mut tail = [0u8; 128];
    tail[..rest.len()].copy_from_slice(rest);
    tail[rest.len()] = 0x80;
    let len = if rest.len() < 56 { 64 } else { 128 };
    tail[len - 8..len].copy_from_slice(&((msg.len() as u64).wrapping_mul(8)).to_le_bytes());
    compress(&mut state, &tail[..64]);
    if len == 128 {
        compress(&mut state, &tail[64..]);
    }
    let mut out = [0u8; 16];
    for i in 0..4 {
        out[4 * i..4 * i + 4].copy_from_slice(&state[i].to_le_bytes());
    }
    out
}

/// The MD5 of every `part`-byte part of `data` (the last may be shorter; empty data: one empty part), in order,
/// 16 bytes each, into `out` (16 * part count bytes). Rounds of up to LANES parts that still have whole blocks
/// go through the lanes together for the blocks they all have; then each part is finished on its own.
pub fn md5_parts(data: &[u8], part: usize, out: &mut [u8]) {
    let parts: Vec<&[u8]> = if data.is_empty() { vec![data] } else { data.chunks(part).collect() };
    debug_assert_eq!(out.len(), 16 * parts.len());
    let mut states: Vec<[u32; 4]> = vec![INIT; parts.len()];
    let mut done: Vec<usize> = vec![0; parts.len()]; // bytes of each part in its state (a multiple of 64)
    loop {
        let active: Vec<usize> = (0..parts.len()).filter(|&i| parts[i].len() - done[i] >= 64).take(LANES).collect();
        if active.is_empty() {
            break;
        }
        let common = active.iter().map(|&i| (parts[i].len() - done[i]) / 64).min().unwrap_or(0);
        // Lanes without a part of their own repeat the first active part (their result is not used).
        let lane_part = |l: usize| active.get(l).copied().unwrap_or(active[0]);
        let lanes: [&[u8]; LANES] = std::array::from_fn(|l| &parts[lane_part(l)][done[lane_part(l)]..]);
        let mut state: [V; 4] = std::array::from_fn(|w| std::array::from_fn(|l| states[lane_part(l)][w]));
        run_lanes_best(&mut state, &lanes, common);
        for (l, &i) in active.iter().enumerate() {
            states[i] = [state[0][l], state[1][l], state[2][l], state[3][l]];
            done[i] += common * 64;
        }
    }
    for (i, p) in parts.iter().enumerate() {
        out[16 * i..16 * i + 16].copy_from_slice(&finish(states[i], p, done[i]));
    }
}

/// How many parts md5_parts cuts `len` bytes into.
pub fn part_count(len: usize, part: usize) -> usize {
    if len == 0 { 1 } else { len.div_ceil(part) }
}
