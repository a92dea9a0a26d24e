// SPDX-License-Identifier: MIT
//! Safe Rust bindings of libsdflow (docs/rust.md).
//!
//! - Owned handles with `Drop`: [`Ctx`], [`Process`], [`Model`], [`Sampler`],
//!   [`Density`], [`Trainer`]. Every object borrows the [`Ctx`] it was made
//!   from (`Process<'c>`), and samplers, estimators and trainers borrow the
//!   processes and models bound to them, so the borrow checker enforces the C
//!   rule "the ctx outlives its objects, bound objects outlive the runs".
//! - Every fallible call returns [`Result`]; [`Error`] carries the C status
//!   and the library's message (`sdflow_ctx_last_error`).
//! - Arrays are row-major `&[f64]` / `&mut [f64]`; every length is checked
//!   against the model's dimension (and `n * d` against overflow) before the
//!   C call, so a wrong shape is an `Error` with [`Status::EInvalid`], never a
//!   read past a buffer.
//! - The C enums are Rust enums ([`SamplerKind`], [`Key`], ...) generated
//!   from bindings/api/sdflow_api.json.
//! - Threads: a [`Ctx`] is `Send` (move it, and build its objects, on another
//!   thread) but not `Sync`, and objects are neither: ctx.h allows
//!   concurrent use of one ctx's objects only with a racy error message and
//!   forbids option changes during any use, so parallel work uses one `Ctx`
//!   per thread (two contexts never interact). Callback models may be called
//!   from the library's worker threads (`Key::CtxThreads`), hence their
//!   closures are `Fn + Send + Sync`.
//! - A panic in a callback is caught at the C boundary (never unwinding
//!   through C), the C call fails, and the panic resumes from the wrapper
//!   call that ran the callback.

#![allow(clippy::too_many_arguments)]

mod enums;
pub use enums::*;
pub use sdflow_sys as sys;

use std::any::Any;
use std::cell::RefCell;
use std::ffi::{CStr, CString};
use std::fmt;
use std::marker::PhantomData;
use std::os::raw::{c_char, c_int, c_long, c_void};
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::path::Path;
use std::ptr;
use std::sync::Mutex;

// ---- errors ----------------------------------------------------------------

/// The error of every failing call: the C status and the library's message.
#[derive(Clone, PartialEq, Eq)]
pub struct Error {
    code: i32,
    message: String,
}

/// `Result<T, sdflow::Error>`.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// An error with status @p status and message @p message.
    pub fn new(status: Status, message: impl Into<String>) -> Error {
        Error { code: status.raw(), message: message.into() }
    }
    fn from_code(code: i32, message: String) -> Error {
        Error { code, message }
    }
    /// The status; `None` for a code this version does not know.
    pub fn status(&self) -> Option<Status> {
        Status::from_raw(self.code)
    }
    /// The raw C status code.
    pub fn code(&self) -> i32 {
        self.code
    }
    /// The library's message ("x[17][3] is NaN"); `Display` prefixes the status text.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.message.is_empty() {
            write!(f, "{}", strerror(self.code))
        } else {
            write!(f, "{}: {}", strerror(self.code), self.message)
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sdflow::Error({:?}, {:?})", self.status(), self.message)
    }
}

impl std::error::Error for Error {}

fn invalid(msg: String) -> Error {
    Error::new(Status::EInvalid, msg)
}

/// Checks a status of a context-free function.
fn check_free(st: sys::sdflow_status) -> Result<()> {
    if st == sys::SDFLOW_OK {
        Ok(())
    } else {
        Err(Error::from_code(st, String::new()))
    }
}

unsafe fn static_str(p: *const c_char) -> Option<&'static str> {
    if p.is_null() {
        None
    } else {
        CStr::from_ptr(p).to_str().ok()
    }
}

/// The short static description of a status code ("invalid argument", ...).
pub fn strerror(code: i32) -> &'static str {
    unsafe { static_str(sys::sdflow_strerror(code)).unwrap_or("unknown status") }
}

/// The linked library's version number (MAJOR*10000 + MINOR*100 + PATCH).
pub fn version() -> u32 {
    unsafe { sys::sdflow_version() }
}

/// The linked library's version ("0.1.0").
pub fn version_string() -> &'static str {
    unsafe { static_str(sys::sdflow_version_string()).unwrap_or("") }
}

fn mul(a: usize, b: usize, what: &str) -> Result<usize> {
    a.checked_mul(b).ok_or_else(|| invalid(format!("{}: size {} x {} overflows usize", what, a, b)))
}

fn need(len: usize, want: usize, what: &str) -> Result<()> {
    if len != want {
        return Err(invalid(format!("{} has {} elements, want {}", what, len, want)));
    }
    Ok(())
}

/// Rows of a flat n x d slice (its length must be a multiple of d).
fn rows(len: usize, d: usize, what: &str) -> Result<usize> {
    if d == 0 {
        return Err(Error::new(Status::EState, format!("{}: dimension unknown (bind a model first)", what)));
    }
    if len % d != 0 {
        return Err(invalid(format!(
            "{} has {} elements, not a multiple of the dimension {}",
            what, len, d
        )));
    }
    Ok(len / d)
}

fn cstring(s: &str, what: &str) -> Result<CString> {
    CString::new(s).map_err(|_| invalid(format!("{} contains a NUL byte", what)))
}

// ---- names ------------------------------------------------------------------

/// Kinds with a name in the C API ("pf_ode", "gmm", ...).
pub trait Named: Sized + Copy + 'static {
    /// Every value.
    fn all() -> &'static [Self];
    /// The library's name of the value.
    fn name(self) -> &'static str;
    /// The value of a name; an unknown name is an error listing the valid ones.
    fn from_name(name: &str) -> Result<Self>;
}

fn unknown_name<T: Named>(what: &str, name: &str) -> Error {
    let valid: Vec<&str> = T::all().iter().map(|k| k.name()).collect();
    invalid(format!("unknown {} '{}'; valid names: {}", what, name, valid.join(", ")))
}

macro_rules! named {
    ($t:ident, $what:expr, $name:path, $from:path) => {
        impl Named for $t {
            fn all() -> &'static [Self] {
                &$t::ALL
            }
            fn name(self) -> &'static str {
                unsafe { static_str($name(self.raw())).unwrap_or("") }
            }
            fn from_name(name: &str) -> Result<Self> {
                let c = match CString::new(name) {
                    Ok(c) => c,
                    Err(_) => return Err(unknown_name::<$t>($what, name)),
                };
                let mut k = 0;
                let st = unsafe { $from(c.as_ptr(), &mut k) };
                match (st, $t::from_raw(k)) {
                    (sys::SDFLOW_OK, Some(v)) => Ok(v),
                    _ => Err(unknown_name::<$t>($what, name)),
                }
            }
        }
    };
}
named!(ProcessKind, "process kind", sys::sdflow_process_kind_name, sys::sdflow_process_kind_from_name);
named!(ModelKind, "model kind", sys::sdflow_model_kind_name, sys::sdflow_model_kind_from_name);
named!(SamplerKind, "sampler kind", sys::sdflow_sampler_kind_name, sys::sdflow_sampler_kind_from_name);
named!(DensityKind, "density kind", sys::sdflow_density_kind_name, sys::sdflow_density_kind_from_name);
named!(LossKind, "loss kind", sys::sdflow_trainer_kind_name, sys::sdflow_trainer_kind_from_name);
named!(Key, "option", sys::sdflow_option_name, sys::sdflow_option_from_name);

impl Key {
    /// The value type of the key.
    pub fn value_type(self) -> OptionType {
        OptionType::from_raw(unsafe { sys::sdflow_option_get_type(self.raw()) }).unwrap_or(OptionType::None)
    }
    /// The valid range [lo, hi].
    pub fn bounds(self) -> Result<(f64, f64)> {
        let (mut lo, mut hi) = (0.0, 0.0);
        check_free(unsafe { sys::sdflow_option_bounds(self.raw(), &mut lo, &mut hi) })?;
        Ok((lo, hi))
    }
}

// ---- option values -------------------------------------------------------------

/// A typed option value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    Int(i64),
    Double(f64),
    U64(u64),
}

/// Types usable as option values: numbers and the option enums. `set`
/// converts to the key's type (an int key takes 3.0 but not 3.5).
pub trait OptionValue: Sized {
    fn to_value(self) -> Value;
    fn from_value(v: Value) -> Option<Self>;
}

macro_rules! int_value {
    ($($t:ty),*) => {$(
        impl OptionValue for $t {
            fn to_value(self) -> Value {
                Value::Int(self as i64)
            }
            fn from_value(v: Value) -> Option<Self> {
                match v {
                    Value::Int(i) => <$t>::try_from(i).ok(),
                    Value::U64(u) => <$t>::try_from(u).ok(),
                    Value::Double(d) => if d.fract() == 0.0 && d.abs() < 9.0e18 { <$t>::try_from(d as i64).ok() } else { None },
                }
            }
        }
    )*};
}
int_value!(i32, i64, usize, u32);

