//! Output: the markdown tables, the JSON file and the SVG chart.

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use crate::measure::{Group, Kind, Record, Status};

/// Facts about the run, printed above the tables and stored in the JSON.
#[derive(Debug, Serialize)]
pub(crate) struct Meta {
    pub(crate) date_utc: String,
    pub(crate) mode: String,
    /// Passes over the selection (`--rounds`); 1 is a single pass.
    pub(crate) rounds: u32,
    pub(crate) kernel: String,
    pub(crate) cpu_model: String,
    pub(crate) cpus_online: usize,
    pub(crate) placement: String,
    pub(crate) load_before: String,
    pub(crate) load_after: String,
    pub(crate) python: String,
    pub(crate) duration_s: f64,
    pub(crate) command: String,
    /// The iteration counts used.
    pub(crate) counts: String,
}

fn read_trim(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "?".into())
}

fn loadavg() -> String {
    read_trim("/proc/loadavg")
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// `YYYY-MM-DD HH:MM` UTC from the system clock (Hinnant's civil_from_days).
fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60
    )
}

impl Meta {
    /// Collects what is known before the run.
    pub(crate) fn collect(mode: &str) -> Self {
        let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split(':').nth(1))
                    .map(|m| m.trim().to_owned())
            })
            .unwrap_or_else(|| "?".into());
        Self {
            date_utc: utc_now(),
            mode: mode.to_owned(),
            rounds: 1,
            kernel: read_trim("/proc/sys/kernel/osrelease"),
            cpu_model,
            cpus_online: std::thread::available_parallelism().map_or(1, |n| n.get()),
            placement: String::new(),
            load_before: loadavg(),
            load_after: String::new(),
            python: String::new(),
            duration_s: 0.0,
            command: std::env::args().collect::<Vec<_>>().join(" "),
            counts: String::new(),
        }
    }

    /// Records what is known after the run.
    pub(crate) fn finish(&mut self, secs: f64) {
        self.load_after = loadavg();
        self.duration_s = secs;
    }
}

/// Messages per second as `12.3 M` / `456 k`.
pub(crate) fn rate(v: f64) -> String {
    if v >= 1e9 {
        format!("{:.2} G", v / 1e9)
    } else if v >= 1e6 {
        format!("{:.2} M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1} k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

/// Nanoseconds as `850 ns` / `12 µs` / `3.4 ms` (chart axis).
fn dur(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.1} ms", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.0} µs", v / 1e3)
    } else {
        format!("{v:.0} ns")
    }
}

fn ns(v: Option<u64>) -> String {
    v.map_or("–".into(), |v| v.to_string())
}

/// The floor probes around a row: `120 → 121`.
fn probes(r: &Record) -> String {
    match (r.floor_before_ns, r.floor_after_ns) {
        (Some(b), Some(a)) => format!("{b} → {a}"),
        (b, _) => ns(b),
    }
}

fn ratio(v: Option<f64>) -> String {
    v.map_or("–".into(), |v| {
        if v >= 100.0 {
            format!("{v:.0}×")
        } else if v >= 0.1 {
            format!("{v:.2}×")
        } else {
            format!("1/{:.0}", 1.0 / v)
        }
    })
}

fn opt_rate(v: Option<f64>) -> String {
    v.map_or("–".into(), rate)
}

/// One line for the progress output.
pub(crate) fn summary(r: &Record) -> String {
    let floor = r.floor_before_ns.map_or(String::new(), |_| {
        format!(" (floor probe p50 {} ns)", probes(r))
    });
    match r.status {
        Status::Ok => match r.kind {
            Kind::RoundTrip => {
                format!("p50 {} ns, p99.9 {} ns{floor}", ns(r.p50_ns), ns(r.p999_ns))
            }
            Kind::Throughput => format!(
                "{} msgs/s, {:.0} MB/s{floor}",
                opt_rate(r.msgs_per_s),
                r.bytes_per_s.unwrap_or(0.0) / 1e6
            ),
            Kind::Read | Kind::Write => format!("{} ops/s{floor}", opt_rate(r.msgs_per_s)),
        },
        Status::Skipped => format!("skipped: {}", r.note),
        Status::NotMeasured => "not yet measured".into(),
        Status::Failed => r.note.clone(),
    }
}

