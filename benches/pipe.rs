//! Pipe benchmarks between two real processes, beside the raw floor.
//!
//! `cargo bench --bench pipe` measures, in one run:
//! - **floor**: a raw shared-memory cache-line ping-pong (two `AtomicU64` on
//!   separate 128-byte lines of one `/dev/shm` file) — the best any
//!   shared-memory round trip can do on this machine;
//! - **pipe round trip**: 64-byte frames bounced through two shmbus pipes,
//!   both sides busy-polling (`try_send` / `try_recv_with`);
//! - **pipe round trip, blocking**: the same with `send` / `recv_with`, which
//!   spin briefly and then sleep on the shared futex;
//! - **pipe one-way throughput**: 64-byte frames, median of several runs.
//!
//! Latencies come from an HDR histogram (p50/p90/p99/p99.9/max). Each process is
//! pinned to its own core when there are at least two. Under `cargo test
//! --benches` (no `--bench` argument) it runs a quick smoke version.
//!
//! Children are this same executable, re-run with `SHMBUS_BENCH_ROLE` set.

// The benchmark runs real processes through the client and the daemon, which
// are not built under `--cfg loom`.
#[cfg(not(loom))]
#[path = "pipe/bench.rs"]
mod bench;

fn main() {
    #[cfg(not(loom))]
    bench::main();
}
