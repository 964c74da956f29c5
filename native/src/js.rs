//! Safe-ish glue over `napi_sys`: argument decoding, value creation, coded errors.
//!
//! Every exported function is a plain Rust `fn(&Env, &[napi_value]) -> JsResult<napi_value>` wrapped by
//! `callback`, which catches panics and turns a `Failure` into a thrown JavaScript `Error` whose `code`
//! property is one of the `SV_ERR_NATIVE_*` codes catalogued in src/errors/codes/native.ts. The TypeScript
//! wrapper (src/native/index.ts) rebuilds those as `SvError`s.
use crate::napi_sys::*;
use std::ffi::{c_void, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;

/// Error codes thrown to JavaScript (must exist in src/errors/codes/native.ts).
pub const BAD_ARGUMENT: &CStr = c"SV_ERR_NATIVE_BAD_ARGUMENT";
pub const DIGEST_MISMATCH: &CStr = c"SV_ERR_NATIVE_DIGEST_MISMATCH";
pub const CORRUPT_PAYLOAD: &CStr = c"SV_ERR_NATIVE_CORRUPT_PAYLOAD";
pub const INTERNAL: &CStr = c"SV_ERR_NATIVE_INTERNAL";

/// A failure to report to JavaScript as `Error { code, message }`.
#[derive(Debug)]
pub struct Failure {
    pub code: &'static CStr,
    pub message: String,
}

impl Failure {
    pub fn new(code: &'static CStr, message: impl Into<String>) -> Self {
        Failure { code, message: message.into() }
    }
}

pub type JsResult<T> = Result<T, Failure>;

/// The environment of the current call; valid only during the callback.
pub struct Env(pub napi_env);

fn check(status: napi_status, what: &str) -> JsResult<()> {
    if status == NAPI_OK {
        Ok(())
    } else {
        Err(Failure::new(INTERNAL, format!("Node-API call {what} failed with status {status}")))
    }
}

impl Env {
    /// The first `N` arguments; missing ones are an error naming the function's signature.
    pub fn args<const N: usize>(&self, info: napi_callback_info, signature: &str) -> JsResult<[napi_value; N]> {
        let mut argv = [ptr::null_mut(); N];
        let mut argc = N;
        check(
            unsafe { napi_get_cb_info(self.0, info, &mut argc, argv.as_mut_ptr(), ptr::null_mut(), ptr::null_mut()) },
            "napi_get_cb_info",
        )?;
        if argc < N {
            return Err(Failure::new(BAD_ARGUMENT, format!("{signature}: expected {N} arguments, got {argc}")));
        }
        Ok(argv)
    }

    /// The bytes of a Buffer / Uint8Array (any ArrayBufferView), without copying.
    ///
    /// The slice is valid for the rest of the callback (the view keeps its memory alive). If the view is
    /// over a SharedArrayBuffer, another thread may write it meanwhile: callers only read it once per byte.
    pub fn bytes<'a>(&self, value: napi_value, name: &str) -> JsResult<&'a [u8]> {
        let (data, len) = self.buffer_info(value, name)?;
        if len == 0 {
            return Ok(&[]);
        }
        Ok(unsafe { std::slice::from_raw_parts(data as *const u8, len) })
    }

    /// The memory of a Buffer / Uint8Array to write into: its start and length (valid for the rest of the
    /// callback). The caller writes only within `[0, len)` and never through a `&[u8]` of the same view.
    pub fn bytes_mut(&self, value: napi_value, name: &str) -> JsResult<(*mut u8, usize)> {
        self.buffer_info(value, name)
    }

    /// Start and length of a Buffer / Uint8Array's memory (null start only with length 0).
    fn buffer_info(&self, value: napi_value, name: &str) -> JsResult<(*mut u8, usize)> {
        let mut is_buffer = false;
        check(unsafe { napi_is_buffer(self.0, value, &mut is_buffer) }, "napi_is_buffer")?;
        if !is_buffer {
            return Err(Failure::new(BAD_ARGUMENT, format!("{name} must be a Buffer or Uint8Array")));
        }
        let mut data: *mut c_void = ptr::null_mut();
        let mut len = 0usize;
        check(unsafe { napi_get_buffer_info(self.0, value, &mut data, &mut len) }, "napi_get_buffer_info")?;
        if data.is_null() {
            len = 0;
        }
        Ok((data as *mut u8, len))
    }

    /// An integral JavaScript number within `[min, max]`.
    pub fn integer(&self, value: napi_value, name: &str, min: i64, max: i64) -> JsResult<i64> {
        let mut kind = 0;
        check(unsafe { napi_typeof(self.0, value, &mut kind) }, "napi_typeof")?;
        if kind != NAPI_NUMBER {
            return Err(Failure::new(BAD_ARGUMENT, format!("{name} must be a number")));
        }
        let mut n = 0f64;
        check(unsafe { napi_get_value_double(self.0, value, &mut n) }, "napi_get_value_double")?;
        if n.fract() != 0.0 || !(min as f64..=max as f64).contains(&n) {
            return Err(Failure::new(BAD_ARGUMENT, format!("{name} must be an integer in [{min}, {max}], got {n}")));
        }
        Ok(n as i64)
    }

    /// A new Node Buffer of `len` bytes (not zero-filled) and a pointer to fill it.
    pub fn new_buffer(&self, len: usize) -> JsResult<(napi_value, *mut u8)> {
        let mut data: *mut c_void = ptr::null_mut();
        let mut value = ptr::null_mut();
        check(unsafe { napi_create_buffer(self.0, len, &mut data, &mut value) }, "napi_create_buffer")?;
        Ok((value, data as *mut u8))
    }

    /// A new ArrayBuffer of `len` bytes and a pointer to fill it.
    pub fn new_arraybuffer(&self, len: usize) -> JsResult<(napi_value, *mut u8)> {
        let mut data: *mut c_void = ptr::null_mut();
        let mut value = ptr::null_mut();
        check(unsafe { napi_create_arraybuffer(self.0, len, &mut data, &mut value) }, "napi_create_arraybuffer")?;
        Ok((value, data as *mut u8))
    }

    /// A typed array view of `len` elements over `arraybuffer` at `byte_offset`.
    pub fn typed_array(&self, kind: napi_typedarray_type, arraybuffer: napi_value, byte_offset: usize, len: usize) -> JsResult<napi_value> {
        let mut value = ptr::null_mut();
        check(
            unsafe { napi_create_typedarray(self.0, kind, len, arraybuffer, byte_offset, &mut value) },
            "napi_create_typedarray",
        )?;
        Ok(value)
    }

    pub fn object(&self) -> JsResult<napi_value> {
        let mut value = ptr::null_mut();
        check(unsafe { napi_create_object(self.0, &mut value) }, "napi_create_object")?;
        Ok(value)
    }

    pub fn set(&self, object: napi_value, name: &CStr, value: napi_value) -> JsResult<()> {
        check(unsafe { napi_set_named_property(self.0, object, name.as_ptr(), value) }, "napi_set_named_property")
    }

    pub fn uint32(&self, n: u32) -> JsResult<napi_value> {
        let mut value = ptr::null_mut();
        check(unsafe { napi_create_uint32(self.0, n, &mut value) }, "napi_create_uint32")?;
        Ok(value)
    }

    pub fn int32(&self, n: i32) -> JsResult<napi_value> {
        let mut value = ptr::null_mut();
        check(unsafe { napi_create_int32(self.0, n, &mut value) }, "napi_create_int32")?;
        Ok(value)
    }

    pub fn boolean(&self, b: bool) -> JsResult<napi_value> {
        let mut value = ptr::null_mut();
        check(unsafe { napi_get_boolean(self.0, b, &mut value) }, "napi_get_boolean")?;
        Ok(value)
    }

    pub fn function(&self, name: &CStr, cb: napi_callback) -> JsResult<napi_value> {
        let mut value = ptr::null_mut();
        let bytes = name.to_bytes();
        check(
            unsafe { napi_create_function(self.0, name.as_ptr(), bytes.len(), cb, ptr::null_mut(), &mut value) },
            "napi_create_function",
        )?;
        Ok(value)
    }

    /// Throw `failure` as a JavaScript Error with its `code`, unless an exception is already pending.
    pub fn throw(&self, failure: &Failure) {
        let mut pending = false;
        unsafe { napi_is_exception_pending(self.0, &mut pending) };
        if pending {
            return;
        }
        let message = CString::new(failure.message.replace('\0', " ")).unwrap_or_default();
        unsafe { napi_throw_error(self.0, failure.code.as_ptr(), message.as_ptr()) };
    }
}

/// Run an exported function: decode arguments, catch panics, throw failures. Returns null after a throw,
/// which Node-API turns into the pending exception.
pub fn callback<const N: usize>(
    env: napi_env,
    info: napi_callback_info,
    signature: &str,
    body: fn(&Env, [napi_value; N]) -> JsResult<napi_value>,
) -> napi_value {
    let env = Env(env);
    let outcome = catch_unwind(AssertUnwindSafe(|| env.args::<N>(info, signature).and_then(|argv| body(&env, argv))));
    let failure = match outcome {
        Ok(Ok(value)) => return value,
        Ok(Err(failure)) => failure,
        Err(panic) => {
            let text = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            Failure::new(INTERNAL, format!("{signature}: native panic: {text}"))
        }
    };
    env.throw(&failure);
    ptr::null_mut()
}
