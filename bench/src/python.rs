//! Python `multiprocessing` rows: the mechanisms this project started from.
//! Each row runs a small inline script with `python3 -c` (fork start method,
//! the two processes pinned like ours) that prints one JSON line.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::measure::{Ctx, Measured};

const SCRIPT: &str = r#"
import sys, os, time, json, multiprocessing as mp
ctx = mp.get_context('fork')

def pin(c):
    if c >= 0:
        try:
            os.sched_setaffinity(0, {c})
        except OSError:
            pass

def echo(conn, n, cc):
    pin(cc)
    for _ in range(n):
        conn.send_bytes(conn.recv_bytes())

def pipe_rt(pc, cc, n, size):
    a, b = ctx.Pipe()
    p = ctx.Process(target=echo, args=(b, n, cc))
    p.start()
    msg = b'x' * size
    t = time.perf_counter_ns
    lat = [0] * n
    for i in range(n):
        s = t()
        a.send_bytes(msg)
        a.recv_bytes()
        lat[i] = t() - s
    p.join()
    return {"lat": lat}

def pipe_send(conn, n, size, cc):
    pin(cc)
    msg = b'x' * size
    for _ in range(n):
        conn.send_bytes(msg)

def queue_send(q, n, size, cc):
    pin(cc)
    msg = b'x' * size
    for _ in range(n):
        q.put(msg)

def tput(pc, cc, n, size, runs, queue):
    rates = []
    for _ in range(runs):
        if queue:
            q = ctx.Queue()
            p = ctx.Process(target=queue_send, args=(q, n, size, cc))
            get = q.get
        else:
            r, w = ctx.Pipe(duplex=False)
            p = ctx.Process(target=pipe_send, args=(w, n, size, cc))
            get = r.recv_bytes
        p.start()
        get()
        s = time.perf_counter()
        for _ in range(n - 1):
            get()
        rates.append((n - 1) / (time.perf_counter() - s))
        p.join()
    return {"rates": rates}

def value_writer(v, stop, rate, cc):
    pin(cc)
    i = 0
    s = time.perf_counter()
    while not stop.value:
        for _ in range(100):
            i += 1
            v.value = i
    rate.value = i / (time.perf_counter() - s)

def array_writer(a, stop, rate, cc):
    pin(cc)
    i = 0
    s = time.perf_counter()
    while not stop.value:
        for _ in range(100):
            i += 1
            a[:] = [i] * 16
    rate.value = i / (time.perf_counter() - s)

def shared(pc, cc, secs, what):
    stop = ctx.RawValue('b', 0)
    rate = ctx.RawValue('d', 0.0)
    if what == 'value':
        obj = ctx.Value('q', 0)
        target = value_writer
    else:
        obj = ctx.Array('q', 16, lock=(what == 'array'))
        target = array_writer
    p = ctx.Process(target=target, args=(obj, stop, rate, cc))
    p.start()
    time.sleep(0.05)
    reads = torn = 0
    s = time.perf_counter()
    end = s + secs
    if what == 'value':
        while True:
            for _ in range(1000):
                x = obj.value
            reads += 1000
            if time.perf_counter() >= end:
                break
    else:
        while True:
            for _ in range(1000):
                x = obj[:]
                if x.count(x[0]) != 16:
                    torn += 1
            reads += 1000
            if time.perf_counter() >= end:
                break
    el = time.perf_counter() - s
    stop.value = 1
    p.join()
    return {"reads_per_s": reads / el, "writes_per_s": rate.value,
            "torn_pct": 100.0 * torn / reads}

mode = sys.argv[1]
pc, cc = int(sys.argv[2]), int(sys.argv[3])
pin(pc)
a = sys.argv[4:]
if mode == 'pipe_rt':
    out = pipe_rt(pc, cc, int(a[0]), int(a[1]))
elif mode in ('pipe_tput', 'queue_tput'):
    out = tput(pc, cc, int(a[0]), int(a[1]), int(a[2]), mode == 'queue_tput')
else:
    out = shared(pc, cc, float(a[0]), mode)
print(json.dumps(out))
"#;

