//! Waiting with the GIL released, interruptible by signals in the main
//! thread without periodic wake-ups (see the crate docs).
//!
//! While a call waits in the main thread, [`SignalGuard`] puts
//! [`on_signal`] in front of each handler that Python installed for the
//! signals in [`SIGNALS`] (those whose handler is a function, not `SIG_DFL`
//! or `SIG_IGN`), without `SA_RESTART`. A signal then (1) sets [`PENDING`],
//! which the client's interrupt check ([`check`]) reads, (2) runs Python's own
//! handler, which marks the signal for the interpreter, and (3) by running
//! on the sleeping main thread, ends its futex sleep with `EINTR`; the wait
//! runs its interrupt check and returns `Interrupted`. A signal the kernel
//! hands to another thread is sent on to the main thread. Then, with the GIL
//! again, `PyErr_CheckSignals` runs the Python handler: its exception
//! (`KeyboardInterrupt`) is raised, or the wait starts over with what is
//! left of its timeout. The previous handlers are back once the call returns.

use shmbus::sync::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use shmbus_client::Error;

/// The signals whose Python handlers a wait keeps prompt.
const SIGNALS: [libc::c_int; 6] = [
    libc::SIGINT,
    libc::SIGTERM,
    libc::SIGHUP,
    libc::SIGALRM,
    libc::SIGUSR1,
    libc::SIGUSR2,
];

/// Set by [`on_signal`]; cleared by the main thread before it waits and
/// after it handled an interruption.
static PENDING: AtomicU32 = AtomicU32::new(0);

/// The handler each signal had before [`SignalGuard`] installed ours
/// (`sa_sigaction`, and whether it takes `siginfo`), by signal number.
static PREVIOUS: [AtomicU64; 32] = [const { AtomicU64::new(0) }; 32];
static PREVIOUS_SIGINFO: [AtomicU32; 32] = [const { AtomicU32::new(0) }; 32];

fn gettid() -> libc::pid_t {
    // SAFETY: gettid takes no arguments and cannot fail.
    unsafe { libc::syscall(libc::SYS_gettid) as libc::pid_t }
}

/// True on the process's main thread (the one Python runs signal handlers in).
fn is_main_thread() -> bool {
    // SAFETY: getpid cannot fail.
    gettid() == unsafe { libc::getpid() }
}

/// The client's interrupt check: a signal arrived and this is the main thread.
fn check() -> bool {
    // Relaxed: a flag; the handler that set it ran on this very thread (or
    // sent the signal on to it), and a late look only costs one more sleep,
    // which the signal's `EINTR` has already ended.
    PENDING.load(Ordering::Relaxed) != 0 && is_main_thread()
}

/// Installs [`check`] as the client's interrupt check.
pub(crate) fn install() {
    shmbus_client::set_interrupt_check(check);
}

extern "C" fn on_signal(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: getpid cannot fail; async-signal-safe.
    let pid = unsafe { libc::getpid() };
    if gettid() != pid {
        // Not the main thread: the waiting call sleeps there. Send it on;
        // the main thread's run of this handler does the rest.
        // SAFETY: tgkill with our own pid and tid; async-signal-safe.
        unsafe { libc::syscall(libc::SYS_tgkill, pid, pid, sig) };
        return;
    }
    PENDING.store(1, Ordering::Relaxed);
    let Some(i) = usize::try_from(sig).ok().filter(|&i| i < PREVIOUS.len()) else {
        return;
    };
    let prev = PREVIOUS[i].load(Ordering::Relaxed) as usize;
    if prev == libc::SIG_DFL || prev == libc::SIG_IGN {
        return;
    }
    if PREVIOUS_SIGINFO[i].load(Ordering::Relaxed) != 0 {
        // SAFETY: `prev` is the `sa_sigaction` that was installed with
        // SA_SIGINFO, so it has this signature.
        let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
            unsafe { std::mem::transmute(prev) };
        f(sig, info, ctx);
    } else {
        // SAFETY: `prev` is the `sa_handler` that was installed without
        // SA_SIGINFO, so it has this signature.
        let f: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(prev) };
        f(sig);
    }
}

/// [`on_signal`] in front of the Python handlers, for one wait (main thread
/// only); the old handlers come back on drop.
struct SignalGuard {
    saved: Vec<(libc::c_int, libc::sigaction)>,
}

impl SignalGuard {
    fn install() -> Self {
        let mut saved = Vec::new();
        for sig in SIGNALS {
            // SAFETY: a zeroed sigaction is a valid value to be filled in.
            let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
            // SAFETY: reads the current action into `old`.
            if unsafe { libc::sigaction(sig, std::ptr::null(), &mut old) } != 0 {
                continue;
            }
            let h = old.sa_sigaction;
            if h == libc::SIG_DFL || h == libc::SIG_IGN || h == on_signal as *const () as usize {
                continue;
            }
            let i = sig as usize;
            PREVIOUS[i].store(h as u64, Ordering::Relaxed);
            PREVIOUS_SIGINFO[i].store(
                u32::from(old.sa_flags & libc::SA_SIGINFO != 0),
                Ordering::Relaxed,
            );
            // SAFETY: as above.
            let mut new: libc::sigaction = unsafe { std::mem::zeroed() };
            new.sa_sigaction = on_signal as *const () as usize;
            new.sa_mask = old.sa_mask;
            // No SA_RESTART: the futex sleep must end with EINTR.
            new.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            // SAFETY: installs a valid action; `on_signal` is
            // async-signal-safe (atomics, getpid, gettid, tgkill and the
            // previous handler, which was installed as a signal handler).
            if unsafe { libc::sigaction(sig, &new, std::ptr::null_mut()) } == 0 {
                saved.push((sig, old));
            }
        }
        Self { saved }
    }
}

impl Drop for SignalGuard {
    fn drop(&mut self) {
        for (sig, old) in &self.saved {
            // SAFETY: restores the action read in `install`.
            unsafe { libc::sigaction(*sig, old, std::ptr::null_mut()) };
        }
    }
}

/// The deadline `timeout` seconds from now (`None`: no limit).
pub(crate) fn deadline(timeout: Option<f64>) -> PyResult<Option<Instant>> {
    let Some(t) = timeout else { return Ok(None) };
    if t.is_nan() {
        return Err(PyValueError::new_err("timeout must be a number"));
    }
    let d = Duration::try_from_secs_f64(t.max(0.0))
        .map_err(|_| PyValueError::new_err("timeout too large"))?;
    Ok(Some(Instant::now().checked_add(d).unwrap_or_else(|| {
        Instant::now() + Duration::from_secs(100 * 365 * 86_400)
    })))
}

/// Runs `wait(deadline)` with the GIL released until it returns something
/// other than `Interrupted`, running Python's signal handlers in between (in
/// the main thread): their exception is raised.
pub(crate) fn blocking<R: Send>(
    py: Python<'_>,
    deadline: Option<Instant>,
    mut wait: impl FnMut(Option<Instant>) -> shmbus_client::Result<R> + Send,
) -> PyResult<shmbus_client::Result<R>> {
    let main = is_main_thread();
    loop {
        let guard = main.then(SignalGuard::install);
        PENDING.store(0, Ordering::Relaxed);
        // A signal before the guard went in is handled here.
        py.check_signals()?;
        let r = py.allow_threads(|| wait(deadline));
        drop(guard);
        match r {
            Err(Error::Interrupted) => {
                PENDING.store(0, Ordering::Relaxed);
                py.check_signals()?;
            }
            r => return Ok(r),
        }
    }
}
