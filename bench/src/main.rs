//! `shmbus-bench`: shmbus against the physical floor and against what users
//! would pick instead, in one run, on this machine.
//!
//! Every measurement runs across two real processes (crossbeam-channel: two
//! threads), pinned to different cores when there are at least two. Before
//! each one a short raw cache-line ping-pong probe records the floor as the
//! cores are placed at that moment. Results go to stdout as markdown tables,
//! to `results.json` (one record per measurement) and to `chart.svg` in the
//! output folder (default `target/shmbus-bench/`). See the README section
//! "Benchmarks".
//!
//! Children are this executable, re-run with `SHMBUS_SUITE_ROLE` set.

mod floor;
#[cfg(feature = "iceoryx2")]
mod iceoryx2;
mod icount;
mod measure;
mod peers;
mod pipe;
mod proc;
mod python;
mod python_shmbus;
mod queue;
mod registry;
mod report;
mod rounds;
mod select;
mod shared;
mod topic;

use std::io::{IsTerminal, Write};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;

use measure::{Ctx, Goal, Group, Kind, Record, Spec, Status, FULL, QUICK};
use registry::registry;

/// Message sizes of the throughput sweep.
pub(crate) const SIZES: [usize; 7] = [8, 64, 256, 1024, 4096, 16384, 65536];

/// Comparative benchmark of shmbus against the raw shared-memory floor,
/// Unix domain sockets, pipe(2), a shared futex, crossbeam-channel and Python
/// multiprocessing.
#[derive(Parser, Debug)]
#[command(name = "shmbus-bench", version)]
struct Args {
    /// Fewer iterations: finishes in under a minute (smoke tests, CI).
    #[arg(long)]
    quick: bool,
    /// Run only measurements whose name contains one of these substrings
    /// (repeat the option or separate with commas), e.g. `--filter rt-busy`.
    #[arg(long, value_delimiter = ',')]
    filter: Vec<String>,
    /// Run the rows of a named preset (`pipe`, `queue`, `table`, `topic`; see
    /// `--list`), besides any `--filter`.
    #[arg(long, value_delimiter = ',')]
    preset: Vec<String>,
    /// Folder for results.json, results.md and chart.svg.
    #[arg(long, default_value = default_out())]
    out: PathBuf,
    /// Run the selection this many times in rotation and report, for each
    /// row, the round with the median ratio among the rounds in which the
    /// floor probes its ratios rest on agreed (the host moves the vCPUs);
    /// every round's ratio is listed in the row's note.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100))]
    rounds: u32,
    /// List the measurements and exit.
    #[arg(long)]
    list: bool,
}

fn default_out() -> &'static str {
    concat!(env!("CARGO_MANIFEST_DIR"), "/../target/shmbus-bench")
}

