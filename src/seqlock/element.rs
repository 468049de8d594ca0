//! Element types of values and arrays, and how they pack into 64-bit words.

use core::fmt;

use crate::sync::{AtomicU64, Ordering};

/// The element type of a value or array, as stored in the segment.
///
/// | code | type | Python typecodes |
/// |---|---|---|
/// | 1 | `i8` | `b` |
/// | 2 | `u8` | `B` |
/// | 3 | `i16` | `h` |
/// | 4 | `u16` | `H` |
/// | 5 | `i32` | `i` |
/// | 6 | `u32` | `I` |
/// | 7 | `i64` | `l`, `q` (a C `long` is 64 bits on 64-bit Linux) |
/// | 8 | `u64` | `L`, `Q` |
/// | 9 | `f32` | `f` |
/// | 10 | `f64` | `d` |
///
/// # Examples
/// ```
/// use shmbus::seqlock::ElemType;
/// assert_eq!(ElemType::parse("d"), Some(ElemType::F64));
/// assert_eq!(ElemType::parse("i32"), Some(ElemType::I32));
/// assert_eq!(ElemType::I16.size(), 2);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum ElemType {
    /// `i8`
    I8 = 1,
    /// `u8`
    U8 = 2,
    /// `i16`
    I16 = 3,
    /// `u16`
    U16 = 4,
    /// `i32`
    I32 = 5,
    /// `u32`
    U32 = 6,
    /// `i64`
    I64 = 7,
    /// `u64`
    U64 = 8,
    /// `f32`
    F32 = 9,
    /// `f64`
    F64 = 10,
}

/// Every element type, in code order.
pub const ALL_TYPES: [ElemType; 10] = [
    ElemType::I8,
    ElemType::U8,
    ElemType::I16,
    ElemType::U16,
    ElemType::I32,
    ElemType::U32,
    ElemType::I64,
    ElemType::U64,
    ElemType::F32,
    ElemType::F64,
];

impl ElemType {
    /// The type stored as `code`, if any.
    pub fn from_code(code: u64) -> Option<Self> {
        ALL_TYPES.into_iter().find(|t| *t as u64 == code)
    }

    /// The code stored in the segment.
    pub fn code(self) -> u32 {
        self as u32
    }

