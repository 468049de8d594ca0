//! The control connection: one Unix stream socket to the daemon, held for the
//! client's whole life.
//!
//! Over it the client registers (`HELLO` → `WELCOME`, which hands out its peer
//! slot) and opens channels (`OPEN` → `CHANNEL`); see [`shmbus::protocol`]. The
//! connection is also the liveness signal both ways: the daemon releases
//! everything this client held when it sees EOF, and the client treats EOF from
//! the daemon as "the bus is closed" ([`Control::peer_gone`]).
//!
//! When the last handle goes, [`Control`]'s `Drop` sends `BYE` before the
//! socket closes: the daemon then frees the slot at once. Without it (the
//! process died, or something closed the socket under it) the daemon frees the
//! slot only once the process has exited.
//!
//! `SO_PEERCRED` on the connection tells who the daemon is: its uid is the
//! owner the segment must have ([`Control::daemon_uid`]). Its pid is not used:
//! it is 0 when the daemon runs in a pid namespace this process cannot see
//! (a container), which is fine.
//!
//! A daemon that refuses a connection (too many connections, a uid it does
//! not allow) sends one `ERR` line and closes, possibly before our `HELLO`
//! went out: a failed send is then followed by a read of that answer, so
//! the caller gets [`Error::Refused`] with the daemon's reason rather than
//! [`Error::BusClosed`].
//!
//! Requests are rare (attach time only), so the socket's I/O sits behind a
//! [`Mutex`]; this makes the bus `Send + Sync`. The liveness check does not take
//! the lock: it is one non-blocking `MSG_PEEK` on the socket.

use std::io::{self, Read};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use rustix::io::Errno;
use rustix::net::{RecvFlags, SendFlags};
use shmbus::layout::ABI_VERSION;
use shmbus::protocol::{ErrorCode, Request, Response, MAX_LINE};

use crate::error::Error;

/// How long the client waits for the daemon to answer one request. The daemon
/// answers at once; this only bounds the damage of a stopped daemon.
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// What the daemon said in `WELCOME`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Welcome {
    /// Our peer slot; owner tags are `slot + 1`.
    pub(crate) slot: u16,
    /// The slot's generation.
    pub(crate) generation: u32,
    /// The segment's epoch.
    pub(crate) epoch: u64,
    /// The segment's size.
    pub(crate) segment_size: u64,
}

/// Why a request got no usable answer.
#[derive(Debug)]
pub(crate) enum RequestError {
    /// The daemon closed the connection (or did so earlier).
    Closed,
    /// A malformed answer, or a line over [`MAX_LINE`].
    Protocol(String),
    /// Another I/O error (including a timeout).
    Io(io::Error),
}

/// Bytes received but not yet consumed as lines, and whether the stream is
/// still in step with the daemon.
#[derive(Debug, Default)]
struct Io {
    pending: Vec<u8>,
    /// Set after any failure mid-request: the stream may hold half an answer,
    /// so no further request can trust what it reads.
    broken: bool,
}

/// The connection to the daemon.
#[derive(Debug)]
pub(crate) struct Control {
    stream: UnixStream,
    io: Mutex<Io>,
    welcome: Welcome,
    /// The daemon's effective uid, from `SO_PEERCRED`.
    daemon_uid: u32,
    /// The socket file's permission bits (the daemon gives the segment the
    /// same), or `None` if it could not be read.
    socket_mode: Option<u32>,
    /// The pid that registered, once `WELCOME` arrived: only that process
    /// says `BYE` (a forked child that drops its copy must not).
    registered_by: Option<u32>,
}

impl Drop for Control {
    /// Says `BYE` if this process registered: the daemon may then free the
    /// slot at once. Never blocks: one non-blocking send, errors ignored (the
    /// daemon falls back to the pidfd).
    fn drop(&mut self) {
        if self.registered_by == Some(std::process::id()) {
            let bye = Request::Bye.encode();
            let _ = rustix::net::send(
                &self.stream,
                bye.as_bytes(),
                SendFlags::NOSIGNAL | SendFlags::DONTWAIT,
            );
        }
    }
}

