//! The block hot path, free of Node-API: zero detection, BLAKE3 digests, zstd frames.
//!
//! Block encoding (stable: the store persists these flags):
//! - `FLAG_ZERO` (0): the block is all zero bytes. No payload, digest = `ZERO_DIGEST` (32 zero bytes, not
//!   the BLAKE3 of zeros: zero blocks are never hashed).
//! - `FLAG_RAW` (1): payload = the block's bytes (compression did not pay).
//! - `FLAG_ZSTD` (2): payload = one zstd frame (content size recorded, no checksum: BLAKE3 covers it).
//!
//! A frame is kept only when it saves at least 1/`MIN_SAVING_DIVISOR` of the block, else the block is RAW.
//!
//! Per thread: one zstd compression context, one decompression context, one frame buffer (zstd's output
//! for one block) and one scratch buffer (the call's payloads), reused across calls (`thread_local!`; each
//! piscina worker thread has its own). The payloads are copied out of the scratch buffer once, exactly sized.
use std::cell::RefCell;
use std::ptr::{self, NonNull};
use zstd::zstd_safe::zstd_sys;

pub const FLAG_ZERO: u8 = 0;
pub const FLAG_RAW: u8 = 1;
pub const FLAG_ZSTD: u8 = 2;
pub const DIGEST_LEN: usize = 32;
pub const ZERO_DIGEST: [u8; DIGEST_LEN] = [0; DIGEST_LEN];
/// A zstd frame must be at most `len - len / 32` bytes (save >= ~3%) to be kept.
pub const MIN_SAVING_DIVISOR: usize = 32;
/// Scratch buffers above this size are released after the call instead of kept for the thread.
const SCRATCH_KEEP_MAX: usize = 64 << 20;

/// A zstd error: the library's error name.
pub struct ZstdError(pub String);

fn zstd_error(code: usize) -> Option<ZstdError> {
    unsafe {
        if zstd_sys::ZSTD_isError(code) == 0 {
            return None;
        }
        let name = std::ffi::CStr::from_ptr(zstd_sys::ZSTD_getErrorName(code));
        Some(ZstdError(name.to_string_lossy().into_owned()))
    }
}

struct Cctx(NonNull<zstd_sys::ZSTD_CCtx>);
impl Drop for Cctx {
    fn drop(&mut self) {
        unsafe { zstd_sys::ZSTD_freeCCtx(self.0.as_ptr()) };
    }
}
struct Dctx(NonNull<zstd_sys::ZSTD_DCtx>);
impl Drop for Dctx {
    fn drop(&mut self) {
        unsafe { zstd_sys::ZSTD_freeDCtx(self.0.as_ptr()) };
    }
}

struct PackState {
    cctx: Cctx,
    /// Payloads of the current call, concatenated; `len()` = bytes written so far.
    scratch: Vec<u8>,
    /// Where zstd writes one block's frame (stays hot in L1/L2); capacity bound + 4 KiB, see `frame_dst`.
    frame: Vec<u8>,
}

thread_local! {
    static PACK: RefCell<Option<PackState>> = const { RefCell::new(None) };
    static DCTX: RefCell<Option<Dctx>> = const { RefCell::new(None) };
}

pub fn min_level() -> i32 {
    unsafe { zstd_sys::ZSTD_minCLevel() }
}
pub fn max_level() -> i32 {
    unsafe { zstd_sys::ZSTD_maxCLevel() }
}

/// Is every byte zero? Vectorised OR over 256-byte chunks with an early exit; AVX2 when the CPU has it.
pub fn is_zero(bytes: &[u8]) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") {
            return unsafe { is_zero_avx2(bytes) };
        }
    }
    is_zero_portable(bytes)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn is_zero_avx2(bytes: &[u8]) -> bool {
    is_zero_portable(bytes)
}

#[inline(always)]
fn is_zero_portable(bytes: &[u8]) -> bool {
    let mut chunks = bytes.chunks_exact(256);
    for chunk in &mut chunks {
        let mut acc = 0u64;
        for word in chunk.chunks_exact(8) {
            acc |= u64::from_ne_bytes(word.try_into().unwrap());
        }
        if acc != 0 {
            return false;
        }
    }
    chunks.remainder().iter().all(|&b| b == 0)
}

pub fn hash(bytes: &[u8]) -> [u8; DIGEST_LEN] {
    *blake3::hash(bytes).as_bytes()
}

/// Number of blocks of `block_size` in `len` bytes (the last may be short).
pub fn block_count(len: usize, block_size: usize) -> usize {
    len.div_ceil(block_size)
}

/// Where `pack` writes its per-block results: the caller owns the memory (a JavaScript ArrayBuffer).
pub struct PackOut<'a> {
    /// `count + 1` payload offsets; payload of block `i` is `offsets[i]..offsets[i + 1]`.
    pub offsets: &'a mut [u32],
    /// `count * 32` digest bytes.
    pub digests: &'a mut [u8],
    pub flags: &'a mut [u8],
}