    /// Rust name: `i8` … `f64`.
    pub fn name(self) -> &'static str {
        match self {
            Self::I8 => "i8",
            Self::U8 => "u8",
            Self::I16 => "i16",
            Self::U16 => "u16",
            Self::I32 => "i32",
            Self::U32 => "u32",
            Self::I64 => "i64",
            Self::U64 => "u64",
            Self::F32 => "f32",
            Self::F64 => "f64",
        }
    }

    /// Parses a Rust name (`f64`) or a Python `array`/`multiprocessing`
    /// typecode (`d`).
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "i8" | "b" => Self::I8,
            "u8" | "B" => Self::U8,
            "i16" | "h" => Self::I16,
            "u16" | "H" => Self::U16,
            "i32" | "i" => Self::I32,
            "u32" | "I" => Self::U32,
            "i64" | "l" | "q" => Self::I64,
            "u64" | "L" | "Q" => Self::U64,
            "f32" | "f" => Self::F32,
            "f64" | "d" => Self::F64,
            _ => return None,
        })
    }

    /// Size of one element in bytes (1, 2, 4 or 8).
    pub const fn size(self) -> u64 {
        match self {
            Self::I8 | Self::U8 => 1,
            Self::I16 | Self::U16 => 2,
            Self::I32 | Self::U32 | Self::F32 => 4,
            Self::I64 | Self::U64 | Self::F64 => 8,
        }
    }

    /// Elements per 64-bit word.
    pub const fn per_word(self) -> u64 {
        8 / self.size()
    }

    /// Words needed for `len` elements.
    pub const fn words(self, len: u64) -> u64 {
        len.div_ceil(self.per_word())
    }

    /// True for the integer types (which have `fetch_add`).
    pub fn is_integer(self) -> bool {
        !matches!(self, Self::F32 | Self::F64)
    }

    /// Parses one element written in decimal (floats also as `inf`, `nan`,
    /// `1e-3`), returning its bits (zero-extended).
    ///
    /// # Errors
    /// A message naming the text and the type.
    pub fn parse_value(self, s: &str) -> Result<u64, String> {
        fn p<T: core::str::FromStr>(s: &str) -> Option<T> {
            s.trim().parse().ok()
        }
        let bits = match self {
            Self::I8 => p::<i8>(s).map(Element::to_bits),
            Self::U8 => p::<u8>(s).map(Element::to_bits),
            Self::I16 => p::<i16>(s).map(Element::to_bits),
            Self::U16 => p::<u16>(s).map(Element::to_bits),
            Self::I32 => p::<i32>(s).map(Element::to_bits),
            Self::U32 => p::<u32>(s).map(Element::to_bits),
            Self::I64 => p::<i64>(s).map(Element::to_bits),
            Self::U64 => p::<u64>(s).map(Element::to_bits),
            Self::F32 => p::<f32>(s).map(Element::to_bits),
            Self::F64 => p::<f64>(s).map(Element::to_bits),
        };
        bits.ok_or_else(|| {
            let range = match self {
                Self::F32 | Self::F64 => String::from("a number like 1.5, -2e-3, inf or nan"),
                _ => format!("an integer from {} to {}", self.min_str(), self.max_str()),
            };
            format!("{s:?} is not a valid {self}: expected {range}")
        })
    }

    fn min_str(self) -> String {
        match self {
            Self::I8 => i8::MIN.to_string(),
            Self::I16 => i16::MIN.to_string(),
            Self::I32 => i32::MIN.to_string(),
            Self::I64 => i64::MIN.to_string(),
            _ => "0".into(),
        }
    }

    fn max_str(self) -> String {
        match self {
            Self::I8 => i8::MAX.to_string(),
            Self::U8 => u8::MAX.to_string(),
            Self::I16 => i16::MAX.to_string(),
            Self::U16 => u16::MAX.to_string(),
            Self::I32 => i32::MAX.to_string(),
            Self::U32 => u32::MAX.to_string(),
            Self::I64 => i64::MAX.to_string(),
            _ => u64::MAX.to_string(),
        }
    }

    /// Formats an element from its bits (as [`ElemType::parse_value`] reads it).
    pub fn format_bits(self, bits: u64) -> String {
        match self {
            Self::I8 => i8::from_bits(bits).to_string(),
            Self::U8 => u8::from_bits(bits).to_string(),
            Self::I16 => i16::from_bits(bits).to_string(),
            Self::U16 => u16::from_bits(bits).to_string(),
            Self::I32 => i32::from_bits(bits).to_string(),
            Self::U32 => u32::from_bits(bits).to_string(),
            Self::I64 => i64::from_bits(bits).to_string(),
            Self::U64 => u64::from_bits(bits).to_string(),
            Self::F32 => <f32 as Element>::from_bits(bits).to_string(),
            Self::F64 => <f64 as Element>::from_bits(bits).to_string(),
        }
    }

    /// Adds two elements given as bits (wrapping for integers, IEEE for
    /// floats), returning the bits of the sum.
    pub fn add_bits(self, a: u64, b: u64) -> u64 {
        match self {
            Self::I8 => i8::from_bits(a).wrapping_add(i8::from_bits(b)).to_bits(),
            Self::U8 => u8::from_bits(a).wrapping_add(u8::from_bits(b)).to_bits(),
            Self::I16 => i16::from_bits(a).wrapping_add(i16::from_bits(b)).to_bits(),
            Self::U16 => u16::from_bits(a).wrapping_add(u16::from_bits(b)).to_bits(),
            Self::I32 => i32::from_bits(a).wrapping_add(i32::from_bits(b)).to_bits(),
            Self::U32 => u32::from_bits(a).wrapping_add(u32::from_bits(b)).to_bits(),
            Self::I64 => i64::from_bits(a).wrapping_add(i64::from_bits(b)).to_bits(),
            Self::U64 => u64::from_bits(a).wrapping_add(u64::from_bits(b)).to_bits(),
            Self::F32 => {
                Element::to_bits(<f32 as Element>::from_bits(a) + <f32 as Element>::from_bits(b))
            }
            Self::F64 => {
                Element::to_bits(<f64 as Element>::from_bits(a) + <f64 as Element>::from_bits(b))
            }
        }
    }
}