impl Control {
    /// Connects to the daemon of bus `bus` at `socket` and registers.
    ///
    /// # Errors
    /// `DaemonNotRunning` if the socket is missing or refuses connections,
    /// `PermissionDenied`, `BusClosed` if the daemon is shutting down,
    /// `Refused` for another `ERR` answer, `Protocol` for a malformed one,
    /// `Io` otherwise.
    pub(crate) fn connect(bus: &str, socket: &Path) -> Result<Self, Error> {
        // However long the path (`BusPaths::socket` may exceed `sun_path`).
        let stream = shmbus::name::connect_socket(socket).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => Error::DaemonNotRunning {
                bus: bus.to_owned(),
                stale: false,
            },
            io::ErrorKind::ConnectionRefused => Error::DaemonNotRunning {
                bus: bus.to_owned(),
                stale: true,
            },
            io::ErrorKind::PermissionDenied => Error::PermissionDenied {
                path: socket.to_owned(),
                source: e,
            },
            _ => Error::Io {
                doing: "connecting to shmbusd",
                source: e,
            },
        })?;
        let io_err = |doing, e| Error::Io { doing, source: e };
        stream
            .set_read_timeout(Some(REPLY_TIMEOUT))
            .and_then(|()| stream.set_write_timeout(Some(REPLY_TIMEOUT)))
            .map_err(|e| io_err("configuring the control socket", e))?;
        // Who listens: the uid the daemon had when it called `listen`.
        let daemon_uid = shmbus::peer::peer_cred(&stream)
            .map(|c| c.uid)
            .map_err(|e| io_err("reading shmbusd's credentials (SO_PEERCRED)", e))?;
        let socket_mode = {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::symlink_metadata(socket)
                .ok()
                .map(|m| m.permissions().mode() & 0o7777)
        };
        let mut c = Self {
            stream,
            io: Mutex::new(Io::default()),
            welcome: Welcome {
                slot: 0,
                generation: 0,
                epoch: 0,
                segment_size: 0,
            },
            daemon_uid,
            socket_mode,
            registered_by: None,
        };
        let hello = Request::Hello {
            abi: ABI_VERSION,
            pid: std::process::id(),
        };
        match c.request(&hello) {
            Ok(Response::Welcome {
                slot,
                generation,
                epoch,
                segment_size,
            }) => {
                if slot == u16::MAX {
                    return Err(Error::Protocol(format!(
                        "peer slot {slot} has no owner tag"
                    )));
                }
                c.welcome = Welcome {
                    slot,
                    generation,
                    epoch,
                    segment_size,
                };
                c.registered_by = Some(std::process::id());
                Ok(c)
            }
            Ok(Response::Error {
                code: ErrorCode::Closing,
                ..
            }) => Err(Error::BusClosed),
            Ok(Response::Error { code, message }) => Err(Error::Refused { code, message }),
            Ok(other) => Err(Error::Protocol(format!(
                "expected WELCOME, got {}",
                other.encode().trim_end()
            ))),
            // The daemon hung up on HELLO: it is stopping, or it refused us
            // without a word.
            Err(RequestError::Closed) => Err(Error::BusClosed),
            Err(RequestError::Protocol(message)) => Err(Error::Protocol(message)),
            Err(RequestError::Io(e)) => Err(io_err("registering with shmbusd", e)),
        }
    }

    /// What the daemon said when we registered.
    pub(crate) fn welcome(&self) -> &Welcome {
        &self.welcome
    }

    /// The connection itself, for the liveness watcher (`liveness.rs`, which
    /// only polls it for a hang-up).
    pub(crate) fn stream(&self) -> &UnixStream {
        &self.stream
    }

    /// The daemon's effective uid (`SO_PEERCRED`): the segment's owner.
    pub(crate) fn daemon_uid(&self) -> u32 {
        self.daemon_uid
    }

    /// The socket's permission bits, if they could be read.
    pub(crate) fn socket_mode(&self) -> Option<u32> {
        self.socket_mode
    }

    /// Sends one request and reads its answer.
    ///
    /// # Errors
    /// See [`RequestError`]. After any error the connection is unusable for
    /// further requests (they fail with the same kind of error).
    pub(crate) fn request(&self, req: &Request) -> Result<Response, RequestError> {
        let mut io = self.io.lock().unwrap_or_else(PoisonError::into_inner);
        if io.broken {
            return Err(RequestError::Closed);
        }
        // Pessimistic: cleared only once a whole answer was read.
        io.broken = true;
        if let Err(e) = self.write_all(req.encode().as_bytes()) {
            // The daemon may have closed after a last `ERR` (a refusal at
            // accept): that answer, if it is there, says why.
            return match self.read_line(&mut io.pending) {
                Ok(line) => match std::str::from_utf8(&line).map(Response::decode) {
                    Ok(Ok(r @ Response::Error { .. })) => Ok(r),
                    _ => Err(e),
                },
                Err(_) => Err(e),
            };
        }
        let line = self.read_line(&mut io.pending)?;
        let line = std::str::from_utf8(&line)
            .map_err(|_| RequestError::Protocol("answer is not UTF-8".into()))?;
        let resp = Response::decode(line).map_err(|e| RequestError::Protocol(e.to_string()))?;
        io.broken = false;
        Ok(resp)
    }

    /// Sends a request that has no answer (`CLOSE`), if this process is the
    /// one that registered (a forked child's copy of a handle must not speak
    /// for its parent). Never waits for the daemon: one non-blocking send
    /// under the request lock, so it never splits another request's line.
    /// If the line cannot be sent whole, the connection is marked broken (the
    /// daemon may hold half a line); the daemon gives back everything this
    /// connection holds when it ends.
    pub(crate) fn notify(&self, req: &Request) {
        if self.registered_by != Some(std::process::id()) {
            return;
        }
        let mut io = self.io.lock().unwrap_or_else(PoisonError::into_inner);
        if io.broken {
            return;
        }
        let line = req.encode();
        let sent = loop {
            match rustix::net::send(
                &self.stream,
                line.as_bytes(),
                SendFlags::NOSIGNAL | SendFlags::DONTWAIT,
            ) {
                Err(Errno::INTR) => {}
                r => break r,
            }
        };
        if sent != Ok(line.len()) {
            io.broken = true;
        }
    }

    /// Writes all of `buf`, without raising `SIGPIPE` if the daemon is gone.
    fn write_all(&self, mut buf: &[u8]) -> Result<(), RequestError> {
        while !buf.is_empty() {
            match rustix::net::send(&self.stream, buf, SendFlags::NOSIGNAL) {
                Ok(0) => return Err(RequestError::Closed),
                Ok(n) => buf = &buf[n..],
                Err(Errno::INTR) => {}
                Err(Errno::PIPE | Errno::CONNRESET) => return Err(RequestError::Closed),
                Err(e) => return Err(RequestError::Io(e.into())),
            }
        }
        Ok(())
    }

    /// Reads one line (newline included) of at most [`MAX_LINE`] bytes.
    fn read_line(&self, pending: &mut Vec<u8>) -> Result<Vec<u8>, RequestError> {
        let mut scanned = 0;
        loop {
            if let Some(i) = pending[scanned..].iter().position(|&b| b == b'\n') {
                let end = scanned + i + 1;
                if end > MAX_LINE {
                    return Err(too_long());
                }
                let rest = pending.split_off(end);
                return Ok(std::mem::replace(pending, rest));
            }
            scanned = pending.len();
            if scanned >= MAX_LINE {
                return Err(too_long());
            }
            let mut chunk = [0u8; 512];
            let want = chunk.len().min(MAX_LINE - scanned);
            match (&self.stream).read(&mut chunk[..want]) {
                Ok(0) => return Err(RequestError::Closed),
                Ok(n) => pending.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {
                    return Err(RequestError::Closed)
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Err(RequestError::Io(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!(
                            "shmbusd did not answer within {} s",
                            REPLY_TIMEOUT.as_secs()
                        ),
                    )))
                }
                Err(e) => return Err(RequestError::Io(e)),
            }
        }
    }

    /// True if the daemon has closed the connection (it exited or was killed).
    ///
    /// One non-blocking `recv(MSG_PEEK | MSG_DONTWAIT)`: 0 bytes means EOF.
    /// Takes no lock and consumes nothing. Meant for the slow path of blocking
    /// calls (at most every 200 ms), never for the fast path.
    pub(crate) fn peer_gone(&self) -> bool {
        let mut b = [0u8; 1];
        match rustix::net::recv(
            &self.stream,
            &mut b[..],
            RecvFlags::PEEK | RecvFlags::DONTWAIT,
        ) {
            Ok((0, _)) => true,
            // Unread bytes: the daemon sends nothing unasked, but it is alive.
            Ok(_) => false,
            Err(Errno::AGAIN | Errno::INTR) => false,
            // ECONNRESET and friends: the connection is dead.
            Err(_) => true,
        }
    }
}

