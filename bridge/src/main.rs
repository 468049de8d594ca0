//! `shmbus-bridge`: carries shmbus channels between hosts over zenoh.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use clap::Parser;
use shmbus_bridge::config::{Args, Config};

fn main() -> ExitCode {
    let cfg = match Config::from_args(Args::parse()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("shmbus-bridge: {e}");
            return ExitCode::from(2);
        }
    };
    let stop = Arc::new(AtomicBool::new(false));
    let s = Arc::clone(&stop);
    if let Err(e) = ctrlc::set_handler(move || s.store(true, Ordering::Relaxed)) {
        eprintln!("shmbus-bridge: cannot handle SIGINT/SIGTERM: {e}");
        return ExitCode::FAILURE;
    }
    match shmbus_bridge::run(&cfg, stop) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("shmbus-bridge: {e}");
            ExitCode::FAILURE
        }
    }
}
