//! Channel parameters: what each kind of channel is made with, as one typed
//! value, and its encoding in the three parameter words of the control
//! protocol (`OPEN`, `CHANNEL`) and of the directory (`DirEntry::params`).
//!
//! | kind | p0 | p1 | p2 |
//! |---|---|---|---|
//! | pipe | ring capacity in bytes | 0 | 0 |
//! | queue | number of slots | slot payload size in bytes | 0 |
//! | value | element type code ([`ElemType::code`]) | 1 | 0 |
//! | array | element type code | length in elements | 0 |
//! | topic | number of slots | slot payload size in bytes | mode word ([`topic::mode_word`]: max subscribers, lossy bit) |
//!
//! [`ChannelParams`] are the parameters of a channel that exists or is to be
//! created: every word is known. [`OpenParams`] are what an `OPEN` asks for:
//! a word may be left out (`-` on the wire), which means the default when the
//! channel is created and "any" when it exists.
//!
//! Both sides decode words they receive with the checks here (the words come
//! from another process: the daemon treats `OPEN`s, the clients `CHANNEL`s and
//! the directory, as untrusted).

use core::fmt;

use crate::layout::Kind;
use crate::pipe;
use crate::queue;
use crate::seqlock::{self, ElemType};
use crate::topic;

/// The parameters of a channel: everything its kind is made with.
///
/// # Examples
/// ```
/// use shmbus::layout::Kind;
/// use shmbus::params::ChannelParams;
///
/// let p = ChannelParams::Queue { slots: 1024, slot_size: 256 };
/// assert_eq!(p.words(), [1024, 256, 0]);
/// assert_eq!(ChannelParams::from_words(Kind::Queue, [1024, 256, 0]), Ok(p));
/// assert!(ChannelParams::from_words(Kind::Queue, [1000, 256, 0]).is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChannelParams {
    /// A pipe with a ring of `capacity` bytes ([`pipe::check_capacity`]).
    Pipe {
        /// Ring capacity in bytes.
        capacity: u64,
    },
    /// An MPMC queue ([`queue::check_params`]).
    Queue {
        /// Number of slots (a power of two).
        slots: u64,
        /// Largest message in bytes.
        slot_size: u64,
    },
    /// One typed element (a seqlock).
    Value {
        /// Element type.
        elem: ElemType,
    },
    /// A fixed-length typed array (a seqlock; [`seqlock::check_params`]).
    Array {
        /// Element type.
        elem: ElemType,
        /// Number of elements.
        len: u64,
    },
    /// A topic ([`topic::check_params`]).
    Topic {
        /// Number of slots (a power of two).
        slots: u64,
        /// Largest message in bytes.
        slot_size: u64,
        /// Mode word: max subscribers and the lossy bit ([`topic::mode_word`]).
        mode: u64,
    },
}

impl ChannelParams {
    /// The channel kind these parameters make.
    pub fn kind(&self) -> Kind {
        match self {
            Self::Pipe { .. } => Kind::Pipe,
            Self::Queue { .. } => Kind::Queue,
            Self::Value { .. } => Kind::Value,
            Self::Array { .. } => Kind::Array,
            Self::Topic { .. } => Kind::Topic,
        }
    }

    /// Number of elements of a value (1) or an array; `None` for other kinds.
    pub fn table_len(&self) -> Option<u64> {
        match *self {
            Self::Value { .. } => Some(1),
            Self::Array { len, .. } => Some(len),
            _ => None,
        }
    }

    /// The parameter words (see the module docs).
    pub fn words(&self) -> [u64; 3] {
        match *self {
            Self::Pipe { capacity } => [capacity, 0, 0],
            Self::Queue { slots, slot_size } => [slots, slot_size, 0],
            Self::Value { elem } => [u64::from(elem.code()), 1, 0],
            Self::Array { elem, len } => [u64::from(elem.code()), len, 0],
            Self::Topic {
                slots,
                slot_size,
                mode,
            } => [slots, slot_size, mode],
        }
    }

