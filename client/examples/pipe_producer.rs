//! The sending half of a pipe pair: sends COUNT numbered greetings on the
//! pipe `example-pipe`, then exits, which is the receiver's end of file.
//!
//! Start the daemon, then the receiver, then this:
//!
//! ```sh
//! cargo run --release -p shmbus-daemon                     # terminal 1 (bus "shmbus")
//! cargo run -p shmbus-client --example pipe_consumer       # terminal 2: waits for frames
//! cargo run -p shmbus-client --example pipe_producer -- 5  # terminal 3: sends 5 (default 10)
//! ```
//!
//! Both use the bus in `$SHMBUS_BUS`, else `shmbus`. A pipe has one sender
//! at a time: a second producer gets `Error::Busy` until the first exits.
//! Frames sent while nobody reads stay in the pipe; when it is full, `send`
//! and `claim` wait for the receiver.

use std::io::Write;

use shmbus_client::{Bus, Error};

/// The pipe both halves of the pair use.
const PIPE: &str = "example-pipe";

fn main() -> Result<(), Error> {
    let count = match std::env::args().nth(1) {
        None => 10,
        Some(s) => s.parse::<u32>().unwrap_or_else(|_| {
            eprintln!("usage: pipe_producer [COUNT]  (COUNT a number, not {s:?})");
            std::process::exit(2)
        }),
    };
    // Without a daemon this returns `DaemonNotRunning`, and `main` prints
    // "Error: no shmbusd serves bus shmbus: start it with ...".
    let bus = Bus::connect()?;
    let mut tx = bus.pipe(PIPE)?.sender()?;
    for i in 0..count {
        if i % 2 == 0 {
            // Copying send: blocks while the pipe is full.
            tx.send(format!("hello {i:010}").as_bytes())?;
        } else {
            // Zero-copy: claim room in the ring, write in place, publish.
            let mut claim = tx.claim(16)?;
            write!(&mut claim[..], "hello {i:010}").expect("16 bytes fit");
            claim.commit()?;
        }
    }
    println!("sent {count} frames on pipe {PIPE} of bus {}", bus.name());
    // Dropping `tx` (here, at the end of `main`) releases the sending end:
    // the receiver reads what is left, then sees end of file.
    Ok(())
}
