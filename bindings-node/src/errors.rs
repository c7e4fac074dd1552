//! The addon's errors: instances of the package's `LicenseBackupError` class, which index.js
//! registers once, at load ([`register_error_class`]). Every failing call throws one, and an
//! END event carries one ([`NativeError`]), so JavaScript converts no error itself.

use std::cell::Cell;
use std::ptr;

use license_backup as lb;
use napi::bindgen_prelude::{FromNapiValue, ToNapiValue, TypeName, Unknown, ValueType};
use napi::{Env, JsValue, Status, sys};
use napi_derive::napi;

thread_local! {
    /// The registered error class, with the JavaScript environment that registered it. Errors
    /// are made on that environment's own thread only; a Node worker thread registers its own.
    static ERROR_CLASS: Cell<Option<(sys::napi_env, sys::napi_ref)>> = const { Cell::new(None) };
}

/// The result of every native call: its error is a `LicenseBackupError`.
pub type Result<T> = napi::Result<T>;

/// Registers the class the addon makes its errors with: `new errorClass(code, message)`, where
/// `code` is the core's symbolic name (`BACKUP_EXISTS`). The last registration in an
/// environment wins (a module registry that loads the package again, as test runners do, gets
/// its own class).
#[napi(ts_args_type = "errorClass: new (code: string, message: string) => Error")]
pub fn register_error_class(env: Env, error_class: Unknown<'_>) -> napi::Result<()> {
    if error_class.get_type()? != ValueType::Function {
        return Err(napi::Error::new(Status::InvalidArg, "registerErrorClass takes a class"));
    }
    let raw = env.raw();
    let mut reference = ptr::null_mut();
    // SAFETY: `raw` is the environment of this call, on its thread; the value is its argument.
    let status = unsafe { sys::napi_create_reference(raw, error_class.raw(), 1, &mut reference) };
    if status != sys::Status::napi_ok {
        return Err(napi::Error::new(Status::from(status), "cannot keep the error class"));
    }
    let previous = ERROR_CLASS.with(|c| c.replace(Some((raw, reference))));
    match previous {
        Some((old_env, old)) if old_env == raw => {
            // SAFETY: the reference was made in this environment, which is alive (it calls us).
            unsafe { sys::napi_delete_reference(raw, old) };
        }
        // The first registration in this environment: forget the class when it is torn down
        // (its references go with it).
        _ => {
            env.add_env_cleanup_hook((), |_| ERROR_CLASS.with(|c| c.set(None)))?;
        }
    }
    Ok(())
}

/// A `LicenseBackupError` for `code` and `message`, made in environment `env` with the
/// registered class; a plain `Error` with that `code` when no class is registered there.
///
/// # Safety
///
/// `env` must be the environment of the running native call or callback, on its thread.
unsafe fn make(env: sys::napi_env, code: &str, message: &str) -> napi::Error {
    let plain = || napi::Error::new(Status::GenericFailure, format!("{code}: {message}"));
    let Some((class_env, class)) = ERROR_CLASS.with(Cell::get) else { return plain() };
    if class_env != env {
        return plain();
    }
    let made = || -> napi::Result<napi::Error> {
        let mut ctor = ptr::null_mut();
        // SAFETY: `class` is a live reference of `env` (the caller's contract, checked above).
        check(unsafe { sys::napi_get_reference_value(env, class, &mut ctor) })?;
        // SAFETY: as above; the arguments are values of `env`.
        let args = unsafe {
            [String::to_napi_value(env, code.to_string())?, String::to_napi_value(env, message.to_string())?]
        };
        let mut instance = ptr::null_mut();
        // SAFETY: `ctor` is a function of `env`; `args` holds its two arguments.
        check(unsafe { sys::napi_new_instance(env, ctor, args.len(), args.as_ptr(), &mut instance) })?;
        // SAFETY: `instance` is a value of `env`.
        Ok(napi::Error::from(unsafe { Unknown::from_napi_value(env, instance) }?))
    };
    made().unwrap_or_else(|_| plain())
}

fn check(status: sys::napi_status) -> napi::Result<()> {
    if status == sys::Status::napi_ok { Ok(()) } else { Err(napi::Error::from_status(Status::from(status))) }
}

/// The JavaScript error of a core error, thrown by a native call on the JavaScript thread.
pub fn js_error(e: lb::Error) -> napi::Error {
    match ERROR_CLASS.with(Cell::get) {
        // SAFETY: native calls run on their environment's thread; this thread registered `env`.
        Some((env, _)) => unsafe { make(env, e.code().name(), e.message()) },
        None => napi::Error::new(Status::GenericFailure, format!("{}: {}", e.code().name(), e.message())),
    }
}

/// An `INVALID_ARGUMENT` error.
pub fn invalid(message: impl Into<String>) -> napi::Error {
    js_error(lb::Error::new(lb::ErrorCode::InvalidArgument, message))
}

/// An operation's failure as an END event carries it: in JavaScript, a `LicenseBackupError`
/// made with the registered class.
#[derive(Clone, Debug)]
pub struct NativeError {
    code: &'static str,
    message: String,
}

impl From<&lb::Error> for NativeError {
    fn from(e: &lb::Error) -> Self {
        NativeError { code: e.code().name(), message: e.message().to_string() }
    }
}

impl TypeName for NativeError {
    fn type_name() -> &'static str {
        "Error"
    }

    fn value_type() -> ValueType {
        ValueType::Object
    }
}

impl ToNapiValue for NativeError {
    unsafe fn to_napi_value(env: sys::napi_env, val: Self) -> napi::Result<sys::napi_value> {
        // SAFETY: napi-rs converts values on the environment's thread, with its `env`.
        unsafe { napi::Error::to_napi_value(env, make(env, val.code, &val.message)) }
    }
}

/// Only for the derive of the event enum: an END event never comes back from JavaScript.
impl FromNapiValue for NativeError {
    unsafe fn from_napi_value(_env: sys::napi_env, _value: sys::napi_value) -> napi::Result<Self> {
        Err(napi::Error::new(Status::InvalidArg, "an error is not read back from JavaScript"))
    }
}