fn main() {
    if let Ok(role) = std::env::var(proc::ROLE) {
        child(&role);
        return;
    }
    let mut args = Args::parse();
    let specs = registry();
    match registry::preset_filters(&args.preset) {
        Ok(f) => args.filter.extend(f),
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    }
    if args.list {
        println!("presets (--preset NAME):");
        for (name, about, _) in registry::PRESETS {
            println!("  {name:<8} {about}");
        }
        println!();
        for s in specs
            .iter()
            .filter(|s| args.filter.is_empty() || args.filter.iter().any(|f| s.name.contains(f)))
        {
            let state = if s.run.is_some() {
                ""
            } else {
                "  [not yet measured]"
            };
            println!("{:<34} {}{state}", s.name, s.about);
        }
        return;
    }
    let selected: Vec<&Spec> = specs
        .iter()
        .filter(|s| args.filter.is_empty() || args.filter.iter().any(|f| s.name.contains(f)))
        .collect();
    if selected.is_empty() {
        eprintln!(
            "no measurement matches --filter/--preset {:?} (see --list)",
            args.filter
        );
        std::process::exit(2);
    }
    std::fs::create_dir_all(&args.out).expect("create output folder");
    let out = std::fs::canonicalize(&args.out).unwrap_or_else(|_| args.out.clone());
    proc::cleanup_on_signal();

    let started = Instant::now();
    let mut meta = report::Meta::collect(if args.quick { "quick" } else { "full" });
    meta.rounds = args.rounds;
    let placement = proc::Placement::choose();
    proc::pin(placement.parent);
    meta.placement = placement.text.clone();
    let python = python::detect();
    meta.python = python
        .as_deref()
        .map_or("absent: Python rows not run".to_owned(), python::version);
    eprintln!(
        "shmbus-bench ({} mode): {} measurements; {}; load {}; python: {}",
        meta.mode,
        selected.len(),
        meta.placement,
        meta.load_before,
        meta.python
    );

    let needs_bus = selected.iter().any(|s| s.needs_bus && s.run.is_some());
    let counts = if args.quick { QUICK } else { FULL };
    meta.counts = format!("{counts:?}");
    let mut ctx = Ctx {
        counts,
        placement,
        bus: None,
        python,
    };

    // Progress is rewritten in place (carriage return, erase-line escape) only
    // on a terminal; into a file or pipe each measurement gets one plain line.
    let tty = std::io::stderr().is_terminal();
    let (rewind, erase) = if tty { ("\r", "\x1b[K") } else { ("", "") };
    let total = selected.len() * args.rounds as usize;
    let mut rounds = Vec::new();
    for round in 0..args.rounds as usize {
        // A daemon of its own for each round: every round starts from an
        // empty bus (a pass leaves its channels behind, and a few passes
        // would fill the directory).
        let daemon = needs_bus.then(proc::Daemon::start);
        ctx.bus = daemon.as_ref().map(|d| d.bus.clone());
        let mut records = Vec::new();
        for (i, spec) in selected.iter().enumerate() {
            let at = round * selected.len() + i + 1;
            if tty {
                eprint!(
                    "{rewind}{erase}[{at}/{total}] {:>4.0}s  {} ...",
                    started.elapsed().as_secs_f64(),
                    spec.name
                );
                let _ = std::io::stderr().flush();
            }
            let rec = run_one(&ctx, spec);
            eprintln!(
                "{rewind}{erase}[{at}/{total}] {:>4.0}s  {}: {}",
                started.elapsed().as_secs_f64(),
                spec.name,
                report::summary(&rec)
            );
            records.push(rec);
        }
        drop(daemon);
        compare(&selected, &mut records);
        rounds.push(records);
    }

    let records = if rounds.len() == 1 {
        rounds.pop().expect("one round")
    } else {
        rounds::combine(&selected, &rounds)
    };
    meta.finish(started.elapsed().as_secs_f64());
    let md = report::markdown(&meta, &records);
    print!("{md}");
    let json = report::json(&meta, &records);
    std::fs::write(out.join("results.json"), json).expect("write results.json");
    std::fs::write(out.join("results.md"), &md).expect("write results.md");
    let svg = out.join("chart.svg");
    if let Err(e) = report::chart(&meta, &records, &svg) {
        eprintln!("warning: chart not written: {e}");
    }
    eprintln!(
        "wrote {}/{{results.json,results.md,chart.svg}} in {:.0}s",
        out.display(),
        started.elapsed().as_secs_f64()
    );
}

/// Runs one measurement with a floor probe before it; never panics.
fn run_one(ctx: &Ctx, spec: &Spec) -> Record {
    let place = &ctx.placement.text;
    let Some(run) = &spec.run else {
        return Record::new(spec, Status::NotMeasured, place, "not yet measured".into());
    };
    if spec.group == Group::Python && ctx.python.is_none() {
        return Record::new(
            spec,
            Status::Skipped,
            place,
            "python3 with multiprocessing not found".into(),
        );
    }
    let probe = catch_unwind(AssertUnwindSafe(|| {
        floor::cacheline_round_trip(ctx, ctx.counts.probe_round_trips).value_at_quantile(0.5)
    }))
    .ok();
    let mut rec = match catch_unwind(AssertUnwindSafe(|| run(ctx))) {
        Ok(Ok(m)) => {
            let mut r = Record::new(spec, Status::Ok, place, String::new());
            r.fill(m);
            r
        }
        Ok(Err(why)) => Record::new(spec, Status::Skipped, place, why),
        Err(p) => {
            let why = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panic".into());
            Record::new(spec, Status::Failed, place, format!("failed: {why}"))
        }
    };
    rec.floor_before_ns = probe;
    if rec.status == Status::Ok {
        rec.floor_after_ns = catch_unwind(AssertUnwindSafe(|| {
            floor::cacheline_round_trip(ctx, ctx.counts.probe_round_trips).value_at_quantile(0.5)
        }))
        .ok();
        if let Some(w) = drift(rec.floor_after_ns, probe, "this row") {
            add_note(
                &mut rec.note,
                w.replace("placement changed", "placement changed during the row")
                    .replace(" here,", " after,"),
            );
        }
    }
    rec
}

