//! The measurement registry's types: what a measurement is, what it returns,
//! and the record that goes into the table, the JSON file and the chart.

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::proc::Placement;

/// Floor probes that disagree by more than this factor mean the cores
/// moved: ratios across them are flagged, and `--rounds` leaves such a
/// round out (`rounds.rs`).
pub(crate) const SETTLED: f64 = 1.5;

/// Iteration counts of one mode (`--quick` or full).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Counts {
    /// Busy-polling shared-memory round trips per latency measurement.
    pub(crate) busy_round_trips: u64,
    /// Round trips of the floor probe taken before every measurement.
    pub(crate) probe_round_trips: u64,
    /// Round trips that sleep in the kernel (futex, sockets, pipes).
    pub(crate) kernel_round_trips: u64,
    /// Round trips with an idle gap before each (both sides asleep).
    pub(crate) sleeping_round_trips: u64,
    /// Round trips through Python.
    pub(crate) python_round_trips: u64,
    /// Messages per shared-memory throughput run at 64 bytes.
    pub(crate) shm_messages: u64,
    /// Messages per syscall/channel throughput run at 64 bytes.
    pub(crate) kernel_messages: u64,
    /// Messages per Python throughput run.
    pub(crate) python_messages: u64,
    /// Throughput runs (the median is reported).
    pub(crate) runs: usize,
    /// Items per queue throughput run.
    pub(crate) queue_messages: u64,
    /// Seconds of each value/array read-while-writing run.
    pub(crate) shared_secs: f64,
}

/// Counts of the full run (minutes).
pub(crate) const FULL: Counts = Counts {
    busy_round_trips: 1_000_000,
    probe_round_trips: 20_000,
    kernel_round_trips: 100_000,
    sleeping_round_trips: 30_000,
    python_round_trips: 20_000,
    shm_messages: 20_000_000,
    kernel_messages: 1_000_000,
    python_messages: 200_000,
    runs: 5,
    queue_messages: 4_000_000,
    shared_secs: 1.0,
};

/// Counts of `--quick` (under a minute, for smoke tests and CI).
pub(crate) const QUICK: Counts = Counts {
    busy_round_trips: 20_000,
    probe_round_trips: 2_000,
    kernel_round_trips: 2_000,
    sleeping_round_trips: 1_000,
    python_round_trips: 1_000,
    shm_messages: 200_000,
    kernel_messages: 20_000,
    python_messages: 5_000,
    runs: 2,
    queue_messages: 48_000,
    shared_secs: 0.1,
};

impl Counts {
    /// Messages per throughput run for `size`-byte messages: the same number
    /// of bytes as `base` 64-byte messages, at least 1,000 and at most `base`.
    pub(crate) fn scaled(base: u64, size: usize) -> u64 {
        (base * 64 / size as u64).clamp(1_000.min(base), base)
    }
}

/// What every measurement may use.
#[derive(Debug)]
pub(crate) struct Ctx {
    /// Iteration counts.
    pub(crate) counts: Counts,
    /// Where the two sides run.
    pub(crate) placement: Placement,
    /// The benchmark daemon's bus, if a selected measurement needs it.
    pub(crate) bus: Option<String>,
    /// `python3`, if present.
    pub(crate) python: Option<String>,
}

impl Ctx {
    /// The bus name.
    ///
    /// # Panics
    /// If no daemon was started (the measurement did not declare `needs_bus`).
    pub(crate) fn bus(&self) -> &str {
        self.bus.as_deref().expect("measurement needs the daemon")
    }
}

/// The kind of figure a measurement produces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Kind {
    /// Round-trip latency distribution (lower is better).
    RoundTrip,
    /// One-way messages per second (higher is better).
    Throughput,
    /// Reads per second of a shared value while another process writes it.
    Read,
    /// Writes per second of a shared value while another process reads it.
    Write,
}

