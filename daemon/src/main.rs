//! `shmbusd`: runs the daemon with the process's arguments and exits with its
//! status (0 clean shutdown, 1 cannot serve, 2 bad usage). See the library
//! docs, and `shmbusd --help`.

use std::process::ExitCode;

fn main() -> ExitCode {
    let code = shmbus_daemon::main_with_args(std::env::args_os());
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