/// Fills in the ratios to the floor and to the best alternative, and the goals.
fn compare(specs: &[&Spec], records: &mut [Record]) {
    let ok = |records: &[Record], name: &str| {
        records
            .iter()
            .find(|r| r.name == name && r.status == Status::Ok)
            .cloned()
    };
    for i in 0..records.len() {
        let spec = specs[i];
        let r = &records[i];
        if r.status != Status::Ok {
            continue;
        }
        let Some(mine) = r.headline() else { continue };
        let mut out = r.clone();
        if let Some(f) = &spec.floor {
            let floor = if f == "probe" {
                r.floor_before_ns
                    .map(|v| (v as f64, "floor probe just before".to_owned()))
            } else {
                ok(records, f).and_then(|fr| fr.headline().map(|h| (h, f.clone())))
            };
            if let Some((fv, name)) = floor {
                out.vs_floor = Some(mine / fv);
                out.floor_ref = Some(name);
            }
            // The floor row ran at another moment: say so if the cores were
            // placed differently then (the probes disagree by over 1.5×).
            if let Some(fr) = ok(records, f) {
                if let Some(w) = drift(r.floor_before_ns, fr.floor_before_ns, f) {
                    add_note(&mut out.note, w);
                }
            }
        }
        let alts: Vec<Record> = spec.alts.iter().filter_map(|a| ok(records, a)).collect();
        let best = alts
            .iter()
            .filter(|a| a.headline().is_some())
            .min_by(|a, b| {
                let (x, y) = (a.headline().unwrap(), b.headline().unwrap());
                if r.kind == Kind::RoundTrip {
                    x.total_cmp(&y)
                } else {
                    y.total_cmp(&x)
                }
            });
        if let Some(b) = best {
            out.vs_best_alt = Some(mine / b.headline().unwrap());
            out.best_alt = Some(b.name.clone());
            if let Some(w) = drift(r.floor_before_ns, b.floor_before_ns, &b.name) {
                add_note(&mut out.note, w);
            }
        }
        if let Some(g) = &spec.goal {
            let vs = |name: &str| {
                ok(records, name)
                    .and_then(|x| x.headline())
                    .map(|h| mine / h)
            };
            let (text, met) = check(g, mine, out.vs_floor, &vs);
            out.goal = Some(text);
            out.goal_met = met;
        }
        records[i] = out;
    }
}

