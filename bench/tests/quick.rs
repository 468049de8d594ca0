//! Smoke tests: `shmbus-bench --quick` (the whole suite, a few seconds) must
//! run, print the tables and write a JSON file with one record per
//! measurement, so the harness never rots (`cargo test --workspace` runs
//! this); `--filter` and `--preset` must select rows.

use std::path::PathBuf;
use std::process::{Command, Output};

fn run(tag: &str, extra: &[&str]) -> (Output, PathBuf) {
    let out = std::env::temp_dir().join(format!("shmbus-bench-test-{tag}-{}", std::process::id()));
    let run = Command::new(env!("CARGO_BIN_EXE_shmbus-bench"))
        .arg("--quick")
        .args(extra)
        .arg("--out")
        .arg(&out)
        .output()
        .expect("run shmbus-bench");
    (run, out)
}

#[test]
fn filter_selects_rows() {
    let (run, out) = run("filter", &["--filter", "cacheline-rt,uds-rt"]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let json = std::fs::read_to_string(out.join("results.json")).expect("results.json");
    let v: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
    let names: Vec<&str> = v["records"]
        .as_array()
        .expect("records")
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["floor/cacheline-rt/64", "alt/uds-rt/64"]);
    // stderr is a pipe here, not a terminal: plain progress lines, one per
    // measurement, without carriage returns or escape codes.
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        !stderr.contains('\x1b') && !stderr.contains('\r'),
        "{stderr:?}"
    );
    assert!(
        stderr.lines().any(|l| l.starts_with("[1/2] "))
            && stderr.lines().any(|l| l.starts_with("[2/2] ")),
        "{stderr:?}"
    );
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn presets_select_rows_and_unknown_ones_are_refused() {
    let list = |preset: &str| {
        Command::new(env!("CARGO_BIN_EXE_shmbus-bench"))
            .args(["--list", "--preset", preset])
            .output()
            .expect("run shmbus-bench")
    };
    let table = list("table");
    assert!(table.status.success());
    let rows = String::from_utf8_lossy(&table.stdout);
    for want in [
        "shmbus/value-read-alone/8",
        "shmbus/array16-read-paced/128",
        "python/mp-array16-read/128",
    ] {
        assert!(rows.contains(want), "{want} not in {rows}");
    }
    assert!(!rows.contains("shmbus/pipe-rt-busy/64"), "{rows}");
    let pipe = String::from_utf8_lossy(&list("pipe").stdout).into_owned();
    assert!(pipe.contains("shmbus/pipe-tput/64 "), "{pipe}");
    assert!(!pipe.contains("shmbus/pipe-tput/4096"), "{pipe}");
    assert!(!pipe.contains("alt/pipe2-"), "{pipe}");
    let topic = String::from_utf8_lossy(&list("topic").stdout).into_owned();
    assert!(topic.contains("shmbus/topic-rt-busy/64"), "{topic}");
    assert!(topic.contains("shmbus/topic-tput-4sub/64"), "{topic}");
    assert!(topic.contains("peer/iceoryx2-rt/64"), "{topic}");
    assert!(topic.contains("peer/iceoryx2-tput/64"), "{topic}");
    let bad = list("nonesuch");
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&bad.stderr)
            .contains("presets: pipe, queue, python, select, table, topic"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}

