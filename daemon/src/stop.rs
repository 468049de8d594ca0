//! [`StopHandle`]: how a running daemon is asked to shut down.

use std::sync::{Arc, Condvar, Mutex, PoisonError};

/// Asks a running [`Daemon`](crate::Daemon) to shut down; cheap to clone, usable from any
/// thread (the SIGINT/SIGTERM handler of [`crate::run()`] holds one).
///
/// A stop requested before [`Daemon::serve`](crate::Daemon::serve) starts takes effect as soon as it
/// does.
#[derive(Clone, Debug, Default)]
pub struct StopHandle {
    inner: Arc<StopInner>,
}

#[derive(Debug, Default)]
struct StopInner {
    state: Mutex<StopState>,
    cv: Condvar,
}

#[derive(Debug, Default)]
struct StopState {
    requested: bool,
    failure: Option<String>,
}

impl StopHandle {
    /// A handle with no stop requested.
    pub fn new() -> Self {
        Self::default()
    }

    /// Requests a clean shutdown ([`Daemon::serve`](crate::Daemon::serve) then returns `Ok`).
    pub fn stop(&self) {
        self.set(None);
    }

    /// Whether a stop has been requested.
    pub fn is_stopped(&self) -> bool {
        self.lock().requested
    }

    /// Requests a shutdown because serving failed ([`Daemon::serve`](crate::Daemon::serve) then
    /// returns `Err(Error::Failed(message))`).
    pub(crate) fn fail(&self, message: String) {
        self.set(Some(message));
    }

    fn set(&self, failure: Option<String>) {
        let mut s = self.lock();
        s.requested = true;
        if s.failure.is_none() {
            s.failure = failure;
        }
        self.inner.cv.notify_all();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, StopState> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Blocks until a stop is requested; returns the failure, if any.
    pub(crate) fn wait(&self) -> Option<String> {
        let mut s = self.lock();
        while !s.requested {
            s = self
                .inner
                .cv
                .wait(s)
                .unwrap_or_else(PoisonError::into_inner);
        }
        s.failure.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_handle() {
        let s = StopHandle::new();
        assert!(!s.is_stopped());
        let t = s.clone();
        let h = std::thread::spawn(move || t.wait());
        s.fail("boom".into());
        s.stop();
        assert_eq!(h.join().unwrap().as_deref(), Some("boom"));
        assert!(s.is_stopped());
    }
}
