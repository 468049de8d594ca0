//! The channels declared at start: one collector per kind for the config file
//! (`[[pipe]]`, `[[queue]]`, `[[value]]`, `[[array]]`) and one per flag
//! (`--pipe`, `--queue`, `--value`, `--array`), all feeding [`Declared`],
//! which holds the one override rule.
//!
//! # The override rule
//! - A name may be declared once in the file and once on the command line.
//! - A flag that names a channel of the file overrides it: each parameter the
//!   flag gives replaces the file's, each it leaves out keeps the file's (so
//!   `--pipe a` keeps the file's capacity, `--queue q::1K` its slots). The
//!   flag must declare the same kind.
//! - Otherwise a name declared twice is an error.
//! - Each declaration is checked on its own (with the defaults for what it
//!   leaves out), and the result of an override once more.
//!
//! The file's channels come first (pipes, queues, values, arrays, each in
//! file order; an overridden one keeps its place), then the command line's
//! in the same order of kinds.

use shmbus::name;
use shmbus::params::{ChannelParams, OpenParams};
use shmbus::seqlock::ElemType;
use shmbus::size::parse_size;

use super::file::{value_size, ArrayDecl, FileConfig, PipeDecl, QueueDecl, TopicDecl, ValueDecl};
use crate::cli::Cli;
use crate::error::Error;

/// A channel declared at start (`--pipe`, `[[queue]]`, ...).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChannelSpec {
    /// Its (validated) name.
    pub name: String,
    /// What to create.
    pub params: ChannelParams,
}

/// Where a declaration comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Origin {
    File,
    Flag,
}

/// One declaration as written: the parameters it leaves out are `None`.
#[derive(Clone, Debug)]
struct Decl {
    /// The declaration, for messages: `--queue q:8` or `config [[queue]] "q"`.
    what: String,
    origin: Origin,
    name: String,
    want: OpenParams,
}

impl Decl {
    /// The parameters to create it with: defaults for what it leaves out,
    /// every range checked.
    fn resolve(&self) -> Result<ChannelParams, Error> {
        self.want
            .resolve()
            .map_err(|e| Error::Config(format!("{}: {e}", self.what)))
    }
}

/// The declarations so far, in order.
#[derive(Debug, Default)]
struct Declared(Vec<Decl>);

impl Declared {
    /// Adds `d` under the override rule (see the module docs).
    fn add(&mut self, d: Decl) -> Result<(), Error> {
        name::validate_channel(&d.name).map_err(|e| {
            Error::Config(format!("{}: bad channel name {:?}: {e}", d.what, d.name))
        })?;
        d.resolve()?;
        let Some(old) = self.0.iter_mut().find(|x| x.name == d.name) else {
            self.0.push(d);
            return Ok(());
        };
        match (old.origin, d.origin) {
            (Origin::File, Origin::File) => Err(Error::Config(format!(
                "config file declares channel {:?} twice",
                d.name
            ))),
            (Origin::Flag, Origin::Flag) => Err(Error::Config(format!(
                "{}: channel {:?} is declared twice on the command line",
                d.what, d.name
            ))),
            (Origin::File, Origin::Flag) => {
                let Some(want) = old.want.overridden_by(&d.want) else {
                    return Err(Error::Config(format!(
                        "{}: channel {:?} is {} in the config file; a flag overrides only a \
                         channel of its own kind",
                        d.what,
                        d.name,
                        old.want.kind().with_article()
                    )));
                };
                *old = Decl { want, ..d };
                old.resolve().map(drop)
            }
            (Origin::Flag, Origin::File) => unreachable!("the file is read first"),
        }
    }
}

