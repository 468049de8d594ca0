//! shmbus across pid and user namespaces (issue #19): real namespaces made by
//! `unshare` (util-linux), real daemons and clients, SIGKILL of a namespaced
//! client and of a whole pid namespace. Run as root; each test prints why it
//! is skipped where namespaces cannot be created.
//!
//! Every test uses its own bus; guards stop daemons, kill children and remove
//! `/dev/shm` files on drop, and every wait has a watchdog. No test asserts how
//! long anything takes.

use shmbus_test_support as support;

use std::os::unix::process::CommandExt as _;
use std::process::Command;
use std::time::Duration;

use rustix::process::{kill_process, Pid, Signal};
use shmbus_client::{Bus, End, Error};
use support::{eventually, unique_bus, Daemon, Output, Proc, WATCHDOG};

/// Long enough never to fire on a loaded 2-core machine.
const LONG: Duration = Duration::from_secs(30);

/// `nobody`.
const NOBODY: u32 = 65534;

/// A new pid namespace with its own `/proc`; everything in it is killed when
/// `unshare` dies.
const PIDNS: &[&str] = &[
    "unshare",
    "--pid",
    "--fork",
    "--mount-proc",
    "--kill-child=SIGKILL",
];

/// As [`PIDNS`], for a daemon: SIGTERM (from the test's guard) is passed on.
const PIDNS_DAEMON: &[&str] = &[
    "unshare",
    "--pid",
    "--fork",
    "--mount-proc",
    "--kill-child=SIGTERM",
];

/// Whether `unshare ARGS true` works here (as `uid`, if given); prints why
/// not.
fn can_unshare(args: &[&str], uid: Option<u32>) -> bool {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: needs root (to create namespaces and change uid)");
        return false;
    }
    let mut c = Command::new("unshare");
    c.args(args).arg("true");
    if let Some(u) = uid {
        c.uid(u).gid(u);
    }
    match c.output() {
        Ok(o) if o.status.success() => true,
        Ok(o) => {
            eprintln!(
                "skipped: `unshare {}` fails here: {}",
                args.join(" "),
                String::from_utf8_lossy(&o.stderr).trim()
            );
            false
        }
        Err(e) => {
            eprintln!("skipped: cannot run unshare (util-linux): {e}");
            false
        }
    }
}

/// `WRAPPER... shmbus --bus BUS ARGS...`.
fn shmbus_in(wrapper: &[&str], bus: &str, args: &[&str]) -> Command {
    let shmbus = env!("CARGO_BIN_EXE_shmbus");
    let mut c = match wrapper.split_first() {
        Some((first, rest)) => {
            let mut c = Command::new(first);
            c.args(rest).arg(shmbus);
            c
        }
        None => Command::new(shmbus),
    };
    c.arg("--bus").arg(bus).args(args).env_remove("SHMBUS_BUS");
    c
}

fn run(cmd: Command) -> Output {
    let what = format!("{cmd:?}");
    Proc::spawn(cmd, &what).wait(WATCHDOG)
}

/// Runs `shmbus` in `wrapper` and expects success; returns its stdout.
fn ok(wrapper: &[&str], bus: &str, args: &[&str]) -> String {
    let o = run(shmbus_in(wrapper, bus, args));
    assert_eq!(
        o.status.code(),
        Some(0),
        "{wrapper:?} shmbus {args:?}: {o:?}"
    );
    o.stdout_str()
}