fn goal(r: &Record) -> String {
    match (&r.goal, r.goal_met) {
        (Some(g), Some(true)) => format!("met: {g}"),
        (Some(g), Some(false)) => format!("**SHORT** of {g}"),
        (Some(g), None) => format!("unchecked: {g}"),
        (None, _) => String::new(),
    }
}

fn note(r: &Record) -> String {
    match r.status {
        Status::Ok => r.note.clone(),
        Status::Skipped => format!("**skipped**: {}", r.note),
        Status::NotMeasured => "**not yet measured**".into(),
        Status::Failed => format!("**{}**", r.note),
    }
}

fn vs_alt(r: &Record) -> String {
    match (&r.best_alt, r.vs_best_alt) {
        (Some(a), Some(v)) => format!("{} {a}", ratio(Some(v))),
        _ => "–".into(),
    }
}

/// The markdown report (printed on stdout and saved as results.md).
pub(crate) fn markdown(meta: &Meta, records: &[Record]) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "\n## shmbus-bench results ({} mode)\n", meta.mode);
    if meta.rounds > 1 {
        let _ = writeln!(
            o,
            "{} rounds in rotation: each row is its round with the median ratio among the \
             rounds in which the floor probes it rests on agreed within {}× (see its note).\n",
            meta.rounds,
            crate::measure::SETTLED
        );
    }
    let _ = writeln!(
        o,
        "{}; kernel {}; {} ({} cpus online); {}; load average {} before, {} after; {}; {:.0} s.\n",
        meta.date_utc,
        meta.kernel,
        meta.cpu_model,
        meta.cpus_online,
        meta.placement,
        meta.load_before,
        meta.load_after,
        meta.python,
        meta.duration_s
    );
    let _ = writeln!(
        o,
        "Two real processes (crossbeam: two threads) per row. \"floor before\" is the p50 of a \
         raw cache-line ping-pong probe run just before that row. Latency ratios are p50 / reference \
         (lower is better); rate ratios are rate / reference (higher is better).\n"
    );

    let rt: Vec<&Record> = records
        .iter()
        .filter(|r| r.kind == Kind::RoundTrip)
        .collect();
    if !rt.is_empty() {
        let _ = writeln!(o, "### Round-trip latency (ns)\n");
        let _ = writeln!(
            o,
            "| measurement | p50 | p90 | p99 | p99.9 | max | round trips | floor probe before → after | × floor | × best alternative | goal | note |"
        );
        let _ = writeln!(
            o,
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---|"
        );
        for r in rt {
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                r.name,
                ns(r.p50_ns),
                ns(r.p90_ns),
                ns(r.p99_ns),
                ns(r.p999_ns),
                ns(r.max_ns),
                r.samples.map_or("–".into(), |v| v.to_string()),
                probes(r),
                ratio(r.vs_floor),
                vs_alt(r),
                goal(r),
                note(r)
            );
        }
        let _ = writeln!(o);
    }

    let tp: Vec<&Record> = records
        .iter()
        .filter(|r| r.kind == Kind::Throughput)
        .collect();
    if !tp.is_empty() {
        let _ = writeln!(o, "### One-way throughput (median of runs)\n");
        let _ = writeln!(
            o,
            "| measurement | size B | msgs/s | MB/s | runs | floor probe before → after | × floor | × best alternative | goal | note |"
        );
        let _ = writeln!(o, "|---|---:|---:|---:|---:|---:|---:|---|---|---|");
        for r in tp {
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                r.name,
                r.size,
                opt_rate(r.msgs_per_s),
                r.bytes_per_s
                    .map_or("–".into(), |b| format!("{:.0}", b / 1e6)),
                r.runs,
                probes(r),
                ratio(r.vs_floor),
                vs_alt(r),
                goal(r),
                note(r)
            );
        }
        let _ = writeln!(o);
    }

    let sh: Vec<&Record> = records
        .iter()
        .filter(|r| matches!(r.kind, Kind::Read | Kind::Write))
        .collect();
    if !sh.is_empty() {
        let _ = writeln!(
            o,
            "### Shared values and arrays, with a concurrent writer (reader)\n"
        );
        let _ = writeln!(
            o,
            "| measurement | kind | size B | ops/s | ns/op | runs | torn % | floor probe before → after | × best alternative | goal | note |"
        );
        let _ = writeln!(o, "|---|---|---:|---:|---:|---:|---:|---:|---|---|---|");
        for r in sh {
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                r.name,
                if r.kind == Kind::Read {
                    "read"
                } else {
                    "write"
                },
                r.size,
                opt_rate(r.msgs_per_s),
                r.msgs_per_s
                    .map_or("–".into(), |v| format!("{:.0}", 1e9 / v)),
                r.runs,
                r.torn_pct.map_or("–".into(), |t| format!("{t:.3}")),
                probes(r),
                vs_alt(r),
                goal(r),
                note(r)
            );
        }
        let _ = writeln!(o);
    }
    o
}

