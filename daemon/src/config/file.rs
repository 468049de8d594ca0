//! The config file as written ([`FileConfig`]), and its values that may be
//! strings or integers (sizes, modes). The format is described in the
//! module docs of [`crate::config`].

use std::path::Path;

use serde::Deserialize;
use shmbus::size::parse_size;

use super::access::{check_mode, parse_mode};
use crate::error::Error;

/// The config file as written; every field optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileConfig {
    pub(super) name: Option<String>,
    pub(super) size: Option<toml::Value>,
    pub(super) max_peers: Option<u32>,
    pub(super) max_channels: Option<u32>,
    pub(super) mode: Option<toml::Value>,
    pub(super) allow_uids: Option<Vec<u32>>,
    pub(super) allow_groups: Option<Vec<u32>>,
    pub(super) quiet: Option<bool>,
    #[serde(default)]
    pub(super) pipe: Vec<PipeDecl>,
    #[serde(default)]
    pub(super) queue: Vec<QueueDecl>,
    #[serde(default)]
    pub(super) value: Vec<ValueDecl>,
    #[serde(default)]
    pub(super) array: Vec<ArrayDecl>,
    #[serde(default)]
    pub(super) topic: Vec<TopicDecl>,
}

/// One `[[topic]]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TopicDecl {
    pub(super) name: String,
    pub(super) slots: Option<u64>,
    pub(super) slot_size: Option<toml::Value>,
    pub(super) lossy: Option<bool>,
    pub(super) max_subscribers: Option<u64>,
}

/// One `[[queue]]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct QueueDecl {
    pub(super) name: String,
    pub(super) slots: Option<u64>,
    pub(super) slot_size: Option<toml::Value>,
}

/// One `[[value]]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ValueDecl {
    pub(super) name: String,
    #[serde(rename = "type")]
    pub(super) ty: String,
}

/// One `[[array]]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ArrayDecl {
    pub(super) name: String,
    #[serde(rename = "type")]
    pub(super) ty: String,
    pub(super) len: u64,
}

/// One `[[pipe]]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PipeDecl {
    pub(super) name: String,
    pub(super) capacity: Option<toml::Value>,
}

pub(super) fn load_file(path: &Path) -> Result<FileConfig, Error> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Config(format!("cannot read config file {}: {e}", path.display())))?;
    parse_file(&text).map_err(|e| Error::Config(format!("config file {}: {e}", path.display())))
}

pub(super) fn parse_file(text: &str) -> Result<FileConfig, String> {
    toml::from_str(text).map_err(|e| e.to_string().trim_end().replace('\n', " | "))
}

pub(super) fn value_size(v: &toml::Value) -> Result<u64, String> {
    match v {
        toml::Value::Integer(i) => {
            u64::try_from(*i).map_err(|_| format!("{i} is negative: sizes are byte counts"))
        }
        toml::Value::String(s) => parse_size(s),
        other => Err(format!(
            "expected an integer or a string like \"64M\", found {}",
            other.type_str()
        )),
    }
}

pub(super) fn value_mode(v: &toml::Value) -> Result<u32, String> {
    match v {
        toml::Value::Integer(i) => {
            let m = u32::try_from(*i).map_err(|_| format!("{i} is not a permission mode"))?;
            check_mode(m).map_err(|e| {
                format!(
                    "{e}; note that a TOML integer like 640 is decimal: \
                     write 0o640 or the string \"0640\""
                )
            })
        }
        toml::Value::String(s) => parse_mode(s),
        other => Err(format!(
            "expected a string like \"0640\" or an octal integer like 0o640, found {}",
            other.type_str()
        )),
    }
}