/// Every channel the file and the command line declare, checked.
pub(super) fn collect(cli: &Cli, file: &FileConfig) -> Result<Vec<ChannelSpec>, Error> {
    let mut d = Declared::default();
    for p in &file.pipe {
        d.add(file_pipe(p)?)?;
    }
    for q in &file.queue {
        d.add(file_queue(q)?)?;
    }
    for v in &file.value {
        d.add(file_value(v)?)?;
    }
    for a in &file.array {
        d.add(file_array(a)?)?;
    }
    for t in &file.topic {
        d.add(file_topic(t)?)?;
    }
    for arg in &cli.pipes {
        d.add(flag_pipe(arg)?)?;
    }
    for arg in &cli.queues {
        d.add(flag_queue(arg)?)?;
    }
    for arg in &cli.values {
        d.add(flag_value(arg)?)?;
    }
    for arg in &cli.arrays {
        d.add(flag_array(arg)?)?;
    }
    for arg in &cli.topics {
        d.add(flag_topic(arg)?)?;
    }
    d.0.iter()
        .map(|x| {
            Ok(ChannelSpec {
                name: x.name.clone(),
                params: x.resolve()?,
            })
        })
        .collect()
}

fn file_decl(kind: &str, name: &str, want: OpenParams) -> Decl {
    Decl {
        what: format!("config [[{kind}]] {name:?}"),
        origin: Origin::File,
        name: name.to_owned(),
        want,
    }
}

fn flag_decl(flag: &str, arg: &str, name: &str, want: OpenParams) -> Decl {
    Decl {
        what: format!("--{flag} {arg}"),
        origin: Origin::Flag,
        name: name.to_owned(),
        want,
    }
}

/// `[[pipe]]`: `name`, `capacity` (bytes or "64K").
fn file_pipe(p: &PipeDecl) -> Result<Decl, Error> {
    let capacity =
        match &p.capacity {
            Some(v) => Some(value_size(v).map_err(|e| {
                Error::Config(format!("config [[pipe]] {:?}: capacity: {e}", p.name))
            })?),
            None => None,
        };
    Ok(file_decl("pipe", &p.name, OpenParams::Pipe { capacity }))
}

/// `[[queue]]`: `name`, `slots`, `slot_size` (bytes or "1K").
fn file_queue(q: &QueueDecl) -> Result<Decl, Error> {
    let slot_size = match &q.slot_size {
        Some(v) => Some(value_size(v).map_err(|e| {
            Error::Config(format!("config [[queue]] {:?}: slot_size: {e}", q.name))
        })?),
        None => None,
    };
    let want = OpenParams::Queue {
        slots: q.slots,
        slot_size,
    };
    Ok(file_decl("queue", &q.name, want))
}

/// `[[value]]`: `name`, `type`.
fn file_value(v: &ValueDecl) -> Result<Decl, Error> {
    let what = format!("config [[value]] {:?}", v.name);
    let elem = Some(elem_type(&what, &v.ty)?);
    Ok(file_decl("value", &v.name, OpenParams::Value { elem }))
}

/// `[[array]]`: `name`, `type`, `len`.
fn file_array(a: &ArrayDecl) -> Result<Decl, Error> {
    let what = format!("config [[array]] {:?}", a.name);
    let want = OpenParams::Array {
        elem: Some(elem_type(&what, &a.ty)?),
        len: Some(a.len),
    };
    Ok(file_decl("array", &a.name, want))
}

fn file_topic(t: &TopicDecl) -> Result<Decl, Error> {
    let slot_size = match &t.slot_size {
        Some(v) => Some(value_size(v).map_err(|e| {
            Error::Config(format!("config [[topic]] {:?}: slot_size: {e}", t.name))
        })?),
        None => None,
    };
    let want = OpenParams::Topic {
        slots: t.slots,
        slot_size,
        mode: topic_mode(t.lossy, t.max_subscribers),
    };
    Ok(file_decl("topic", &t.name, want))
}

/// The mode word for what a declaration gives (`None`: neither given).
fn topic_mode(lossy: Option<bool>, subs: Option<u64>) -> Option<u64> {
    (lossy.is_some() || subs.is_some()).then(|| {
        shmbus::topic::mode_word(
            lossy.unwrap_or(false),
            subs.unwrap_or(shmbus::topic::DEFAULT_MAX_SUBSCRIBERS),
        )
    })
}