/// Pipe, queue and value round trips between `a` and `b` (wrappers for the
/// two sides' `shmbus` commands), and with this process's library client.
fn round_trips(bus: &Bus, name: &str, a: &[&str], b: &[&str]) {
    // Pipe: a -> library, library -> a, a -> b.
    let mut rx = bus.pipe("p").unwrap().receiver().unwrap();
    ok(a, name, &["send", "p", "hello"]);
    assert_eq!(rx.recv_timeout(LONG).unwrap(), b"hello");
    drop(rx);
    let mut tx = bus.pipe("q").unwrap().sender().unwrap();
    tx.send(b"back").unwrap();
    assert_eq!(ok(a, name, &["recv", "q", "-n", "1"]), "back\n");
    ok(a, name, &["send", "r", "across"]);
    assert_eq!(ok(b, name, &["recv", "r", "-n", "1"]), "across\n");
    // Queue.
    ok(a, name, &["create", "queue", "jobs", "--slots", "8"]);
    ok(a, name, &["send", "jobs", "job1"]);
    assert_eq!(ok(b, name, &["recv", "jobs", "-n", "1"]), "job1\n");
    ok(b, name, &["send", "jobs", "job2"]);
    assert_eq!(ok(a, name, &["recv", "jobs", "-n", "1"]), "job2\n");
    // Value.
    ok(a, name, &["create", "value", "v", "d"]);
    ok(a, name, &["set", "v", "2.5"]);
    assert_eq!(ok(b, name, &["get", "v"]), "2.5\n");
    ok(b, name, &["set", "v", "-4"]);
    assert_eq!(ok(a, name, &["get", "v"]), "-4\n");
}

#[test]
fn a_client_in_its_own_pid_namespace_uses_a_daemon_on_the_host() {
    if !can_unshare(&PIDNS[1..], None) {
        return;
    }
    let d = Daemon::start("pidns-client", &[]);
    let bus = d.connect();
    round_trips(&bus, &d.bus, PIDNS, &[]);
}

#[test]
fn clients_on_the_host_use_a_daemon_in_its_own_pid_namespace() {
    if !can_unshare(&PIDNS_DAEMON[1..], None) {
        return;
    }
    let d = Daemon::start_wrapped(unique_bus("pidns-daemon"), PIDNS_DAEMON, &[]);
    let bus = d.connect();
    round_trips(&bus, &d.bus, &[], &[]);
    // And clients in yet another pid namespace (a sibling of the daemon's).
    round_trips(&bus, &d.bus, PIDNS, &[]);
}

/// The host pids of the descendants of `pid` (children first), from
/// `/proc/PID/task/TID/children`.
fn descendants(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{p}/task")) else {
            continue;
        };
        for t in tasks.flatten() {
            let kids = std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
            for k in kids.split_whitespace().filter_map(|k| k.parse().ok()) {
                out.push(k);
                todo.push(k);
            }
        }
    }
    out
}

fn comm(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_owned()
}

fn kill(pid: u32, sig: Signal) {
    kill_process(Pid::from_raw(pid as i32).expect("pid"), sig).expect("kill");
}

/// `sh -c SCRIPT` in a new pid namespace, where it is init (pid 1); `$S` is
/// the `shmbus` binary and `$B` the bus.
fn sh_in_pidns(bus: &str, script: &str) -> Proc {
    let mut c = Command::new(PIDNS[0]);
    c.args(&PIDNS[1..])
        .args(["sh", "-c", script])
        .env("S", env!("CARGO_BIN_EXE_shmbus"))
        .env("B", bus)
        .env_remove("SHMBUS_BUS");
    Proc::spawn(c, script)
}