/// A goal's text and whether it is met (`None`: a row it needs did not run).
/// `mine` is the row's headline figure, `vs_floor` its ratio to the floor,
/// `vs(name)` its ratio to the named row's headline figure.
fn check(
    g: &Goal,
    mine: f64,
    vs_floor: Option<f64>,
    vs: &dyn Fn(&str) -> Option<f64>,
) -> (String, Option<bool>) {
    match g {
        Goal::MaxVsFloor(x) => (format!("p50 ≤ {x}× floor"), vs_floor.map(|v| v <= *x)),
        Goal::MinRate(rate, rel) => {
            let mut text = format!("≥ {:.0} M msgs/s", rate / 1e6);
            let mut met = mine >= *rate;
            if let Some((name, k)) = rel {
                text += &format!(" and ≥ {k}× {name}");
                match vs(name) {
                    Some(v) => met &= v >= *k,
                    None => text += " (not measured)",
                }
            }
            (text, Some(met))
        }
        Goal::MinVs(name, k) => (format!("≥ {k}× {name}"), vs(name).map(|v| v >= *k)),
        Goal::MaxVs(name, k) => (format!("p50 ≤ {k}× {name}"), vs(name).map(|v| v <= *k)),
        Goal::All(goals) => {
            let parts: Vec<_> = goals.iter().map(|g| check(g, mine, vs_floor, vs)).collect();
            // Each part says its own verdict: the row's one verdict is
            // the conjunction.
            let text = parts
                .iter()
                .map(|(t, m)| {
                    let v = match m {
                        Some(true) => "met",
                        Some(false) => "short",
                        None => "unchecked",
                    };
                    format!("{t} ({v})")
                })
                .collect::<Vec<_>>()
                .join("; ");
            // Unmet if any is unmet; unknown if any is unknown; met otherwise.
            let met = if parts.iter().any(|p| p.1 == Some(false)) {
                Some(false)
            } else if parts.iter().any(|p| p.1.is_none()) {
                None
            } else {
                Some(true)
            };
            (text, met)
        }
    }
}

/// A warning when the probe before a row and the probe before the row it is
/// compared with disagree by more than 1.5×: the cores were placed
/// differently, so the ratio mixes two placements.
fn drift(now: Option<u64>, then: Option<u64>, other: &str) -> Option<String> {
    let (now, then) = (now?, then?);
    let (a, b) = (now.max(1) as f64, then.max(1) as f64);
    (a / b > measure::SETTLED || b / a > measure::SETTLED)
        .then(|| format!("placement changed: probe {now} ns here, {then} ns before {other}"))
}

fn add_note(note: &mut String, w: String) {
    if note.is_empty() {
        *note = w;
    } else {
        *note = format!("{note}; {w}");
    }
}

/// A child process: dispatch on the role.
fn child(role: &str) {
    proc::die_with_parent(role == "daemon");
    proc::pin_from_env();
    let a: Vec<String> = std::env::args().skip(1).collect();
    let n = |i: usize| -> u64 { a[i].parse().expect("number argument") };
    match role {
        "daemon" => proc::daemon_main(&a),
        "floor-echo" => floor::floor_echo(&a[0], n(1)),
        "ring-producer" => floor::ring_producer(&a[0], n(1), n(2) as usize),
        "mpmc-producer" => floor::mpmc_producer(&a[0], n(1)),
        "ring-echo" => floor::ring_echo(&a[0], n(1), &a[2]),
        "futex-echo" => floor::futex_echo(&a[0], n(1)),
        "pipe-echo" => pipe::echo(&a[0], &a[1], n(2), n(3) as usize, a[4] == "true"),
        "pipe-sender" => pipe::sender(&a[0], &a[1], n(2), n(3) as usize, &a[4]),
        "queue-echo" => queue::echo(&a[0], &a[1], n(2), a[3] == "true"),
        "queue-producer" => queue::producer(&a[0], &a[1], n(2), queue::Wait::parse(&a[3])),
        "queue-consumer" => queue::consumer(&a[0], &a[1], n(2), queue::Wait::parse(&a[3])),
        "topic-echo" => topic::echo(&a[0], &a[1], n(2), a[3] == "true"),
        "topic-publisher" => topic::publisher(&a[0], &a[1], n(2)),
        "topic-subscriber" => topic::subscriber(&a[0], &a[1], n(2)),
        #[cfg(feature = "iceoryx2")]
        "iceoryx2-echo" => iceoryx2::echo(&a[0], n(1)),
        #[cfg(feature = "iceoryx2")]
        "iceoryx2-subscriber" => iceoryx2::subscriber_role(&a[0], n(1)),
        "table-writer" => shared::table_writer(&a[0], &a[1], &a[2], a[3] == "true", n(4)),
        "table-reader" => shared::table_reader(&a[0], &a[1], &a[2], a[3] == "true"),
        "icount" => icount::run(&a[0], &a[1], n(2)),
        "kernel-echo" => peers::echo(n(0), n(1) as usize),
        "kernel-sender" => peers::sender(n(0), n(1) as usize),
        other => panic!("unknown role {other}"),
    }
}
