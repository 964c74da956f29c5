//! shadowvault's native hot path, loaded by src/native/index.ts.
//!
//! Exports (all synchronous; the worker pool gives concurrency):
//! - `packBlocks(buffer, blockSize, level)` → `{ count, offsets: Uint32Array(count+1), digests:
//!   Uint8Array(count*32), flags: Uint8Array(count), payload: Buffer }`. `offsets`, `digests` and `flags`
//!   are views over ONE ArrayBuffer (layout: offsets | digests | flags); `payload` is its own Buffer. Two
//!   allocations per call whatever the block count; both ArrayBuffers are transferable.
//! - `unpackBlock(payload, flag, expectedDigest, size)` → Buffer of `size` bytes, digest checked. For a RAW
//!   block the result IS `payload` (no copy).
//! - `unpackBlockInto(payload, flag, expectedDigest, target, offset, size)` → `size`: decodes the block
//!   straight into `target[offset, offset+size)` (no intermediate buffer), digest checked. On an error the
//!   bytes of that range are unspecified. `payload` and that range must not overlap.
//! - `hash(buffer)` → Buffer(32), BLAKE3-256. `isZero(buffer)` → boolean.
//! - `md5Parts(buffer, partSize)` → Buffer of 16 bytes per `partSize`-byte part of `buffer` (the last may be
//!   shorter; an empty buffer is one empty part): each part's MD5, several parts per SIMD pass (md5.rs).
//! - `alignmentGap(view, align)` → bytes from the view's start to its first `align`-aligned address (to carve
//!   page-aligned buffers for O_DIRECT writes out of ordinary Node buffers).
//! - `constants` → `{ FLAG_ZERO, FLAG_RAW, FLAG_ZSTD, DIGEST_LENGTH, MIN_LEVEL, MAX_LEVEL, MIN_SAVING_DIVISOR }`.
//!
//! Errors are thrown as `Error` with `code` = `SV_ERR_NATIVE_*` (see js.rs).
mod block;
mod js;
mod md5;
mod napi_sys;

use block::{DIGEST_LEN, FLAG_RAW, FLAG_ZERO, FLAG_ZSTD, ZERO_DIGEST};
use js::{callback, Env, Failure, JsResult, BAD_ARGUMENT, CORRUPT_PAYLOAD, DIGEST_MISMATCH, INTERNAL};
use napi_sys::*;
use std::ffi::CStr;

/// Largest block size accepted (the payload of one block must fit the u32 offsets easily).
const MAX_BLOCK_SIZE: i64 = 1 << 30;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn pack_blocks(env: &Env, [buffer, block_size, level]: [napi_value; 3]) -> JsResult<napi_value> {
    let input = env.bytes(buffer, "packBlocks: buffer")?;
    let block_size = env.integer(block_size, "packBlocks: blockSize", 1, MAX_BLOCK_SIZE)? as usize;
    let level = env.integer(level, "packBlocks: level", block::min_level() as i64, block::max_level() as i64)? as i32;
    if input.len() > u32::MAX as usize {
        return Err(Failure::new(BAD_ARGUMENT, format!("packBlocks: buffer of {} bytes exceeds 4 GiB - 1", input.len())));
    }
    let count = block::block_count(input.len(), block_size);
    let offsets_len = 4 * (count + 1);
    let (meta, meta_ptr) = env.new_arraybuffer(offsets_len + count * DIGEST_LEN + count)?;
    // SAFETY: the ArrayBuffer holds exactly these three regions; offsets start at 0 (aligned for u32:
    // ArrayBuffer memory is allocated with at least 8-byte alignment).
    let out = unsafe {
        block::PackOut {
            offsets: std::slice::from_raw_parts_mut(meta_ptr.cast::<u32>(), count + 1),
            digests: std::slice::from_raw_parts_mut(meta_ptr.add(offsets_len), count * DIGEST_LEN),
            flags: std::slice::from_raw_parts_mut(meta_ptr.add(offsets_len + count * DIGEST_LEN), count),
        }
    };
    let payload = block::pack(input, block_size, level, out, |bytes| -> JsResult<napi_value> {
        let (value, ptr) = env.new_buffer(bytes.len())?;
        if !bytes.is_empty() {
            unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), ptr, bytes.len()) };
        }
        Ok(value)
    })
    .map_err(|e| Failure::new(INTERNAL, format!("packBlocks: zstd compression failed: {}", e.0)))??;

    let result = env.object()?;
    env.set(result, c"count", env.uint32(count as u32)?)?;
    env.set(result, c"offsets", env.typed_array(NAPI_UINT32_ARRAY, meta, 0, count + 1)?)?;
    env.set(result, c"digests", env.typed_array(NAPI_UINT8_ARRAY, meta, offsets_len, count * DIGEST_LEN)?)?;
    env.set(result, c"flags", env.typed_array(NAPI_UINT8_ARRAY, meta, offsets_len + count * DIGEST_LEN, count)?)?;
    env.set(result, c"payload", payload)?;
    Ok(result)
}

