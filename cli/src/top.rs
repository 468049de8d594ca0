//! `top`: per-channel rates, depth and attached ends of a running bus.
//!
//! Everything comes from [`Bus::channels`], the snapshot `ls` prints, taken
//! twice an interval apart: a pipe's positions count bytes ever sent and
//! received, a queue's count items ever put and taken, a value's version
//! counts its writes. The fast path pays nothing: no counter exists for this
//! command, it only reads positions the algorithms keep anyway. A pipe's
//! positions count bytes (record headers and padding included), not frames,
//! so a pipe's rate is in bytes per second.

use std::collections::HashMap;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::sync::{Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use clap::Args;
use shmbus_client::{Bus, ChannelDetails, ChannelInfo, Error, Holder, Kind};

use crate::common::{error, stdout_error, Failure};

#[derive(Debug, Args)]
pub(crate) struct TopArgs {
    /// Seconds between samples (fractions allowed).
    #[arg(
        short = 'i',
        long,
        value_name = "SECONDS",
        value_parser = parse_interval,
        default_value = "1"
    )]
    interval: Duration,

    /// Stop after this many tables.
    #[arg(short = 'n', long = "count", value_name = "COUNT")]
    count: Option<u64>,
}

/// A positive number of seconds, at most a day.
fn parse_interval(s: &str) -> Result<Duration, String> {
    let d = crate::common::parse_seconds(s)?;
    if d.is_zero() || d > Duration::from_secs(86_400) {
        return Err(format!(
            "{s:?} is not an interval: give more than 0 and at most 86400 seconds"
        ));
    }
    Ok(d)
}

/// The monotonic counters of one channel at one instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Counters {
    /// A pipe's sender and receiver positions, in bytes.
    Pipe { written: u64, read: u64 },
    /// A queue's put and take positions, in items.
    Queue { put: u64, taken: u64 },
    /// A value's or array's version: its number of writes.
    Table { version: u64 },
    /// A topic's messages published.
    Topic { published: u64 },
}

fn counters(c: &ChannelInfo) -> Option<Counters> {
    match c.details {
        ChannelDetails::Pipe(p) => Some(Counters::Pipe {
            written: p.written,
            read: p.read,
        }),
        ChannelDetails::Queue(q) => Some(Counters::Queue {
            put: q.put,
            taken: q.taken,
        }),
        ChannelDetails::Table(t) => Some(Counters::Table { version: t.version }),
        ChannelDetails::Topic(t) => Some(Counters::Topic {
            published: t.published,
        }),
        _ => None,
    }
}

/// One reading of the whole bus.
struct Sample {
    at: Instant,
    channels: Vec<ChannelInfo>,
}

impl Sample {
    fn take(bus: &Bus) -> Result<Self, Failure> {
        if bus.is_closed() {
            return Err(error(Error::BusClosed));
        }
        Ok(Self {
            at: Instant::now(),
            channels: bus.channels(),
        })
    }

    /// Each channel's counters, by name and kind (a channel removed and made
    /// again under the same name with another kind is another channel).
    fn counters(&self) -> HashMap<(&str, Kind), Counters> {
        self.channels
            .iter()
            .filter_map(|c| Some(((c.name.as_str(), c.kind), counters(c)?)))
            .collect()
    }
}

/// Per-second rate of a counter that went from `before` to `after`; `None` if
/// it went backwards (the channel was removed and made again meanwhile).
fn rate(before: u64, after: u64, secs: f64) -> Option<f64> {
    // Positions are u64 counters that never wrap in practice; one that
    // decreased belongs to a new channel.
    let d = after.checked_sub(before)?;
    Some(d as f64 / secs)
}

/// `0`, `3.5`, `120`, `1.2k`, `3.4M`, `5.6G`: a rate in three or four
/// characters.
fn short(r: f64) -> String {
    if r == 0.0 {
        return "0".to_owned();
    }
    for (unit, scale) in [("G", 1e9), ("M", 1e6), ("k", 1e3)] {
        if r >= scale {
            return format!("{:.1}{unit}", r / scale);
        }
    }
    if r < 10.0 {
        format!("{r:.1}")
    } else {
        format!("{r:.0}")
    }
}