impl OptionValue for u64 {
    fn to_value(self) -> Value {
        Value::U64(self)
    }
    fn from_value(v: Value) -> Option<Self> {
        match v {
            Value::Int(i) => u64::try_from(i).ok(),
            Value::U64(u) => Some(u),
            Value::Double(d) => {
                if d.fract() == 0.0 && (0.0..1.8e19).contains(&d) {
                    Some(d as u64)
                } else {
                    None
                }
            }
        }
    }
}
impl OptionValue for f64 {
    fn to_value(self) -> Value {
        Value::Double(self)
    }
    fn from_value(v: Value) -> Option<Self> {
        Some(match v {
            Value::Int(i) => i as f64,
            Value::U64(u) => u as f64,
            Value::Double(d) => d,
        })
    }
}
impl OptionValue for bool {
    fn to_value(self) -> Value {
        Value::Int(self as i64)
    }
    fn from_value(v: Value) -> Option<Self> {
        match v {
            Value::Int(0) => Some(false),
            Value::Int(1) => Some(true),
            _ => None,
        }
    }
}
macro_rules! enum_value {
    ($($t:ident),*) => {$(
        impl OptionValue for $t {
            fn to_value(self) -> Value {
                Value::Int(self.raw() as i64)
            }
            fn from_value(v: Value) -> Option<Self> {
                match v {
                    Value::Int(i) => i32::try_from(i).ok().and_then($t::from_raw),
                    _ => None,
                }
            }
        }
    )*};
}
enum_value!(
    LogLevel, BlasPool, Dtype, Activation, TimeGrid, Start, DsbSchedule, DsbReference, DsbTime, DsbDirection,
    Solver, Probe, Divergence, Output, DsmWeighting, TSampling, Optimizer, LrSchedule, Coupling
);

type SetInt<H> = unsafe extern "C" fn(*mut H, sys::sdflow_option, c_long) -> sys::sdflow_status;
type SetDouble<H> = unsafe extern "C" fn(*mut H, sys::sdflow_option, f64) -> sys::sdflow_status;
type SetU64<H> = unsafe extern "C" fn(*mut H, sys::sdflow_option, u64) -> sys::sdflow_status;
type GetInt<H> = unsafe extern "C" fn(*const H, sys::sdflow_option, *mut c_long) -> sys::sdflow_status;
type GetDouble<H> = unsafe extern "C" fn(*const H, sys::sdflow_option, *mut f64) -> sys::sdflow_status;
type GetU64<H> = unsafe extern "C" fn(*const H, sys::sdflow_option, *mut u64) -> sys::sdflow_status;

fn not_here(key: Key) -> Error {
    Error::new(Status::EUnsupported, format!("option {} does not apply to this object", key.name()))
}

fn set_option<H>(
    ctx: &Ctx,
    h: *mut H,
    key: Key,
    v: Value,
    si: SetInt<H>,
    sd: SetDouble<H>,
    su: Option<SetU64<H>>,
) -> Result<()> {
    let wrong = || invalid(format!("option {} takes {:?} values, got {:?}", key.name(), key.value_type(), v));
    let st = match key.value_type() {
        OptionType::Int => {
            let i = i64::from_value(v).ok_or_else(wrong)?;
            unsafe { si(h, key.raw(), i as c_long) }
        }
        OptionType::Double => unsafe { sd(h, key.raw(), f64::from_value(v).unwrap_or(0.0)) },
        OptionType::U64 => match su {
            Some(su) => {
                let u = u64::from_value(v).ok_or_else(wrong)?;
                unsafe { su(h, key.raw(), u) }
            }
            None => return Err(not_here(key)),
        },
        OptionType::None => return Err(Error::new(Status::EUnsupported, format!("unknown option {:?}", key))),
    };
    ctx.check(st)
}

fn get_option<H, T: OptionValue>(
    ctx: &Ctx,
    h: *const H,
    key: Key,
    gi: GetInt<H>,
    gd: GetDouble<H>,
    gu: Option<GetU64<H>>,
) -> Result<T> {
    let v = match key.value_type() {
        OptionType::Int => {
            let mut i: c_long = 0;
            ctx.check(unsafe { gi(h, key.raw(), &mut i) })?;
            Value::Int(i as i64)
        }
        OptionType::Double => {
            let mut d = 0.0;
            ctx.check(unsafe { gd(h, key.raw(), &mut d) })?;
            Value::Double(d)
        }
        OptionType::U64 => match gu {
            Some(gu) => {
                let mut u = 0u64;
                ctx.check(unsafe { gu(h, key.raw(), &mut u) })?;
                Value::U64(u)
            }
            None => return Err(not_here(key)),
        },
        OptionType::None => return Err(Error::new(Status::EUnsupported, format!("unknown option {:?}", key))),
    };
    T::from_value(v).ok_or_else(|| invalid(format!("option {} = {:?} does not fit the requested type", key.name(), v)))
}

// ---- context -------------------------------------------------------------------

/// State shared with callbacks: the first panic a callback raised.
struct Shared {
    pending: Mutex<Option<Box<dyn Any + Send>>>,
}

impl Shared {
    fn stash(&self, p: Box<dyn Any + Send>) {
        if let Ok(mut g) = self.pending.lock() {
            if g.is_none() {
                *g = Some(p);
            }
        }
    }
    fn take(&self) -> Option<Box<dyn Any + Send>> {
        self.pending.lock().ok().and_then(|mut g| g.take())
    }
}

struct LogHook {
    f: Box<dyn Fn(LogLevel, &str) + Send + Sync>,
    shared: *const Shared,
}
struct ProgressHook {
    f: Box<dyn FnMut(i64, i64) -> bool + Send>,
    shared: *const Shared,
}
struct AllreduceHook {
    f: Box<dyn FnMut(&mut [f64]) -> bool + Send>,
    shared: *const Shared,
}

unsafe extern "C" fn log_tramp(level: c_int, msg: *const c_char, u: *mut c_void) {
    let h = &*(u as *const LogHook);
    let text = if msg.is_null() { String::new() } else { CStr::from_ptr(msg).to_string_lossy().into_owned() };
    let lvl = LogLevel::from_raw(level).unwrap_or(LogLevel::Trace);
    if let Err(p) = catch_unwind(AssertUnwindSafe(|| (h.f)(lvl, &text))) {
        (*h.shared).stash(p);
    }
}
unsafe extern "C" fn progress_tramp(u: *mut c_void, done: c_long, total: c_long) -> c_int {
    let h = &mut *(u as *mut ProgressHook);
    match catch_unwind(AssertUnwindSafe(|| (h.f)(done as i64, total as i64))) {
        Ok(true) => 0,
        Ok(false) => 1,
        Err(p) => {
            (*h.shared).stash(p);
            1
        }
    }
}
unsafe extern "C" fn allreduce_tramp(buf: *mut f64, n: usize, u: *mut c_void) -> c_int {
    let h = &mut *(u as *mut AllreduceHook);
    let s: &mut [f64] = if n == 0 || buf.is_null() { &mut [] } else { std::slice::from_raw_parts_mut(buf, n) };
    match catch_unwind(AssertUnwindSafe(|| (h.f)(s))) {
        Ok(true) => 0,
        Ok(false) => 1,
        Err(p) => {
            (*h.shared).stash(p);
            1
        }
    }
}

/// A value with its standard deviation (metrics) or standard error.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    pub value: f64,
    pub std: f64,
}

/// The context: options, callbacks, random numbers, metrics, couplings.
/// Everything else is made from (and borrows) a `Ctx`.
pub struct Ctx {
    raw: *mut sys::sdflow_ctx,
    shared: Box<Shared>,
    log: RefCell<Option<Box<LogHook>>>,
    progress: RefCell<Option<Box<ProgressHook>>>,
    allreduce: RefCell<Option<Box<AllreduceHook>>>,
}

// SAFETY: a C context has no thread affinity (two contexts never interact;
// creation is thread safe) and every hook stored here is Send. Ctx is not
// Sync (RefCell): one ctx is never used from two threads at once.
unsafe impl Send for Ctx {}