    /// Decodes and checks the parameter words of a channel of `kind`, as a
    /// `CHANNEL` answer or a directory entry gives them.
    ///
    /// # Errors
    /// A message naming the first word that is out of range or not 0 where
    /// the kind takes no parameter.
    pub fn from_words(kind: Kind, words: [u64; 3]) -> Result<Self, String> {
        OpenParams::from_words(kind, words.map(Some))?.resolve()
    }

    /// Checks the ranges of every parameter (what [`from_words`](Self::from_words)
    /// checks, for parameters built in code).
    ///
    /// # Errors
    /// A message saying what is out of range.
    pub fn check(&self) -> Result<(), String> {
        match *self {
            Self::Pipe { capacity } => pipe::check_capacity(capacity),
            Self::Queue { slots, slot_size } => queue::check_params(slots, slot_size),
            Self::Value { elem } => seqlock::check_params(u64::from(elem.code()), 1).map(drop),
            Self::Array { elem, len } => {
                seqlock::check_params(u64::from(elem.code()), len).map(drop)
            }
            Self::Topic {
                slots,
                slot_size,
                mode,
            } => topic::check_params(slots, slot_size, mode),
        }
    }

    /// Bytes the channel's body takes in the arena (before alignment).
    pub fn body_len(&self) -> u64 {
        match *self {
            Self::Pipe { capacity } => pipe::body_len(capacity),
            Self::Queue { slots, slot_size } => queue::body_len(slots, slot_size),
            Self::Value { elem } => seqlock::body_len(elem, 1),
            Self::Array { elem, len } => seqlock::body_len(elem, len),
            Self::Topic {
                slots,
                slot_size,
                mode,
            } => topic::body_len(slots, slot_size, mode),
        }
    }

    /// Compares these parameters with the words an `OPEN` of the existing
    /// channel asked for (`None` = any): `None` if every given word matches,
    /// else what differs first, as "capacity 4096, not 8192".
    ///
    /// # Examples
    /// ```
    /// use shmbus::params::ChannelParams;
    /// let p = ChannelParams::Pipe { capacity: 4096 };
    /// assert_eq!(p.mismatch([None, None, Some(0)]), None);
    /// assert_eq!(p.mismatch([Some(8192), None, None]).unwrap(), "capacity 4096, not 8192");
    /// ```
    pub fn mismatch(&self, want: [Option<u64>; 3]) -> Option<String> {
        let names = word_names(self.kind());
        let have = self.words();
        (0..3).find_map(|i| match want[i] {
            Some(w) if w != have[i] => Some(match names[i] {
                Some(n) => format!("{n} {}, not {w}", have[i]),
                None => format!("parameter p{i} {}, not {w}", have[i]),
            }),
            _ => None,
        })
    }
}

/// What each parameter word of `kind` is, for messages; `None` for a word the
/// kind does not use.
fn word_names(kind: Kind) -> [Option<&'static str>; 3] {
    match kind {
        Kind::Pipe => [Some("capacity"), None, None],
        Kind::Queue => [Some("slots"), Some("slot size"), None],
        Kind::Value | Kind::Array => [Some("element type code"), Some("length"), None],
        Kind::Topic => [Some("slots"), Some("slot size"), Some("mode word")],
    }
}

/// "capacity 65536", "1024 slots of 256 bytes", "f64 x 1": for logs.
impl fmt::Display for ChannelParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Pipe { capacity } => write!(f, "capacity {capacity}"),
            Self::Queue { slots, slot_size } => write!(f, "{slots} slots of {slot_size} bytes"),
            Self::Value { elem } => write!(f, "{elem} x 1"),
            Self::Array { elem, len } => write!(f, "{elem} x {len}"),
            Self::Topic {
                slots,
                slot_size,
                mode,
            } => {
                let (lossy, subs) = topic::split_mode(mode);
                let how = if lossy { "lossy" } else { "lossless" };
                write!(
                    f,
                    "{slots} slots of {slot_size} bytes, {how}, up to {subs} subscribers"
                )
            }
        }
    }
}

