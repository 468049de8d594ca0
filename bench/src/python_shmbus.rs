//! Rows of the `shmbus` Python package (python/), each beside the
//! `multiprocessing` row it replaces, measured by one inline script that
//! runs either library (`lib` = `mp` or `shmbus`) the same way.
//!
//! The interpreter is `$SHMBUS_BENCH_PYTHON` (one where `import shmbus`
//! works, e.g. `target/python-venv/bin/python` after `maturin develop
//! --release -m python/Cargo.toml`), else `python3`; without the package the
//! rows fail with that advice.

use hdrhistogram::Histogram;

use crate::measure::{Ctx, Measured};
use crate::python::{num, run_script};

/// The variable naming the interpreter with the `shmbus` package.
pub(crate) const PYTHON_ENV: &str = "SHMBUS_BENCH_PYTHON";

const SCRIPT: &str = r#"
import sys, os, time, json, multiprocessing as mp
ctx = mp.get_context('fork')
mode, pc, cc, lib, bus = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
a = sys.argv[6:]
if lib == 'shmbus':
    try:
        import shmbus
    except ImportError:
        sys.exit("the shmbus package is not installed in " + sys.executable +
                 ": build it with `maturin develop --release -m python/Cargo.toml` in a venv "
                 "and set $SHMBUS_BENCH_PYTHON to its python")
    B = shmbus.connect(bus)
    tag = str(os.getpid())

def pin(c):
    if c >= 0:
        try:
            os.sched_setaffinity(0, {c})
        except OSError:
            pass

def echo(r, w, n, cc):
    pin(cc)
    for _ in range(n):
        w.send_bytes(r.recv_bytes())

def pipe_rt(n, size):
    if lib == 'mp':
        a_, b_ = ctx.Pipe()
        p = ctx.Process(target=echo, args=(b_, b_, n, cc))
        send, recv = a_.send_bytes, a_.recv_bytes
    else:
        r1, w1 = B.Pipe('rt-there-' + tag)
        r2, w2 = B.Pipe('rt-back-' + tag)
        p = ctx.Process(target=echo, args=(r1, w2, n, cc))
        send, recv = w1.send_bytes, r2.recv_bytes
    p.start()
    msg = b'x' * size
    t = time.perf_counter_ns
    lat = [0] * n
    for i in range(n):
        s = t()
        send(msg)
        recv()
        lat[i] = t() - s
    p.join()
    return {"lat": lat}

def item(payload, size):
    return b'x' * size if payload == 'bytes' else {"id": 12345, "px": 101.25, "sym": "ABC", "qty": 7}

def producer(q, n, payload, size, cc):
    pin(cc)
    msg = item(payload, size)
    put = q.put_bytes if (lib == 'shmbus' and payload == 'bytes') else q.put
    for _ in range(n):
        put(msg)

def queue_tput(n, payload, size, runs):
    rates = []
    for r in range(runs):
        if lib == 'mp':
            q = ctx.Queue()
            get = q.get
        else:
            q = B.Queue('tput-%s-%d' % (tag, r), maxsize=1024, item_size=256)
            get = q.get_bytes if payload == 'bytes' else q.get
        p = ctx.Process(target=producer, args=(q, n, payload, size, cc))
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

def array_writer(arr, stop, rate, cc):
    pin(cc)
    i = 0
    s = time.perf_counter()
    while not stop.value:
        for _ in range(100):
            i += 1
            arr[:] = [i] * 16
    rate.value = i / (time.perf_counter() - s)

def shared(secs, what):
    stop = ctx.RawValue('b', 0)
    rate = ctx.RawValue('d', 0.0)
    if what == 'value':
        obj = B.Value('v-' + tag, 'q', 0)
        target = value_writer
    else:
        obj = B.Array('a-' + tag, 'q', 16)
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

pin(pc)
if mode == 'pipe_rt':
    out = pipe_rt(int(a[0]), int(a[1]))
elif mode == 'queue_tput':
    out = queue_tput(int(a[0]), a[1], int(a[2]), int(a[3]))
else:
    out = shared(float(a[0]), mode)
print(json.dumps(out))
"#;

fn python(ctx: &Ctx) -> Result<String, String> {
    match std::env::var(PYTHON_ENV) {
        Ok(p) if !p.is_empty() => Ok(p),
        _ => ctx
            .python
            .clone()
            .ok_or_else(|| format!("no python3: set ${PYTHON_ENV}")),
    }
}

fn run(ctx: &Ctx, lib: &str, mode: &str, args: &[String]) -> Result<serde_json::Value, String> {
    let py = python(ctx)?;
    let bus = ctx.bus.clone().unwrap_or_else(|| "-".to_owned());
    // The script reads: mode, the two CPUs (added by run_script), lib, bus, args.
    let mut all = vec![mode.to_owned(), lib.to_owned(), bus];
    all.extend_from_slice(args);
    run_script(ctx, &py, SCRIPT, &all)
}

/// `shmbus.Pipe` round trip (`send_bytes` / `recv_bytes`) through an echo
/// process.
pub(crate) fn pipe_round_trip(ctx: &Ctx, size: usize) -> Result<Measured, String> {
    let n = ctx.counts.python_round_trips;
    let v = run(ctx, "shmbus", "pipe_rt", &[n.to_string(), size.to_string()])?;
    let lat = v["lat"].as_array().ok_or("python output lacks lat")?;
    let mut h = Histogram::<u64>::new(3).expect("histogram");
    for x in lat {
        h.record(x.as_u64().unwrap_or(0)).expect("record");
    }
    Ok(Measured::latency(h))
}

/// Queue one-way throughput of `lib` (`mp` or `shmbus`), items `bytes` of
/// `size` or a small dict (`payload` = "dict", pickled by both).
pub(crate) fn queue_throughput(
    ctx: &Ctx,
    lib: &str,
    payload: &str,
    size: usize,
) -> Result<Measured, String> {
    let v = run(
        ctx,
        lib,
        "queue_tput",
        &[
            ctx.counts.python_messages.to_string(),
            payload.to_owned(),
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

/// `shmbus.Value('q')` ("value") or `shmbus.Array('q', 16)` ("array")
/// reads (or the writer's writes) while another process writes (reads).
pub(crate) fn shared(ctx: &Ctx, what: &str, writes: bool) -> Result<Measured, String> {
    let mut rates = Vec::new();
    let mut torn = Vec::new();
    for _ in 0..ctx.counts.runs {
        let v = run(ctx, "shmbus", what, &[ctx.counts.shared_secs.to_string()])?;
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
    if what == "array" && !writes {
        let worst = torn.iter().copied().fold(0.0, f64::max);
        m.torn_pct = Some(worst);
        m.note = format!("torn reads: {worst:.3}% (worst run)");
    }
    Ok(m)
}