fn unpack_block(env: &Env, [payload_v, flag, expected, size]: [napi_value; 4]) -> JsResult<napi_value> {
    let payload = env.bytes(payload_v, "unpackBlock: payload")?;
    let flag = env.integer(flag, "unpackBlock: flag", 0, 255)? as u8;
    let expected = digest_arg(env, expected, "unpackBlock: expectedDigest")?;
    let size = env.integer(size, "unpackBlock: size", 0, u32::MAX as i64)? as usize;
    if flag == FLAG_RAW {
        // A checked raw block is its own payload: hand the same buffer back, no copy.
        check_raw(payload, flag, expected, size)?;
        return Ok(payload_v);
    }
    let (value, ptr) = env.new_buffer(size)?;
    decode_into(payload, flag, expected, ptr, size)?;
    Ok(value)
}

fn unpack_block_into(env: &Env, [payload_v, flag, expected, target_v, offset, size]: [napi_value; 6]) -> JsResult<napi_value> {
    let payload = env.bytes(payload_v, "unpackBlockInto: payload")?;
    let flag = env.integer(flag, "unpackBlockInto: flag", 0, 255)? as u8;
    let expected = digest_arg(env, expected, "unpackBlockInto: expectedDigest")?;
    let (target, target_len) = env.bytes_mut(target_v, "unpackBlockInto: target")?;
    let offset = env.integer(offset, "unpackBlockInto: offset", 0, u32::MAX as i64)? as usize;
    let size = env.integer(size, "unpackBlockInto: size", 0, u32::MAX as i64)? as usize;
    if offset > target_len || size > target_len - offset {
        return Err(Failure::new(BAD_ARGUMENT, format!("unpackBlockInto: range [{offset}, {}) is outside the target of {target_len} bytes", offset as u64 + size as u64)));
    }
    let dst = unsafe { target.add(offset) };
    let (p0, p1) = (payload.as_ptr() as usize, payload.as_ptr() as usize + payload.len());
    let (d0, d1) = (dst as usize, dst as usize + size);
    if size > 0 && !payload.is_empty() && p0 < d1 && d0 < p1 {
        return Err(Failure::new(BAD_ARGUMENT, "unpackBlockInto: payload and target range overlap"));
    }
    decode_into(payload, flag, expected, dst, size)?;
    env.uint32(size as u32)
}

/// A 32-byte digest argument.
fn digest_arg<'a>(env: &Env, value: napi_value, name: &str) -> JsResult<&'a [u8]> {
    let digest = env.bytes(value, name)?;
    if digest.len() != DIGEST_LEN {
        return Err(Failure::new(BAD_ARGUMENT, format!("{name} must be {DIGEST_LEN} bytes, got {}", digest.len())));
    }
    Ok(digest)
}

fn mismatch(flag: u8, size: usize, actual: &[u8], expected: &[u8]) -> Failure {
    Failure::new(DIGEST_MISMATCH, format!("block of {size} bytes (flag {flag}) has digest {}, expected {}", hex(actual), hex(expected)))
}

/// A raw block's payload is exactly `size` bytes whose digest is `expected`.
fn check_raw(payload: &[u8], flag: u8, expected: &[u8], size: usize) -> JsResult<()> {
    if payload.len() != size {
        return Err(Failure::new(CORRUPT_PAYLOAD, format!("raw block payload is {} bytes, expected {size}", payload.len())));
    }
    let actual = block::hash(payload);
    if actual != expected {
        return Err(mismatch(flag, size, &actual, expected));
    }
    Ok(())
}