#[derive(Serialize)]
struct Out<'a> {
    meta: &'a Meta,
    records: &'a [Record],
}

/// The JSON file: `{"meta": {...}, "records": [one per measurement]}`.
pub(crate) fn json(meta: &Meta, records: &[Record]) -> String {
    serde_json::to_string_pretty(&Out { meta, records }).expect("serialize")
}

/// `text` without its parenthesised parts: "parent cpu 0, child cpu 1".
fn strip_parens(text: &str) -> String {
    let mut depth = 0usize;
    let mut out = String::new();
    for c in text.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            c if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace(" ,", ",")
}

/// The SVG chart: latency percentiles of every round-trip row, and one-way
/// messages/s and bytes/s against message size.
pub(crate) fn chart(meta: &Meta, records: &[Record], path: &Path) -> Result<(), String> {
    use plotters::prelude::*;

    let e = |e: &dyn std::fmt::Display| e.to_string();
    let root = SVGBackend::new(path, (1100, 1530)).into_drawing_area();
    root.fill(&WHITE).map_err(|x| e(&x))?;
    let probes: Vec<u64> = records.iter().filter_map(|r| r.floor_before_ns).collect();
    let title = format!(
        "shmbus-bench, {} mode, {}, kernel {}, {}; floor probe p50 {}–{} ns",
        meta.mode,
        meta.date_utc,
        meta.kernel,
        strip_parens(&meta.placement),
        probes.iter().min().copied().unwrap_or(0),
        probes.iter().max().copied().unwrap_or(0)
    );
    let root = root.titled(&title, ("sans-serif", 15)).map_err(|x| e(&x))?;
    let panels = root.split_evenly((3, 1));

    // Latency percentiles.
    let rt: Vec<&Record> = records
        .iter()
        .filter(|r| r.kind == Kind::RoundTrip && r.status == Status::Ok)
        .collect();
    let pts = |r: &Record| -> Vec<(f64, f64)> {
        [r.p50_ns, r.p90_ns, r.p99_ns, r.p999_ns, r.max_ns]
            .iter()
            .enumerate()
            .filter_map(|(i, v)| v.map(|v| (i as f64, (v.max(1)) as f64)))
            .collect()
    };
    let (lo, hi) = rt
        .iter()
        .flat_map(|r| pts(r))
        .fold((f64::MAX, 1.0f64), |(lo, hi), (_, y)| {
            (lo.min(y), hi.max(y))
        });
    let lo = if lo == f64::MAX { 1.0 } else { lo };
    let mut c = ChartBuilder::on(&panels[0])
        .caption(
            "Round-trip latency percentiles (ns, log scale)",
            ("sans-serif", 22),
        )
        .margin(15)
        .x_label_area_size(35)
        .y_label_area_size(70)
        .build_cartesian_2d(-1.4f64..4.2f64, ((lo / 2.0)..(hi * 2.0)).log_scale())
        .map_err(|x| e(&x))?;
    c.configure_mesh()
        .x_labels(12)
        .x_label_formatter(&|x| {
            let i = x.round() as i64;
            if i < 0 || (x - i as f64).abs() > 0.01 {
                return String::new();
            }
            ["p50", "p90", "p99", "p99.9", "max"]
                .get(i as usize)
                .map_or(String::new(), |s| s.to_string())
        })
        .y_label_formatter(&|y| dur(*y))
        .draw()
        .map_err(|x| e(&x))?;
    for (i, r) in rt.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        c.draw_series(LineSeries::new(pts(r), color.stroke_width(2)))
            .map_err(|x| e(&x))?
            .label(r.name.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        c.draw_series(
            pts(r)
                .into_iter()
                .map(|p| Circle::new(p, 3, color.filled())),
        )
        .map_err(|x| e(&x))?;
    }
    c.configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|x| e(&x))?;

    // Throughput per size: one line per family.
    let tp: Vec<&Record> = records
        .iter()
        .filter(|r| r.kind == Kind::Throughput && r.status == Status::Ok)
        .collect();
    let mut families: Vec<String> = Vec::new();
    for r in &tp {
        let fam = r
            .name
            .rsplit_once('/')
            .map_or(r.name.clone(), |(f, _)| f.to_owned());
        if !families.contains(&fam) {
            families.push(fam);
        }
    }
    for (panel, bytes) in [(&panels[1], false), (&panels[2], true)] {
        let val = |r: &Record| {
            if bytes {
                r.bytes_per_s
            } else {
                r.msgs_per_s
            }
        };
        let ys: Vec<f64> = tp.iter().filter_map(|r| val(r)).collect();
        let lo = ys.iter().copied().fold(f64::MAX, f64::min);
        let hi = ys.iter().copied().fold(1.0, f64::max);
        let lo = if lo == f64::MAX { 1.0 } else { lo };
        let title = if bytes {
            "One-way throughput, bytes/s (log) vs message size"
        } else {
            "One-way throughput, messages/s (log) vs message size"
        };
        let mut c = ChartBuilder::on(panel)
            .caption(title, ("sans-serif", 22))
            .margin(15)
            .x_label_area_size(35)
            .y_label_area_size(70)
            .build_cartesian_2d(2.5f64..16.5f64, ((lo / 2.0)..(hi * 2.0)).log_scale())
            .map_err(|x| e(&x))?;
        c.configure_mesh()
            .x_labels(16)
            .x_label_formatter(&|x| {
                let b = 2f64.powf(*x).round() as u64;
                if (x - x.round()).abs() > 0.01 {
                    String::new()
                } else if b >= 1024 {
                    format!("{}K", b / 1024)
                } else {
                    b.to_string()
                }
            })
            .x_desc("message size, bytes (log2)")
            .y_label_formatter(&|y| {
                if bytes {
                    format!("{}B/s", rate(*y))
                } else {
                    rate(*y)
                }
            })
            .draw()
            .map_err(|x| e(&x))?;
        for (i, fam) in families.iter().enumerate() {
            let mut p: Vec<(f64, f64)> = tp
                .iter()
                .filter(|r| r.name.starts_with(&format!("{fam}/")))
                .filter_map(|r| val(r).map(|v| ((r.size as f64).log2(), v)))
                .collect();
            p.sort_by(|a, b| a.0.total_cmp(&b.0));
            let color = Palette99::pick(i).to_rgba();
            let width = if tp
                .iter()
                .any(|r| r.group == Group::Shmbus && r.name.starts_with(fam.as_str()))
            {
                3
            } else {
                1
            };
            c.draw_series(LineSeries::new(p.clone(), color.stroke_width(width)))
                .map_err(|x| e(&x))?
                .label(fam.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
            c.draw_series(p.into_iter().map(|q| Circle::new(q, 4, color.filled())))
                .map_err(|x| e(&x))?;
        }
        c.configure_series_labels()
            .position(if bytes {
                SeriesLabelPosition::LowerRight
            } else {
                SeriesLabelPosition::UpperRight
            })
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|x| e(&x))?;
    }
    root.present().map_err(|x| e(&x))?;
    Ok(())
}
