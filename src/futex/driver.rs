//! One thread sleeping on behalf of many: the protocol of a pollable
//! select (the client's `SelectFd`), whose caller must not block.
//!
//! # Protocol
//! The caller runs the announce → re-check half of [`wait_any`](super::wait_any)
//! itself ([`arm`]); if nothing is ready it hands the announced doorbells, as
//! a [`Request`], to a [`Driver`], whose thread runs the sleep half for every
//! request at once ([`Runner::run`]):
//!
//! | caller ([`arm`], [`Driver::submit`]) | driver thread ([`Runner::run`]) | notifier of channel `i` |
//! |---|---|---|
//! | for each `i`: `seen[i] = bell[i]`; `waiters[i] += 1` | `k = kick` (Acquire) | publish (Release store) |
//! | heavy barrier | take the submitted requests (mutex) | light barrier |
//! | re-check: ready → withdraw, return it | each request: void → withdraw; rang (`bell[i] != seen[i]`) or interrupted → withdraw, signal | if `waiters[i] != 0`: `bell[i] += 1`, wake |
//! | push the request (mutex); `kick += 1` (Release), wake | sleep while `kick == k` and every kept `bell[i] == seen[i]` | |
//!
//! No wake-up is lost: a notify that the caller's re-check misses bumps
//! `bell[i]` (the store-buffering pair of [`Doorbell`]), and the request keeps
//! `seen[i]`, so the driver either sees the change in its sweep or its
//! `futex_waitv` returns at once or is woken. A request submitted after the
//! driver took the list bumps `kick` after the driver read `k`, so the sleep
//! ends at once. The same holds for [`Driver::kick`] after a request turned
//! void or interrupted: the flag is set before the Release bump that the
//! driver's Acquire read of `k` pairs with.
//!
//! Requests live in the runner's own list from the sweep that took them
//! until the sweep that drops them, so the memory their doorbells lie in
//! (kept alive by the request) is never released while the driver sleeps on
//! it. The loom model is `tests/loom_selectfd.rs`.

use std::time::Instant;

use super::{Doorbell, FALLBACK_SLICE, WAITV_MAX};
use crate::sync::{heavy_barrier, FutexWord, Mutex, Ordering};

/// Doorbells announced on and handed to a [`Driver`], with what to do when
/// one rings.
pub trait Request: Send {
    /// The doorbells announced on, each with the bell value seen by [`arm`].
    fn bells(&self) -> Vec<(&Doorbell, u32)>;
    /// True once nobody waits for the request any more (its owner was
    /// dropped): withdrawn without [`signal`](Self::signal).
    fn void(&self) -> bool;
    /// True when the request must be signalled whatever its bells (the bus
    /// is gone). Checked in every sweep.
    fn interrupted(&self) -> bool;
    /// Tells the owner that a doorbell rang (an eventfd write); called once.
    fn signal(&self);
}

/// Announces on every one of `bells` and re-checks `ready` after the heavy
/// barrier. Returns the bell values seen, to put in a [`Request`], with the
/// announcements standing; or `None` if `ready` was true (the announcements
/// are withdrawn). The caller checks `ready` first itself, before this.
pub fn arm(bells: &[&Doorbell], ready: &mut dyn FnMut() -> bool) -> Option<Vec<u32>> {
    let mut seen = Vec::with_capacity(bells.len());
    for b in bells {
        // Acquire: as in `wait_any`.
        seen.push(b.bell.load(Ordering::Acquire));
        // Relaxed: ordered before the re-check by the heavy barrier.
        b.waiters.fetch_add(1, Ordering::Relaxed);
    }
    // Heavy barrier: pairs with every notifier's light barrier.
    heavy_barrier();
    if ready() {
        withdraw(bells.iter().copied());
        return None;
    }
    Some(seen)
}

/// Takes back the announcements of [`arm`].
pub fn withdraw<'a>(bells: impl IntoIterator<Item = &'a Doorbell>) {
    for b in bells {
        // Relaxed: a stale count only costs a notifier a spare wake.
        b.waiters.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The requests submitted and the driver's own wake-up word.
#[derive(Debug)]
pub struct Driver<R> {
    submitted: Mutex<Vec<R>>,
    /// Bumped and woken when a request is submitted or may have turned
    /// void or interrupted.
    kick: FutexWord,
}

impl<R: Request> Default for Driver<R> {
    fn default() -> Self {
        Self::new()
    }
}

impl<R: Request> Driver<R> {
    /// A driver with nothing submitted.
    pub fn new() -> Self {
        Self {
            submitted: Mutex::new(Vec::new()),
            kick: FutexWord::new(0),
        }
    }

    /// Hands an armed request to the driver thread.
    pub fn submit(&self, r: R) {
        self.submitted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(r);
        self.kick();
    }

    /// Makes the driver sweep its requests again (a request turned void or
    /// interrupted).
    pub fn kick(&self) {
        // Release: publishes whatever the caller changed before.
        self.kick.fetch_add(1, Ordering::Release);
        self.kick.wake_all();
    }

    /// The driver thread's side: make one and [`run`](Runner::run) it.
    pub fn runner(&self) -> Runner<'_, R> {
        Runner {
            driver: self,
            armed: Vec::new(),
        }
    }
}

/// The driver thread's state: the requests it sleeps for.
#[derive(Debug)]
pub struct Runner<'d, R> {
    driver: &'d Driver<R>,
    armed: Vec<R>,
}

impl<R: Request> Runner<'_, R> {
    /// Sweeps and sleeps (see the module docs) until `stop` returns true
    /// after a sweep; the driver thread passes `&|| false`. A `stop` that
    /// turns true must be followed by a [`Driver::kick`].
    pub fn run(&mut self, stop: &dyn Fn() -> bool) {
        loop {
            // Acquire: pairs with the Release bump in `Driver::kick`.
            let k = self.driver.kick.load(Ordering::Acquire);
            self.sweep();
            if stop() {
                return;
            }
            let mut words: Vec<(&FutexWord, u32)> = vec![(&self.driver.kick, k)];
            for r in &self.armed {
                words.extend(r.bells().into_iter().map(|(b, v)| (&b.bell, v)));
            }
            if words.len() > WAITV_MAX || !crate::sync::wait_any(&words, None) {
                // The fallback: the kick word only, a slice at a time.
                let until = Instant::now().checked_add(FALLBACK_SLICE);
                self.driver.kick.wait(k, until);
            }
        }
    }

    /// Takes the submitted requests; withdraws (and signals) those due.
    fn sweep(&mut self) {
        self.armed.append(
            &mut self
                .driver
                .submitted
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        );
        self.armed.retain(|r| {
            let void = r.void();
            let bells = r.bells();
            // Relaxed: a change is all we look for; the owner re-checks
            // readiness, which orders its own loads.
            let due = void
                || r.interrupted()
                || bells
                    .iter()
                    .any(|(b, v)| b.bell.load(Ordering::Relaxed) != *v);
            if due {
                withdraw(bells.iter().map(|&(b, _)| b));
                if !void {
                    r.signal();
                }
            }
            !due
        });
    }
}