/// `--topic NAME[:SLOTS[:SLOT_BYTES]][:lossy]`; an empty SLOTS is left out.
fn flag_topic(arg: &str) -> Result<Decl, Error> {
    let what = format!("--topic {arg}");
    let (rest, lossy) = match arg.strip_suffix(":lossy") {
        Some(r) => (r, Some(true)),
        None => (arg, None),
    };
    let mut it = rest.splitn(3, ':');
    let name = it.next().unwrap_or("");
    let slots = match it.next() {
        None | Some("") => None,
        Some(n) => Some(
            n.parse::<u64>()
                .map_err(|_| Error::Config(format!("{what}: slots {n:?} is not a whole number")))?,
        ),
    };
    let slot_size = match it.next() {
        None | Some("") => None,
        Some(z) => {
            Some(parse_size(z).map_err(|e| Error::Config(format!("{what}: slot size: {e}")))?)
        }
    };
    let want = OpenParams::Topic {
        slots,
        slot_size,
        mode: topic_mode(lossy, None),
    };
    Ok(flag_decl("topic", arg, name, want))
}

/// `--pipe NAME[:CAPACITY]`.
fn flag_pipe(arg: &str) -> Result<Decl, Error> {
    let (name, capacity) = match arg.split_once(':') {
        Some((n, c)) => (
            n,
            Some(parse_size(c).map_err(|e| Error::Config(format!("--pipe {arg}: capacity: {e}")))?),
        ),
        None => (arg, None),
    };
    Ok(flag_decl("pipe", arg, name, OpenParams::Pipe { capacity }))
}

/// `--queue NAME[:SLOTS[:SLOT_BYTES]]`; an empty SLOTS is left out.
fn flag_queue(arg: &str) -> Result<Decl, Error> {
    let what = format!("--queue {arg}");
    let mut it = arg.splitn(3, ':');
    let name = it.next().unwrap_or("");
    let slots = match it.next() {
        None | Some("") => None,
        Some(n) => Some(
            n.parse::<u64>()
                .map_err(|_| Error::Config(format!("{what}: slots {n:?} is not a whole number")))?,
        ),
    };
    let slot_size = match it.next() {
        Some(z) => {
            Some(parse_size(z).map_err(|e| Error::Config(format!("{what}: slot size: {e}")))?)
        }
        None => None,
    };
    let want = OpenParams::Queue { slots, slot_size };
    Ok(flag_decl("queue", arg, name, want))
}

/// `--value NAME:TYPE`.
fn flag_value(arg: &str) -> Result<Decl, Error> {
    let what = format!("--value {arg}");
    let (name, ty) = arg.split_once(':').ok_or_else(|| {
        Error::Config(format!(
            "{what}: expected NAME:TYPE, e.g. counter:i64 or x:d"
        ))
    })?;
    let elem = Some(elem_type(&what, ty)?);
    Ok(flag_decl("value", arg, name, OpenParams::Value { elem }))
}

/// `--array NAME:TYPE:LEN`.
fn flag_array(arg: &str) -> Result<Decl, Error> {
    let what = format!("--array {arg}");
    let mut it = arg.splitn(3, ':');
    let (Some(name), Some(ty), Some(len)) = (it.next(), it.next(), it.next()) else {
        return Err(Error::Config(format!(
            "{what}: expected NAME:TYPE:LEN, e.g. prices:f64:16"
        )));
    };
    let len: u64 = len
        .parse()
        .map_err(|_| Error::Config(format!("{what}: length {len:?} is not a whole number")))?;
    let want = OpenParams::Array {
        elem: Some(elem_type(&what, ty)?),
        len: Some(len),
    };
    Ok(flag_decl("array", arg, name, want))
}

/// An element type as a Rust name (`f64`) or a Python typecode (`d`).
fn elem_type(what: &str, ty: &str) -> Result<ElemType, Error> {
    ElemType::parse(ty).ok_or_else(|| {
        Error::Config(format!(
            "{what}: unknown element type {ty:?}: use i8 u8 i16 u16 i32 u32 i64 u64 f32 f64 \
             or a Python typecode b B h H i I l L q Q f d"
        ))
    })
}
