//! The few Node-API (N-API) functions this addon calls, declared by hand.
//!
//! Why by hand: the `napi`/`napi-sys` crates are not packaged in Debian and crates.io is not reachable on
//! the build machines, and the addon needs about twenty functions of a stable C ABI. The declarations
//! follow `js_native_api.h` / `node_api.h` (Node-API version 8, Node >= 12.22). Nothing is linked at build
//! time: on Linux the symbols are resolved from the `node` executable when the addon is `dlopen`ed, so the
//! cdylib is built with these symbols undefined.
//!
//! Conventions: every function returns a `napi_status` (`NAPI_OK` = 0); values are opaque handles valid for
//! the current callback scope only. Keep this module to declarations; the safe glue lives in `js.rs`.
#![allow(non_camel_case_types, dead_code)]

use std::ffi::{c_char, c_void};

/// Opaque handles.
#[repr(C)]
pub struct napi_env__ {
    _p: [u8; 0],
}
#[repr(C)]
pub struct napi_value__ {
    _p: [u8; 0],
}
#[repr(C)]
pub struct napi_callback_info__ {
    _p: [u8; 0],
}
pub type napi_env = *mut napi_env__;
pub type napi_value = *mut napi_value__;
pub type napi_callback_info = *mut napi_callback_info__;

pub type napi_status = i32;
pub const NAPI_OK: napi_status = 0;
pub const NAPI_PENDING_EXCEPTION: napi_status = 10;

/// `napi_typedarray_type` values used here.
pub type napi_typedarray_type = i32;
pub const NAPI_UINT8_ARRAY: napi_typedarray_type = 1;
pub const NAPI_UINT32_ARRAY: napi_typedarray_type = 6;

/// `napi_valuetype` values used here.
pub type napi_valuetype = i32;
pub const NAPI_NUMBER: napi_valuetype = 3;

pub type napi_callback = unsafe extern "C" fn(env: napi_env, info: napi_callback_info) -> napi_value;

/// The Node-API version the addon targets; returned by `node_api_module_get_api_version_v1`.
pub const NAPI_VERSION: i32 = 8;

extern "C" {
    // Functions and arguments.
    pub fn napi_create_function(
        env: napi_env,
        utf8name: *const c_char,
        length: usize,
        cb: napi_callback,
        data: *mut c_void,
        result: *mut napi_value,
    ) -> napi_status;
    pub fn napi_get_cb_info(
        env: napi_env,
        cbinfo: napi_callback_info,
        argc: *mut usize,
        argv: *mut napi_value,
        this_arg: *mut napi_value,
        data: *mut *mut c_void,
    ) -> napi_status;

    // Objects and properties.
    pub fn napi_create_object(env: napi_env, result: *mut napi_value) -> napi_status;
    pub fn napi_set_named_property(env: napi_env, object: napi_value, utf8name: *const c_char, value: napi_value) -> napi_status;

    // Primitive values.
    pub fn napi_typeof(env: napi_env, value: napi_value, result: *mut napi_valuetype) -> napi_status;
    pub fn napi_get_value_double(env: napi_env, value: napi_value, result: *mut f64) -> napi_status;
    pub fn napi_create_int32(env: napi_env, value: i32, result: *mut napi_value) -> napi_status;
    pub fn napi_create_uint32(env: napi_env, value: u32, result: *mut napi_value) -> napi_status;
    pub fn napi_get_boolean(env: napi_env, value: bool, result: *mut napi_value) -> napi_status;
    pub fn napi_get_undefined(env: napi_env, result: *mut napi_value) -> napi_status;

    // Buffers and typed arrays. `napi_is_buffer`/`napi_get_buffer_info` accept any ArrayBufferView
    // (Buffer, Uint8Array, also over a SharedArrayBuffer) on Node >= 20.
    pub fn napi_is_buffer(env: napi_env, value: napi_value, result: *mut bool) -> napi_status;
    pub fn napi_get_buffer_info(env: napi_env, value: napi_value, data: *mut *mut c_void, length: *mut usize) -> napi_status;
    pub fn napi_create_buffer(env: napi_env, length: usize, data: *mut *mut c_void, result: *mut napi_value) -> napi_status;
    pub fn napi_create_arraybuffer(env: napi_env, byte_length: usize, data: *mut *mut c_void, result: *mut napi_value) -> napi_status;
    pub fn napi_create_typedarray(
        env: napi_env,
        kind: napi_typedarray_type,
        length: usize,
        arraybuffer: napi_value,
        byte_offset: usize,
        result: *mut napi_value,
    ) -> napi_status;

    // Errors. `napi_throw_error` sets the error's `code` property when `code` is not null.
    pub fn napi_throw_error(env: napi_env, code: *const c_char, msg: *const c_char) -> napi_status;
    pub fn napi_is_exception_pending(env: napi_env, result: *mut bool) -> napi_status;
}