#[test]
fn quick_run_writes_json_and_table() {
    let (run, out) = run("all", &[]);
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "shmbus-bench failed: {stderr}");
    assert!(stdout.contains("| shmbus/pipe-rt-busy/64 |"), "{stdout}");

    let json = std::fs::read_to_string(out.join("results.json")).expect("results.json");
    let v: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
    let records = v["records"].as_array().expect("records");
    let by_name = |n: &str| {
        records
            .iter()
            .find(|r| r["name"] == n)
            .unwrap_or_else(|| panic!("no record {n} in {json}"))
    };
    assert!(records.len() >= 40, "{json}");
    for r in records {
        let status = r["status"].as_str().unwrap();
        assert!(
            ["ok", "skipped", "not_measured"].contains(&status),
            "{} {status}: {}",
            r["name"],
            r["note"]
        );
        for field in [
            "name",
            "kind",
            "size",
            "p50_ns",
            "p99_ns",
            "p999_ns",
            "msgs_per_s",
            "runs",
        ] {
            assert!(r.get(field).is_some(), "record lacks {field}: {r}");
        }
    }
    for n in [
        "floor/cacheline-rt/64",
        "shmbus/pipe-rt-busy/64",
        "shmbus/pipe-tput/64",
        "shmbus/pipe-tput-runtime-len/64",
        "shmbus/queue-rt-busy/64",
        "shmbus/queue-tput-1p1c-busy/64",
        "shmbus/queue-tput-1p1c-busy-backoff/64",
        "shmbus/array16-read-paced/128",
        "shmbus/value-update-alone/8",
        "alt/uds-rt/64",
    ] {
        assert_eq!(by_name(n)["status"], "ok", "{n}: {json}");
    }
    let rt = by_name("shmbus/pipe-rt-busy/64");
    assert!(rt["p50_ns"].as_u64().unwrap() > 0);
    assert!(rt["floor_before_ns"].as_u64().is_some());
    assert!(rt["vs_floor"].as_f64().is_some());
    assert!(rt["best_alt"].as_str().is_some());
    assert!(
        by_name("shmbus/pipe-tput/64")["msgs_per_s"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    // The iceoryx2 peer runs with its feature and says why not without it.
    for n in ["peer/iceoryx2-rt/64", "peer/iceoryx2-tput/64"] {
        let r = by_name(n);
        if cfg!(feature = "iceoryx2") {
            assert_eq!(r["status"], "ok", "{n}: {r}");
        } else {
            assert_eq!(r["status"], "skipped", "{n}: {r}");
            assert!(
                r["note"].as_str().unwrap().contains("--features iceoryx2"),
                "{r}"
            );
        }
    }
    // The topic round trip carries both of its goals, each with a verdict.
    let goal = by_name("shmbus/topic-rt-busy/64")["goal"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        goal.contains("0.5× peer/iceoryx2-rt/64 (")
            && goal.contains("1.2× shmbus/pipe-rt-busy/64 ("),
        "{goal}"
    );
    // Python rows are run or said to be skipped, never silently missing.
    let py = by_name("python/mp-pipe-rt/64");
    assert!(py["status"] == "ok" || py["status"] == "skipped", "{py}");
    assert!(out.join("chart.svg").exists());
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn rounds_report_each_row_once_with_every_rounds_figures() {
    let (run, out) = run(
        "rounds",
        &[
            "--rounds",
            "3",
            "--filter",
            "cacheline-rt,floor/ring-tput/64,shmbus/pipe-tput/64",
        ],
    );
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "shmbus-bench failed: {stderr}");
    // Three passes over the three rows, counted as one run of nine.
    assert!(stderr.lines().any(|l| l.starts_with("[9/9] ")), "{stderr}");
    let json = std::fs::read_to_string(out.join("results.json")).expect("results.json");
    let v: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
    assert_eq!(v["meta"]["rounds"], 3, "{json}");
    let records = v["records"].as_array().expect("records");
    let names: Vec<&str> = records
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "floor/cacheline-rt/64",
            "floor/ring-tput/64",
            "shmbus/pipe-tput/64"
        ]
    );
    let pipe = &records[2];
    let rounds = pipe["rounds"].as_array().expect("rounds");
    assert_eq!(rounds.len(), 3, "{pipe}");
    let note = pipe["note"].as_str().unwrap();
    assert!(
        note.contains("settled by × floor") || note.contains("no round of 3 settled"),
        "{note}"
    );
    // The record is one of its rounds: the one whose ratio to the ring is
    // the median of those the note ranks.
    let key = pipe["vs_floor"].as_f64().expect("vs_floor");
    assert!(
        rounds.iter().any(|r| r["key"].as_f64() == Some(key)),
        "{pipe}"
    );
    let _ = std::fs::remove_dir_all(&out);
}
