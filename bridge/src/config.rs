//! What the bridge carries and where: the command line, and the same keys in
//! a TOML file (`--config FILE`; the command line adds to it).

use std::path::PathBuf;

use clap::Parser;
use serde::Deserialize;
use shmbus_client::Kind;

/// Command line of `shmbus-bridge`.
#[derive(Parser, Debug, Default)]
#[command(
    name = "shmbus-bridge",
    version,
    about = "Carries shmbus channels between hosts over zenoh"
)]
pub struct Args {
    /// TOML file with the same keys as these options (`bus`, `listen`,
    /// `connect`, `export`, `import`, `multicast`, `stats`, `window`,
    /// `prefix`).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Local bus (default: $SHMBUS_BUS, else "shmbus").
    #[arg(long)]
    pub bus: Option<String>,
    /// zenoh endpoint to listen on, e.g. tcp/0.0.0.0:7447 (repeatable).
    #[arg(long)]
    pub listen: Vec<String>,
    /// zenoh endpoint of another bridge, e.g. tcp/10.0.0.2:7447
    /// (repeatable); retried until it answers, and after it goes away.
    #[arg(long)]
    pub connect: Vec<String>,
    /// Find peers by UDP multicast scouting too (off by default).
    #[arg(long)]
    pub multicast: bool,
    /// A local channel whose traffic goes out: NAME, or KIND:NAME to create
    /// it if missing (kind: pipe, queue, value, array, topic) (repeatable).
    #[arg(long)]
    pub export: Vec<String>,
    /// A remote channel brought into the local bus: NAME, or KIND:NAME
    /// (repeatable). Without a kind, the local channel's, else the
    /// exporter's.
    #[arg(long)]
    pub import: Vec<String>,
    /// Key-expression prefix: a channel's keys are PREFIX/<channel>/...
    #[arg(long)]
    pub prefix: Option<String>,
    /// Print a line of counters per channel every SECS seconds.
    #[arg(long, value_name = "SECS")]
    pub stats: Option<f64>,
    /// Pipe or topic frames a bridge sends before the importer acknowledges
    /// them.
    #[arg(long)]
    pub window: Option<usize>,
}

/// The TOML file: the options' keys.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct File {
    bus: Option<String>,
    #[serde(default)]
    listen: Vec<String>,
    #[serde(default)]
    connect: Vec<String>,
    #[serde(default)]
    multicast: bool,
    #[serde(default)]
    export: Vec<String>,
    #[serde(default)]
    import: Vec<String>,
    prefix: Option<String>,
    stats: Option<f64>,
    window: Option<usize>,
}

/// One channel to carry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Channel {
    /// Its name on the local bus (and in the key).
    pub name: String,
    /// Its kind, if given.
    pub kind: Option<Kind>,
}

/// Everything the bridge needs, merged from the file and the command line.
#[derive(Clone, Debug)]
pub struct Config {
    /// Local bus.
    pub bus: String,
    /// zenoh listen endpoints.
    pub listen: Vec<String>,
    /// zenoh connect endpoints.
    pub connect: Vec<String>,
    /// Multicast scouting on.
    pub multicast: bool,
    /// Channels exported.
    pub export: Vec<Channel>,
    /// Channels imported.
    pub import: Vec<Channel>,
    /// Key prefix.
    pub prefix: String,
    /// Seconds between counter lines, if any.
    pub stats: Option<f64>,
    /// Pipe window in frames.
    pub window: usize,
}

/// Default key prefix.
pub const DEFAULT_PREFIX: &str = "shmbus";
/// Default pipe window.
pub const DEFAULT_WINDOW: usize = 256;

/// Parses `KIND:NAME` or `NAME`.
pub fn parse_channel(s: &str) -> Result<Channel, String> {
    let (kind, name) = match s.split_once(':') {
        Some((k, n)) => {
            let kind = match k {
                "pipe" => Kind::Pipe,
                "queue" => Kind::Queue,
                "value" => Kind::Value,
                "array" => Kind::Array,
                "topic" => Kind::Topic,
                _ => {
                    return Err(format!(
                        "{s:?}: unknown kind {k:?} (pipe, queue, value, array or topic)"
                    ))
                }
            };
            (Some(kind), n)
        }
        None => (None, s),
    };
    shmbus::name::validate_channel(name).map_err(|e| format!("{s:?}: {e}"))?;
    Ok(Channel {
        name: name.to_owned(),
        kind,
    })
}