/// Decode one block of `size` bytes into `dst` (which the caller guarantees is writable for `size` bytes and
/// does not overlap `payload`), checking its digest. The one decoder behind unpackBlock and unpackBlockInto.
fn decode_into(payload: &[u8], flag: u8, expected: &[u8], dst: *mut u8, size: usize) -> JsResult<()> {
    match flag {
        FLAG_ZERO => {
            if !payload.is_empty() {
                return Err(Failure::new(CORRUPT_PAYLOAD, format!("zero block carries a payload of {} bytes, expected none", payload.len())));
            }
            if expected != ZERO_DIGEST {
                return Err(mismatch(flag, size, &ZERO_DIGEST, expected));
            }
            if size > 0 {
                unsafe { std::ptr::write_bytes(dst, 0, size) };
            }
        }
        FLAG_RAW => {
            check_raw(payload, flag, expected, size)?;
            if size > 0 {
                unsafe { std::ptr::copy_nonoverlapping(payload.as_ptr(), dst, size) };
            }
        }
        FLAG_ZSTD => {
            let n = block::decompress_into(payload, dst, size).map_err(|e| {
                Failure::new(CORRUPT_PAYLOAD, format!("zstd frame of {} bytes does not decode to {size} bytes: {}", payload.len(), e.0))
            })?;
            if n != size {
                return Err(Failure::new(CORRUPT_PAYLOAD, format!("zstd frame of {} bytes decodes to {n} bytes, expected {size}", payload.len())));
            }
            let bytes = if size == 0 { &[][..] } else { unsafe { std::slice::from_raw_parts(dst as *const u8, size) } };
            let actual = block::hash(bytes);
            if actual != expected {
                return Err(mismatch(flag, size, &actual, expected));
            }
        }
        other => return Err(Failure::new(CORRUPT_PAYLOAD, format!("unknown block flag {other} (expected 0 zero, 1 raw, 2 zstd)"))),
    }
    Ok(())
}

fn hash(env: &Env, [buffer]: [napi_value; 1]) -> JsResult<napi_value> {
    let digest = block::hash(env.bytes(buffer, "hash: buffer")?);
    let (value, ptr) = env.new_buffer(DIGEST_LEN)?;
    unsafe { std::ptr::copy_nonoverlapping(digest.as_ptr(), ptr, DIGEST_LEN) };
    Ok(value)
}

fn md5_parts(env: &Env, [buffer, part]: [napi_value; 2]) -> JsResult<napi_value> {
    let data = env.bytes(buffer, "md5Parts: buffer")?;
    let part = env.integer(part, "md5Parts: partSize", 1, u32::MAX as i64)? as usize;
    let count = md5::part_count(data.len(), part);
    let (value, ptr) = env.new_buffer(16 * count)?;
    // SAFETY: the new buffer is 16 * count bytes and nothing else refers to it yet.
    let out = unsafe { std::slice::from_raw_parts_mut(ptr, 16 * count) };
    md5::md5_parts(data, part, out);
    Ok(value)
}

fn is_zero(env: &Env, [buffer]: [napi_value; 1]) -> JsResult<napi_value> {
    env.boolean(block::is_zero(env.bytes(buffer, "isZero: buffer")?))
}

/// alignmentGap(view, align): how many bytes from the start of `view` to the first address that is a multiple
/// of `align` (a power of two, 1..=1 MiB): `view.subarray(gap)` starts aligned (O_DIRECT needs page-aligned
/// memory; Node's buffers are not). May exceed the view's length; an empty view answers 0.
fn alignment_gap(env: &Env, [view, align_v]: [napi_value; 2]) -> JsResult<napi_value> {
    let (start, len) = env.bytes_mut(view, "alignmentGap: view")?;
    let align = env.integer(align_v, "alignmentGap: align", 1, 1 << 20)? as usize;
    if !align.is_power_of_two() {
        return Err(Failure::new(BAD_ARGUMENT, format!("alignmentGap: align must be a power of two, got {align}")));
    }
    if len == 0 {
        return env.uint32(0);
    }
    let gap = (align - (start as usize) % align) % align;
    env.uint32(gap as u32)
}

extern "C" {
    /// glibc's allocator tuning (malloc.h); the addon is built for linux-*-gnu only.
    fn mallopt(param: std::os::raw::c_int, value: std::os::raw::c_int) -> std::os::raw::c_int;
}
/// malloc.h M_MMAP_THRESHOLD.
const M_MMAP_THRESHOLD: std::os::raw::c_int = -3;