impl Ctx {
    /// A context with the default allocator and seed 0.
    pub fn new() -> Result<Ctx> {
        let mut raw = ptr::null_mut();
        check_free(unsafe { sys::sdflow_ctx_create(&mut raw, ptr::null()) })?;
        Ok(Ctx {
            raw,
            shared: Box::new(Shared { pending: Mutex::new(None) }),
            log: RefCell::new(None),
            progress: RefCell::new(None),
            allreduce: RefCell::new(None),
        })
    }
    /// A context with `Key::CtxSeed` = `seed`.
    pub fn with_seed(seed: u64) -> Result<Ctx> {
        let c = Ctx::new()?;
        c.set(Key::CtxSeed, seed)?;
        Ok(c)
    }
    /// The C handle (still owned by this object).
    pub fn as_ptr(&self) -> *mut sys::sdflow_ctx {
        self.raw
    }
    /// The message of the last failure ("" if none).
    pub fn last_error(&self) -> String {
        unsafe { CStr::from_ptr(sys::sdflow_ctx_last_error(self.raw)).to_string_lossy().into_owned() }
    }
    /// Turns a status into a Result: a callback's panic when it caused the failure.
    fn check(&self, st: sys::sdflow_status) -> Result<()> {
        if st == sys::SDFLOW_OK {
            return Ok(());
        }
        if let Some(p) = self.shared.take() {
            if st == sys::SDFLOW_E_CALLBACK || st == sys::SDFLOW_E_CANCELLED {
                resume_unwind(p);
            }
        }
        Err(Error::from_code(st, self.last_error()))
    }
    /// Sets a ctx option (`Key::CtxSeed`, `Key::CtxThreads`, ...).
    pub fn set<V: OptionValue>(&self, key: Key, value: V) -> Result<()> {
        set_option(self, self.raw, key, value.to_value(), sys::sdflow_ctx_set_int, sys::sdflow_ctx_set_double,
                   Some(sys::sdflow_ctx_set_u64))
    }
    /// Reads a ctx option as `T`.
    pub fn get<T: OptionValue>(&self, key: Key) -> Result<T> {
        get_option(self, self.raw, key, sys::sdflow_ctx_get_int, sys::sdflow_ctx_get_double,
                   Some(sys::sdflow_ctx_get_u64))
    }
    /// Installs a log callback (`None` removes it). It may be called from worker threads.
    pub fn set_log(&self, f: Option<Box<dyn Fn(LogLevel, &str) + Send + Sync>>) -> Result<()> {
        let mut slot = self.log.try_borrow_mut().map_err(|_| Error::new(Status::EState, "set_log inside the log callback"))?;
        match f {
            None => {
                self.check(unsafe { sys::sdflow_ctx_set_log(self.raw, None, ptr::null_mut()) })?;
                *slot = None;
            }
            Some(f) => {
                let mut h = Box::new(LogHook { f, shared: &*self.shared });
                let u = &mut *h as *mut LogHook as *mut c_void;
                self.check(unsafe { sys::sdflow_ctx_set_log(self.raw, Some(log_tramp), u) })?;
                *slot = Some(h);
            }
        }
        Ok(())
    }
    /// Installs a progress callback `(done, total) -> continue?` used by
    /// samplers, estimators and trainers of this ctx (`None` removes it).
    /// Returning false makes the run fail with `Status::ECancelled`.
    pub fn set_progress<F: FnMut(i64, i64) -> bool + Send + 'static>(&self, f: Option<F>) -> Result<()> {
        let mut slot =
            self.progress.try_borrow_mut().map_err(|_| Error::new(Status::EState, "set_progress inside the callback"))?;
        match f {
            None => {
                self.check(unsafe { sys::sdflow_ctx_set_progress(self.raw, None, ptr::null_mut()) })?;
                *slot = None;
            }
            Some(f) => {
                let mut h = Box::new(ProgressHook { f: Box::new(f), shared: &*self.shared });
                let u = &mut *h as *mut ProgressHook as *mut c_void;
                self.check(unsafe { sys::sdflow_ctx_set_progress(self.raw, Some(progress_tramp), u) })?;
                *slot = Some(h);
            }
        }
        Ok(())
    }
    /// Installs the sum-allreduce hook of data-parallel training (`None` removes it).
    pub fn set_allreduce<F: FnMut(&mut [f64]) -> bool + Send + 'static>(&self, f: Option<F>) -> Result<()> {
        let mut slot = self
            .allreduce
            .try_borrow_mut()
            .map_err(|_| Error::new(Status::EState, "set_allreduce inside the callback"))?;
        match f {
            None => {
                self.check(unsafe { sys::sdflow_ctx_set_allreduce(self.raw, None, ptr::null_mut()) })?;
                *slot = None;
            }
            Some(f) => {
                let mut h = Box::new(AllreduceHook { f: Box::new(f), shared: &*self.shared });
                let u = &mut *h as *mut AllreduceHook as *mut c_void;
                self.check(unsafe { sys::sdflow_ctx_set_allreduce(self.raw, Some(allreduce_tramp), u) })?;
                *slot = Some(h);
            }
        }
        Ok(())
    }

    /// n x d standard normal draws keyed by (seed, stream, first_index + row).
    pub fn rng_normal(&self, stream: u64, first_index: u64, n: usize, d: usize) -> Result<Vec<f64>> {
        let mut out = vec![0.0; mul(n, d, "rng_normal")?];
        self.check(unsafe { sys::sdflow_rng_normal(self.raw, stream, first_index, n, d, out.as_mut_ptr()) })?;
        Ok(out)
    }
    /// n x d uniform draws on [0, 1).
    pub fn rng_uniform(&self, stream: u64, first_index: u64, n: usize, d: usize) -> Result<Vec<f64>> {
        let mut out = vec![0.0; mul(n, d, "rng_uniform")?];
        self.check(unsafe { sys::sdflow_rng_uniform(self.raw, stream, first_index, n, d, out.as_mut_ptr()) })?;
        Ok(out)
    }
    /// Energy distance of the rows of x (m x d) and y (n x d), with its std.
    pub fn energy_distance(&self, d: usize, x: &[f64], y: &[f64]) -> Result<Estimate> {
        let (m, n) = (rows(x.len(), d, "x")?, rows(y.len(), d, "y")?);
        let mut e = Estimate { value: 0.0, std: 0.0 };
        self.check(unsafe {
            sys::sdflow_metric_energy(self.raw, m, n, d, x.as_ptr(), y.as_ptr(), &mut e.value, &mut e.std)
        })?;
        Ok(e)
    }
    /// Unbiased squared MMD (bandwidth 0: median heuristic), with its std.
    pub fn mmd2(&self, d: usize, x: &[f64], y: &[f64], bandwidth: f64) -> Result<Estimate> {
        let (m, n) = (rows(x.len(), d, "x")?, rows(y.len(), d, "y")?);
        let mut e = Estimate { value: 0.0, std: 0.0 };
        self.check(unsafe {
            sys::sdflow_metric_mmd2(self.raw, m, n, d, x.as_ptr(), y.as_ptr(), bandwidth, &mut e.value, &mut e.std)
        })?;
        Ok(e)
    }
    /// Sliced Wasserstein-p over `directions` directions (std: 0 when directions < 2).
    pub fn sliced_wasserstein(&self, d: usize, x: &[f64], y: &[f64], p: f64, directions: i64, stream: u64)
        -> Result<Estimate> {
        let (m, n) = (rows(x.len(), d, "x")?, rows(y.len(), d, "y")?);
        let mut e = Estimate { value: 0.0, std: 0.0 };
        let sp: *mut f64 = if directions >= 2 { &mut e.std } else { ptr::null_mut() };
        self.check(unsafe {
            sys::sdflow_metric_sliced_wasserstein(self.raw, m, n, d, x.as_ptr(), y.as_ptr(), p, directions as c_long,
                                                  stream, &mut e.value, sp)
        })?;
        Ok(e)
    }
    /// Exact linear assignment of an n x n cost matrix: (permutation, minimum total).
    pub fn assignment(&self, n: usize, cost: &[f64]) -> Result<(Vec<usize>, f64)> {
        need(cost.len(), mul(n, n, "cost")?, "cost")?;
        let mut perm = vec![0usize; n];
        let mut total = 0.0;
        self.check(unsafe { sys::sdflow_assignment(self.raw, n, cost.as_ptr(), perm.as_mut_ptr(), &mut total) })?;
        Ok((perm, total))
    }
    /// Entropic OT plan (n x m) of a cost matrix: (plan, final marginal L1 error).
    pub fn sinkhorn(&self, n: usize, m: usize, cost: &[f64], eps: f64, max_iter: i64, tol: f64)
        -> Result<(Vec<f64>, f64)> {
        let nm = mul(n, m, "cost")?;
        need(cost.len(), nm, "cost")?;
        let mut plan = vec![0.0; nm];
        let mut err = 0.0;
        self.check(unsafe {
            sys::sdflow_sinkhorn(self.raw, n, m, cost.as_ptr(), eps, max_iter as c_long, tol, plan.as_mut_ptr(),
                                 &mut err)
        })?;
        Ok((plan, err))
    }
    /// Pairs rows of x0 and x1 (both n x d): (pair, mean paired cost).
    pub fn coupling_pair(&self, kind: Coupling, d: usize, x0: &[f64], x1: &[f64], eps: f64, stream: u64,
                         first_index: u64) -> Result<(Vec<usize>, f64)> {
        let n = rows(x0.len(), d, "x0")?;
        need(x1.len(), x0.len(), "x1")?;
        let mut pair = vec![0usize; n];
        let mut cost = 0.0;
        self.check(unsafe {
            sys::sdflow_coupling_pair(self.raw, kind.raw(), n, d, x0.as_ptr(), x1.as_ptr(), eps, stream,
                                      first_index, pair.as_mut_ptr(), &mut cost)
        })?;
        Ok((pair, cost))
    }
    /// Kernel shard API: merges the triple b into (mx, s, v) for n queries in dimension d.
    pub fn kernel_merge(&self, d: usize, mx: &mut [f64], s: &mut [f64], v: &mut [f64], mx_b: &[f64], s_b: &[f64],
                        v_b: &[f64]) -> Result<()> {
        let n = mx.len();
        let nd = mul(n, d, "v")?;
        need(s.len(), n, "s")?;
        need(v.len(), nd, "v")?;
        need(mx_b.len(), n, "mx_b")?;
        need(s_b.len(), n, "s_b")?;
        need(v_b.len(), nd, "v_b")?;
        self.check(unsafe {
            sys::sdflow_kernel_merge(self.raw, n, d, mx.as_mut_ptr(), s.as_mut_ptr(), v.as_mut_ptr(), mx_b.as_ptr(),
                                     s_b.as_ptr(), v_b.as_ptr())
        })
    }
    /// Kernel shard API: (score, mean, logp) of merged triples at queries x (n x d), times t (n).
    pub fn kernel_finalize(&self, p: Option<&Process<'_>>, d: usize, m_total: usize, x: &[f64], t: &[f64],
                           mx: &[f64], s: &[f64], v: &[f64]) -> Result<(Vec<f64>, Vec<f64>, Vec<f64>)> {
        let n = t.len();
        let nd = mul(n, d, "x")?;
        need(x.len(), nd, "x")?;
        need(mx.len(), n, "mx")?;
        need(s.len(), n, "s")?;
        need(v.len(), nd, "v")?;
        let (mut score, mut mean, mut logp) = (vec![0.0; nd], vec![0.0; nd], vec![0.0; n]);
        self.check(unsafe {
            sys::sdflow_kernel_finalize(self.raw, raw_process(p), n, d, m_total, x.as_ptr(), t.as_ptr(), mx.as_ptr(),
                                        s.as_ptr(), v.as_ptr(), score.as_mut_ptr(), mean.as_mut_ptr(),
                                        logp.as_mut_ptr())
        })?;
        Ok((score, mean, logp))
    }
}

impl Drop for Ctx {
    fn drop(&mut self) {
        // The hooks (fields) are dropped after the C ctx that points at them.
        unsafe { sys::sdflow_ctx_free(self.raw) }
    }
}

impl fmt::Debug for Ctx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Ctx(seed = {:?})", self.get::<u64>(Key::CtxSeed).ok())
    }
}