impl Config {
    /// Merges the file named by `--config` (if any) and the command line.
    ///
    /// # Errors
    /// A message naming the bad file, key or channel.
    pub fn from_args(a: Args) -> Result<Self, String> {
        let file = match &a.config {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .map_err(|e| format!("cannot read {}: {e}", p.display()))?;
                toml::from_str::<File>(&text).map_err(|e| format!("{}: {e}", p.display()))?
            }
            None => File::default(),
        };
        let chans = |f: Vec<String>, c: Vec<String>| -> Result<Vec<Channel>, String> {
            f.iter().chain(c.iter()).map(|s| parse_channel(s)).collect()
        };
        let cfg = Self {
            bus: a
                .bus
                .or(file.bus)
                .unwrap_or_else(shmbus_client::default_bus_name),
            listen: file.listen.into_iter().chain(a.listen).collect(),
            connect: file.connect.into_iter().chain(a.connect).collect(),
            multicast: a.multicast || file.multicast,
            export: chans(file.export, a.export)?,
            import: chans(file.import, a.import)?,
            prefix: a
                .prefix
                .or(file.prefix)
                .unwrap_or_else(|| DEFAULT_PREFIX.to_owned()),
            stats: a.stats.or(file.stats),
            window: a.window.or(file.window).unwrap_or(DEFAULT_WINDOW),
        };
        if cfg.export.is_empty() && cfg.import.is_empty() {
            return Err("nothing to carry: give --export NAME or --import NAME".into());
        }
        if cfg.window == 0 {
            return Err("--window must be at least 1".into());
        }
        if cfg.prefix.is_empty() || cfg.prefix.contains(['*', '$', '#', '?']) {
            return Err(format!(
                "--prefix {:?}: a plain key expression (no wildcards)",
                cfg.prefix
            ));
        }
        for c in &cfg.export {
            if cfg.import.iter().any(|i| i.name == c.name) {
                return Err(format!(
                    "{}: exported and imported by the same bridge would loop",
                    c.name
                ));
            }
        }
        Ok(cfg)
    }

    /// The zenoh configuration: a peer, TCP endpoints as given, multicast
    /// scouting only if asked, reconnection every second at most.
    ///
    /// # Errors
    /// A message naming the endpoint zenoh refused.
    pub fn zenoh(&self) -> Result<zenoh::Config, String> {
        let mut z = zenoh::Config::default();
        let json = |v: &[String]| serde_json_list(v);
        let set = |z: &mut zenoh::Config, k: &str, v: String| {
            z.insert_json5(k, &v)
                .map_err(|e| format!("zenoh {k} = {v}: {e}"))
        };
        set(&mut z, "mode", "\"peer\"".into())?;
        set(&mut z, "listen/endpoints", json(&self.listen))?;
        set(&mut z, "connect/endpoints", json(&self.connect))?;
        set(
            &mut z,
            "connect/retry",
            r#"{"period_init_ms": 250, "period_max_ms": 1000, "period_increase_factor": 2}"#.into(),
        )?;
        set(
            &mut z,
            "scouting/multicast/enabled",
            self.multicast.to_string(),
        )?;
        Ok(z)
    }
}

/// `["a","b"]`, quoting each string for JSON.
fn serde_json_list(v: &[String]) -> String {
    let items: Vec<String> = v
        .iter()
        .map(|s| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\"")))
        .collect();
    format!("[{}]", items.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_parse_with_and_without_kind() {
        assert_eq!(
            parse_channel("pipe:x").unwrap(),
            Channel {
                name: "x".into(),
                kind: Some(Kind::Pipe)
            }
        );
        assert_eq!(parse_channel("y").unwrap().kind, None);
        assert!(parse_channel("table:x")
            .unwrap_err()
            .contains("unknown kind"));
        assert!(parse_channel("pipe:").is_err());
    }

    #[test]
    fn file_and_command_line_merge() {
        let dir = std::env::temp_dir().join(format!("bridge-cfg-{}", std::process::id()));
        std::fs::write(
            &dir,
            "bus = \"a\"\nlisten = [\"tcp/127.0.0.1:0\"]\nexport = [\"pipe:p\"]\n",
        )
        .unwrap();
        let a = Args {
            config: Some(dir.clone()),
            import: vec!["value:v".into()],
            ..Args::default()
        };
        let c = Config::from_args(a).unwrap();
        let _ = std::fs::remove_file(&dir);
        assert_eq!(c.bus, "a");
        assert_eq!(c.export[0].name, "p");
        assert_eq!(c.import[0].kind, Some(Kind::Value));
        assert_eq!(c.window, DEFAULT_WINDOW);
        assert!(!c.multicast);
    }

    #[test]
    fn a_loop_and_an_empty_bridge_are_refused() {
        let a = Args {
            export: vec!["p".into()],
            import: vec!["p".into()],
            ..Args::default()
        };
        assert!(Config::from_args(a).unwrap_err().contains("loop"));
        assert!(Config::from_args(Args::default())
            .unwrap_err()
            .contains("nothing to carry"));
    }
}
