//! Threaded tests of the pipe's batch forms (`try_send_batch`,
//! `try_recv_batch_with`) on a heap-allocated pipe: a stress with batches of
//! every size across the wrap, partial batches on a full ring, the `max`
//! bound, and a corrupt record in the middle of a batch.
#![cfg(not(loom))]

use std::sync::Arc;
use std::thread;

use shmbus::pipe::{HeapPipe, TryRecvError, TrySendError, KIND_DATA};

/// Frames in the stress test.
const FRAMES: usize = if cfg!(miri) { 2_000 } else { 200_000 };
/// Ring of the stress test: frames up to 64 bytes, wrapping constantly.
const CAP: u64 = 512;

/// Frame `seq`: 0 to 64 bytes derived from `seq`, so loss, duplication,
/// reordering and tearing show.
fn frame(seq: usize) -> Vec<u8> {
    let len = (seq * 7 + seq / 3) % 65;
    (0..len)
        .map(|i| (seq as u8).wrapping_mul(31).wrapping_add(i as u8))
        .collect()
}

/// Both endpoints of a fresh pipe of `cap` bytes. The pipe is leaked: the
/// endpoints may live on other threads for the rest of the test.
fn pair(
    cap: u64,
) -> (
    &'static HeapPipe,
    shmbus::pipe::Producer,
    shmbus::pipe::Consumer,
) {
    let pipe: &'static HeapPipe = Box::leak(Box::new(HeapPipe::new(cap)));
    // SAFETY: the pipe is leaked, so it outlives both endpoints.
    let (tx, rx) = unsafe { (pipe.producer(1).unwrap(), pipe.consumer(2).unwrap()) };
    (pipe, tx, rx)
}

#[test]
fn stress_batches_of_every_size() {
    let (_pipe, mut tx, mut rx) = pair(CAP);
    let frames = Arc::new((0..FRAMES).map(frame).collect::<Vec<_>>());
    let sent = Arc::clone(&frames);
    let p = thread::spawn(move || {
        let mut at = 0;
        let mut k = 0usize;
        while at < sent.len() {
            k += 1;
            let end = (at + 1 + k % 9).min(sent.len());
            match tx.try_send_batch(&sent[at..end]) {
                Ok(n) => {
                    assert!((1..=end - at).contains(&n), "sent {n} of {}", end - at);
                    at += n;
                }
                Err(TrySendError::Full) => thread::yield_now(),
                Err(e) => panic!("try_send_batch at {at}: {e}"),
            }
        }
    });
    let mut seq = 0;
    let mut k = 0usize;
    while seq < FRAMES {
        k += 1;
        let max = 1 + k % 11;
        let mut got = 0;
        let r = rx.try_recv_batch_with(max, |b| {
            assert_eq!(b, frames[seq + got].as_slice(), "frame {}", seq + got);
            got += 1;
        });
        match r {
            Ok(n) => {
                assert_eq!(n, got);
                assert!((1..=max).contains(&n), "batch of {n}, max {max}");
                seq += n;
            }
            Err(TryRecvError::Empty) => thread::yield_now(),
            Err(e) => panic!("try_recv_batch_with at {seq}: {e}"),
        }
    }
    p.join().expect("producer thread");
    assert_eq!(
        rx.try_recv_batch_with(4, |_| ()),
        Err(TryRecvError::Disconnected),
        "producer gone, ring drained"
    );
}

#[test]
fn partial_batch_on_a_full_ring_and_the_max_bound() {
    let (pipe, mut tx, mut rx) = pair(64);
    let five = [[1u8; 8], [2; 8], [3; 8], [4; 8], [5; 8]];
    // Four 16-byte records fill the 64-byte ring; one publication for them.
    assert_eq!(tx.try_send_batch(&five), Ok(4));
    assert_eq!(pipe.ctl().stats().tail, 64);
    assert_eq!(tx.try_send_batch(&five[4..]), Err(TrySendError::Full));
    assert_eq!(tx.try_send_batch::<[u8; 8]>(&[]), Ok(0));
    assert_eq!(rx.try_recv_batch_with(0, |_| panic!("max 0")), Ok(0));
    let mut got = Vec::new();
    assert_eq!(rx.try_recv_batch_with(3, |b| got.push(b[0])), Ok(3));
    assert_eq!(got, [1, 2, 3]);
    assert_eq!(pipe.ctl().stats().head, 48, "one release for the batch");
    assert_eq!(tx.try_send_batch(&five[4..]), Ok(1));
    assert_eq!(rx.try_recv_batch_with(9, |b| got.push(b[0])), Ok(2));
    assert_eq!(got, [1, 2, 3, 4, 5]);
    assert_eq!(rx.try_recv_batch_with(9, |_| ()), Err(TryRecvError::Empty));
}

#[test]
fn too_large_frame_ends_a_batch_and_is_reported_next() {
    let (_pipe, mut tx, mut rx) = pair(64);
    let frames: [&[u8]; 3] = [&[1; 8], &[2; 9], &[3; 8]]; // 9 > 64 / 8
    assert_eq!(tx.try_send_batch(&frames), Ok(1));
    assert!(matches!(
        tx.try_send_batch(&frames[1..]),
        Err(TrySendError::TooLarge { len: 9, max: 8 })
    ));
    assert_eq!(rx.try_recv_batch_with(9, |b| assert_eq!(b, [1; 8])), Ok(1));
}

#[test]
fn corrupt_record_inside_a_batch() {
    let (pipe, mut tx, mut rx) = pair(64);
    for b in 1..=3u8 {
        tx.try_send(&[b; 8]).unwrap();
    }
    // The second record (ring word 2) claims 48 bytes: past what is published.
    let w = (48u64 | (u64::from(KIND_DATA) << 32)).to_le();
    pipe.words()[2].with_mut(|p| {
        // SAFETY: `p` points to a live ring word; no endpoint call is running.
        unsafe { p.write(w) }
    });
    let mut got = Vec::new();
    assert_eq!(rx.try_recv_batch_with(9, |b| got.push(b[0])), Ok(1));
    assert_eq!(got, [1], "the frames before the bad record");
    assert_eq!(pipe.ctl().stats().head, 16, "and only they are released");
    assert!(matches!(
        rx.try_recv_batch_with(9, |_| ()),
        Err(TryRecvError::Corrupt(_))
    ));
    assert!(matches!(
        rx.try_recv_with(|_| ()),
        Err(TryRecvError::Corrupt(_))
    ));
}