/// Raw Philox4x32-10 block function (counter, key) -> 4 words.
pub fn philox4x32(ctr: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let mut out = [0u32; 4];
    unsafe { sys::sdflow_rng_philox4x32(ctr.as_ptr(), key.as_ptr(), out.as_mut_ptr()) };
    out
}

/// exp as the kernel sums compute it.
pub fn kernel_exp(x: &[f64]) -> Result<Vec<f64>> {
    let mut out = vec![0.0; x.len()];
    check_free(unsafe { sys::sdflow_kernel_exp(x.len(), x.as_ptr(), out.as_mut_ptr()) })?;
    Ok(out)
}

fn raw_process(p: Option<&Process<'_>>) -> *const sys::sdflow_process {
    p.map_or(ptr::null(), |p| p.raw as *const _)
}

// ---- process ---------------------------------------------------------------------

/// A noising process (process.h) of context `'c`.
pub struct Process<'c> {
    raw: *mut sys::sdflow_process,
    ctx: &'c Ctx,
}

/// Coefficients of a process at n times.
#[derive(Debug, Clone, PartialEq)]
pub struct Coefficients {
    pub alpha: Vec<f64>,
    pub sigma: Vec<f64>,
    pub f: Vec<f64>,
    pub g: Vec<f64>,
}

impl<'c> Process<'c> {
    pub fn new(ctx: &'c Ctx, kind: ProcessKind) -> Result<Process<'c>> {
        let mut raw = ptr::null_mut();
        ctx.check(unsafe { sys::sdflow_process_create(ctx.raw, kind.raw(), &mut raw) })?;
        Ok(Process { raw, ctx })
    }
    pub fn as_ptr(&self) -> *mut sys::sdflow_process {
        self.raw
    }
    pub fn kind(&self) -> Option<ProcessKind> {
        ProcessKind::from_raw(unsafe { sys::sdflow_process_get_kind(self.raw) })
    }
    pub fn is_interpolant(&self) -> bool {
        unsafe { sys::sdflow_process_is_interpolant(self.raw) != 0 }
    }
    pub fn set<V: OptionValue>(&mut self, key: Key, value: V) -> Result<()> {
        set_option(self.ctx, self.raw, key, value.to_value(), sys::sdflow_process_set_int,
                   sys::sdflow_process_set_double, None)
    }
    pub fn get<T: OptionValue>(&self, key: Key) -> Result<T> {
        get_option(self.ctx, self.raw, key, sys::sdflow_process_get_int, sys::sdflow_process_get_double, None)
    }
    /// Valid time range (t_eps, T).
    pub fn time_range(&self) -> Result<(f64, f64)> {
        let (mut lo, mut hi) = (0.0, 0.0);
        self.ctx.check(unsafe { sys::sdflow_process_time_range(self.raw, &mut lo, &mut hi) })?;
        Ok((lo, hi))
    }
    /// alpha, sigma, f and g at the times t (f and g are infinite, hence refused, at t = 0 of interpolants).
    pub fn coefficients(&self, t: &[f64]) -> Result<Coefficients> {
        let n = t.len();
        let mut c = Coefficients { alpha: vec![0.0; n], sigma: vec![0.0; n], f: vec![0.0; n], g: vec![0.0; n] };
        self.ctx.check(unsafe {
            sys::sdflow_process_coefficients(self.raw, n, t.as_ptr(), c.alpha.as_mut_ptr(), c.sigma.as_mut_ptr(),
                                             c.f.as_mut_ptr(), c.g.as_mut_ptr())
        })?;
        Ok(c)
    }
    /// alpha and sigma only (valid at t = 0 too).
    pub fn alpha_sigma(&self, t: &[f64]) -> Result<(Vec<f64>, Vec<f64>)> {
        let n = t.len();
        let (mut a, mut s) = (vec![0.0; n], vec![0.0; n]);
        self.ctx.check(unsafe {
            sys::sdflow_process_coefficients(self.raw, n, t.as_ptr(), a.as_mut_ptr(), s.as_mut_ptr(),
                                             ptr::null_mut(), ptr::null_mut())
        })?;
        Ok((a, s))
    }
    /// Interpolant coefficients [a, b, a', b', gamma, gamma'] at t.
    pub fn interpolant(&self, t: &[f64]) -> Result<[Vec<f64>; 6]> {
        let n = t.len();
        let mut o: [Vec<f64>; 6] = Default::default();
        for v in o.iter_mut() {
            *v = vec![0.0; n];
        }
        let [a, b, da, db, g, dg] = &mut o;
        self.ctx.check(unsafe {
            sys::sdflow_process_interpolant(self.raw, n, t.as_ptr(), a.as_mut_ptr(), b.as_mut_ptr(), da.as_mut_ptr(),
                                            db.as_mut_ptr(), g.as_mut_ptr(), dg.as_mut_ptr())
        })?;
        Ok(o)
    }
    /// n x d prior draws.
    pub fn prior_sample(&self, stream: u64, first_index: u64, n: usize, d: usize) -> Result<Vec<f64>> {
        let mut out = vec![0.0; mul(n, d, "prior_sample")?];
        self.ctx.check(unsafe {
            sys::sdflow_process_prior_sample(self.raw, stream, first_index, n, d, out.as_mut_ptr())
        })?;
        Ok(out)
    }
    /// Prior log-density at the rows of x (n x d).
    pub fn prior_logpdf(&self, d: usize, x: &[f64]) -> Result<Vec<f64>> {
        let n = rows(x.len(), d, "x")?;
        let mut out = vec![0.0; n];
        self.ctx.check(unsafe { sys::sdflow_process_prior_logpdf(self.raw, n, d, x.as_ptr(), out.as_mut_ptr()) })?;
        Ok(out)
    }
    /// (x_t, eps) with x_t = alpha(t) x0 + sigma(t) eps (x0: n x d, t: n).
    pub fn perturb(&self, stream: u64, first_index: u64, d: usize, x0: &[f64], t: &[f64])
        -> Result<(Vec<f64>, Vec<f64>)> {
        let n = rows(x0.len(), d, "x0")?;
        need(t.len(), n, "t")?;
        let (mut xt, mut eps) = (vec![0.0; x0.len()], vec![0.0; x0.len()]);
        self.ctx.check(unsafe {
            sys::sdflow_process_perturb(self.raw, stream, first_index, n, d, x0.as_ptr(), t.as_ptr(),
                                        xt.as_mut_ptr(), eps.as_mut_ptr())
        })?;
        Ok((xt, eps))
    }
    /// Forward Euler-Maruyama from t0 to t1 in `steps` steps.
    pub fn simulate(&self, stream: u64, first_index: u64, d: usize, x_in: &[f64], t0: f64, t1: f64, steps: i64)
        -> Result<Vec<f64>> {
        let n = rows(x_in.len(), d, "x_in")?;
        let mut out = vec![0.0; x_in.len()];
        self.ctx.check(unsafe {
            sys::sdflow_process_simulate(self.raw, stream, first_index, n, d, x_in.as_ptr(), t0, t1,
                                         steps as c_long, out.as_mut_ptr())
        })?;
        Ok(out)
    }
    /// Converts outputs `input` of kind `from` at (x, t) into kind `to`.
    pub fn convert(&self, d: usize, x: &[f64], t: &[f64], from: Output, input: &[f64], to: Output)
        -> Result<Vec<f64>> {
        let n = rows(x.len(), d, "x")?;
        need(t.len(), n, "t")?;
        need(input.len(), x.len(), "input")?;
        let mut out = vec![0.0; x.len()];
        self.ctx.check(unsafe {
            sys::sdflow_process_convert(self.raw, n, d, x.as_ptr(), t.as_ptr(), from.raw(), input.as_ptr(), to.raw(),
                                        out.as_mut_ptr())
        })?;
        Ok(out)
    }
}

impl Drop for Process<'_> {
    fn drop(&mut self) {
        unsafe { sys::sdflow_process_free(self.raw) }
    }
}

impl fmt::Debug for Process<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Process({:?})", self.kind())
    }
}

// ---- model --------------------------------------------------------------------------

type ModelFn = dyn Fn(&[f64], &[f64], &mut [f64]) -> bool + Send + Sync;
type JvpFn = dyn Fn(&[f64], &[f64], &[f64], &mut [f64]) -> bool + Send + Sync;

struct ModelHook {
    f: Box<ModelFn>,
    jvp: Option<Box<JvpFn>>,
    shared: *const Shared,
}

unsafe fn sl<'a>(p: *const f64, n: usize) -> &'a [f64] {
    if n == 0 || p.is_null() {
        &[]
    } else {
        std::slice::from_raw_parts(p, n)
    }
}
unsafe fn sl_mut<'a>(p: *mut f64, n: usize) -> &'a mut [f64] {
    if n == 0 || p.is_null() {
        &mut []
    } else {
        std::slice::from_raw_parts_mut(p, n)
    }
}

unsafe extern "C" fn model_tramp(n: usize, d: usize, x: *const f64, t: *const f64, out: *mut f64, u: *mut c_void)
    -> c_int {
    let h = &*(u as *const ModelHook);
    let nd = n.saturating_mul(d);
    match catch_unwind(AssertUnwindSafe(|| (h.f)(sl(x, nd), sl(t, n), sl_mut(out, nd)))) {
        Ok(true) => 0,
        Ok(false) => 1,
        Err(p) => {
            (*h.shared).stash(p);
            1
        }
    }
}
unsafe extern "C" fn jvp_tramp(n: usize, d: usize, x: *const f64, t: *const f64, v: *const f64, jv: *mut f64,
                               u: *mut c_void) -> c_int {
    let h = &*(u as *const ModelHook);
    let nd = n.saturating_mul(d);
    let f = match &h.jvp {
        Some(f) => f,
        None => return 1,
    };
    match catch_unwind(AssertUnwindSafe(|| f(sl(x, nd), sl(t, n), sl(v, nd), sl_mut(jv, nd)))) {
        Ok(true) => 0,
        Ok(false) => 1,
        Err(p) => {
            (*h.shared).stash(p);
            1
        }
    }
}