/// The table of `after`, with rates since `before`: a header row, then one
/// row per channel.
fn table(before: &Sample, after: &Sample) -> Vec<[String; 7]> {
    let secs = after
        .at
        .saturating_duration_since(before.at)
        .as_secs_f64()
        .max(1e-9);
    let old = before.counters();
    let mut rows =
        vec![["NAME", "KIND", "CAPACITY", "DEPTH", "IN", "OUT", "ATTACHED"].map(str::to_owned)];
    for c in &after.channels {
        let prev = old.get(&(c.name.as_str(), c.kind)).copied();
        let now = counters(c);
        // (in, out) rates with their unit, "-" where there is none.
        let rates = |unit: &str| -> [String; 2] {
            let fmt = |r: Option<f64>| r.map_or_else(|| "-".to_owned(), |r| short(r) + unit);
            match (prev, now) {
                (
                    Some(Counters::Pipe { written, read }),
                    Some(Counters::Pipe {
                        written: w,
                        read: r,
                    }),
                ) => [fmt(rate(written, w, secs)), fmt(rate(read, r, secs))],
                (
                    Some(Counters::Queue { put, taken }),
                    Some(Counters::Queue { put: p, taken: t }),
                ) => [fmt(rate(put, p, secs)), fmt(rate(taken, t, secs))],
                (Some(Counters::Table { version }), Some(Counters::Table { version: v })) => {
                    [fmt(rate(version, v, secs)), "-".to_owned()]
                }
                (Some(Counters::Topic { published }), Some(Counters::Topic { published: p })) => {
                    [fmt(rate(published, p, secs)), "-".to_owned()]
                }
                _ => ["-".to_owned(), "-".to_owned()],
            }
        };
        let (capacity, depth, [rate_in, rate_out], attached) = match c.details {
            ChannelDetails::Pipe(p) => {
                let ends: Vec<String> = [
                    p.sender.map(|h| holder("sender", h)),
                    p.receiver.map(|h| holder("receiver", h)),
                ]
                .into_iter()
                .flatten()
                .collect();
                (
                    p.capacity.to_string(),
                    p.waiting.to_string(),
                    rates("B/s"),
                    if ends.is_empty() {
                        "-".to_owned()
                    } else {
                        ends.join(",")
                    },
                )
            }
            ChannelDetails::Queue(q) => (
                format!("{}x{}", q.slots, q.slot_size),
                q.depth.to_string(),
                rates("/s"),
                "-".to_owned(),
            ),
            ChannelDetails::Table(t) => (
                format!("{}[{}]", t.elem, t.len),
                format!("v{}", t.version),
                rates("/s"),
                t.writer
                    .map_or_else(|| "-".to_owned(), |h| holder("writer", h)),
            ),
            ChannelDetails::Topic(t) => (
                format!("{}x{}", t.slots, t.slot_size),
                t.max_lag.to_string(),
                rates("/s"),
                format!("{} subscribers", t.subscribers),
            ),
            ChannelDetails::Corrupt(what) => (
                "-".into(),
                "-".into(),
                ["-".into(), "-".into()],
                format!("corrupt: {what}"),
            ),
            _ => ("-".into(), "-".into(), ["-".into(), "-".into()], "-".into()),
        };
        rows.push([
            c.name.clone(),
            c.kind.to_string(),
            capacity,
            depth,
            rate_in,
            rate_out,
            attached,
        ]);
    }
    rows
}

/// `sender:4242` (pid), or `sender:slot3` when the peer table has no pid.
fn holder(what: &str, h: Holder) -> String {
    match h.pid {
        Some(pid) => format!("{what}:{pid}"),
        None => format!("{what}:slot{}", h.slot),
    }
}

