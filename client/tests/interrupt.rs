//! The process-wide interrupt check (`set_interrupt_check`): a signal whose
//! handler sets the checked flag ends a wait with `Error::Interrupted`; a
//! signal without it lets the wait go on. Real daemon, real signals.

use shmbus_test_support as support;

use std::sync::mpsc;
use std::time::Duration;

use shmbus::sync::{AtomicU32, Ordering};
use shmbus_client::Error;
use support::{Daemon, WATCHDOG};

static FLAG: AtomicU32 = AtomicU32::new(0);

extern "C" fn on_usr1(_: libc::c_int) {}

/// SIGUSR1 with a handler that does nothing, installed without SA_RESTART so
/// that it ends a futex sleep with EINTR.
fn install_usr1() {
    // SAFETY: a zeroed sigaction is valid; the handler is async-signal-safe.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_usr1 as *const () as usize;
        sa.sa_flags = 0;
        assert_eq!(libc::sigaction(libc::SIGUSR1, &sa, std::ptr::null_mut()), 0);
    }
}

/// Waits until thread `tid` sleeps (state S), then a little longer.
fn wait_asleep(tid: libc::pid_t) {
    let path = format!("/proc/self/task/{tid}/stat");
    let end = std::time::Instant::now() + WATCHDOG;
    while std::time::Instant::now() < end {
        let s = std::fs::read_to_string(&path).unwrap_or_default();
        if s.rsplit(')')
            .next()
            .is_some_and(|r| r.trim_start().starts_with('S'))
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(100));
}

#[test]
fn signal_with_flag_interrupts_a_wait_and_without_it_does_not() {
    assert!(shmbus_client::set_interrupt_check(|| FLAG
        .load(Ordering::Relaxed)
        != 0));
    assert!(
        !shmbus_client::set_interrupt_check(|| false),
        "the first check stays"
    );
    install_usr1();
    let d = Daemon::start("interrupt", &[]);
    let bus = d.connect();
    let q = bus.queue("never").unwrap();

    // A signal without the flag: the wait goes on, and ends with the item.
    let (tx, rx) = mpsc::channel();
    let q2 = q.clone();
    let waiter = std::thread::spawn(move || {
        // SAFETY: gettid has no preconditions.
        tx.send(unsafe { libc::syscall(libc::SYS_gettid) } as libc::pid_t)
            .unwrap();
        q2.get()
    });
    let tid = rx.recv().unwrap();
    wait_asleep(tid);
    // SAFETY: signals a thread of this process that is still running.
    unsafe { libc::syscall(libc::SYS_tgkill, libc::getpid(), tid, libc::SIGUSR1) };
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        !waiter.is_finished(),
        "a signal alone must not end the wait"
    );
    q.put(b"item").unwrap();
    assert_eq!(waiter.join().unwrap().unwrap(), b"item");

    // With the flag: Interrupted, and nothing taken.
    let (tx, rx) = mpsc::channel();
    let q2 = q.clone();
    let waiter = std::thread::spawn(move || {
        // SAFETY: as above.
        tx.send(unsafe { libc::syscall(libc::SYS_gettid) } as libc::pid_t)
            .unwrap();
        q2.get()
    });
    let tid = rx.recv().unwrap();
    wait_asleep(tid);
    FLAG.store(1, Ordering::Relaxed);
    // SAFETY: as above.
    unsafe { libc::syscall(libc::SYS_tgkill, libc::getpid(), tid, libc::SIGUSR1) };
    let r = waiter.join().unwrap();
    assert!(matches!(r, Err(Error::Interrupted)), "{r:?}");
    assert!(r.unwrap_err().to_string().contains("interrupted"));
    FLAG.store(0, Ordering::Relaxed);
    q.put(b"kept").unwrap();
    assert_eq!(q.get().unwrap(), b"kept");

    // A topic's receive too: Interrupted (not BusClosed), and the
    // subscriber reads on.
    let t = bus.topic("never-topic").unwrap();
    let sub = t.subscribe().unwrap();
    let (tx, rx) = mpsc::channel();
    let waiter = std::thread::spawn(move || {
        // SAFETY: as above.
        tx.send(unsafe { libc::syscall(libc::SYS_gettid) } as libc::pid_t)
            .unwrap();
        (sub.recv(), sub)
    });
    let tid = rx.recv().unwrap();
    wait_asleep(tid);
    FLAG.store(1, Ordering::Relaxed);
    // SAFETY: as above.
    unsafe { libc::syscall(libc::SYS_tgkill, libc::getpid(), tid, libc::SIGUSR1) };
    let (r, sub) = waiter.join().unwrap();
    assert!(matches!(r, Err(Error::Interrupted)), "{r:?}");
    FLAG.store(0, Ordering::Relaxed);
    t.publisher().publish(b"kept").unwrap();
    assert_eq!(sub.recv().unwrap(), b"kept");
}