/// Which family a row belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Group {
    /// The raw hardware floor.
    Floor,
    /// shmbus itself.
    Shmbus,
    /// What a user would pick instead, across processes.
    Alternative,
    /// In-process reference (crossbeam-channel between threads).
    Reference,
    /// Python `multiprocessing`.
    Python,
}

/// What a measurement returns.
#[derive(Debug, Default)]
pub(crate) struct Measured {
    /// Round-trip latencies in ns.
    pub(crate) hist: Option<Histogram<u64>>,
    /// Rates of each run (messages or operations per second).
    pub(crate) rates: Vec<f64>,
    /// Percentage of torn reads, where checked.
    pub(crate) torn_pct: Option<f64>,
    /// A remark for the table.
    pub(crate) note: String,
}

impl Measured {
    /// A latency result.
    pub(crate) fn latency(h: Histogram<u64>) -> Self {
        Self {
            hist: Some(h),
            ..Self::default()
        }
    }

    /// A rate result (one entry per run).
    pub(crate) fn rates(rates: Vec<f64>) -> Self {
        Self {
            rates,
            ..Self::default()
        }
    }
}

/// A measurement's body; `Err` is a reason to skip it (said in the output).
pub(crate) type RunFn = Box<dyn Fn(&Ctx) -> Result<Measured, String>>;