/// A named parameter tensor of an MLP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    pub name: String,
    pub rows: usize,
    /// 0 for 1-D tensors.
    pub cols: usize,
}

/// QCSGM asymmetry of a score's Jacobian (model.h).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Asymmetry {
    pub asymmetry: f64,
    pub asymmetry_se: f64,
    pub normalized: f64,
    pub normalized_se: f64,
}

/// A score model (gaussian, gmm, kernel, mlp, callback) of context `'c`.
pub struct Model<'c> {
    raw: *mut sys::sdflow_model,
    ctx: &'c Ctx,
    hook: Option<Box<ModelHook>>,
}

impl<'c> Model<'c> {
    fn wrap(ctx: &'c Ctx, st: sys::sdflow_status, raw: *mut sys::sdflow_model) -> Result<Model<'c>> {
        ctx.check(st)?;
        Ok(Model { raw, ctx, hook: None })
    }
    /// N(mean, cov): d = mean.len(), cov d x d SPD.
    pub fn gaussian(ctx: &'c Ctx, mean: &[f64], cov: &[f64]) -> Result<Model<'c>> {
        let d = mean.len();
        need(cov.len(), mul(d, d, "cov")?, "cov")?;
        let mut raw = ptr::null_mut();
        let st = unsafe { sys::sdflow_model_create_gaussian(ctx.raw, d, mean.as_ptr(), cov.as_ptr(), &mut raw) };
        Model::wrap(ctx, st, raw)
    }
    /// Mixture of k = weights.len() Gaussians in dimension d (means k x d, covs k x d x d).
    pub fn gmm(ctx: &'c Ctx, d: usize, weights: &[f64], means: &[f64], covs: &[f64]) -> Result<Model<'c>> {
        let k = weights.len();
        need(means.len(), mul(k, d, "means")?, "means")?;
        need(covs.len(), mul(mul(k, d, "covs")?, d, "covs")?, "covs")?;
        let mut raw = ptr::null_mut();
        let st = unsafe {
            sys::sdflow_model_create_gmm(ctx.raw, k, d, weights.as_ptr(), means.as_ptr(), covs.as_ptr(), &mut raw)
        };
        Model::wrap(ctx, st, raw)
    }
    /// Kernel model of the rows of y (m x d).
    pub fn kernel(ctx: &'c Ctx, d: usize, y: &[f64]) -> Result<Model<'c>> {
        let m = rows(y.len(), d, "y")?;
        let mut raw = ptr::null_mut();
        let st = unsafe { sys::sdflow_model_create_kernel(ctx.raw, m, d, y.as_ptr(), &mut raw) };
        Model::wrap(ctx, st, raw)
    }
    /// MLP score model on R^d (set architecture options before first use).
    pub fn mlp(ctx: &'c Ctx, d: usize) -> Result<Model<'c>> {
        let mut raw = ptr::null_mut();
        let st = unsafe { sys::sdflow_model_create_mlp(ctx.raw, d, &mut raw) };
        Model::wrap(ctx, st, raw)
    }
    /// User model producing outputs of kind `produces`: `f(x, t, out)` writes
    /// out (n x d) for points x (n x d) at times t (n) and returns true; false
    /// (or a panic, which resumes from the calling wrapper) fails the call.
    pub fn callback<F>(ctx: &'c Ctx, d: usize, produces: Output, f: F) -> Result<Model<'c>>
    where
        F: Fn(&[f64], &[f64], &mut [f64]) -> bool + Send + Sync + 'static,
    {
        let mut hook = Box::new(ModelHook { f: Box::new(f), jvp: None, shared: &*ctx.shared });
        let u = &mut *hook as *mut ModelHook as *mut c_void;
        let mut raw = ptr::null_mut();
        let st = unsafe { sys::sdflow_model_create_callback(ctx.raw, d, produces.raw(), Some(model_tramp), u, &mut raw) };
        let mut m = Model::wrap(ctx, st, raw)?;
        m.hook = Some(hook);
        Ok(m)
    }
    /// Adds a JVP `jvp(x, t, v, jv)`: jv_i = J(x_i, t_i) v_i (callback models only).
    pub fn set_jvp<F>(&mut self, jvp: F) -> Result<()>
    where
        F: Fn(&[f64], &[f64], &[f64], &mut [f64]) -> bool + Send + Sync + 'static,
    {
        let h = match self.hook.as_mut() {
            Some(h) => h,
            None => return Err(Error::new(Status::EUnsupported, "set_jvp: not a callback model")),
        };
        h.jvp = Some(Box::new(jvp));
        let u = &mut **h as *mut ModelHook as *mut c_void;
        self.ctx.check(unsafe { sys::sdflow_model_set_callback_jvp(self.raw, Some(jvp_tramp), u) })
    }
    /// Loads a model file: the model and, if saved with one, its process.
    pub fn load(ctx: &'c Ctx, path: impl AsRef<Path>) -> Result<(Model<'c>, Option<Process<'c>>)> {
        let s = path.as_ref().to_str().ok_or_else(|| invalid("path is not UTF-8".to_string()))?;
        let c = cstring(s, "path")?;
        let (mut m, mut p) = (ptr::null_mut(), ptr::null_mut());
        let st = unsafe { sys::sdflow_model_load(ctx.raw, c.as_ptr(), &mut m, &mut p) };
        Model::loaded(ctx, st, m, p)
    }
    /// Loads a model file from memory.
    pub fn load_buffer(ctx: &'c Ctx, buf: &[u8]) -> Result<(Model<'c>, Option<Process<'c>>)> {
        let (mut m, mut p) = (ptr::null_mut(), ptr::null_mut());
        let st = unsafe { sys::sdflow_model_load_buffer(ctx.raw, buf.as_ptr() as *const c_void, buf.len(), &mut m, &mut p) };
        Model::loaded(ctx, st, m, p)
    }
    fn loaded(ctx: &'c Ctx, st: sys::sdflow_status, m: *mut sys::sdflow_model, p: *mut sys::sdflow_process)
        -> Result<(Model<'c>, Option<Process<'c>>)> {
        ctx.check(st)?;
        let proc_ = if p.is_null() { None } else { Some(Process { raw: p, ctx }) };
        Ok((Model { raw: m, ctx, hook: None }, proc_))
    }

    pub fn as_ptr(&self) -> *mut sys::sdflow_model {
        self.raw
    }
    pub fn kind(&self) -> Option<ModelKind> {
        ModelKind::from_raw(unsafe { sys::sdflow_model_get_kind(self.raw) })
    }
    /// The dimension d.
    pub fn dim(&self) -> usize {
        unsafe { sys::sdflow_model_dim(self.raw) }
    }
    pub fn set<V: OptionValue>(&mut self, key: Key, value: V) -> Result<()> {
        set_option(self.ctx, self.raw, key, value.to_value(), sys::sdflow_model_set_int, sys::sdflow_model_set_double,
                   Some(sys::sdflow_model_set_u64))
    }
    pub fn get<T: OptionValue>(&self, key: Key) -> Result<T> {
        get_option(self.ctx, self.raw, key, sys::sdflow_model_get_int, sys::sdflow_model_get_double,
                   Some(sys::sdflow_model_get_u64))
    }
    fn rows_of(&self, x: &[f64], t: &[f64]) -> Result<usize> {
        let n = rows(x.len(), self.dim(), "x")?;
        need(t.len(), n, "t")?;
        Ok(n)
    }
    /// Output of kind `kind` at x (n x d), t (n) under process p (None: smoothing at sigma = t).
    pub fn eval(&self, p: Option<&Process<'_>>, x: &[f64], t: &[f64], kind: Output) -> Result<Vec<f64>> {
        let mut out = vec![0.0; x.len()];
        self.eval_into(p, x, t, kind, &mut out)?;
        Ok(out)
    }
    /// As `eval`, into `out` (n x d).
    pub fn eval_into(&self, p: Option<&Process<'_>>, x: &[f64], t: &[f64], kind: Output, out: &mut [f64])
        -> Result<()> {
        let n = self.rows_of(x, t)?;
        need(out.len(), x.len(), "out")?;
        self.ctx.check(unsafe {
            sys::sdflow_model_eval(self.raw, raw_process(p), n, x.as_ptr(), t.as_ptr(), kind.raw(), out.as_mut_ptr())
        })
    }
    pub fn score(&self, p: Option<&Process<'_>>, x: &[f64], t: &[f64]) -> Result<Vec<f64>> {
        let n = self.rows_of(x, t)?;
        let mut out = vec![0.0; x.len()];
        self.ctx.check(unsafe {
            sys::sdflow_model_score(self.raw, raw_process(p), n, x.as_ptr(), t.as_ptr(), out.as_mut_ptr())
        })?;
        Ok(out)
    }
    /// Exact log-density of p_t at the rows of x (gaussian, gmm, kernel).
    pub fn logpdf(&self, p: Option<&Process<'_>>, x: &[f64], t: &[f64]) -> Result<Vec<f64>> {
        let n = self.rows_of(x, t)?;
        let mut out = vec![0.0; n];
        self.ctx.check(unsafe {
            sys::sdflow_model_logpdf(self.raw, raw_process(p), n, x.as_ptr(), t.as_ptr(), out.as_mut_ptr())
        })?;
        Ok(out)
    }
    /// Score Jacobians, n x d x d.
    pub fn jacobian(&self, p: Option<&Process<'_>>, x: &[f64], t: &[f64]) -> Result<Vec<f64>> {
        let n = self.rows_of(x, t)?;
        let mut out = vec![0.0; mul(x.len(), self.dim(), "jacobian")?];
        self.ctx.check(unsafe {
            sys::sdflow_model_jacobian(self.raw, raw_process(p), n, x.as_ptr(), t.as_ptr(), out.as_mut_ptr())
        })?;
        Ok(out)
    }
    pub fn divergence(&self, p: Option<&Process<'_>>, x: &[f64], t: &[f64]) -> Result<Vec<f64>> {
        let n = self.rows_of(x, t)?;
        let mut out = vec![0.0; n];
        self.ctx.check(unsafe {
            sys::sdflow_model_divergence(self.raw, raw_process(p), n, x.as_ptr(), t.as_ptr(), out.as_mut_ptr())
        })?;
        Ok(out)
    }
    /// QCSGM asymmetry (probes 0: exact; K >= 2: Hutchinson with SEs).
    pub fn asymmetry(&self, p: Option<&Process<'_>>, x: &[f64], t: &[f64], probes: usize, stream: u64)
        -> Result<Asymmetry> {
        let n = self.rows_of(x, t)?;
        let mut o = [0.0; 4];
        self.ctx.check(unsafe {
            sys::sdflow_model_asymmetry(self.raw, raw_process(p), n, x.as_ptr(), t.as_ptr(), probes, stream,
                                        o.as_mut_ptr())
        })?;
        Ok(Asymmetry { asymmetry: o[0], asymmetry_se: o[1], normalized: o[2], normalized_se: o[3] })
    }
    /// n exact data samples (gaussian, gmm), n x d.
    pub fn sample(&self, n: usize, stream: u64, first_index: u64) -> Result<Vec<f64>> {
        let mut out = vec![0.0; mul(n, self.dim(), "sample")?];
        self.ctx.check(unsafe { sys::sdflow_model_sample(self.raw, stream, first_index, n, out.as_mut_ptr()) })?;
        Ok(out)
    }

    /// Trainable parameters of an MLP.
    pub fn param_count(&self) -> Result<usize> {
        let mut c = 0;
        self.ctx.check(unsafe { sys::sdflow_model_param_count(self.raw, &mut c) })?;
        Ok(c)
    }
    pub fn param_tensors(&self) -> Result<usize> {
        let mut c = 0;
        self.ctx.check(unsafe { sys::sdflow_model_param_tensors(self.raw, &mut c) })?;
        Ok(c)
    }
    pub fn param_info(&self, index: usize) -> Result<TensorInfo> {
        let mut name: *const c_char = ptr::null();
        let (mut r, mut c) = (0, 0);
        self.ctx.check(unsafe { sys::sdflow_model_param_info(self.raw, index, &mut name, &mut r, &mut c) })?;
        let name = if name.is_null() { String::new() } else { unsafe { CStr::from_ptr(name) }.to_string_lossy().into_owned() };
        Ok(TensorInfo { name, rows: r, cols: c })
    }
    /// Tensor `name` (row-major, `count` values).
    pub fn get_param(&self, name: &str, count: usize) -> Result<Vec<f64>> {
        let c = cstring(name, "name")?;
        let mut v = vec![0.0; count];
        self.ctx.check(unsafe { sys::sdflow_model_get_param(self.raw, c.as_ptr(), count, v.as_mut_ptr()) })?;
        Ok(v)
    }
    pub fn set_param(&mut self, name: &str, values: &[f64]) -> Result<()> {
        let c = cstring(name, "name")?;
        self.ctx.check(unsafe { sys::sdflow_model_set_param(self.raw, c.as_ptr(), values.len(), values.as_ptr()) })
    }
    /// All trainable parameters, flat.
    pub fn get_params(&self) -> Result<Vec<f64>> {
        let mut th = vec![0.0; self.param_count()?];
        self.ctx.check(unsafe { sys::sdflow_model_get_params(self.raw, th.len(), th.as_mut_ptr()) })?;
        Ok(th)
    }
    pub fn set_params(&mut self, theta: &[f64]) -> Result<()> {
        need(theta.len(), self.param_count()?, "theta")?;
        self.ctx.check(unsafe { sys::sdflow_model_set_params(self.raw, theta.len(), theta.as_ptr()) })
    }
    /// (d/dtheta, d/dx) of sum_i w_i . f(x_i, t_i).
    pub fn param_grad(&self, p: Option<&Process<'_>>, x: &[f64], t: &[f64], w: &[f64]) -> Result<(Vec<f64>, Vec<f64>)> {
        let n = self.rows_of(x, t)?;
        need(w.len(), x.len(), "w")?;
        let mut g = vec![0.0; self.param_count()?];
        let mut gx = vec![0.0; x.len()];
        self.ctx.check(unsafe {
            sys::sdflow_model_param_grad(self.raw, raw_process(p), n, x.as_ptr(), t.as_ptr(), w.as_ptr(),
                                         g.as_mut_ptr(), gx.as_mut_ptr())
        })?;
        Ok((g, gx))
    }
    /// d/dtheta of sum_i a_i^T J(x_i, t_i) b_i.
    pub fn param_grad_jac(&self, p: Option<&Process<'_>>, x: &[f64], t: &[f64], a: &[f64], b: &[f64]) -> Result<Vec<f64>> {
        let n = self.rows_of(x, t)?;
        need(a.len(), x.len(), "a")?;
        need(b.len(), x.len(), "b")?;
        let mut g = vec![0.0; self.param_count()?];
        self.ctx.check(unsafe {
            sys::sdflow_model_param_grad_jac(self.raw, raw_process(p), n, x.as_ptr(), t.as_ptr(), a.as_ptr(),
                                             b.as_ptr(), g.as_mut_ptr())
        })?;
        Ok(g)
    }
    /// Kernel shard partial sums (mx, s, v) at queries x (n x d), t (n).
    pub fn kernel_partial(&self, p: Option<&Process<'_>>, x: &[f64], t: &[f64]) -> Result<(Vec<f64>, Vec<f64>, Vec<f64>)> {
        let n = self.rows_of(x, t)?;
        let (mut mx, mut s, mut v) = (vec![0.0; n], vec![0.0; n], vec![0.0; x.len()]);
        self.ctx.check(unsafe {
            sys::sdflow_model_kernel_partial(self.raw, raw_process(p), n, x.as_ptr(), t.as_ptr(), mx.as_mut_ptr(),
                                             s.as_mut_ptr(), v.as_mut_ptr())
        })?;
        Ok((mx, s, v))
    }
    /// Saves the model (and p) as a model file.
    pub fn save(&self, path: impl AsRef<Path>, p: Option<&Process<'_>>) -> Result<()> {
        let s = path.as_ref().to_str().ok_or_else(|| invalid("path is not UTF-8".to_string()))?;
        let c = cstring(s, "path")?;
        self.ctx.check(unsafe { sys::sdflow_model_save(self.raw, raw_process(p), c.as_ptr()) })
    }
    /// The model file's bytes.
    pub fn save_buffer(&self, p: Option<&Process<'_>>) -> Result<Vec<u8>> {
        let mut size = 0;
        self.ctx.check(unsafe { sys::sdflow_model_save_buffer(self.raw, raw_process(p), ptr::null_mut(), 0, &mut size) })?;
        let mut buf = vec![0u8; size];
        self.ctx.check(unsafe {
            sys::sdflow_model_save_buffer(self.raw, raw_process(p), buf.as_mut_ptr() as *mut c_void, buf.len(), &mut size)
        })?;
        buf.truncate(size);
        Ok(buf)
    }
}

impl Drop for Model<'_> {
    fn drop(&mut self) {
        // the C model first: its callback points at the hook dropped afterwards
        unsafe { sys::sdflow_model_free(self.raw) }
    }
}

impl fmt::Debug for Model<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Model({:?}, d = {})", self.kind(), self.dim())
    }
}

// ---- sampler -------------------------------------------------------------------------

/// A transport algorithm (sampler.h). `'a` covers the ctx and every process
/// and model bound to it; its dimension is that of its bound models.
pub struct Sampler<'a> {
    raw: *mut sys::sdflow_sampler,
    ctx: &'a Ctx,
    d: usize,
    _bound: PhantomData<&'a ()>,
}

impl<'a> Sampler<'a> {
    pub fn new(ctx: &'a Ctx, kind: SamplerKind) -> Result<Sampler<'a>> {
        let mut raw = ptr::null_mut();
        ctx.check(unsafe { sys::sdflow_sampler_create(ctx.raw, kind.raw(), &mut raw) })?;
        Ok(Sampler { raw, ctx, d: 0, _bound: PhantomData })
    }
    pub fn as_ptr(&self) -> *mut sys::sdflow_sampler {
        self.raw
    }
    pub fn set_process(&mut self, p: &'a Process<'_>) -> Result<()> {
        self.ctx.check(unsafe { sys::sdflow_sampler_set_process(self.raw, p.raw) })
    }
    /// Binds `m` to `role` (it stays borrowed while the sampler lives).
    pub fn set_model(&mut self, role: Role, m: &'a Model<'_>) -> Result<()> {
        self.ctx.check(unsafe { sys::sdflow_sampler_set_model(self.raw, role.raw(), m.raw) })?;
        self.d = m.dim();
        Ok(())
    }
    pub fn unset_model(&mut self, role: Role) -> Result<()> {
        self.ctx.check(unsafe { sys::sdflow_sampler_set_model(self.raw, role.raw(), ptr::null_mut()) })
    }
    pub fn set<V: OptionValue>(&mut self, key: Key, value: V) -> Result<()> {
        set_option(self.ctx, self.raw, key, value.to_value(), sys::sdflow_sampler_set_int,
                   sys::sdflow_sampler_set_double, Some(sys::sdflow_sampler_set_u64))
    }
    pub fn get<T: OptionValue>(&self, key: Key) -> Result<T> {
        get_option(self.ctx, self.raw, key, sys::sdflow_sampler_get_int, sys::sdflow_sampler_get_double,
                   Some(sys::sdflow_sampler_get_u64))
    }
    /// Dimension of the bound models (0 before one is bound).
    pub fn dim(&self) -> usize {
        self.d
    }
    fn need_dim(&self) -> Result<usize> {
        if self.d == 0 {
            return Err(Error::new(Status::EState, "sampler has no model bound: its dimension is unknown"));
        }
        Ok(self.d)
    }
    /// n samples from the default start (n x d).
    pub fn run(&mut self, n: usize) -> Result<Vec<f64>> {
        let mut out = vec![0.0; mul(n, self.need_dim()?, "run")?];
        self.ctx.check(unsafe { sys::sdflow_sampler_run(self.raw, n, ptr::null(), out.as_mut_ptr()) })?;
        Ok(out)
    }
    /// Transports the rows of x_init (n x d).
    pub fn run_from(&mut self, x_init: &[f64]) -> Result<Vec<f64>> {
        let n = rows(x_init.len(), self.need_dim()?, "x_init")?;
        let mut out = vec![0.0; x_init.len()];
        self.ctx.check(unsafe { sys::sdflow_sampler_run(self.raw, n, x_init.as_ptr(), out.as_mut_ptr()) })?;
        Ok(out)
    }
    /// n samples into `out` (n x d), from x_init (n x d) or the default start.
    pub fn run_into(&mut self, n: usize, x_init: Option<&[f64]>, out: &mut [f64]) -> Result<()> {
        let nd = mul(n, self.need_dim()?, "run")?;
        need(out.len(), nd, "out")?;
        let xi = match x_init {
            Some(x) => {
                need(x.len(), nd, "x_init")?;
                x.as_ptr()
            }
            None => ptr::null(),
        };
        self.ctx.check(unsafe { sys::sdflow_sampler_run(self.raw, n, xi, out.as_mut_ptr()) })
    }
    /// PF-ODE / interpolant: moves the rows of x_in from t_from to t_to.
    pub fn transport(&mut self, t_from: f64, t_to: f64, x_in: &[f64]) -> Result<Vec<f64>> {
        let n = rows(x_in.len(), self.need_dim()?, "x_in")?;
        let mut out = vec![0.0; x_in.len()];
        self.ctx.check(unsafe { sys::sdflow_sampler_transport(self.raw, n, t_from, t_to, x_in.as_ptr(), out.as_mut_ptr()) })?;
        Ok(out)
    }
    pub fn set_time_grid(&mut self, times: &[f64]) -> Result<()> {
        self.ctx.check(unsafe { sys::sdflow_sampler_set_time_grid(self.raw, times.len(), times.as_ptr()) })
    }
    /// A statistic of the last run.
    pub fn stat(&self, which: Stat) -> Result<f64> {
        let mut v = 0.0;
        self.ctx.check(unsafe { sys::sdflow_sampler_get_stat(self.raw, which.raw(), &mut v) })?;
        Ok(v)
    }
    /// DSB: `iterations` more IPF iterations.
    pub fn fit(&mut self, iterations: i64) -> Result<()> {
        self.ctx.check(unsafe { sys::sdflow_sampler_fit(self.raw, iterations as c_long) })
    }
}

impl Drop for Sampler<'_> {
    fn drop(&mut self) {
        unsafe { sys::sdflow_sampler_free(self.raw) }
    }
}

// ---- density --------------------------------------------------------------------------

/// A log-density estimator (density.h).
pub struct Density<'a> {
    raw: *mut sys::sdflow_density,
    ctx: &'a Ctx,
    d: usize,
    _bound: PhantomData<&'a ()>,
}

impl<'a> Density<'a> {
    pub fn new(ctx: &'a Ctx, kind: DensityKind) -> Result<Density<'a>> {
        let mut raw = ptr::null_mut();
        ctx.check(unsafe { sys::sdflow_density_create(ctx.raw, kind.raw(), &mut raw) })?;
        Ok(Density { raw, ctx, d: 0, _bound: PhantomData })
    }
    pub fn as_ptr(&self) -> *mut sys::sdflow_density {
        self.raw
    }
    pub fn set_process(&mut self, p: &'a Process<'_>) -> Result<()> {
        self.ctx.check(unsafe { sys::sdflow_density_set_process(self.raw, p.raw) })
    }
    pub fn set_model(&mut self, m: &'a Model<'_>) -> Result<()> {
        self.ctx.check(unsafe { sys::sdflow_density_set_model(self.raw, m.raw) })?;
        self.d = m.dim();
        Ok(())
    }
    /// Interpolant base rho_0 (None: N(0, I)).
    pub fn set_base(&mut self, base: Option<&'a Model<'_>>) -> Result<()> {
        let b = base.map_or(ptr::null_mut(), |m| m.raw);
        self.ctx.check(unsafe { sys::sdflow_density_set_base(self.raw, b) })
    }
    pub fn set<V: OptionValue>(&mut self, key: Key, value: V) -> Result<()> {
        set_option(self.ctx, self.raw, key, value.to_value(), sys::sdflow_density_set_int,
                   sys::sdflow_density_set_double, Some(sys::sdflow_density_set_u64))
    }
    pub fn get<T: OptionValue>(&self, key: Key) -> Result<T> {
        get_option(self.ctx, self.raw, key, sys::sdflow_density_get_int, sys::sdflow_density_get_double,
                   Some(sys::sdflow_density_get_u64))
    }
    pub fn dim(&self) -> usize {
        self.d
    }
    /// Log-density (nats) of the rows of x (n x d).
    pub fn logpdf(&mut self, x: &[f64]) -> Result<Vec<f64>> {
        Ok(self.logpdf_se(x)?.0)
    }
    /// (log-density, standard error) of the rows of x.
    pub fn logpdf_se(&mut self, x: &[f64]) -> Result<(Vec<f64>, Vec<f64>)> {
        let n = rows(x.len(), self.d, "x")?;
        let (mut lp, mut se) = (vec![0.0; n], vec![0.0; n]);
        self.ctx.check(unsafe { sys::sdflow_density_logpdf(self.raw, n, x.as_ptr(), lp.as_mut_ptr(), se.as_mut_ptr()) })?;
        Ok((lp, se))
    }
    /// (bits per dimension, standard error) of 0..255 data.
    pub fn bits_per_dim(&mut self, x: &[f64]) -> Result<(Vec<f64>, Vec<f64>)> {
        let n = rows(x.len(), self.d, "x")?;
        let (mut b, mut se) = (vec![0.0; n], vec![0.0; n]);
        self.ctx.check(unsafe {
            sys::sdflow_density_bits_per_dim(self.raw, n, x.as_ptr(), b.as_mut_ptr(), se.as_mut_ptr())
        })?;
        Ok((b, se))
    }
}

impl Drop for Density<'_> {
    fn drop(&mut self) {
        unsafe { sys::sdflow_density_free(self.raw) }
    }
}

// ---- trainer --------------------------------------------------------------------------

struct BatchHook<'a> {
    f: Box<dyn FnMut(i64, u64, usize, &mut [f64]) -> bool + 'a>,
    shared: *const Shared,
}

unsafe extern "C" fn batch_tramp(step: c_long, first_row: u64, nrows: usize, d: usize, x0: *mut f64, u: *mut c_void)
    -> c_int {
    let h = &mut *(u as *mut BatchHook<'static>);
    let x = sl_mut(x0, nrows.saturating_mul(d));
    match catch_unwind(AssertUnwindSafe(|| (h.f)(step as i64, first_row, nrows, x))) {
        Ok(true) => 0,
        Ok(false) => 1,
        Err(p) => {
            (*h.shared).stash(p);
            1
        }
    }
}

/// Fits an MLP score model (trainer.h).
pub struct Trainer<'a> {
    raw: *mut sys::sdflow_trainer,
    ctx: &'a Ctx,
    model: *mut sys::sdflow_model,
    d: usize,
    batch: Option<Box<BatchHook<'a>>>,
    // The model and process a checkpoint load rebuilt: owned here (not
    // borrowed) and dropped after the C trainer that points at them.
    owned: Option<(Model<'a>, Option<Process<'a>>)>,
}

impl<'a> Trainer<'a> {
    pub fn new(ctx: &'a Ctx, kind: LossKind) -> Result<Trainer<'a>> {
        let mut raw = ptr::null_mut();
        ctx.check(unsafe { sys::sdflow_trainer_create(ctx.raw, kind.raw(), &mut raw) })?;
        Ok(Trainer { raw, ctx, model: ptr::null_mut(), d: 0, batch: None, owned: None })
    }
    pub fn as_ptr(&self) -> *mut sys::sdflow_trainer {
        self.raw
    }
    pub fn set<V: OptionValue>(&mut self, key: Key, value: V) -> Result<()> {
        set_option(self.ctx, self.raw, key, value.to_value(), sys::sdflow_trainer_set_int,
                   sys::sdflow_trainer_set_double, Some(sys::sdflow_trainer_set_u64))
    }
    pub fn get<T: OptionValue>(&self, key: Key) -> Result<T> {
        get_option(self.ctx, self.raw, key, sys::sdflow_trainer_get_int, sys::sdflow_trainer_get_double,
                   Some(sys::sdflow_trainer_get_u64))
    }
    /// Binds the MLP to train (updated in place by step/fit).
    pub fn set_model(&mut self, m: &'a Model<'_>) -> Result<()> {
        self.ctx.check(unsafe { sys::sdflow_trainer_set_model(self.raw, m.raw) })?;
        self.model = m.raw;
        self.d = m.dim();
        Ok(())
    }
    pub fn set_process(&mut self, p: &'a Process<'_>) -> Result<()> {
        self.ctx.check(unsafe { sys::sdflow_trainer_set_process(self.raw, p.raw) })
    }
    fn need_dim(&self) -> Result<usize> {
        if self.d == 0 {
            return Err(Error::new(Status::EState, "trainer has no model bound: its dimension is unknown"));
        }
        Ok(self.d)
    }
    /// Training data: the rows of x (n x d), copied.
    pub fn set_data(&mut self, x: &[f64]) -> Result<()> {
        let d = self.need_dim()?;
        let n = rows(x.len(), d, "x")?;
        self.ctx.check(unsafe { sys::sdflow_trainer_set_data(self.raw, n, d, x.as_ptr()) })
    }
    /// Batch callback `f(step, first_row, rows, x0)` filling x0 (rows x d); replaces the data.
    pub fn set_batch_fn<F: FnMut(i64, u64, usize, &mut [f64]) -> bool + 'a>(&mut self, f: F) -> Result<()> {
        let d = self.need_dim()?;
        let mut h = Box::new(BatchHook { f: Box::new(f), shared: &*self.ctx.shared });
        let u = &mut *h as *mut BatchHook<'a> as *mut c_void;
        self.ctx.check(unsafe { sys::sdflow_trainer_set_batch_fn(self.raw, d, Some(batch_tramp), u) })?;
        self.batch = Some(h);
        Ok(())
    }
    /// Held-out rows (n x d, copied); an empty slice removes them.
    pub fn set_validation(&mut self, x: &[f64]) -> Result<()> {
        let d = self.need_dim()?;
        let n = rows(x.len(), d, "x")?;
        let p = if n == 0 { ptr::null() } else { x.as_ptr() };
        self.ctx.check(unsafe { sys::sdflow_trainer_set_validation(self.raw, n, d, p) })
    }
    pub fn step(&mut self) -> Result<()> {
        self.ctx.check(unsafe { sys::sdflow_trainer_step(self.raw) })
    }
    pub fn fit(&mut self, steps: i64) -> Result<()> {
        self.ctx.check(unsafe { sys::sdflow_trainer_fit(self.raw, steps as c_long) })
    }
    /// Loss of step `step`'s batch at the current weights.
    pub fn eval_batch(&mut self, step: i64) -> Result<f64> {
        let mut loss = 0.0;
        self.ctx.check(unsafe { sys::sdflow_trainer_eval_batch(self.raw, step as c_long, &mut loss, ptr::null_mut()) })?;
        Ok(loss)
    }
    /// (loss, gradient) of step `step`'s batch.
    pub fn eval_batch_grad(&mut self, step: i64) -> Result<(f64, Vec<f64>)> {
        if self.model.is_null() {
            return Err(Error::new(Status::EState, "trainer has no model bound"));
        }
        let mut pc = 0;
        self.ctx.check(unsafe { sys::sdflow_model_param_count(self.model, &mut pc) })?;
        let mut g = vec![0.0; pc];
        let mut loss = 0.0;
        self.ctx.check(unsafe { sys::sdflow_trainer_eval_batch(self.raw, step as c_long, &mut loss, g.as_mut_ptr()) })?;
        Ok((loss, g))
    }
    pub fn validate(&mut self) -> Result<f64> {
        let mut loss = 0.0;
        self.ctx.check(unsafe { sys::sdflow_trainer_validate(self.raw, &mut loss) })?;
        Ok(loss)
    }
    pub fn stat(&self, which: TrainStat) -> Result<f64> {
        let mut v = 0.0;
        self.ctx.check(unsafe { sys::sdflow_trainer_get_stat(self.raw, which.raw(), &mut v) })?;
        Ok(v)
    }
    /// Copies the EMA weights into `m` (an MLP of the same architecture).
    pub fn copy_ema(&mut self, m: &Model<'_>) -> Result<()> {
        self.ctx.check(unsafe { sys::sdflow_trainer_copy_ema(self.raw, m.raw) })
    }

    /// Interpolant loss only: the base at t = 0 is `base` (gaussian or gmm;
    /// borrowed, the C trainer does not copy it); `None` restores N(0, I).
    /// Replaces base data.
    pub fn set_base_model(&mut self, base: Option<&'a Model<'_>>) -> Result<()> {
        if let Some(b) = base {
            if self.d != 0 && b.dim() != self.d {
                return Err(invalid(format!("base model has dimension {}, the trainer's model {}", b.dim(), self.d)));
            }
        }
        let raw = base.map_or(ptr::null_mut(), |b| b.raw);
        self.ctx.check(unsafe { sys::sdflow_trainer_set_base_model(self.raw, raw) })
    }
    /// Interpolant loss only: the base is a second data array (n x d rows,
    /// copied, finite); an empty slice restores N(0, I). Replaces a base model.
    pub fn set_base_data(&mut self, x: &[f64]) -> Result<()> {
        let d = self.need_dim()?;
        let n = rows(x.len(), d, "base data")?;
        let p = if n == 0 { ptr::null() } else { x.as_ptr() };
        self.ctx.check(unsafe { sys::sdflow_trainer_set_base_data(self.raw, n, d, p) })
    }

    /// Saves a checkpoint (docs/model-files.md, "Trainer checkpoints") to
    /// `path` (written to "<path>.tmp" and renamed).
    pub fn save_checkpoint(&mut self, path: impl AsRef<Path>) -> Result<()> {
        let s = path.as_ref().to_str().ok_or_else(|| invalid("path is not UTF-8".to_string()))?;
        let c = cstring(s, "path")?;
        self.ctx.check(unsafe { sys::sdflow_trainer_checkpoint_save(self.raw, c.as_ptr()) })
    }
    /// The checkpoint's bytes.
    pub fn save_checkpoint_buffer(&mut self) -> Result<Vec<u8>> {
        let mut size = 0;
        self.ctx.check(unsafe { sys::sdflow_trainer_checkpoint_save_buffer(self.raw, ptr::null_mut(), 0, &mut size) })?;
        let mut buf = vec![0u8; size];
        self.ctx.check(unsafe {
            sys::sdflow_trainer_checkpoint_save_buffer(self.raw, buf.as_mut_ptr() as *mut c_void, buf.len(), &mut size)
        })?;
        buf.truncate(size);
        Ok(buf)
    }
    /// Restores a checkpoint file into this trainer, configured like the
    /// saver; the bound model's weights are replaced. A mismatch is
    /// `EInvalid` naming the first difference, a malformed file `EFormat`;
    /// on failure nothing changes.
    pub fn restore_checkpoint(&mut self, path: impl AsRef<Path>) -> Result<()> {
        let s = path.as_ref().to_str().ok_or_else(|| invalid("path is not UTF-8".to_string()))?;
        let c = cstring(s, "path")?;
        self.ctx.check(unsafe { sys::sdflow_trainer_checkpoint_restore(self.raw, c.as_ptr()) })
    }
    /// Restores a checkpoint from memory.
    pub fn restore_checkpoint_buffer(&mut self, buf: &[u8]) -> Result<()> {
        self.ctx.check(unsafe {
            sys::sdflow_trainer_checkpoint_restore_buffer(self.raw, buf.as_ptr() as *const c_void, buf.len())
        })
    }
    /// Rebuilds a trainer from a checkpoint file alone: it owns the rebuilt
    /// model and process ([`Trainer::model`], [`Trainer::process`]); bind the
    /// data before stepping. The ctx seed must equal the saved one.
    pub fn load_checkpoint(ctx: &'a Ctx, path: impl AsRef<Path>) -> Result<Trainer<'a>> {
        let s = path.as_ref().to_str().ok_or_else(|| invalid("path is not UTF-8".to_string()))?;
        let c = cstring(s, "path")?;
        let (mut t, mut m, mut p) = (ptr::null_mut(), ptr::null_mut(), ptr::null_mut());
        let st = unsafe { sys::sdflow_trainer_checkpoint_load(ctx.raw, c.as_ptr(), &mut t, &mut m, &mut p) };
        Trainer::loaded(ctx, st, t, m, p)
    }
    /// Rebuilds a trainer from a checkpoint in memory.
    pub fn load_checkpoint_buffer(ctx: &'a Ctx, buf: &[u8]) -> Result<Trainer<'a>> {
        let (mut t, mut m, mut p) = (ptr::null_mut(), ptr::null_mut(), ptr::null_mut());
        let st = unsafe {
            sys::sdflow_trainer_checkpoint_load_buffer(ctx.raw, buf.as_ptr() as *const c_void, buf.len(), &mut t,
                                                       &mut m, &mut p)
        };
        Trainer::loaded(ctx, st, t, m, p)
    }
    fn loaded(ctx: &'a Ctx, st: sys::sdflow_status, t: *mut sys::sdflow_trainer, m: *mut sys::sdflow_model,
              p: *mut sys::sdflow_process) -> Result<Trainer<'a>> {
        ctx.check(st)?; // on failure the C outputs are all NULL
        let model = Model { raw: m, ctx, hook: None };
        let d = model.dim();
        let process = if p.is_null() { None } else { Some(Process { raw: p, ctx }) };
        Ok(Trainer { raw: t, ctx, model: m, d, batch: None, owned: Some((model, process)) })
    }
    /// The model a checkpoint load rebuilt (trained in place by step/fit);
    /// `None` for a trainer made with [`Trainer::new`]. Shared only: the
    /// trainer points at it, so it cannot be moved out or replaced.
    pub fn model(&self) -> Option<&Model<'a>> {
        self.owned.as_ref().map(|o| &o.0)
    }
    /// The process a checkpoint load rebuilt (`None` when the file had none
    /// or the trainer was not loaded).
    pub fn process(&self) -> Option<&Process<'a>> {
        self.owned.as_ref().and_then(|o| o.1.as_ref())
    }
}

impl Drop for Trainer<'_> {
    fn drop(&mut self) {
        unsafe { sys::sdflow_trainer_free(self.raw) }
    }
}