/// What an `OPEN` asks for: per kind, each parameter given or left out
/// (`None`: the default if the channel is created, any value if it exists).
///
/// # Examples
/// ```
/// use shmbus::layout::Kind;
/// use shmbus::params::{ChannelParams, OpenParams};
///
/// let want = OpenParams::Pipe { capacity: None };
/// assert_eq!(want.words(), [None, None, None]);
/// assert_eq!(OpenParams::from_words(Kind::Pipe, want.words()), Ok(want));
/// assert_eq!(
///     want.resolve(),
///     Ok(ChannelParams::Pipe { capacity: shmbus::pipe::DEFAULT_CAPACITY })
/// );
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenParams {
    /// A pipe.
    Pipe {
        /// Ring capacity in bytes [default: [`pipe::DEFAULT_CAPACITY`]].
        capacity: Option<u64>,
    },
    /// A queue.
    Queue {
        /// Number of slots [default: [`queue::DEFAULT_SLOTS`]].
        slots: Option<u64>,
        /// Largest message in bytes [default: [`queue::DEFAULT_SLOT_SIZE`]].
        slot_size: Option<u64>,
    },
    /// A value (required to create one: its element type).
    Value {
        /// Element type.
        elem: Option<ElemType>,
    },
    /// An array (required to create one: its element type and length).
    Array {
        /// Element type.
        elem: Option<ElemType>,
        /// Number of elements.
        len: Option<u64>,
    },
    /// A topic.
    Topic {
        /// Number of slots [default: [`topic::DEFAULT_SLOTS`]].
        slots: Option<u64>,
        /// Largest message in bytes [default: [`topic::DEFAULT_SLOT_SIZE`]].
        slot_size: Option<u64>,
        /// Mode word [default: lossless, [`topic::DEFAULT_MAX_SUBSCRIBERS`]].
        mode: Option<u64>,
    },
}

impl OpenParams {
    /// Every parameter left out: opens an existing channel of `kind`
    /// whatever its parameters, or creates a pipe or queue with the defaults.
    pub fn any(kind: Kind) -> Self {
        match kind {
            Kind::Pipe => Self::Pipe { capacity: None },
            Kind::Queue => Self::Queue {
                slots: None,
                slot_size: None,
            },
            Kind::Value => Self::Value { elem: None },
            Kind::Array => Self::Array {
                elem: None,
                len: None,
            },
            Kind::Topic => Self::Topic {
                slots: None,
                slot_size: None,
                mode: None,
            },
        }
    }

    /// The kind of channel asked for.
    pub fn kind(&self) -> Kind {
        match self {
            Self::Pipe { .. } => Kind::Pipe,
            Self::Queue { .. } => Kind::Queue,
            Self::Value { .. } => Kind::Value,
            Self::Array { .. } => Kind::Array,
            Self::Topic { .. } => Kind::Topic,
        }
    }

    /// The parameter words of an `OPEN` (see the module docs; `None` is `-`).
    pub fn words(&self) -> [Option<u64>; 3] {
        let code = |e: Option<ElemType>| e.map(|t| u64::from(t.code()));
        match *self {
            Self::Pipe { capacity } => [capacity, None, None],
            Self::Queue { slots, slot_size } => [slots, slot_size, None],
            Self::Value { elem } => [code(elem), None, None],
            Self::Array { elem, len } => [code(elem), len, None],
            Self::Topic {
                slots,
                slot_size,
                mode,
            } => [slots, slot_size, mode],
        }
    }

    /// Decodes the parameter words of an `OPEN` of a `kind`. Checks their
    /// shape (a word the kind does not use must be `-` or 0, a value's length
    /// `-` or 1, an element type code known), not their ranges: see
    /// [`resolve`](Self::resolve).
    ///
    /// # Errors
    /// A message naming the word that is wrong.
    pub fn from_words(kind: Kind, words: [Option<u64>; 3]) -> Result<Self, String> {
        let unused = |i: usize| words[i].is_none_or(|v| v == 0);
        let elem = || match words[0] {
            None => Ok(None),
            Some(c) => ElemType::from_code(c)
                .map(Some)
                .ok_or_else(|| format!("unknown element type code {c} (1 to 10)")),
        };
        Ok(match kind {
            Kind::Pipe => {
                if !(unused(1) && unused(2)) {
                    return Err(
                        "a pipe takes one parameter, its capacity: p1 and p2 must be - or 0"
                            .to_owned(),
                    );
                }
                Self::Pipe { capacity: words[0] }
            }
            Kind::Queue => {
                if !unused(2) {
                    return Err(
                        "a queue takes two parameters, slots and slot size: p2 must be - or 0"
                            .to_owned(),
                    );
                }
                Self::Queue {
                    slots: words[0],
                    slot_size: words[1],
                }
            }
            Kind::Topic => Self::Topic {
                slots: words[0],
                slot_size: words[1],
                mode: words[2],
            },
            Kind::Value | Kind::Array => {
                if !unused(2) {
                    return Err(format!(
                        "{} takes two parameters: p2 must be - or 0",
                        kind.with_article()
                    ));
                }
                if kind == Kind::Value {
                    if let Some(n) = words[1].filter(|&n| n != 1) {
                        return Err(format!("a value has one element, not {n}"));
                    }
                    Self::Value { elem: elem()? }
                } else {
                    Self::Array {
                        elem: elem()?,
                        len: words[1],
                    }
                }
            }
        })
    }

