//! A well-behaved client is served while hostile local users flood the
//! daemon's socket with connections that never finish `HELLO` (issue #12):
//! real `shmbusd`, real attacker processes (this test binary re-executed as
//! another uid), real clients.
//!
//! Every test uses its own bus; guards stop daemons, kill children and remove
//! `/dev/shm` files on drop, and every wait has a watchdog. No test asserts how
//! long anything takes.
//!
//! The daemon out of file descriptors is tested in `client/tests/admission.rs`.

use shmbus_test_support as support;

use std::io::Write as _;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt as _;

use std::time::Duration;

use shmbus::name::BusPaths;
use support::{shmbus_cmd, within, Daemon, Proc, WATCHDOG};

/// Long enough never to fire on a loaded 2-core machine.
const LONG: Duration = Duration::from_secs(30);

/// `nobody`: not allowed on the bus.
const REFUSED_UID: u32 = 65534;
/// Allowed by `--allow-uid`.
const ALLOWED_UID: u32 = 4242;
/// Hostile connections per attacker; two attackers.
const PER_ATTACKER: usize = 250;
/// Legitimate attempts while the attack runs.
const ATTEMPTS: usize = 100;

/// Attacker role (only when re-executed in the role `attacker`, with the bus
/// and a count as arguments; see `support::role`): keeps COUNT connections
/// to the bus's socket open,
/// sends each one byte (never a newline) every 100 ms, and opens a new one
/// whenever the daemon closes one. Prints `cycle N` after each round; runs
/// until killed.
#[test]
fn attacker_role() {
    let Some((role, args)) = support::role() else {
        return;
    };
    assert_eq!(role, "attacker", "unknown role");
    let bus = &args[0];
    let n: usize = args[1].parse().expect("count");
    let socket = BusPaths::new(bus).socket;
    let connect = || {
        let s = UnixStream::connect(&socket).ok()?;
        s.set_nonblocking(true).ok()?;
        Some(s)
    };
    let mut conns: Vec<Option<UnixStream>> = (0..n).map(|_| connect()).collect();
    for cycle in 1.. {
        for c in &mut conns {
            let gone = match c {
                Some(s) => match s.write(b"x") {
                    Ok(_) => false,
                    Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
                },
                None => true,
            };
            if gone {
                *c = connect();
            }
        }
        println!("cycle {cycle}");
        let _ = std::io::stdout().flush();
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn attacker(bus: &str, uid: u32) -> Proc {
    let mut c = support::role_command(
        "attacker_role",
        "attacker",
        &[bus, &PER_ATTACKER.to_string()],
    );
    c.uid(uid).gid(uid);
    Proc::spawn_raw_stdout(c, &format!("attacker as uid {uid}"))
}

/// Waits until the attacker has done three rounds (so it has seen its
/// connections closed and opened new ones), then keeps reading its output on
/// a thread; the returned handle says how many rounds it did in all.
fn wait_attacking(p: &mut Proc) -> std::thread::JoinHandle<u64> {
    use std::io::BufRead as _;
    let out = p.raw_stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    let h = std::thread::spawn(move || {
        let mut last = 0;
        for l in std::io::BufReader::new(out).lines() {
            let Ok(l) = l else { break };
            if let Some(n) = l.strip_prefix("cycle ").and_then(|n| n.parse().ok()) {
                last = n;
                if n == 3 {
                    let _ = tx.send(());
                }
            }
        }
        last
    });
    rx.recv_timeout(WATCHDOG)
        .expect("watchdog: the attacker never got going");
    h
}

#[test]
fn hostile_connections_before_hello_never_lock_out_a_well_behaved_client() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: needs root to run attackers as other uids");
        return;
    }
    let d = Daemon::start(
        "flood",
        &["--mode", "0666", "--allow-uid", &ALLOWED_UID.to_string()],
    );
    let mut refused = attacker(&d.bus, REFUSED_UID);
    let mut allowed = attacker(&d.bus, ALLOWED_UID);
    let refused_rounds = wait_attacking(&mut refused);
    let allowed_rounds = wait_attacking(&mut allowed);

    // This process (root) connects, opens a pipe, and exchanges a message,
    // ATTEMPTS times; no retries.
    let bus_name = d.bus.clone();
    within(Duration::from_secs(600), "legitimate attempts", move || {
        for i in 0..ATTEMPTS {
            let bus = shmbus_client::Bus::connect_to(&bus_name)
                .unwrap_or_else(|e| panic!("attempt {i}: connect: {e}"));
            let pipe = bus.pipe("p").unwrap();
            let mut rx = pipe.receiver().unwrap();
            let mut tx = pipe.sender().unwrap();
            let msg = format!("message {i}");
            tx.send(msg.as_bytes()).unwrap();
            assert_eq!(rx.recv_timeout(LONG).unwrap(), msg.as_bytes());
            drop((tx, rx, pipe, bus));
            // Spread over several rounds of the attack.
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    // The same through the `shmbus` command, as the uid the attacker also
    // uses: its connections compete with the attacker's for the same budget.
    let bus = d.connect();
    let mut rx = bus.pipe("q").unwrap().receiver().unwrap();
    for i in 0..10 {
        let mut c = shmbus_cmd(&d.bus, &["send", "q", &format!("cli {i}")]);
        c.uid(ALLOWED_UID).gid(ALLOWED_UID);
        let o = Proc::spawn(c, "shmbus send as the attacker's uid").wait(WATCHDOG);
        assert_eq!(o.status.code(), Some(0), "attempt {i}: {o:?}");
        assert_eq!(
            rx.recv_timeout(LONG).unwrap(),
            format!("cli {i}").as_bytes()
        );
    }
    // A refused uid is told why, every time (never "the bus was closed"),
    // even while the daemon closes its connections at accept.
    for i in 0..10 {
        let mut c = shmbus_cmd(&d.bus, &["send", "q", "no"]);
        c.uid(REFUSED_UID).gid(REFUSED_UID);
        let o = Proc::spawn(c, "shmbus send as a refused uid").wait(WATCHDOG);
        assert_eq!(o.status.code(), Some(1), "attempt {i}: {o:?}");
        assert!(
            o.stderr
                .contains(&format!("uid {REFUSED_UID} may not use bus")),
            "attempt {i}: {o:?}"
        );
    }
    // The attack was on all along.
    assert!(refused.running() && allowed.running());
    drop((refused, allowed));
    let rounds = (
        refused_rounds.join().unwrap(),
        allowed_rounds.join().unwrap(),
    );
    eprintln!("attack rounds during the test (refused uid, allowed uid): {rounds:?}");
    assert!(rounds.0 > 3 && rounds.1 > 3, "{rounds:?}");
}
