//! Queue benchmarks between real processes, beside the pipe and the raw floor.
//!
//! `cargo bench --bench queue` measures, in one run:
//! - **floor**: a raw shared-memory cache-line ping-pong between two processes;
//! - **pipe one-way throughput** (64 B), the figure the queue is held to;
//! - **queue round trip** (64 B), busy-poll and blocking, through two queues;
//! - **queue throughput** (64 B) with 1 producer / 1 consumer (pinned to the
//!   two cores), and 2P/2C and 4P/4C (unpinned: more runnable processes than
//!   cores, so waiting processes must sleep, not spin).
//!
//! Under `cargo test --benches` (no `--bench` argument) it runs a quick smoke
//! version. Children are this same executable, re-run with
//! `SHMBUS_BENCH_ROLE` set.

#[cfg(not(loom))]
#[path = "queue/bench.rs"]
mod bench;

fn main() {
    #[cfg(not(loom))]
    bench::main();
}
