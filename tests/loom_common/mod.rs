//! Helpers shared by the loom models (each `tests/loom_*.rs` file includes
//! this module; not every file uses every helper).
#![allow(dead_code)]

use std::ops::Deref;
use std::sync::Mutex;

use loom::sync::Arc;
use shmbus::queue::{HeapQueue, Queue};
use shmbus::seqlock::HeapSeqlock;

/// Runs `f` under `loom::model` and prints how many executions were explored
/// (visible with `--nocapture`), to keep an eye on each model's size.
pub fn model(name: &str, f: impl Fn() + Sync + Send + 'static) {
    let runs = std::sync::Arc::new(Mutex::new(0u64));
    let counter = runs.clone();
    loom::model(move || {
        *counter.lock().unwrap() += 1;
        f();
    });
    let n = *runs.lock().unwrap();
    println!("{name}: {n} executions");
}

/// Slots of every queue model: the smallest ring, so the third item laps it.
pub const SLOTS: u64 = 2;
/// Queue slot payload: one word.
pub const SLOT: u64 = 8;

/// A queue handle that keeps its queue alive (fields drop in declaration
/// order).
pub struct Held {
    q: Queue,
    _heap: Arc<HeapQueue>,
}

impl Deref for Held {
    type Target = Queue;
    fn deref(&self) -> &Queue {
        &self.q
    }
}

/// A handle on `heap` for the process whose owner tag is `me`.
pub fn handle(heap: &Arc<HeapQueue>, me: u16) -> Held {
    // SAFETY: the handle is stored next to a clone of the `Arc` that owns the
    // queue, and is dropped first.
    let q = unsafe { heap.handle(me) };
    Held {
        q,
        _heap: heap.clone(),
    }
}

/// Blocking put with no deadline: only a wake-up can end a sleep.
pub fn put(q: &Queue, v: u8) {
    q.put_until(&[v], None, None).expect("put");
}

/// Blocking get with no deadline.
pub fn get(q: &Queue) -> u8 {
    let c = q.get_claim_until(None, None).expect("get");
    let v = c.to_vec();
    assert_eq!(v.len(), 1, "frame length");
    v[0]
}

/// Reads a seqlock's two-word array and checks it is untorn and belongs to its
/// generation; returns (value, generation).
pub fn read_pair(h: &HeapSeqlock) -> (u64, u64) {
    let mut out = [0u64; 2];
    // SAFETY: `h` outlives the handle, which is used only here.
    let g = unsafe { h.handle() }.read_into(&mut out);
    assert_eq!(out[0], out[1], "torn read at generation {g}: {out:?}");
    (out[0], g)
}
