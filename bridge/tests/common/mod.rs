//! Helpers of the bridge tests: daemons (this test binary in the `daemon`
//! role), bridges (the `shmbus-bridge` binary) on free loopback ports.
#![allow(dead_code)] // each test file uses a part

use std::net::TcpListener;
use std::process::Command;
use std::time::{Duration, Instant};

use rustix::process::Signal;
use shmbus_test_support::{Daemon, Proc, WATCHDOG};

/// The test that child processes run.
pub const DISPATCH: &str = "child_role";

/// A daemon on a fresh bus.
pub fn daemon(tag: &str) -> Daemon {
    Daemon::start_role(DISPATCH, tag, &[])
}

/// A TCP port free on 127.0.0.1 right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// A running `shmbus-bridge`, killed on drop.
pub struct Bridge {
    proc: Option<Proc>,
    args: Vec<String>,
    wrapper: Vec<String>,
}

impl Bridge {
    /// Starts `shmbus-bridge ARGS...` and waits until it says it is ready.
    pub fn start(args: &[&str]) -> Self {
        Self::start_wrapped(&[], args)
    }

    /// As [`Bridge::start`], run by `wrapper` (e.g. `ip netns exec NS`).
    pub fn start_wrapped(wrapper: &[&str], args: &[&str]) -> Self {
        let mut b = Self {
            proc: None,
            args: args.iter().map(|s| (*s).to_owned()).collect(),
            wrapper: wrapper.iter().map(|s| (*s).to_owned()).collect(),
        };
        b.spawn();
        b
    }

    fn spawn(&mut self) {
        let exe = env!("CARGO_BIN_EXE_shmbus-bridge");
        let mut cmd = match self.wrapper.split_first() {
            Some((w, rest)) => {
                let mut c = Command::new(w);
                c.args(rest).arg(exe);
                c
            }
            None => Command::new(exe),
        };
        cmd.args(&self.args).env_remove("SHMBUS_BUS");
        let mut p = Proc::spawn(cmd, &format!("shmbus-bridge {}", self.args.join(" ")));
        p.expect_line("ready");
        self.proc = Some(p);
    }

    /// SIGKILLs the bridge and waits for it.
    pub fn kill(&mut self) {
        if let Some(p) = self.proc.take() {
            p.signal(Signal::KILL);
            drop(p);
        }
    }

    /// Starts it again with the same arguments.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Waits (watchdog) for a line of its output, after those matched
    /// before, that contains `pat`.
    pub fn expect_line(&mut self, pat: &str) {
        self.proc.as_mut().expect("running").expect_line(pat);
    }

    /// Sends `sig` to it.
    pub fn signal(&self, sig: Signal) {
        self.proc.as_ref().expect("running").signal(sig);
    }

    /// Stops it with SIGTERM and returns what it printed (its last `stats`
    /// lines included).
    pub fn stop(mut self) -> String {
        let p = self.proc.take().expect("running");
        p.signal(Signal::TERM);
        let out = p.wait(WATCHDOG);
        out.stdout_str()
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The counter `name=` of the `stats` line for `chan` in `out` (the last
/// such line).
pub fn stat(out: &str, chan: &str, name: &str) -> u64 {
    out.lines()
        .rfind(|l| l.starts_with("stats ") && l.split(' ').nth(3) == Some(chan))
        .and_then(|l| {
            l.split(' ')
                .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or_else(|| panic!("no {name} for {chan} in {out:?}"))
}

/// Frame `i` of a stream: its number, then bytes derived from it, `len`
/// bytes in all (at least 8).
pub fn frame(i: u64, len: usize) -> Vec<u8> {
    let mut v = i.to_le_bytes().to_vec();
    v.extend((8..len.max(8)).map(|k| (i as u8).wrapping_mul(31).wrapping_add(k as u8)));
    v
}

/// The number of a frame made by [`frame`], after checking its bytes.
pub fn check_frame(v: &[u8]) -> u64 {
    let i = u64::from_le_bytes(v[..8].try_into().expect("8 bytes"));
    assert_eq!(v, frame(i, v.len()), "frame {i} corrupted");
    i
}

/// Polls `f` until it is true (watchdog: [`WATCHDOG`]).
pub fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + WATCHDOG;
    while !f() {
        assert!(Instant::now() < deadline, "watchdog: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