#[test]
fn a_namespaced_sender_killed_mid_stream_releases_its_end() {
    if !can_unshare(&PIDNS[1..], None) {
        return;
    }
    let d = Daemon::start("pidns-kill", &[]);
    let bus = d.connect();
    let pipe = bus.pipe("p").unwrap();
    let mut rx = pipe.receiver().unwrap();
    // The sender is not the namespace's init (pid 2 in it): only it dies.
    // Background jobs of `sh` read /dev/null, so stdin goes by fd 3.
    let mut ns = sh_in_pidns(&d.bus, r#"exec 3<&0; "$S" --bus "$B" send p <&3 & wait"#);
    ns.write_stdin(b"one\n");
    assert_eq!(rx.recv_timeout(LONG).unwrap(), b"one");
    let sender = eventually("the namespaced shmbus process", || {
        descendants(ns.pid())
            .into_iter()
            .find(|&p| comm(p) == "shmbus")
    });
    match pipe.sender() {
        Err(Error::Busy {
            end: End::Sender, ..
        }) => {}
        other => panic!("the namespaced sender should hold its end: {other:?}"),
    }
    ns.write_stdin(b"two\n");
    assert_eq!(rx.recv_timeout(LONG).unwrap(), b"two");
    kill(sender, Signal::KILL);
    match rx.recv_timeout(LONG) {
        Err(Error::Disconnected) => {}
        other => panic!("expected Disconnected, got {other:?}"),
    }
    let mut tx = eventually("sender end free again", || pipe.sender().ok());
    tx.send(b"three").unwrap();
    assert_eq!(rx.recv_timeout(LONG).unwrap(), b"three");
}

#[test]
fn killing_a_whole_pid_namespace_recovers_all_its_clients() {
    if !can_unshare(&PIDNS[1..], None) {
        return;
    }
    let d = Daemon::start("pidns-all", &[]);
    let bus = d.connect();
    let pipes: Vec<_> = ["a", "b", "c"]
        .iter()
        .map(|n| bus.pipe(n).unwrap())
        .collect();
    // Three receivers, waiting, in one namespace whose init is `sh`.
    let ns = sh_in_pidns(
        &d.bus,
        r#"for p in a b c; do "$S" --bus "$B" recv $p & done; wait"#,
    );
    for (p, n) in pipes.iter().zip(["a", "b", "c"]) {
        eventually(&format!("receiver of {n} attached"), || {
            matches!(
                p.receiver(),
                Err(Error::Busy {
                    end: End::Receiver,
                    ..
                })
            )
            .then_some(())
        });
    }
    // Kill the namespace's init: the kernel kills everything in it.
    let init = eventually("the namespace's init", || {
        descendants(ns.pid()).into_iter().find(|&p| comm(p) == "sh")
    });
    kill(init, Signal::KILL);
    for (p, n) in pipes.iter().zip(["a", "b", "c"]) {
        let mut rx = eventually(&format!("receiver end of {n} free again"), || {
            p.receiver().ok()
        });
        let mut tx = p.sender().unwrap();
        tx.send(n.as_bytes()).unwrap();
        assert_eq!(rx.recv_timeout(LONG).unwrap(), n.as_bytes());
    }
    drop(ns);
}

#[test]
fn a_client_in_a_user_namespace_with_a_mapped_uid_is_admitted() {
    const USER: u32 = 4242;
    let userns = ["unshare", "--user", "--map-root-user"];
    if !can_unshare(&userns[1..], Some(USER)) {
        return;
    }
    let d = Daemon::start(
        "userns-mapped",
        &["--mode", "0666", "--allow-uid", &USER.to_string()],
    );
    let bus = d.connect();
    let mut rx = bus.pipe("p").unwrap().receiver().unwrap();
    // Root in its own user namespace, uid 4242 outside: the daemon sees 4242.
    let mut c = shmbus_in(&userns, &d.bus, &["send", "p", "from a user namespace"]);
    c.uid(USER).gid(USER);
    let o = run(c);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert_eq!(rx.recv_timeout(LONG).unwrap(), b"from a user namespace");
    // Root in a user namespace made by root: uid 0 outside too.
    ok(&userns, &d.bus, &["send", "p", "root again"]);
    assert_eq!(rx.recv_timeout(LONG).unwrap(), b"root again");
}

#[test]
fn a_client_whose_uid_is_unmapped_in_the_daemons_user_namespace_is_refused_saying_why() {
    // The daemon runs in a user namespace that maps only root: uid 65534 of
    // the host has no mapping there and shows as the overflow uid, which
    // must not be taken for an allowed uid 65534.
    let wrapper = [
        "unshare",
        "--user",
        "--map-root-user",
        "--kill-child=SIGTERM",
    ];
    if !can_unshare(&wrapper[1..3], None) {
        return;
    }
    let d = Daemon::start_wrapped(
        unique_bus("userns-unmapped"),
        &wrapper,
        &["--mode", "0666", "--allow-uid", &NOBODY.to_string()],
    );
    let mut c = shmbus_in(&[], &d.bus, &["send", "p", "hi"]);
    c.uid(NOBODY).gid(NOBODY);
    let o = run(c);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(
        o.stderr.contains("overflow uid") && o.stderr.contains("no mapping"),
        "{o:?}"
    );
    // Root is mapped (to root): admitted.
    let bus = d.connect();
    let mut rx = bus.pipe("p").unwrap().receiver().unwrap();
    ok(&[], &d.bus, &["send", "p", "mapped"]);
    assert_eq!(rx.recv_timeout(LONG).unwrap(), b"mapped");
}