fn too_long() -> RequestError {
    RequestError::Protocol(format!("answer longer than {MAX_LINE} bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::os::unix::net::UnixListener;

    fn sock(tag: &str) -> std::path::PathBuf {
        let p = std::path::PathBuf::from(format!(
            "/tmp/shmbus-client-ctl-{}-{tag}.sock",
            std::process::id()
        ));
        let _ = std::fs::remove_file(&p);
        p
    }

    /// A one-connection fake daemon that answers HELLO with `welcome`, then
    /// runs `rest` on the stream.
    fn serve(
        path: &Path,
        welcome: &'static str,
        rest: impl FnOnce(BufReader<UnixStream>) + Send + 'static,
    ) -> std::thread::JoinHandle<()> {
        let l = UnixListener::bind(path).unwrap();
        std::thread::spawn(move || {
            let (s, _) = l.accept().unwrap();
            let mut r = BufReader::new(s);
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            assert!(line.starts_with("HELLO "), "{line}");
            r.get_mut().write_all(welcome.as_bytes()).unwrap();
            rest(r);
        })
    }

    #[test]
    fn missing_and_stale_sockets() {
        let p = sock("missing");
        let e = Control::connect("b", &p).unwrap_err();
        assert!(
            matches!(e, Error::DaemonNotRunning { stale: false, .. }),
            "{e:?}"
        );
        // A socket file nobody listens on any more.
        drop(UnixListener::bind(&p).unwrap());
        let e = Control::connect("b", &p).unwrap_err();
        let _ = std::fs::remove_file(&p);
        assert!(
            matches!(e, Error::DaemonNotRunning { stale: true, .. }),
            "{e:?}"
        );
    }

    #[test]
    fn hello_open_and_eof() {
        let p = sock("hello");
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let t = serve(&p, "WELCOME 3 1 99 1048576\n", move |mut r| {
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            assert_eq!(line, "OPEN pipe x 1 - - -\n");
            // Answer in two pieces, to exercise the line reader.
            r.get_mut().write_all(b"CHANNEL 0 1 pipe 8192 ").unwrap();
            r.get_mut().write_all(b"4864 4096 0 0\n").unwrap();
            rx.recv().unwrap();
        });
        let c = Control::connect("b", &p).unwrap();
        assert_eq!(
            *c.welcome(),
            Welcome {
                slot: 3,
                generation: 1,
                epoch: 99,
                segment_size: 1 << 20
            }
        );
        assert!(!c.peer_gone());
        let r = c
            .request(&Request::Open {
                kind: shmbus::layout::Kind::Pipe,
                name: "x".into(),
                create: true,
                params: [None, None, None],
            })
            .unwrap();
        assert!(matches!(r, Response::Channel { offset: 8192, .. }), "{r:?}");
        assert!(!c.peer_gone());
        tx.send(()).unwrap();
        t.join().unwrap();
        let _ = std::fs::remove_file(&p);
        assert!(c.peer_gone());
        assert!(matches!(
            c.request(&Request::Hello { abi: 1, pid: 1 }),
            Err(RequestError::Closed)
        ));
    }

    #[test]
    fn overlong_and_garbage_answers() {
        let p = sock("long");
        let t = serve(&p, "WELCOME 0 1 2 3\n", |mut r| {
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            let junk = vec![b'x'; MAX_LINE * 2];
            let _ = r.get_mut().write_all(&junk);
        });
        let c = Control::connect("b", &p).unwrap();
        let e = c.request(&Request::Hello { abi: 1, pid: 1 }).unwrap_err();
        assert!(matches!(e, RequestError::Protocol(_)), "{e:?}");
        // The stream is out of step now: further requests fail at once.
        assert!(c.request(&Request::Hello { abi: 1, pid: 1 }).is_err());
        t.join().unwrap();

        let p2 = sock("garbage");
        let t = serve(&p2, "HELLO?\n", |_| {});
        let e = Control::connect("b", &p2).unwrap_err();
        assert!(matches!(e, Error::Protocol(_)), "{e:?}");
        t.join().unwrap();
        let _ = std::fs::remove_file(&p);
        let _ = std::fs::remove_file(&p2);
    }

    /// A daemon that refuses at accept writes `ERR` and closes, maybe before
    /// our `HELLO` is sent: the send fails (EPIPE), and the answer waiting in
    /// the socket is what the caller gets, not "closed".
    #[test]
    fn refusal_before_hello_is_read_after_a_failed_send() {
        let (ours, theirs) = UnixStream::pair().unwrap();
        (&theirs)
            .write_all(b"ERR full too many connections to bus b\n")
            .unwrap();
        drop(theirs);
        let c = Control {
            stream: ours,
            io: Mutex::new(Io::default()),
            welcome: Welcome {
                slot: 0,
                generation: 0,
                epoch: 0,
                segment_size: 0,
            },
            daemon_uid: 0,
            socket_mode: None,
            registered_by: None,
        };
        let r = c.request(&Request::Hello { abi: 1, pid: 1 });
        assert!(
            matches!(&r, Ok(Response::Error { code: ErrorCode::Full, message })
                if message == "too many connections to bus b"),
            "{r:?}"
        );
        // Nothing more can be asked on it.
        assert!(matches!(
            c.request(&Request::Hello { abi: 1, pid: 1 }),
            Err(RequestError::Closed)
        ));
    }

    #[test]
    fn refused() {
        let p = sock("refused");
        let t = serve(&p, "ERR denied uid 1000 is not allowed\n", |_| {});
        let e = Control::connect("b", &p).unwrap_err();
        t.join().unwrap();
        let _ = std::fs::remove_file(&p);
        assert!(
            matches!(&e, Error::Refused { code: ErrorCode::Denied, message } if message == "uid 1000 is not allowed"),
            "{e:?}"
        );
    }
}