/// setMmapThreshold(bytes): allocations of at least `bytes` (4 KiB..32 MiB) get their own mapping, returned to
/// the system when freed. A fixed threshold also stops glibc's dynamic one, which after the first free of a big
/// block serves every later block of that size from the heap, where freed memory stays resident. Process-wide;
/// returns whether glibc accepted it.
fn set_mmap_threshold(env: &Env, [bytes]: [napi_value; 1]) -> JsResult<napi_value> {
    let n = env.integer(bytes, "setMmapThreshold: bytes", 4096, 32 << 20)?;
    // SAFETY: mallopt only changes allocator parameters; any thread may call it.
    let ok = unsafe { mallopt(M_MMAP_THRESHOLD, n as std::os::raw::c_int) } == 1;
    env.boolean(ok)
}

unsafe extern "C" fn set_mmap_threshold_cb(env: napi_env, info: napi_callback_info) -> napi_value {
    callback(env, info, "setMmapThreshold(bytes)", set_mmap_threshold)
}
unsafe extern "C" fn alignment_gap_cb(env: napi_env, info: napi_callback_info) -> napi_value {
    callback(env, info, "alignmentGap(view, align)", alignment_gap)
}
unsafe extern "C" fn pack_blocks_cb(env: napi_env, info: napi_callback_info) -> napi_value {
    callback(env, info, "packBlocks(buffer, blockSize, level)", pack_blocks)
}
unsafe extern "C" fn unpack_block_cb(env: napi_env, info: napi_callback_info) -> napi_value {
    callback(env, info, "unpackBlock(payload, flag, expectedDigest, size)", unpack_block)
}
unsafe extern "C" fn unpack_block_into_cb(env: napi_env, info: napi_callback_info) -> napi_value {
    callback(env, info, "unpackBlockInto(payload, flag, expectedDigest, target, offset, size)", unpack_block_into)
}
unsafe extern "C" fn hash_cb(env: napi_env, info: napi_callback_info) -> napi_value {
    callback(env, info, "hash(buffer)", hash)
}
unsafe extern "C" fn md5_parts_cb(env: napi_env, info: napi_callback_info) -> napi_value {
    callback(env, info, "md5Parts(buffer, partSize)", md5_parts)
}
unsafe extern "C" fn is_zero_cb(env: napi_env, info: napi_callback_info) -> napi_value {
    callback(env, info, "isZero(buffer)", is_zero)
}

fn init(env: &Env, exports: napi_value) -> JsResult<napi_value> {
    let functions: [(&CStr, napi_callback); 8] = [
        (c"setMmapThreshold", set_mmap_threshold_cb),
        (c"alignmentGap", alignment_gap_cb),
        (c"packBlocks", pack_blocks_cb),
        (c"unpackBlock", unpack_block_cb),
        (c"unpackBlockInto", unpack_block_into_cb),
        (c"hash", hash_cb),
        (c"isZero", is_zero_cb),
        (c"md5Parts", md5_parts_cb),
    ];
    for (name, cb) in functions {
        env.set(exports, name, env.function(name, cb)?)?;
    }
    let constants = env.object()?;
    let values: [(&CStr, u32); 5] = [
        (c"FLAG_ZERO", FLAG_ZERO as u32),
        (c"FLAG_RAW", FLAG_RAW as u32),
        (c"FLAG_ZSTD", FLAG_ZSTD as u32),
        (c"DIGEST_LENGTH", DIGEST_LEN as u32),
        (c"MIN_SAVING_DIVISOR", block::MIN_SAVING_DIVISOR as u32),
    ];
    for (name, v) in values {
        env.set(constants, name, env.uint32(v)?)?;
    }
    env.set(constants, c"MIN_LEVEL", env.int32(block::min_level())?)?;
    env.set(constants, c"MAX_LEVEL", env.int32(block::max_level())?)?;
    env.set(exports, c"constants", constants)?;
    Ok(exports)
}

/// Node-API module entry point (the symbol `NAPI_MODULE_INIT` defines), called once per thread that loads us.
///
/// # Safety
/// Called by Node only, with a live `env` and its `exports` object, on the thread that owns `env`.
#[no_mangle]
pub unsafe extern "C" fn napi_register_module_v1(env: napi_env, exports: napi_value) -> napi_value {
    let env = Env(env);
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| init(&env, exports))) {
        Ok(Ok(value)) => value,
        Ok(Err(failure)) => {
            env.throw(&failure);
            std::ptr::null_mut()
        }
        Err(_) => {
            env.throw(&Failure::new(INTERNAL, "addon initialisation panicked"));
            std::ptr::null_mut()
        }
    }
}

/// The Node-API version this addon was written against.
#[no_mangle]
pub extern "C" fn node_api_module_get_api_version_v1() -> i32 {
    NAPI_VERSION
}
