//! Value and array benchmarks between real processes, beside Python's
//! `multiprocessing.Value` / `Array`.
//!
//! `cargo bench --bench table` measures, in one run:
//! - reads/s and writes/s of an `f64` value and of a 16-element `f64` array,
//!   uncontended (one process);
//! - reads/s with a writer storing as fast as it can in another process
//!   (every read checked for tearing), and writes/s with a second writer in
//!   another process (both serialize on the writer lock);
//! - the same operations in Python 3's `multiprocessing` (`Value('d')`,
//!   `Array('d', 16)` with their lock, and `Array(lock=False)` torn reads), if
//!   `python3` is on the `PATH`.
//!
//! Each process is pinned to its own core when there are at least two. Under
//! `cargo test --benches` (no `--bench` argument) it runs a quick smoke
//! version. Children are this same executable, re-run with
//! `SHMBUS_BENCH_ROLE` set.

// The benchmark runs real processes through the client and the daemon, which
// are not built under `--cfg loom`.
#[cfg(not(loom))]
#[path = "table/bench.rs"]
mod bench;

fn main() {
    #[cfg(not(loom))]
    bench::main();
}
