//! The C interface as C programs use it: test programs in `tests/c/`,
//! compiled here with the system `cc` against `libshmbus.a` and the checked-in
//! `include/shmbus.h`, run as separate processes against a real daemon; the
//! same programs under valgrind memcheck; and the C++ example compiled with
//! `c++ -std=c++17` against `libshmbus.so`.

use std::path::{Path, PathBuf};
use std::process::Command;

use shmbus_test_support::{self as support, Daemon, Proc, ShmFile, WATCHDOG};

mod forge;

const DISPATCH: &str = "child_role";

/// Frames (and items) the producer sends in the plain run.
const FRAMES: u64 = 1_000_000;
/// Frames under valgrind, which runs programs some 50 times slower.
const FRAMES_VALGRIND: u64 = 20_000;
/// `fetch_add`s per counting process (4 of them).
const ADDS: u64 = 100_000;
const ADDS_VALGRIND: u64 = 2_000;
/// Messages the topic publisher sends to each of its subscribers.
const MESSAGES: u64 = 100_000;
const MESSAGES_VALGRIND: u64 = 5_000;
/// Subscriber processes in the topic run.
const SUBSCRIBERS: usize = 2;

/// Child processes: only the daemon.
#[test]
fn child_role() {
    let Some((role, args)) = support::role() else {
        return;
    };
    match role.as_str() {
        "daemon" => support::daemon_main(&args),
        other => panic!("unknown role {other}"),
    }
}

fn crate_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `target/<profile>`, where cargo puts libshmbus.a and libshmbus.so.
fn lib_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    exe.parent()
        .and_then(Path::parent)
        .expect("test binary lives in target/<profile>/deps")
        .to_owned()
}

