//! loom models of the [`Doorbell`] sleep/wake handshake on its own.
//!
//! One loom thread models one process. Under `--cfg loom` the futex word is a
//! mutex + condvar stand-in that re-checks the word under the lock and ignores
//! deadlines, so a lost wake-up is a loom deadlock (a panic), not a timeout.
//!
//! Run with:
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 CARGO_TARGET_DIR=target/loom
//!  cargo test -p shmbus --release --test loom_futex`
#![cfg(loom)]

use std::sync::Mutex;

use loom::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use loom::sync::Arc;
use loom::thread;
use shmbus::futex::Doorbell;

/// Whether some execution of a model rang the bell, which `notify` only does
/// when a waiter has announced itself: proof that the model reached the sleep
/// path and does not pass merely because the waiter always found the flag.
struct RangSeen(Mutex<bool>);

impl RangSeen {
    const fn new() -> Self {
        Self(Mutex::new(false))
    }

    fn record(&self, bell: &Doorbell) {
        // Relaxed: read after every model thread was joined.
        *self.0.lock().unwrap() |= bell.bell.load(Ordering::Relaxed) != 0;
    }

    fn assert_rang(&self) {
        assert!(
            *self.0.lock().unwrap(),
            "no execution reached the sleep path"
        );
    }
}

/// A doorbell and the condition it announces.
#[derive(Default)]
struct Shared {
    bell: Doorbell,
    flag: AtomicBool,
}

impl Shared {
    /// The notifier side, as a producer does it: publish, then `notify`.
    fn set(&self) {
        // Release: publishes the condition; pairs with the Acquire in `poll`.
        self.flag.store(true, Ordering::Release);
        self.bell.notify();
    }

    fn poll(&self) -> Option<()> {
        // Acquire: pairs with the Release store in `set`.
        self.flag.load(Ordering::Acquire).then_some(())
    }

    /// The real waiter side, with no deadline and no interrupt check.
    fn wait(&self) {
        assert_eq!(self.bell.wait(None, None, || self.poll()), Ok(()));
        assert!(self.poll().is_some());
    }
}

/// One waiter, one notifier: the waiter always wakes.
#[test]
fn one_waiter_one_notifier() {
    static RANG: RangSeen = RangSeen::new();
    loom::model(|| {
        let s = Arc::new(Shared::default());
        let n = {
            let s = s.clone();
            thread::spawn(move || s.set())
        };
        s.wait();
        n.join().unwrap();
        // Relaxed: after join, only this thread touches the word.
        assert_eq!(s.bell.waiters.load(Ordering::Relaxed), 0);
        RANG.record(&s.bell);
    });
    RANG.assert_rang();
}

/// Two waiters, one notifier: both wake, whether one, both or neither of them
/// had announced itself when the notifier looked.
#[test]
fn two_waiters_one_notifier() {
    static RANG: RangSeen = RangSeen::new();
    loom::model(|| {
        let s = Arc::new(Shared::default());
        let w = {
            let s = s.clone();
            thread::spawn(move || s.wait())
        };
        let n = {
            let s = s.clone();
            thread::spawn(move || s.set())
        };
        s.wait();
        w.join().unwrap();
        n.join().unwrap();
        // Relaxed: after join, only this thread touches the word.
        assert_eq!(s.bell.waiters.load(Ordering::Relaxed), 0);
        RANG.record(&s.bell);
    });
    RANG.assert_rang();
}

/// Two conditions in sequence on one doorbell (as a pipe's `readable` bell is
/// rung once per frame): a waiter that handles the first and waits again for
/// the second still wakes, even though the bell was bumped in between.
#[test]
fn waiter_waits_twice() {
    static RANG: RangSeen = RangSeen::new();
    loom::model(|| {
        let s = Arc::new((Doorbell::default(), AtomicU32::new(0)));
        let n = {
            let s = s.clone();
            thread::spawn(move || {
                for v in 1..=2 {
                    // Release: publishes step `v`; pairs with the Acquire below.
                    s.1.store(v, Ordering::Release);
                    s.0.notify();
                }
            })
        };
        for want in 1..=2 {
            let got =
                s.0.wait(None, None, || {
                    // Acquire: pairs with the Release store above.
                    let v = s.1.load(Ordering::Acquire);
                    (v >= want).then_some(v)
                })
                .unwrap();
            assert!(got >= want);
        }
        n.join().unwrap();
        RANG.record(&s.0);
    });
    RANG.assert_rang();
}

/// `ring` wakes a sleeper unconditionally (daemon shutdown and recovery use
/// it after publishing their own condition).
#[test]
fn ring_wakes_sleeper() {
    loom::model(|| {
        let s = Arc::new(Shared::default());
        let n = {
            let s = s.clone();
            thread::spawn(move || {
                // Release: as in `Shared::set`.
                s.flag.store(true, Ordering::Release);
                // No fence needed: `ring` reads nothing, it always bumps the
                // word (after the flag) and wakes.
                s.bell.ring();
            })
        };
        s.wait();
        n.join().unwrap();
    });
}

/// The notifier of [`Doorbell::notify`] minus its `fence(SeqCst)`.
fn notify_without_fence(bell: &Doorbell) {
    // Relaxed, and no fence before it: the store of the condition and this
    // load may be reordered (store buffering), which is the bug.
    if bell.waiters.load(Ordering::Relaxed) != 0 {
        bell.ring();
    }
}

/// NEGATIVE: without the notifier's fence, the waiter's re-check can miss the
/// flag while the notifier misses the waiter. loom must find that schedule and
/// report it as a deadlock, which shows that the futex stand-in turns a lost
/// wake-up into a failure rather than hiding it.
#[test]
#[should_panic(expected = "deadlock")]
fn lost_wakeup_without_notifier_fence_is_caught() {
    loom::model(|| {
        let s = Arc::new(Shared::default());
        let n = {
            let s = s.clone();
            thread::spawn(move || {
                // Release: as in `Shared::set`.
                s.flag.store(true, Ordering::Release);
                notify_without_fence(&s.bell);
            })
        };
        s.wait();
        n.join().unwrap();
    });
}

/// The waiter of `Doorbell::wait_slow` (one round) minus its `fence(SeqCst)`.
fn wait_without_fence(s: &Shared) {
    loop {
        // Acquire: as in `Doorbell::wait_slow`.
        let seen = s.bell.bell.load(Ordering::Acquire);
        // Relaxed, and no fence after it: the bug.
        s.bell.waiters.fetch_add(1, Ordering::Relaxed);
        let ready = s.poll().is_some();
        if !ready {
            s.bell.bell.wait(seen, None);
        }
        // Relaxed: as in `Doorbell::wait_slow`.
        s.bell.waiters.fetch_sub(1, Ordering::Relaxed);
        if ready {
            return;
        }
    }
}

/// NEGATIVE: the same with the waiter's fence missing instead.
#[test]
#[should_panic(expected = "deadlock")]
fn lost_wakeup_without_waiter_fence_is_caught() {
    loom::model(|| {
        let s = Arc::new(Shared::default());
        let n = {
            let s = s.clone();
            thread::spawn(move || s.set())
        };
        wait_without_fence(&s);
        n.join().unwrap();
    });
}
