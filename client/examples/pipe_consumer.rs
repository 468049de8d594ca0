//! The receiving half of a pipe pair: prints each frame that arrives on the
//! pipe `example-pipe` until end of file, i.e. until the producer has gone
//! and every frame it sent has been read.
//!
//! ```sh
//! cargo run --release -p shmbus-daemon                     # terminal 1 (bus "shmbus")
//! cargo run -p shmbus-client --example pipe_consumer       # terminal 2: waits for frames
//! cargo run -p shmbus-client --example pipe_producer -- 5  # terminal 3: sends 5 (default 10)
//! ```
//!
//! Start it before the producer: it then ends when the producer exits. Both
//! use the bus in `$SHMBUS_BUS`, else `shmbus`. A pipe has one receiver at a
//! time: a second consumer gets `Error::Busy` until the first exits.

use shmbus_client::{Bus, Error};

/// The pipe both halves of the pair use.
const PIPE: &str = "example-pipe";

fn main() -> Result<(), Error> {
    // Without a daemon this returns `DaemonNotRunning`, and `main` prints
    // "Error: no shmbusd serves bus shmbus: start it with ...".
    let bus = Bus::connect()?;
    let mut rx = bus.pipe(PIPE)?.receiver()?;
    println!(
        "receiving on pipe {PIPE} of bus {}: run pipe_producer",
        bus.name()
    );
    let mut frames = 0u64;
    loop {
        // Reads the frame in place (zero-copy); sleeps while the pipe is empty.
        match rx.recv_with(|frame| println!("{}", String::from_utf8_lossy(frame))) {
            Ok(()) => frames += 1,
            // End of file: the producer has gone and everything is read.
            Err(Error::Disconnected) => break,
            Err(e) => return Err(e),
        }
    }
    println!("end of file after {frames} frames");
    Ok(())
}
