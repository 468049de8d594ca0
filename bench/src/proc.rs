//! Processes: pinning, re-exec'd children, the daemon, and `/dev/shm` files,
//! each behind a guard that cleans up on drop (also while unwinding a panic).

use std::env;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use shmbus::sync::{AtomicU64, FutexWord};
use shmbus_client::Bus;

/// Environment variable that turns this executable into a child role.
pub(crate) const ROLE: &str = "SHMBUS_SUITE_ROLE";
/// Environment variable holding the cpu a child pins itself to.
const PIN: &str = "SHMBUS_SUITE_CPU";

/// Where the two sides of every measurement run.
#[derive(Clone, Debug)]
pub(crate) struct Placement {
    /// Cpu of the measuring (parent) side, if pinned.
    pub(crate) parent: Option<usize>,
    /// Cpu of the other side (child process or second thread), if pinned.
    pub(crate) child: Option<usize>,
    /// Human-readable description, recorded with every result.
    pub(crate) text: String,
}

impl Placement {
    /// Picks the first two cpus this process may run on; unpinned if only one.
    pub(crate) fn choose() -> Self {
        let cpus = allowed_cpus();
        if cpus.len() < 2 {
            return Self {
                parent: None,
                child: None,
                text: format!("not pinned ({} cpu allowed)", cpus.len()),
            };
        }
        let (a, b) = (cpus[0], cpus[1]);
        Self {
            parent: Some(a),
            child: Some(b),
            text: format!(
                "parent cpu {a} {}, child cpu {b} {}",
                topology(a),
                topology(b)
            ),
        }
    }
}

fn allowed_cpus() -> Vec<usize> {
    match rustix::thread::sched_getaffinity(None) {
        Ok(set) => (0..rustix::thread::CpuSet::MAX_CPU)
            .filter(|&c| set.is_set(c))
            .collect(),
        Err(_) => (0..std::thread::available_parallelism().map_or(1, |n| n.get())).collect(),
    }
}

fn topology(cpu: usize) -> String {
    let read = |f: &str| {
        std::fs::read_to_string(format!("/sys/devices/system/cpu/cpu{cpu}/topology/{f}"))
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|_| "?".into())
    };
    format!(
        "(core {}, package {}, smt siblings {})",
        read("core_id"),
        read("physical_package_id"),
        read("thread_siblings_list")
    )
}

/// Pins the calling thread to `cpu`.
pub(crate) fn pin(cpu: Option<usize>) {
    let Some(cpu) = cpu else { return };
    let mut set = rustix::thread::CpuSet::new();
    set.set(cpu);
    if let Err(e) = rustix::thread::sched_setaffinity(None, &set) {
        eprintln!("warning: could not pin to cpu {cpu}: {e}");
    }
}

/// Makes this child die with its parent (SIGTERM for the daemon, so that it
/// cleans up; SIGKILL for the others), so that an interrupted run leaves no
/// spinning process behind.
pub(crate) fn die_with_parent(daemon: bool) {
    let sig = if daemon {
        rustix::process::Signal::TERM
    } else {
        rustix::process::Signal::KILL
    };
    let _ = rustix::process::set_parent_process_death_signal(Some(sig));
}

/// A channel name unique in this run: `tag-<pid>-<sequence>`.
pub(crate) fn unique(tag: &str) -> String {
    // Relaxed: only uniqueness matters.
    let seq = SEQ.fetch_add(1, shmbus::sync::Ordering::Relaxed);
    format!("{tag}-{}-{seq}", std::process::id())
}

/// Prefix of the raw `/dev/shm` files of this process.
fn raw_prefix() -> String {
    format!("shmbus-bench-raw-{}-", std::process::id())
}

