//! `shmbus recv NAME NAME...`: frames from several pipes and queues, waited
//! for with one [`Select`], each printed as `NAME: FRAME`.

use std::io::{self, BufWriter, IsTerminal, Write};

use shmbus_client::{Bus, Error, PipeReceiver, Queue, Select};

use crate::common::{error, stdout_error, Failure};
use crate::frames::{open, Channel, RecvArgs};

/// One open channel of the command.
enum Source {
    /// A pipe's receiver; `None` once its end was seen.
    Pipe(Option<PipeReceiver>),
    Queue(Queue),
}

/// Receives from every channel until COUNT frames, the timeout, or the end
/// of every pipe (a queue has no end).
pub(crate) fn recv_many(bus: &Bus, a: &RecvArgs) -> Result<(), Failure> {
    let chans = a
        .names
        .iter()
        .map(|n| open(bus, n, a.create))
        .collect::<Result<Vec<_>, _>>()?;
    let mut sources = chans
        .into_iter()
        .map(|c| {
            Ok(match c {
                Channel::Pipe(p) => Source::Pipe(Some(p.receiver().map_err(error)?)),
                Channel::Queue(q) => Source::Queue(q),
                Channel::Topic(t) => {
                    return Err(error(format!(
                        "{0} is a topic: `shmbus recv` over several names takes pipes and \
                         queues; use `shmbus sub {0}` for a topic",
                        t.name()
                    )))
                }
            })
        })
        .collect::<Result<Vec<_>, Failure>>()?;
    let names = a.names.clone();
    let stdout = io::stdout();
    let tty = stdout.is_terminal();
    let mut out = BufWriter::with_capacity(64 * 1024, stdout.lock());
    let mut n: u64 = 0;
    while a.count.is_none_or(|c| n < c) {
        // Indices into `sources` of the events in this select.
        let mut which = Vec::new();
        let ready = {
            let mut s = Select::new();
            for (i, src) in sources.iter().enumerate() {
                match src {
                    Source::Pipe(Some(rx)) => s.add(rx.readable()),
                    Source::Pipe(None) => continue,
                    Source::Queue(q) => s.add(q.readable()),
                };
                which.push(i);
            }
            if s.is_empty() {
                break; // every pipe ended
            }
            let now = s.ready();
            if !now.is_empty() {
                Ok(now)
            } else {
                out.flush().map_err(stdout_error)?;
                match a.timeout {
                    Some(t) => s.wait_timeout(t),
                    None => s.wait(),
                }
            }
        };
        let ready = match ready {
            Ok(r) => r,
            Err(Error::Timeout) => {
                out.flush().map_err(stdout_error)?;
                return Err(Failure::Timeout(format!(
                    "nothing on {} for {:?}",
                    names.join(", "),
                    a.timeout.unwrap_or_default()
                )));
            }
            Err(e) => return Err(error(format!("receiving from {}: {e}", names.join(", ")))),
        };
        for e in ready {
            if a.count.is_some_and(|c| n >= c) {
                break;
            }
            let i = which[e];
            let name = &names[i];
            let print = |out: &mut dyn Write, b: &[u8]| {
                out.write_all(name.as_bytes())?;
                out.write_all(b": ")?;
                out.write_all(b)?;
                out.write_all(b"\n")
            };
            let r = match &mut sources[i] {
                Source::Pipe(rx) => match rx
                    .as_mut()
                    .map(|rx| rx.try_recv_with(|b| print(&mut out, b)))
                {
                    Some(Err(Error::Disconnected)) => {
                        *rx = None;
                        continue;
                    }
                    Some(r) => r,
                    None => continue,
                },
                Source::Queue(q) => q.try_get_with(|b| print(&mut out, b)),
            };
            match r {
                Ok(w) => w.map_err(stdout_error)?,
                // Another consumer of a queue was faster.
                Err(Error::Empty) => continue,
                Err(e) => return Err(error(format!("receiving from {name}: {e}"))),
            }
            n += 1;
        }
        if tty {
            out.flush().map_err(stdout_error)?;
        }
    }
    out.flush().map_err(stdout_error)
}