impl fmt::Display for ElemType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

mod sealed {
    pub trait Sealed {}
}

/// A type that can be an element of a value or array: the ten fixed-width
/// numbers of [`ElemType`]. Sealed: every bit pattern of its size is a valid
/// value and it packs into the low bits of a 64-bit word, which is what lets a
/// reader load words another process may be writing.
pub trait Element:
    Copy + Default + PartialEq + fmt::Debug + fmt::Display + Send + Sync + 'static + sealed::Sealed
{
    /// Its [`ElemType`].
    const TYPE: ElemType;
    /// The element's bits, zero-extended to 64.
    fn to_bits(self) -> u64;
    /// The element from the low bits of `bits` (higher bits ignored).
    fn from_bits(bits: u64) -> Self;
}

/// The integer [`Element`]s, which have `fetch_add`.
pub trait Integer: Element {
    /// Wrapping addition, as `fetch_add` on an atomic integer does.
    fn wrapping_add(self, rhs: Self) -> Self;
}

macro_rules! int_element {
    ($t:ty, $u:ty, $code:ident) => {
        impl sealed::Sealed for $t {}
        impl Element for $t {
            const TYPE: ElemType = ElemType::$code;
            #[inline(always)]
            fn to_bits(self) -> u64 {
                u64::from(self as $u)
            }
            #[inline(always)]
            fn from_bits(bits: u64) -> Self {
                bits as $u as $t
            }
        }
        impl Integer for $t {
            #[inline(always)]
            fn wrapping_add(self, rhs: Self) -> Self {
                <$t>::wrapping_add(self, rhs)
            }
        }
    };
}

int_element!(i8, u8, I8);
int_element!(u8, u8, U8);
int_element!(i16, u16, I16);
int_element!(u16, u16, U16);
int_element!(i32, u32, I32);
int_element!(u32, u32, U32);
int_element!(i64, u64, I64);
int_element!(u64, u64, U64);

impl sealed::Sealed for f32 {}
impl Element for f32 {
    const TYPE: ElemType = ElemType::F32;
    #[inline(always)]
    fn to_bits(self) -> u64 {
        u64::from(f32::to_bits(self))
    }
    #[inline(always)]
    fn from_bits(bits: u64) -> Self {
        f32::from_bits(bits as u32)
    }
}

impl sealed::Sealed for f64 {}
impl Element for f64 {
    const TYPE: ElemType = ElemType::F64;
    #[inline(always)]
    fn to_bits(self) -> u64 {
        f64::to_bits(self)
    }
    #[inline(always)]
    fn from_bits(bits: u64) -> Self {
        f64::from_bits(bits)
    }
}

/// Packs `src` into 64-bit words, `T::TYPE.per_word()` elements per word,
/// element `i` at bit `(i % per_word) * 8 * size` of word `i / per_word`.
#[inline(always)]
pub(crate) fn pack_word<T: Element>(src: &[T], word: usize) -> u64 {
    let per = T::TYPE.per_word() as usize;
    let bits = 64 / per;
    let mut w = 0u64;
    for k in 0..per {
        if let Some(v) = src.get(word * per + k) {
            w |= v.to_bits() << (k * bits);
        }
    }
    w
}