/// Pack every block of `input`; fills `out` and hands the concatenated payloads to `emit` (which copies
/// them out before the thread's scratch buffer is reused). `input.len()` must fit in u32.
pub fn pack<R>(input: &[u8], block_size: usize, level: i32, out: PackOut<'_>, emit: impl FnOnce(&[u8]) -> R) -> Result<R, ZstdError> {
    PACK.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            let cctx = NonNull::new(unsafe { zstd_sys::ZSTD_createCCtx() })
                .ok_or_else(|| ZstdError("ZSTD_createCCtx returned null (out of memory)".into()))?;
            *slot = Some(PackState { cctx: Cctx(cctx), scratch: Vec::new(), frame: Vec::new() });
        }
        let state = slot.as_mut().unwrap();
        state.scratch.clear();
        let result = pack_into(state, input, block_size, level, out).map(|()| emit(&state.scratch));
        if state.scratch.capacity() > SCRATCH_KEEP_MAX {
            state.scratch = Vec::new();
        }
        if state.frame.capacity() > SCRATCH_KEEP_MAX {
            state.frame = Vec::new();
        }
        result
    })
}

/// Where in `frame` to let zstd write the frame of `block`: 2 KiB away from the block's address modulo 4 KiB.
///
/// Why: for incompressible data zstd copies the block into its frame a few header bytes further on. When the
/// destination sits just above the source modulo 4096 (which happens whenever both buffers are page-aligned
/// mmap allocations, as big Node and Rust buffers are), every load aliases a store in flight ("4K aliasing")
/// and zstd ran at ~2,100 instead of ~5,200 MB/s on 64 KiB random blocks in a standalone measurement.
fn frame_dst(frame: &mut Vec<u8>, block: &[u8], bound: usize) -> *mut u8 {
    if frame.capacity() < bound + 4096 {
        *frame = Vec::with_capacity(bound + 4096);
    }
    let base = frame.as_mut_ptr();
    let offset = (block.as_ptr() as usize).wrapping_add(2048).wrapping_sub(base as usize) & 4095;
    // SAFETY: offset < 4096 and the capacity is bound + 4096.
    unsafe { base.add(offset) }
}

fn pack_into(state: &mut PackState, input: &[u8], block_size: usize, level: i32, out: PackOut<'_>) -> Result<(), ZstdError> {
    let scratch = &mut state.scratch;
    out.offsets[0] = 0;
    for (i, block) in input.chunks(block_size).enumerate() {
        let digest = &mut out.digests[i * DIGEST_LEN..(i + 1) * DIGEST_LEN];
        if is_zero(block) {
            digest.copy_from_slice(&ZERO_DIGEST);
            out.flags[i] = FLAG_ZERO;
        } else {
            digest.copy_from_slice(blake3::hash(block).as_bytes());
            let bound = unsafe { zstd_sys::ZSTD_compressBound(block.len()) };
            let dst = frame_dst(&mut state.frame, block, bound);
            // SAFETY: `dst` has `bound` writable bytes (frame_dst); zstd writes at most `bound`.
            let written = unsafe { zstd_sys::ZSTD_compressCCtx(state.cctx.0.as_ptr(), dst.cast(), bound, block.as_ptr().cast(), block.len(), level) };
            if let Some(err) = zstd_error(written) {
                return Err(err);
            }
            let keep_frame = written <= block.len() - block.len() / MIN_SAVING_DIVISOR && written < block.len();
            let (flag, src, len) = if keep_frame { (FLAG_ZSTD, dst as *const u8, written) } else { (FLAG_RAW, block.as_ptr(), block.len()) };
            scratch.reserve(len);
            let pos = scratch.len();
            // SAFETY: `reserve` guarantees `len` writable bytes after `pos`; `src` is valid for `len` bytes.
            unsafe {
                ptr::copy_nonoverlapping(src, scratch.as_mut_ptr().add(pos), len);
                scratch.set_len(pos + len);
            }
            out.flags[i] = flag;
        }
        out.offsets[i + 1] = scratch.len() as u32;
    }
    Ok(())
}

/// Decompress one zstd frame into `dst` (exactly `dst.len()` bytes expected). Returns the decoded size.
pub fn decompress_into(payload: &[u8], dst: *mut u8, capacity: usize) -> Result<usize, ZstdError> {
    DCTX.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            let dctx = NonNull::new(unsafe { zstd_sys::ZSTD_createDCtx() })
                .ok_or_else(|| ZstdError("ZSTD_createDCtx returned null (out of memory)".into()))?;
            *slot = Some(Dctx(dctx));
        }
        let dctx = slot.as_ref().unwrap();
        let n = unsafe {
            zstd_sys::ZSTD_decompressDCtx(dctx.0.as_ptr(), dst.cast(), capacity, payload.as_ptr().cast(), payload.len())
        };
        match zstd_error(n) {
            Some(err) => Err(err),
            None => Ok(n),
        }
    })
}