/// Finds `python3` with `multiprocessing`.
pub(crate) fn detect() -> Option<String> {
    let ok = Command::new("python3")
        .args(["-c", "import multiprocessing"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    ok.then(|| "python3".to_owned())
}

/// The version string, for the metadata.
pub(crate) fn version(py: &str) -> String {
    Command::new(py)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

fn run(ctx: &Ctx, args: &[String]) -> Result<serde_json::Value, String> {
    let py = ctx
        .python
        .as_deref()
        .ok_or("python3 with multiprocessing not found: Python rows not run")?;
    run_script(ctx, py, SCRIPT, args)
}

/// Runs `script` with `py` as `script MODE PARENT_CPU CHILD_CPU ARGS...`
/// (`args[0]` is the mode) and returns its last output line, parsed.
pub(crate) fn run_script(
    ctx: &Ctx,
    py: &str,
    script: &str,
    args: &[String],
) -> Result<serde_json::Value, String> {
    let cpu = |c: Option<usize>| c.map_or("-1".to_owned(), |c| c.to_string());
    let mut child = Command::new(py)
        .arg("-c")
        .arg(script)
        .arg(&args[0])
        .arg(cpu(ctx.placement.parent))
        .arg(cpu(ctx.placement.child))
        .args(&args[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("python3: {e}"))?;
    let mut out = String::new();
    let mut stdout = child.stdout.take().expect("piped");
    // Watchdog: a wedged script must not hang the suite.
    let pid = child.id();
    let (done_tx, done_rx) = crossbeam_channel::bounded::<()>(1);
    let watchdog = std::thread::spawn(move || {
        if done_rx.recv_timeout(Duration::from_secs(600)).is_err() {
            if let Some(p) = rustix::process::Pid::from_raw(pid as i32) {
                let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
            }
        }
    });
    let t = Instant::now();
    stdout.read_to_string(&mut out).map_err(|e| e.to_string())?;
    let st = child.wait().map_err(|e| e.to_string())?;
    let _ = done_tx.send(());
    let _ = watchdog.join();
    if !st.success() {
        return Err(format!(
            "python3 script {} failed after {:.1}s: {st}",
            args[0],
            t.elapsed().as_secs_f64()
        ));
    }
    let line = out.lines().last().unwrap_or_default();
    serde_json::from_str(line).map_err(|e| format!("python output: {e}"))
}

pub(crate) fn num(v: &serde_json::Value, k: &str) -> Result<f64, String> {
    v[k].as_f64()
        .ok_or_else(|| format!("python output lacks {k}"))
}

/// `multiprocessing.Pipe` round trip (`send_bytes` / `recv_bytes`).
pub(crate) fn pipe_round_trip(ctx: &Ctx, size: usize) -> Result<Measured, String> {
    let n = ctx.counts.python_round_trips;
    let v = run(ctx, &["pipe_rt".into(), n.to_string(), size.to_string()])?;
    let lat = v["lat"].as_array().ok_or("python output lacks lat")?;
    let mut h = Histogram::<u64>::new(3).expect("histogram");
    for x in lat {
        h.record(x.as_u64().unwrap_or(0)).expect("record");
    }
    Ok(Measured::latency(h))
}

/// `multiprocessing.Pipe` or `Queue` one-way throughput.
pub(crate) fn throughput(ctx: &Ctx, size: usize, queue: bool) -> Result<Measured, String> {
    let n = ctx.counts.python_messages;
    let mode = if queue { "queue_tput" } else { "pipe_tput" };
    let v = run(
        ctx,
        &[
            mode.into(),
            n.to_string(),
            size.to_string(),
            ctx.counts.runs.to_string(),
        ],
    )?;
    let rates = v["rates"]
        .as_array()
        .ok_or("python output lacks rates")?
        .iter()
        .filter_map(|r| r.as_f64())
        .collect();
    Ok(Measured::rates(rates))
}

/// `Value` (`what` = "value"), `Array` ("array") or `Array(lock=False)`
/// ("rawarray"): reads per second while another process writes, or that
/// writer's writes per second; the torn-read percentage for arrays.
pub(crate) fn shared(ctx: &Ctx, what: &str, writes: bool) -> Result<Measured, String> {
    let mut rates = Vec::new();
    let mut torn = Vec::new();
    for _ in 0..ctx.counts.runs {
        let v = run(ctx, &[what.into(), ctx.counts.shared_secs.to_string()])?;
        rates.push(num(
            &v,
            if writes {
                "writes_per_s"
            } else {
                "reads_per_s"
            },
        )?);
        torn.push(num(&v, "torn_pct")?);
    }
    let mut m = Measured::rates(rates);
    if what != "value" && !writes {
        let worst = torn.iter().copied().fold(0.0, f64::max);
        m.torn_pct = Some(worst);
        m.note = format!("torn reads: {worst:.3}% (worst run)");
    }
    Ok(m)
}