    /// The parameters of the channel to create: the defaults for what is left
    /// out, every range checked.
    ///
    /// # Errors
    /// A message saying what is missing (a value's or array's element type,
    /// an array's length) or out of range.
    pub fn resolve(&self) -> Result<ChannelParams, String> {
        let p = match *self {
            Self::Pipe { capacity } => ChannelParams::Pipe {
                capacity: capacity.unwrap_or(pipe::DEFAULT_CAPACITY),
            },
            Self::Queue { slots, slot_size } => ChannelParams::Queue {
                slots: slots.unwrap_or(queue::DEFAULT_SLOTS),
                slot_size: slot_size.unwrap_or(queue::DEFAULT_SLOT_SIZE),
            },
            Self::Value { elem } => ChannelParams::Value {
                elem: elem.ok_or("a value needs an element type (p0)")?,
            },
            Self::Array { elem, len } => ChannelParams::Array {
                elem: elem.ok_or("an array needs an element type (p0)")?,
                len: len.ok_or("an array needs a length (p1)")?,
            },
            Self::Topic {
                slots,
                slot_size,
                mode,
            } => ChannelParams::Topic {
                slots: slots.unwrap_or(topic::DEFAULT_SLOTS),
                slot_size: slot_size.unwrap_or(topic::DEFAULT_SLOT_SIZE),
                mode: mode.unwrap_or(topic::mode_word(false, topic::DEFAULT_MAX_SUBSCRIBERS)),
            },
        };
        p.check()?;
        Ok(p)
    }

    /// Takes each parameter that `over` gives, keeping this one's where
    /// `over` leaves it out; `None` if `over` is another kind.
    ///
    /// # Examples
    /// ```
    /// use shmbus::params::OpenParams;
    /// let file = OpenParams::Queue { slots: Some(8), slot_size: Some(64) };
    /// let flag = OpenParams::Queue { slots: None, slot_size: Some(128) };
    /// assert_eq!(
    ///     file.overridden_by(&flag),
    ///     Some(OpenParams::Queue { slots: Some(8), slot_size: Some(128) })
    /// );
    /// assert_eq!(file.overridden_by(&OpenParams::Pipe { capacity: None }), None);
    /// ```
    pub fn overridden_by(&self, over: &Self) -> Option<Self> {
        Some(match (*self, *over) {
            (Self::Pipe { capacity: a }, Self::Pipe { capacity: b }) => {
                Self::Pipe { capacity: b.or(a) }
            }
            (
                Self::Queue {
                    slots: a,
                    slot_size: x,
                },
                Self::Queue {
                    slots: b,
                    slot_size: y,
                },
            ) => Self::Queue {
                slots: b.or(a),
                slot_size: y.or(x),
            },
            (Self::Value { elem: a }, Self::Value { elem: b }) => Self::Value { elem: b.or(a) },
            (Self::Array { elem: a, len: x }, Self::Array { elem: b, len: y }) => Self::Array {
                elem: b.or(a),
                len: y.or(x),
            },
            (
                Self::Topic {
                    slots: a,
                    slot_size: x,
                    mode: m,
                },
                Self::Topic {
                    slots: b,
                    slot_size: y,
                    mode: n,
                },
            ) => Self::Topic {
                slots: b.or(a),
                slot_size: y.or(x),
                mode: n.or(m),
            },
            _ => return None,
        })
    }
}