/// Loads `words` and unpacks them into `dst` (`words.len()` is
/// `T::TYPE.words(dst.len())`), the inverse of [`pack_word`], with no index
/// checks in the loop. For 8-byte elements it is one load and
/// one store per element: 16-element `u64` array read 149 -> 80 instructions
/// (callgrind, `shmbus-bench`'s `icount` role), which also shortens the
/// window in which a writer makes a reader retry.
#[inline(always)]
pub(crate) fn unpack_into<T: Element>(words: &[AtomicU64], dst: &mut [T]) {
    let per = T::TYPE.per_word() as usize;
    if per == 1 {
        for (d, w) in dst.iter_mut().zip(words) {
            // Relaxed: the caller validates (seqlock generation check) or
            // holds the writer lock.
            *d = T::from_bits(w.load(Ordering::Relaxed));
        }
        return;
    }
    let bits = 64 / per;
    for (chunk, w) in dst.chunks_mut(per).zip(words) {
        // Relaxed: as above.
        let w = w.load(Ordering::Relaxed);
        for (k, d) in chunk.iter_mut().enumerate() {
            *d = T::from_bits(w >> (k * bits));
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn codes_names_and_typecodes() {
        for t in ALL_TYPES {
            assert_eq!(ElemType::from_code(u64::from(t.code())), Some(t));
            assert_eq!(ElemType::parse(t.name()), Some(t));
        }
        for (c, t) in [
            ("b", "i8"),
            ("B", "u8"),
            ("h", "i16"),
            ("H", "u16"),
            ("i", "i32"),
            ("I", "u32"),
            ("l", "i64"),
            ("L", "u64"),
            ("q", "i64"),
            ("Q", "u64"),
            ("f", "f32"),
            ("d", "f64"),
        ] {
            assert_eq!(ElemType::parse(c).unwrap().name(), t, "{c}");
        }
        assert_eq!(ElemType::from_code(0), None);
        assert_eq!(ElemType::from_code(11), None);
        assert_eq!(ElemType::parse("x"), None);
    }

    #[test]
    fn values_round_trip() {
        assert_eq!(ElemType::I8.parse_value("-128"), Ok(0x80));
        assert!(ElemType::I8.parse_value("128").is_err());
        assert!(ElemType::U16
            .parse_value("-1")
            .unwrap_err()
            .contains("0 to 65535"));
        assert_eq!(ElemType::I8.format_bits(0x80), "-128");
        let b = ElemType::F64.parse_value("2.5").unwrap();
        assert_eq!(ElemType::F64.format_bits(b), "2.5");
        assert!(ElemType::F64.parse_value("abc").is_err());
        assert_eq!(ElemType::U8.add_bits(255, 1), 0);
        assert_eq!(
            ElemType::I32.add_bits((-5i32).to_bits(), 3),
            (-2i32).to_bits()
        );
    }

    #[test]
    fn packing() {
        let src: [i16; 5] = [-1, 2, -3, 4, 5];
        let words: Vec<u64> = (0..2).map(|w| pack_word(&src, w)).collect();
        assert_eq!(words[1], 5, "unused lanes stay zero");
        let f = [1.5f64, -0.0];
        assert_eq!(pack_word(&f, 1), (-0.0f64).to_bits());
    }

    #[test]
    fn unpack_into_inverts_pack_word() {
        let src: [i16; 5] = [-1, 2, -3, 4, 5];
        let words: Vec<AtomicU64> = (0..2).map(|w| AtomicU64::new(pack_word(&src, w))).collect();
        let mut dst = [0i16; 5];
        unpack_into(&words, &mut dst);
        assert_eq!(dst, src);
        let src = [7u64, u64::MAX, 0, 1 << 63];
        let words: Vec<AtomicU64> = (0..4).map(|w| AtomicU64::new(pack_word(&src, w))).collect();
        let mut dst = [0u64; 4];
        unpack_into(&words, &mut dst);
        assert_eq!(dst, src);
    }
}