/// Runs a compiler command, failing the test with its output.
fn run_compiler(mut cmd: Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {what}: {e} (is a C compiler installed?)"));
    assert!(
        out.status.success(),
        "{what} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// libshmbus.a, built (with libshmbus.so) by `cargo build -p shmbus-capi`
/// into this test's target directory and profile, once per test process:
/// cargo builds a staticlib or cdylib for `cargo build`, not as a dependency
/// of these tests, so without this a fresh clone has none and an edit
/// followed by `cargo test` alone would test the old one.
fn static_lib() -> PathBuf {
    static BUILT: std::sync::Once = std::sync::Once::new();
    let dir = lib_dir();
    BUILT.call_once(|| {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut build = Command::new(cargo);
        build
            .args(["build", "-p", "shmbus-capi"])
            .env("CARGO_TARGET_DIR", dir.parent().expect("target dir"));
        if dir.file_name().is_some_and(|p| p == "release") {
            build.arg("--release");
        }
        run_compiler(build, "cargo build -p shmbus-capi");
    });
    dir.join("libshmbus.a")
}

/// Compiles `tests/c/NAME.c` with `cc`, linked statically with libshmbus.a.
fn compile_c(name: &str) -> PathBuf {
    let lib = static_lib();
    let out = lib_dir().join(format!("capi-c-{name}"));
    let mut cc = Command::new("cc");
    cc.args(["-std=c11", "-O2", "-g", "-Wall", "-Wextra", "-Werror"])
        .arg("-I")
        .arg(crate_dir().join("include"))
        .arg(crate_dir().join(format!("tests/c/{name}.c")))
        .arg("-o")
        .arg(&out)
        .arg(lib)
        .args(["-lpthread", "-ldl", "-lm"]);
    run_compiler(cc, &format!("cc {name}.c"));
    out
}

/// `exe args`, or the same under valgrind memcheck, which then exits 99 on
/// any error or leak it reports.
fn program(exe: &Path, args: &[&str], valgrind: bool) -> Command {
    if valgrind {
        let mut c = Command::new("valgrind");
        c.args([
            "-q",
            "--error-exitcode=99",
            "--leak-check=full",
            "--show-leak-kinds=definite,indirect,possible",
            "--errors-for-leak-kinds=definite,indirect,possible",
        ])
        .arg(exe)
        .args(args);
        c
    } else {
        let mut c = Command::new(exe);
        c.args(args);
        c
    }
}

fn pipe_and_queue(frames: u64, valgrind: bool) {
    let exe = compile_c("pipe_queue");
    let d = Daemon::start_role(DISPATCH, "capi-pq", &[]);
    let n = frames.to_string();
    let mut consumer = Proc::spawn(
        program(&exe, &["consumer", &d.bus, &n], valgrind),
        "pipe_queue consumer",
    );
    consumer.expect_line("ready");
    let producer = Proc::spawn(
        program(&exe, &["producer", &d.bus, &n], valgrind),
        "pipe_queue producer",
    );
    let sent = producer.expect_success();
    let received = consumer.expect_success();
    assert_eq!(sum_line(&sent), sum_line(&received), "checksums differ");
}

/// A producer and a consumer process exchange a million checksummed frames
/// through a pipe (copy and claim/commit; buffer and callback), then a
/// million items through a queue, with task_done and join.
#[test]
fn pipe_and_queue_a_million_frames() {
    pipe_and_queue(FRAMES, false);
}

/// The `sum` line of a program's output.
fn sum_line(out: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix("sum "))
        .unwrap_or_else(|| panic!("no sum line in {out:?}"))
        .to_owned()
}

fn topic_fan_out(messages: u64, valgrind: bool) {
    let exe = compile_c("topic");
    let d = Daemon::start_role(DISPATCH, "capi-topic", &[]);
    let n = messages.to_string();
    let subs: Vec<Proc> = (0..SUBSCRIBERS)
        .map(|i| {
            let mut p = Proc::spawn(
                program(&exe, &["subscriber", &d.bus, &n], valgrind),
                &format!("topic subscriber {i}"),
            );
            p.expect_line("ready");
            p
        })
        .collect();
    let publisher = Proc::spawn(
        program(&exe, &["publisher", &d.bus, &n], valgrind),
        "topic publisher",
    );
    let sent = sum_line(&publisher.expect_success());
    for s in subs {
        assert_eq!(sum_line(&s.expect_success()), sent, "checksums differ");
    }
    let lossy =
        Proc::spawn(program(&exe, &["lossy", &d.bus], valgrind), "topic lossy").expect_success();
    assert!(lossy.contains("lagged "), "{lossy}");
    assert!(lossy.ends_with("done\n"), "{lossy}");
}

/// One publisher process sends 100,000 checksummed messages through a
/// lossless topic to two subscriber processes, which each receive all of
/// them in order (buffer and callback); then a lossy topic overruns a
/// subscriber (`SHMBUS_LAGGED` and its missed count), gives history, and
/// refuses a subscriber too many.
#[test]
fn topic_to_two_subscriber_processes_and_a_lagged_one() {
    topic_fan_out(MESSAGES, false);
}

fn four_counters(adds: u64, valgrind: bool) {
    let exe = compile_c("counter");
    let d = Daemon::start_role(DISPATCH, "capi-count", &[]);
    let n = adds.to_string();
    let procs: Vec<Proc> = (0..4)
        .map(|i| {
            Proc::spawn(
                program(&exe, &[&d.bus, &n], valgrind),
                &format!("counter {i}"),
            )
        })
        .collect();
    for p in procs {
        p.expect_success();
    }
    let hits = d.connect().value::<u64>("hits").expect("value hits");
    assert_eq!(hits.load(), 4 * adds);
}

/// Four processes add to one value with `shmbus_value_fetch_add_u64`; no
/// addition is lost.
#[test]
fn a_value_incremented_from_four_processes() {
    four_counters(ADDS, false);
}

/// The codes no C program provokes here, with the header's reason:
/// `SHMBUS_LAGGED` and `SHMBUS_TOO_MANY_SUBSCRIBERS` are provoked by
/// `topic.c` (see [`topic_fan_out`]); the others cannot be caused by a caller
/// (`SHMBUS_DENIED`: no shmbusd sends it for a channel; `SHMBUS_PANIC`: a bug;
/// `SHMBUS_UNKNOWN`: for errors newer than the library).
const NOT_PROVOKED_BY_STATUSES: &[&str] = &[
    "SHMBUS_LAGGED",
    "SHMBUS_TOO_MANY_SUBSCRIBERS",
    "SHMBUS_DENIED",
    "SHMBUS_PANIC",
    "SHMBUS_UNKNOWN",
];

/// Every `SHMBUS_*` code of the checked-in header's `shmbus_status`.
fn header_codes() -> Vec<String> {
    let h = std::fs::read_to_string(crate_dir().join("include/shmbus.h")).expect("shmbus.h");
    let body = h
        .split("\nenum shmbus_status\n")
        .nth(1)
        .and_then(|rest| rest.split("\n};").next())
        .expect("shmbus.h defines enum shmbus_status");
    body.lines()
        .filter_map(|l| l.trim().split_once(" = "))
        .filter(|(name, _)| name.starts_with("SHMBUS_"))
        .map(|(name, _)| name.to_owned())
        .collect()
}

fn statuses(valgrind: bool) {
    let exe = compile_c("statuses");
    let root = rustix::process::geteuid().is_root();
    let mut d = Daemon::start_role(DISPATCH, "capi-codes", &["--max-channels", "32"]);
    forge::scribble_pipe(&d, "scribbled", 4096);
    let broken = forge::broken_buses(&d.paths.segment, root);
    let not_shmbus = ShmFile::new("capi-notshm", &[0x5a; 8192]);
    let truncated = ShmFile::new("capi-trunc", b"short");
    let no_daemon = support::unique_bus("capi-nodaemon");
    let mut args = vec![d.bus.as_str(), &not_shmbus.bus, &truncated.bus, &no_daemon];
    args.extend(broken.iter().map(|b| b.arg.as_str()));
    let mut p = Proc::spawn(program(&exe, &args, valgrind), "statuses");
    p.expect_line("stop the daemon");
    d.signal(rustix::process::Signal::TERM);
    d.wait();
    p.write_stdin(b"go\n");
    let out = p.expect_success();
    let mut provoked: Vec<&str> = out
        .lines()
        .filter_map(|l| l.strip_prefix("provoked "))
        .collect();
    provoked.sort_unstable();
    provoked.dedup();
    let mut want = vec![
        "SHMBUS_OK",
        "SHMBUS_NULL_POINTER",
        "SHMBUS_BAD_NAME",
        "SHMBUS_NOT_SHMBUS",
        "SHMBUS_TRUNCATED",
        "SHMBUS_DAEMON_NOT_RUNNING",
        "SHMBUS_ABI_MISMATCH",
        "SHMBUS_SIZE_MISMATCH",
        "SHMBUS_NOT_READY",
        "SHMBUS_CORRUPT_SEGMENT",
        "SHMBUS_IO",
        "SHMBUS_REFUSED",
        "SHMBUS_UNSAFE_MODE",
        "SHMBUS_PROTOCOL",
        "SHMBUS_NOT_FOUND",
        "SHMBUS_CORRUPT",
        "SHMBUS_BUSY",
        "SHMBUS_PARAM_MISMATCH",
        "SHMBUS_BAD_PARAMS",
        "SHMBUS_NO_SPACE",
        "SHMBUS_EMPTY",
        "SHMBUS_TIMEOUT",
        "SHMBUS_INVALID_ARGUMENT",
        "SHMBUS_TOO_LARGE",
        "SHMBUS_BAD_STATE",
        "SHMBUS_BUFFER_TOO_SMALL",
        "SHMBUS_FULL",
        "SHMBUS_DISCONNECTED",
        "SHMBUS_KIND_MISMATCH",
        "SHMBUS_TASK_DONE",
        "SHMBUS_TYPE_MISMATCH",
        "SHMBUS_MISALIGNED",
        "SHMBUS_LENGTH_MISMATCH",
        "SHMBUS_DIRECTORY_FULL",
        "SHMBUS_BUS_CLOSED",
    ];
    // Only root can run the program's child as another uid and chown a
    // segment to another user.
    let need_root = ["SHMBUS_PERMISSION_DENIED", "SHMBUS_WRONG_OWNER"];
    if root {
        want.extend(need_root);
    } else {
        eprintln!("not root: {need_root:?} not provoked");
    }
    want.sort_unstable();
    assert_eq!(provoked, want, "output:\n{out}");
    assert!(out.ends_with("done\n"), "{out}");
    // Together with the codes provoked elsewhere or that no caller can
    // cause, they are all the header has.
    let mut all: Vec<&str> = want
        .iter()
        .chain(NOT_PROVOKED_BY_STATUSES)
        .copied()
        .collect();
    if !root {
        all.extend(need_root);
    }
    all.sort_unstable();
    let mut header = header_codes();
    header.sort_unstable();
    assert_eq!(
        all, header,
        "a status code is neither provoked nor explained"
    );
}

/// Every status code a C program can cause, each provoked once, around
/// working calls on pipes, queues, values and arrays.
#[test]
fn every_status_code_a_program_can_cause() {
    statuses(false);
}

/// The four programs under valgrind memcheck (fewer frames and additions):
/// no error and no leak reported, or valgrind exits 99 and the test fails.
#[test]
fn valgrind_reports_no_error_and_no_leak() {
    let has = Command::new("valgrind").arg("--version").output();
    assert!(
        has.is_ok_and(|o| o.status.success()),
        "valgrind is missing: install it (apt-get install valgrind); the README's \
         test command does"
    );
    statuses(true);
    pipe_and_queue(FRAMES_VALGRIND, true);
    four_counters(ADDS_VALGRIND, true);
    topic_fan_out(MESSAGES_VALGRIND, true);
}

/// examples/hello.cpp compiles with `c++ -std=c++17` against the header and
/// libshmbus.so, and runs.
#[test]
fn cpp_example_compiles_and_runs() {
    static_lib();
    let out = lib_dir().join("capi-hello-cpp");
    let mut cxx = Command::new("c++");
    cxx.args(["-std=c++17", "-O2", "-Wall", "-Wextra", "-Werror"])
        .arg("-I")
        .arg(crate_dir().join("include"))
        .arg(crate_dir().join("examples/hello.cpp"))
        .arg("-o")
        .arg(&out)
        .arg("-L")
        .arg(lib_dir())
        .arg(format!("-Wl,-rpath,{}", lib_dir().display()))
        .arg("-lshmbus");
    run_compiler(cxx, "c++ hello.cpp");
    let d = Daemon::start_role(DISPATCH, "capi-cpp", &[]);
    let p = Proc::spawn(program(&out, &[&d.bus], false), "hello (C++)");
    let text = p.wait(WATCHDOG);
    assert!(
        text.status.success(),
        "{}\n{}",
        text.stdout_str(),
        text.stderr
    );
    let s = text.stdout_str();
    assert!(s.contains("pipe: hello from C++"), "{s}");
    assert!(s.contains("queue: job-1"), "{s}");
    assert!(s.contains("value: 0 -> 1"), "{s}");
}

/// The README's C program ("From C"), built the way the README says:
/// `capi/install.sh` into a prefix, then `cc` with `pkg-config`, and run.
#[test]
fn readme_example_builds_with_pkg_config_and_runs() {
    let readme = std::fs::read_to_string(crate_dir().join("../README.md")).expect("README.md");
    let section = readme
        .split("\n## From C\n")
        .nth(1)
        .expect("README has a \"From C\" section");
    let code = section
        .split("```c\n")
        .nth(1)
        .and_then(|rest| rest.split("\n```").next())
        .expect("the \"From C\" section has a ```c block");
    static_lib();
    let dir = lib_dir();
    let prefix = dir.join(format!("capi-prefix-{}", std::process::id()));
    let _cleanup = RemoveDir(prefix.clone());
    let mut install = Command::new("bash");
    install
        .arg(crate_dir().join("install.sh"))
        .arg(&prefix)
        .env("CARGO_TARGET_DIR", dir.parent().expect("target dir"))
        .env(
            "SHMBUS_PROFILE",
            dir.file_name().expect("profile directory"),
        );
    run_compiler(install, "capi/install.sh");
    let src = prefix.join("prog.c");
    std::fs::write(&src, code).expect("write prog.c");
    let exe = prefix.join("prog");
    let pc = Command::new("pkg-config")
        .args(["--cflags", "--libs", "shmbus"])
        .env("PKG_CONFIG_PATH", prefix.join("lib/pkgconfig"))
        .output()
        .expect("pkg-config is missing: install it (apt-get install pkg-config)");
    assert!(
        pc.status.success(),
        "{}",
        String::from_utf8_lossy(&pc.stderr)
    );
    let flags = String::from_utf8(pc.stdout).expect("pkg-config output");
    let mut cc = Command::new("cc");
    cc.args(["-std=c11", "-Wall", "-Wextra", "-Werror"])
        .arg(&src)
        .args(flags.split_whitespace())
        .arg(format!("-Wl,-rpath,{}", prefix.join("lib").display()))
        .arg("-o")
        .arg(&exe);
    run_compiler(cc, "cc prog.c $(pkg-config --cflags --libs shmbus)");
    let d = Daemon::start_role(DISPATCH, "capi-readme", &[]);
    let out = Proc::spawn(program(&exe, &[&d.bus], false), "README C program").expect_success();
    assert_eq!(out, "hello\nworld\nnothing more\nhits was 0\n");
}

/// Removes a directory when dropped.
struct RemoveDir(PathBuf);

impl Drop for RemoveDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