impl From<ChannelParams> for OpenParams {
    /// Every parameter given.
    fn from(p: ChannelParams) -> Self {
        match p {
            ChannelParams::Pipe { capacity } => Self::Pipe {
                capacity: Some(capacity),
            },
            ChannelParams::Queue { slots, slot_size } => Self::Queue {
                slots: Some(slots),
                slot_size: Some(slot_size),
            },
            ChannelParams::Value { elem } => Self::Value { elem: Some(elem) },
            ChannelParams::Array { elem, len } => Self::Array {
                elem: Some(elem),
                len: Some(len),
            },
            ChannelParams::Topic {
                slots,
                slot_size,
                mode,
            } => Self::Topic {
                slots: Some(slots),
                slot_size: Some(slot_size),
                mode: Some(mode),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KINDS: [Kind; 5] = [
        Kind::Pipe,
        Kind::Queue,
        Kind::Value,
        Kind::Array,
        Kind::Topic,
    ];

    fn samples() -> Vec<ChannelParams> {
        vec![
            ChannelParams::Pipe {
                capacity: pipe::MIN_CAPACITY,
            },
            ChannelParams::Pipe {
                capacity: pipe::MAX_CAPACITY,
            },
            ChannelParams::Queue {
                slots: queue::DEFAULT_SLOTS,
                slot_size: queue::MAX_SLOT_SIZE,
            },
            ChannelParams::Value {
                elem: ElemType::F64,
            },
            ChannelParams::Value { elem: ElemType::I8 },
            ChannelParams::Array {
                elem: ElemType::U16,
                len: seqlock::MAX_LEN,
            },
            ChannelParams::Array {
                elem: ElemType::F32,
                len: 1,
            },
        ]
    }

    #[test]
    fn words_layout() {
        assert_eq!(ChannelParams::Pipe { capacity: 4096 }.words(), [4096, 0, 0]);
        assert_eq!(
            ChannelParams::Queue {
                slots: 8,
                slot_size: 64
            }
            .words(),
            [8, 64, 0]
        );
        let d = u64::from(ElemType::F64.code());
        assert_eq!(
            ChannelParams::Value {
                elem: ElemType::F64
            }
            .words(),
            [d, 1, 0]
        );
        assert_eq!(
            ChannelParams::Array {
                elem: ElemType::F64,
                len: 16
            }
            .words(),
            [d, 16, 0]
        );
        let want = OpenParams::Array {
            elem: Some(ElemType::F64),
            len: None,
        };
        assert_eq!(want.words(), [Some(d), None, None]);
        assert_eq!(
            OpenParams::Queue {
                slots: None,
                slot_size: Some(9)
            }
            .words(),
            [None, Some(9), None]
        );
    }

    #[test]
    fn round_trips() {
        for p in samples() {
            assert_eq!(p.check(), Ok(()), "{p:?}");
            assert_eq!(
                ChannelParams::from_words(p.kind(), p.words()),
                Ok(p),
                "{p:?}"
            );
            let want = OpenParams::from(p);
            assert_eq!(want.kind(), p.kind());
            assert_eq!(OpenParams::from_words(p.kind(), want.words()), Ok(want));
            assert_eq!(want.resolve(), Ok(p));
            assert_eq!(p.mismatch(want.words()), None);
            assert_eq!(p.mismatch([None; 3]), None);
            assert!(p.body_len() > 0);
            assert!(!p.to_string().is_empty());
        }
        for k in KINDS {
            let any = OpenParams::any(k);
            assert_eq!(any.kind(), k);
            assert_eq!(any.words(), [None; 3]);
            assert_eq!(OpenParams::from_words(k, [None; 3]), Ok(any));
        }
    }

    #[test]
    fn defaults_and_required() {
        assert_eq!(
            OpenParams::any(Kind::Pipe).resolve(),
            Ok(ChannelParams::Pipe {
                capacity: pipe::DEFAULT_CAPACITY
            })
        );
        assert_eq!(
            OpenParams::any(Kind::Queue).resolve(),
            Ok(ChannelParams::Queue {
                slots: queue::DEFAULT_SLOTS,
                slot_size: queue::DEFAULT_SLOT_SIZE
            })
        );
        let e = OpenParams::any(Kind::Value).resolve().unwrap_err();
        assert!(e.contains("element type"), "{e}");
        let e = OpenParams::Array {
            elem: Some(ElemType::I32),
            len: None,
        }
        .resolve()
        .unwrap_err();
        assert!(e.contains("length"), "{e}");
    }

    #[test]
    fn rejects_bad_words() {
        let d = u64::from(ElemType::F64.code());
        for (kind, words, needle) in [
            (Kind::Pipe, [100, 0, 0], "power of two"),
            (Kind::Pipe, [0, 0, 0], "power of two"),
            (Kind::Pipe, [4096, 5, 0], "p1 and p2"),
            (Kind::Pipe, [4096, 0, 1], "p1 and p2"),
            (Kind::Queue, [3, 64, 0], "power of two"),
            (Kind::Queue, [8, 0, 0], "slot size"),
            (Kind::Queue, [8, queue::MAX_SLOT_SIZE + 1, 0], "slot size"),
            (Kind::Queue, [8, 64, 7], "p2"),
            (Kind::Value, [d, 2, 0], "one element"),
            (Kind::Value, [d, 0, 0], "one element"),
            (Kind::Value, [99, 1, 0], "unknown element type"),
            (Kind::Value, [d, 1, 3], "p2"),
            (Kind::Array, [0, 4, 0], "unknown element type"),
            (Kind::Array, [d, 0, 0], "from 1"),
            (Kind::Array, [d, seqlock::MAX_LEN + 1, 0], "from 1"),
            (Kind::Array, [d, 4, u64::MAX], "p2"),
        ] {
            let e = ChannelParams::from_words(kind, words).unwrap_err();
            assert!(e.contains(needle), "{kind} {words:?}: {e}");
        }
        // The shape is checked when decoding an OPEN, the ranges only when
        // creating.
        let want = OpenParams::from_words(Kind::Pipe, [Some(100), None, Some(0)]).unwrap();
        assert!(want.resolve().is_err());
        assert!(OpenParams::from_words(Kind::Pipe, [None, Some(1), None]).is_err());
        assert!(OpenParams::from_words(Kind::Value, [None, Some(1), None]).is_ok());
    }

    #[test]
    fn mismatches_name_the_parameter() {
        let q = ChannelParams::Queue {
            slots: 8,
            slot_size: 64,
        };
        assert_eq!(q.mismatch([Some(8), Some(64), Some(0)]), None);
        assert_eq!(
            q.mismatch([None, Some(32), None]).unwrap(),
            "slot size 64, not 32"
        );
        assert_eq!(
            q.mismatch([None, None, Some(1)]).unwrap(),
            "parameter p2 0, not 1"
        );
        let a = ChannelParams::Array {
            elem: ElemType::I32,
            len: 10,
        };
        assert_eq!(
            a.mismatch([None, Some(9), None]).unwrap(),
            "length 10, not 9"
        );
        assert!(a
            .mismatch([Some(u64::from(ElemType::F64.code())), None, None])
            .unwrap()
            .starts_with("element type code"));
    }

    #[test]
    fn overrides_keep_what_the_flag_leaves_out() {
        let file = OpenParams::Pipe {
            capacity: Some(4096),
        };
        assert_eq!(
            file.overridden_by(&OpenParams::Pipe { capacity: None }),
            Some(file)
        );
        assert_eq!(
            file.overridden_by(&OpenParams::Pipe {
                capacity: Some(8192)
            }),
            Some(OpenParams::Pipe {
                capacity: Some(8192)
            })
        );
        let arr = OpenParams::Array {
            elem: Some(ElemType::I32),
            len: Some(4),
        };
        let over = OpenParams::Array {
            elem: Some(ElemType::F64),
            len: Some(8),
        };
        assert_eq!(arr.overridden_by(&over), Some(over));
        for k in KINDS {
            for j in KINDS {
                let r = OpenParams::any(k).overridden_by(&OpenParams::any(j));
                assert_eq!(r.is_some(), k == j, "{k} by {j}");
            }
        }
    }
}