/// Writes `rows` as aligned columns: text left, numbers right, the last
/// column unpadded.
fn write_rows(out: &mut impl Write, rows: &[[String; 7]]) -> io::Result<()> {
    let mut widths = [0usize; 7];
    for r in rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.len());
        }
    }
    for r in rows {
        let mut line = String::new();
        for (i, (cell, w)) in r.iter().zip(widths).enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            match i {
                0 | 1 | 6 => line.push_str(&format!("{cell:<w$}")),
                _ => line.push_str(&format!("{cell:>w$}")),
            }
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

/// Set by the SIGINT/SIGTERM handler that `top` installs; [`sleep_until`]
/// waits on it, so that an interval is one sleep, not a series of slices.
static INTERRUPTED: (Mutex<bool>, Condvar) = (Mutex::new(false), Condvar::new());

/// Makes SIGINT and SIGTERM end [`sleep_until`] with
/// [`Failure::Interrupted`] instead of killing the process.
fn catch_interrupts() {
    let _ = ctrlc::set_handler(|| {
        let (flag, cv) = &INTERRUPTED;
        *flag.lock().unwrap_or_else(PoisonError::into_inner) = true;
        cv.notify_all();
    });
}

/// Sleeps until `until`, leaving early on SIGINT/SIGTERM.
fn sleep_until(until: Instant) -> Result<(), Failure> {
    let (flag, cv) = &INTERRUPTED;
    let mut interrupted = flag.lock().unwrap_or_else(PoisonError::into_inner);
    loop {
        if *interrupted {
            return Err(Failure::Interrupted);
        }
        let now = Instant::now();
        if now >= until {
            return Ok(());
        }
        interrupted = cv
            .wait_timeout(interrupted, until - now)
            .unwrap_or_else(PoisonError::into_inner)
            .0;
    }
}

pub(crate) fn top(bus: &Bus, a: &TopArgs) -> Result<(), Failure> {
    catch_interrupts();
    let stdout = io::stdout();
    let tty = stdout.is_terminal();
    let mut before = Sample::take(bus)?;
    let mut next = before.at;
    let mut n: u64 = 0;
    while a.count.is_none_or(|c| n < c) {
        // Fixed ticks, so that a slow print does not stretch the interval.
        next += a.interval;
        sleep_until(next)?;
        let after = Sample::take(bus)?;
        let rows = table(&before, &after);
        let secs = after.at.saturating_duration_since(before.at).as_secs_f64();
        let mut out = BufWriter::new(stdout.lock());
        if tty {
            // Cursor home, clear the screen: the table is redrawn in place.
            write!(out, "\x1b[H\x1b[2J").map_err(stdout_error)?;
        } else if n > 0 {
            writeln!(out).map_err(stdout_error)?;
        }
        writeln!(
            out,
            "bus {}: {} channel{} over {secs:.2} s; IN/OUT: bytes/s for pipes, \
             items/s for queues, writes/s for values",
            bus.name(),
            after.channels.len(),
            if after.channels.len() == 1 { "" } else { "s" },
        )
        .and_then(|()| write_rows(&mut out, &rows))
        .and_then(|()| out.flush())
        .map_err(stdout_error)?;
        before = after;
        n += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_rates() {
        assert_eq!(short(0.0), "0");
        assert_eq!(short(0.3), "0.3");
        assert_eq!(short(120.4), "120");
        assert_eq!(short(1234.0), "1.2k");
        assert_eq!(short(3.45e6), "3.5M");
        assert_eq!(short(5.6e9), "5.6G");
    }

    #[test]
    fn rates_never_go_negative() {
        assert_eq!(rate(10, 30, 2.0), Some(10.0));
        assert_eq!(rate(30, 10, 2.0), None);
    }

    #[test]
    fn interval_must_be_positive() {
        assert!(parse_interval("0").is_err());
        assert!(parse_interval("-1").is_err());
        assert!(parse_interval("x").is_err());
        assert_eq!(parse_interval("0.5"), Ok(Duration::from_millis(500)));
    }
}