/// A goal from the issue, checked against the run's own figures.
#[derive(Clone, Debug)]
pub(crate) enum Goal {
    /// p50 (latency) at most this multiple of the floor.
    MaxVsFloor(f64),
    /// At least this many messages per second, and at least this multiple
    /// of the named reference row.
    MinRate(f64, Option<(&'static str, f64)>),
    /// At least this multiple of the named reference row's rate.
    MinVs(&'static str, f64),
    /// p50 (latency) at most this multiple of the named row's p50.
    MaxVs(&'static str, f64),
    /// Every one of these (a row with several goals).
    All(Vec<Goal>),
}

/// One entry of the registry.
pub(crate) struct Spec {
    /// Unique name, `group/what/size`; `--filter` matches substrings of it.
    pub(crate) name: String,
    pub(crate) kind: Kind,
    /// Message (or value) size in bytes.
    pub(crate) size: usize,
    pub(crate) group: Group,
    /// Whether it needs the benchmark daemon.
    pub(crate) needs_bus: bool,
    /// Name of the floor row it is compared with (`probe` = the floor probe
    /// taken just before it).
    pub(crate) floor: Option<String>,
    /// Names of the alternatives it is compared with.
    pub(crate) alts: Vec<String>,
    pub(crate) goal: Option<Goal>,
    /// One line saying what the row measures (README and `--list`).
    pub(crate) about: String,
    /// `None`: not measured yet (said in the output).
    pub(crate) run: Option<RunFn>,
}

/// Status of one record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Status {
    Ok,
    /// Not run here (for example no `python3`), with the reason in `note`.
    Skipped,
    /// The primitive is not benchmarked yet.
    NotMeasured,
    /// The measurement failed (panic or child failure), reason in `note`.
    Failed,
}

/// One measurement's result: a row of the table and a record of the JSON.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Record {
    pub(crate) name: String,
    pub(crate) kind: Kind,
    pub(crate) size: usize,
    pub(crate) group: Group,
    pub(crate) status: Status,
    pub(crate) p50_ns: Option<u64>,
    pub(crate) p90_ns: Option<u64>,
    pub(crate) p99_ns: Option<u64>,
    pub(crate) p999_ns: Option<u64>,
    pub(crate) max_ns: Option<u64>,
    /// Round trips in the histogram.
    pub(crate) samples: Option<u64>,
    /// Median over runs; for read/write rows, operations per second.
    pub(crate) msgs_per_s: Option<f64>,
    pub(crate) bytes_per_s: Option<f64>,
    /// Throughput runs (1 for a latency histogram).
    pub(crate) runs: usize,
    /// Every run's rate, sorted.
    pub(crate) run_rates: Vec<f64>,
    /// p50 of the raw cache-line ping-pong probe taken just before.
    pub(crate) floor_before_ns: Option<u64>,
    /// p50 of the same probe taken just after (a change means the cores
    /// were moved during the row).
    pub(crate) floor_after_ns: Option<u64>,
    /// The floor row compared with.
    pub(crate) floor_ref: Option<String>,
    /// Latency: p50 / floor p50 (lower is better); rates: rate / floor rate.
    pub(crate) vs_floor: Option<f64>,
    /// The best alternative measured in this run.
    pub(crate) best_alt: Option<String>,
    /// Latency: p50 / alternative p50 (lower is better); rates: rate /
    /// alternative rate (higher is better).
    pub(crate) vs_best_alt: Option<f64>,
    pub(crate) goal: Option<String>,
    pub(crate) goal_met: Option<bool>,
    pub(crate) torn_pct: Option<f64>,
    pub(crate) placement: String,
    pub(crate) note: String,
    /// With `--rounds N` (N > 1): every round's figures for this row; the
    /// record itself is the median settled round's (see `rounds.rs`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) rounds: Vec<RoundFig>,
}

/// One round's figures for a row (`--rounds`).
#[derive(Clone, Debug, Serialize)]
pub(crate) struct RoundFig {
    /// 1-based.
    pub(crate) round: usize,
    /// The row's headline figure in that round.
    pub(crate) headline: Option<f64>,
    /// The ratio the round is ranked by (see `rounds.rs`).
    pub(crate) key: Option<f64>,
    /// The floor probe just before the row.
    pub(crate) probe_ns: Option<u64>,
    /// Whether every probe the row's ratios rest on agreed within 1.5×.
    pub(crate) settled: bool,
}

impl Record {
    /// A record with only the identity filled in.
    pub(crate) fn new(spec: &Spec, status: Status, placement: &str, note: String) -> Self {
        Self {
            name: spec.name.clone(),
            kind: spec.kind,
            size: spec.size,
            group: spec.group,
            status,
            p50_ns: None,
            p90_ns: None,
            p99_ns: None,
            p999_ns: None,
            max_ns: None,
            samples: None,
            msgs_per_s: None,
            bytes_per_s: None,
            runs: 0,
            run_rates: Vec::new(),
            floor_before_ns: None,
            floor_after_ns: None,
            floor_ref: None,
            vs_floor: None,
            best_alt: None,
            vs_best_alt: None,
            goal: None,
            goal_met: None,
            torn_pct: None,
            placement: placement.to_owned(),
            note,
            rounds: Vec::new(),
        }
    }

    /// Fills in a successful result.
    pub(crate) fn fill(&mut self, m: Measured) {
        if let Some(h) = &m.hist {
            self.p50_ns = Some(h.value_at_quantile(0.5));
            self.p90_ns = Some(h.value_at_quantile(0.9));
            self.p99_ns = Some(h.value_at_quantile(0.99));
            self.p999_ns = Some(h.value_at_quantile(0.999));
            self.max_ns = Some(h.max());
            self.samples = Some(h.len());
            self.runs = 1;
        }
        if !m.rates.is_empty() {
            let mut r = m.rates;
            r.sort_by(|a, b| a.total_cmp(b));
            let median = r[r.len() / 2];
            self.msgs_per_s = Some(median);
            if matches!(self.kind, Kind::Throughput) {
                self.bytes_per_s = Some(median * self.size as f64);
            }
            self.runs = r.len();
            self.run_rates = r;
        }
        self.torn_pct = m.torn_pct;
        if !m.note.is_empty() {
            self.note = m.note;
        }
    }

    /// The headline figure: p50 for latency rows, the median rate otherwise.
    pub(crate) fn headline(&self) -> Option<f64> {
        match self.kind {
            Kind::RoundTrip => self.p50_ns.map(|v| v as f64),
            _ => self.msgs_per_s,
        }
    }
}