/// On Ctrl-C or SIGTERM: remove this run's raw `/dev/shm` files and exit;
/// the children follow through [`die_with_parent`] (the daemon removes its
/// own files on SIGTERM).
pub(crate) fn cleanup_on_signal() {
    let _ = ctrlc::set_handler(|| {
        let prefix = raw_prefix();
        if let Ok(dir) = std::fs::read_dir("/dev/shm") {
            for e in dir.flatten() {
                if e.file_name().to_string_lossy().starts_with(&prefix) {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        eprintln!("\ninterrupted");
        std::process::exit(130);
    });
}

/// Pins a child process to the cpu its parent chose (called first in a role).
pub(crate) fn pin_from_env() {
    if let Some(cpu) = env::var(PIN).ok().and_then(|s| s.parse().ok()) {
        pin(Some(cpu));
    }
}

/// A child process that is killed and reaped on drop unless waited for.
pub(crate) struct Kid {
    child: Option<Child>,
    role: String,
}

/// Spawns this executable in `role` with `args`, pinned to `cpu`; its stdin
/// and stdout are the given handles (a pipe or socket for some roles).
pub(crate) fn spawn_with(
    role: &str,
    args: &[String],
    cpu: Option<usize>,
    stdin: Stdio,
    stdout: Stdio,
) -> Kid {
    let mut cmd = Command::new(env::current_exe().expect("current_exe"));
    cmd.env(ROLE, role)
        .args(args)
        .stdin(stdin)
        .stdout(stdout)
        .stderr(Stdio::inherit());
    if let Some(c) = cpu {
        cmd.env(PIN, c.to_string());
    }
    Kid {
        child: Some(cmd.spawn().expect("spawn child")),
        role: role.to_owned(),
    }
}

/// Spawns this executable in `role` with null stdin/stdout.
pub(crate) fn spawn(role: &str, args: &[String], cpu: Option<usize>) -> Kid {
    spawn_with(role, args, cpu, Stdio::null(), Stdio::null())
}

impl Kid {
    /// Waits for a successful exit.
    ///
    /// # Panics
    /// If the child failed; the measurement is then reported as failed.
    pub(crate) fn wait(mut self) {
        let mut c = self.child.take().expect("child");
        let st = c.wait().expect("wait child");
        assert!(st.success(), "child role '{}' failed: {st}", self.role);
    }

    /// The child's stdout, if it was spawned with `Stdio::piped()`.
    pub(crate) fn stdout(&mut self) -> Option<&mut std::process::ChildStdout> {
        self.child.as_mut().and_then(|c| c.stdout.as_mut())
    }

    fn pid(&self) -> Option<rustix::process::Pid> {
        self.child
            .as_ref()
            .and_then(|c| rustix::process::Pid::from_raw(c.id() as i32))
    }
}

impl Drop for Kid {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The benchmark's own daemon, on a unique bus name; SIGTERMed on drop, and
/// its files removed even if it did not get to remove them itself.
pub(crate) struct Daemon {
    kid: Option<Kid>,
    paths: shmbus::name::BusPaths,
    /// The bus name.
    pub(crate) bus: String,
}

impl Daemon {
    /// Starts `shmbusd --name <unique> --size 256M --quiet` in a child and
    /// waits until it accepts clients.
    pub(crate) fn start() -> Self {
        let bus = format!("shmbus-bench-{}", std::process::id());
        let args: Vec<String> = ["--name", &bus, "--size", "256M", "--quiet"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let kid = spawn("daemon", &args, None);
        let me = Self {
            kid: Some(kid),
            paths: shmbus::name::BusPaths::new(&bus),
            bus,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Bus::connect_to(&me.bus).is_err() {
            assert!(Instant::now() < deadline, "daemon did not come up");
            std::thread::sleep(Duration::from_millis(10));
        }
        me
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut kid) = self.kid.take() {
            if let Some(pid) = kid.pid() {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            }
            if let Some(mut c) = kid.child.take() {
                // Give it a moment to stop cleanly, then kill.
                let deadline = Instant::now() + Duration::from_secs(5);
                while Instant::now() < deadline {
                    if let Ok(Some(_)) = c.try_wait() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        for p in [&self.paths.segment, &self.paths.socket, &self.paths.lock] {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// The `daemon` role: the real daemon's entry point.
pub(crate) fn daemon_main(args: &[String]) -> ! {
    let argv = std::iter::once("shmbusd".to_owned()).chain(args.iter().cloned());
    std::process::exit(shmbus_daemon::main_with_args(argv));
}

/// A `/dev/shm` file mapped shared, removed on drop by the process that
/// created it.
pub(crate) struct ShmFile {
    map: memmap2::MmapRaw,
    /// The file's path (passed to the child).
    pub(crate) path: PathBuf,
    owner: bool,
}

static SEQ: AtomicU64 = AtomicU64::new(0);

impl ShmFile {
    /// Creates a fresh file of `len` bytes (zeroed).
    pub(crate) fn create(len: usize) -> Self {
        // Relaxed: only uniqueness matters.
        let seq = SEQ.fetch_add(1, shmbus::sync::Ordering::Relaxed);
        let path = PathBuf::from(format!("/dev/shm/{}{seq}", raw_prefix()));
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .expect("create /dev/shm file");
        // The guard exists before anything else can fail.
        let len64 = len as u64;
        let map_it = |f: &std::fs::File| {
            f.set_len(len64).expect("size /dev/shm file");
            memmap2::MmapOptions::new().map_raw(f).expect("map")
        };
        let map = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| map_it(&f))) {
            Ok(m) => m,
            Err(p) => {
                let _ = std::fs::remove_file(&path);
                std::panic::resume_unwind(p);
            }
        };
        Self {
            map,
            path,
            owner: true,
        }
    }

    /// Maps an existing file (the child side).
    pub(crate) fn open(path: &str) -> Self {
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .expect("open /dev/shm file");
        let map = memmap2::MmapOptions::new().map_raw(&f).expect("map");
        Self {
            map,
            path: path.into(),
            owner: false,
        }
    }

    /// The path as a string argument for a child.
    pub(crate) fn arg(&self) -> String {
        self.path.to_str().expect("utf-8 path").to_owned()
    }

    /// The 64-bit word at byte `offset`.
    ///
    /// # Panics
    /// If `offset` is not 8-aligned or the word is out of bounds.
    pub(crate) fn word(&self, offset: usize) -> &AtomicU64 {
        assert!(offset.is_multiple_of(8) && offset + 8 <= self.map.len());
        // SAFETY:
        // - `offset + 8 <= len` (checked), so the word is inside the mapping;
        // - the mapping is page-aligned and `offset` is a multiple of 8, so the
        //   word is 8-aligned;
        // - `AtomicU64` has the size and alignment of `u64` and every bit
        //   pattern is valid; all access to the file is atomic;
        // - the mapping lives as long as `self`, which the reference borrows.
        unsafe { &*self.map.as_mut_ptr().add(offset).cast::<AtomicU64>() }
    }

    /// The 32-bit futex word at byte `offset`.
    ///
    /// # Panics
    /// If `offset` is not 4-aligned or the word is out of bounds.
    pub(crate) fn futex(&self, offset: usize) -> &FutexWord {
        assert!(offset.is_multiple_of(4) && offset + 4 <= self.map.len());
        // SAFETY: as in `word`: in bounds and 4-aligned (checked), `FutexWord`
        // is `repr(transparent)` over `AtomicU32` (any bits valid), all access
        // is atomic, and the mapping outlives the returned reference.
        unsafe { &*self.map.as_mut_ptr().add(offset).cast::<FutexWord>() }
    }
}

impl Drop for ShmFile {
    fn drop(&mut self) {
        if self.owner {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}
