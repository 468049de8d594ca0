//! Is an idle process silent? Counts of voluntary context switches of every
//! thread of a process, from `/proc/PID/task/*/status`: a count of wake-ups,
//! not a time.

use std::time::Duration;

/// How long clients and the daemon are watched while idle.
pub const WINDOW: Duration = Duration::from_secs(3);

/// Most voluntary context switches allowed per process in [`WINDOW`]:
/// generous (a stray wake-up, a page fault on a freshly mapped page), below
/// what one periodic wake-up a second would cost.
pub const MAX_SWITCHES: u64 = 2;

/// Voluntary context switches of one task (`/proc/PID/task/TID`) so far.
pub fn task_switches(task: &std::path::Path) -> u64 {
    let s = std::fs::read_to_string(task.join("status")).unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0)
}

/// Voluntary context switches of every thread of `pid` so far.
pub fn voluntary_switches(pid: u32) -> u64 {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("the process runs");
    tasks.flatten().map(|t| task_switches(&t.path())).sum()
}

/// Counts each process's voluntary context switches over [`WINDOW`], prints
/// them and asserts each is at most [`MAX_SWITCHES`].
pub fn assert_silent(procs: &[(&str, u32)]) {
    // Let the start-up settle (threads reaching their sleeps).
    std::thread::sleep(Duration::from_millis(300));
    let before: Vec<u64> = procs.iter().map(|&(_, p)| voluntary_switches(p)).collect();
    std::thread::sleep(WINDOW);
    for (&(what, pid), b) in procs.iter().zip(before) {
        let n = voluntary_switches(pid) - b;
        eprintln!("{what}: {n} voluntary context switches in {WINDOW:?}");
        assert!(
            n <= MAX_SWITCHES,
            "{what} woke {n} times in {WINDOW:?} on an idle bus"
        );
    }
}
