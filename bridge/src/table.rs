//! Values and arrays: the exporter publishes the elements on `KEY/state`
//! whenever they change (`wait_changed`) and every 250 ms besides, and
//! answers queries on `KEY/state` with the latest, so that an importer
//! that starts (or reconnects) late gets the current state at once. The
//! importer writes a state only when it differs from the last it wrote.
//!
//! The payload is text: `KIND ELEM LEN\nV1 V2 ...`, each element in the
//! decimal form the `shmbus` command prints, which parses back to the same
//! bits (floats print their shortest round-tripping form).
//!
//! Guarantee: the latest state arrives; intermediate states written faster
//! than the link carries them may be skipped (a value is a state, not a
//! stream).

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use shmbus_client::{Bus, ElemType, Error, Kind, Table};
use zenoh::Wait;

use crate::stats::Counters;
use crate::Ctx;

/// The exporter publishes the state this often even when it does not
/// change (so a link that was cut converges).
const REPUBLISH: Duration = Duration::from_millis(250);

fn encode(t: &Table) -> (Vec<u8>, u64) {
    let (bits, version) = t.read_bits();
    let elem = t.elem();
    let vals: Vec<String> = bits.into_iter().map(|b| elem.format_bits(b)).collect();
    let s = format!(
        "{} {} {}\n{}",
        t.kind().as_str(),
        elem,
        t.len(),
        vals.join(" ")
    );
    (s.into_bytes(), version)
}

/// Exports the local value or array `ctx.chan.name`.
///
/// # Errors
/// When the local bus or zenoh fails; the caller retries.
pub fn export(ctx: &Ctx, bus: &Bus) -> Result<(), String> {
    let t = bus.table(&ctx.chan.name).map_err(|e| e.to_string())?;
    let c = &ctx.counters;
    c.set_kind(t.kind());
    let meta = format!("{} {} {}", t.kind().as_str(), t.elem(), t.len());
    let _meta = crate::serve_meta(&ctx.session, &ctx.key, meta)?;
    let key = format!("{}/state", ctx.key);
    let (first, mut seen) = encode(&t);
    let latest = Arc::new(Mutex::new(first));
    let l2 = Arc::clone(&latest);
    let k2 = key.clone();
    let _q = ctx
        .session
        .declare_queryable(&key)
        .callback(move |q| {
            let v = l2.lock().unwrap_or_else(|e| e.into_inner()).clone();
            let _ = q.reply(&k2, v).wait();
        })
        .wait()
        .map_err(|e| format!("zenoh queryable: {e}"))?;
    let publisher = ctx
        .session
        .declare_publisher(&key)
        .wait()
        .map_err(|e| format!("zenoh publisher: {e}"))?;
    let mut published = None;
    while !ctx.stopping() {
        let payload = latest.lock().unwrap_or_else(|e| e.into_inner()).clone();
        publisher
            .put(payload)
            .wait()
            .map_err(|e| format!("zenoh put: {e}"))?;
        if published != Some(seen) {
            Counters::inc(&c.forwarded);
            published = Some(seen);
        }
        match t.wait_changed_timeout(seen, REPUBLISH) {
            Ok(_) | Err(Error::Timeout) => {}
            Err(e) => return Err(e.to_string()),
        }
        let (now, v) = encode(&t);
        seen = v;
        *latest.lock().unwrap_or_else(|e| e.into_inner()) = now;
    }
    Ok(())
}

/// Parses `KIND ELEM LEN\nVALUES`.
fn decode(b: &[u8]) -> Option<(Kind, ElemType, usize, Vec<String>)> {
    let s = std::str::from_utf8(b).ok()?;
    let (head, vals) = s.split_once('\n')?;
    let mut h = head.split(' ');
    let kind = match h.next()? {
        "value" => Kind::Value,
        "array" => Kind::Array,
        _ => return None,
    };
    let elem = ElemType::parse(h.next()?)?;
    let len: usize = h.next()?.parse().ok()?;
    let vals: Vec<String> = vals.split(' ').map(str::to_owned).collect();
    (vals.len() == len).then_some((kind, elem, len, vals))
}

/// Imports into the local value or array `ctx.chan.name` (created like the
/// exporter's if missing).
///
/// # Errors
/// When the local bus or zenoh fails, or the two channels' types differ;
/// the caller retries.
pub fn import(ctx: &Ctx, bus: &Bus) -> Result<(), String> {
    let c = &ctx.counters;
    let key = format!("{}/state", ctx.key);
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    let tx2 = tx.clone();
    let _sub = ctx
        .session
        .declare_subscriber(&key)
        .callback(move |s| {
            let _ = tx2.send(s.payload().to_bytes().into_owned());
        })
        .wait()
        .map_err(|e| format!("zenoh subscriber: {e}"))?;
    // The current state at once, from the exporter's queryable.
    if let Ok(replies) = ctx.session.get(&key).timeout(Duration::from_secs(2)).wait() {
        while let Ok(r) = replies.recv() {
            if let Ok(s) = r.result() {
                let _ = tx.send(s.payload().to_bytes().into_owned());
            }
        }
    }
    let mut table: Option<Table> = None;
    let mut last: Option<Vec<String>> = None;
    while !ctx.stopping() {
        let msg = match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(m) => m,
            Err(_) => continue,
        };
        let Some((kind, elem, len, vals)) = decode(&msg) else {
            Counters::inc(&c.dropped);
            continue;
        };
        c.set_kind(kind);
        let t = match &table {
            Some(t) => t,
            None => {
                let t = match kind {
                    Kind::Value => bus.create_value(&ctx.chan.name, elem),
                    _ => bus.create_array(&ctx.chan.name, elem, len),
                }
                .map_err(|e| e.to_string())?;
                table.insert(t)
            }
        };
        if last.as_ref() == Some(&vals) {
            continue;
        }
        t.write_strings(&vals).map_err(|e| e.to_string())?;
        Counters::inc(&c.forwarded);
        last = Some(vals);
    }
    Ok(())
}
