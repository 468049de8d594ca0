//! One connection per bus per process, shared by every handle on that bus.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use pyo3::prelude::*;
use shmbus_client::Bus;

use crate::errors::to_py;
use crate::fork::Owned;

/// This process's connections, by bus name (with the fork generation that
/// made the map: a child leaks its parent's, see the crate docs).
static BUSES: Mutex<Option<Owned<HashMap<String, Bus>>>> = Mutex::new(None);

/// The bus `name`, else `$SHMBUS_BUS`, else `shmbus`.
pub(crate) fn resolve(name: Option<&str>) -> String {
    name.map_or_else(shmbus_client::default_bus_name, str::to_owned)
}

/// This process's connection to bus `name`, made if needed. Call without the
/// GIL held only if the caller holds no Python object that the connect needs
/// (it needs none).
pub(crate) fn bus(name: &str) -> shmbus_client::Result<Bus> {
    let mut g = BUSES.lock().unwrap_or_else(PoisonError::into_inner);
    if !g.as_ref().is_some_and(Owned::current) {
        // The old map (a parent's) is leaked by `Owned`'s drop.
        *g = Some(Owned::new(HashMap::new()));
    }
    let map = g.as_mut().expect("set above").get_mut();
    if let Some(b) = map.get(name) {
        return Ok(b.clone());
    }
    let b = Bus::connect_to(name)?;
    map.insert(name.to_owned(), b.clone());
    Ok(b)
}

/// Connects to bus `name` (`$SHMBUS_BUS`, else `shmbus`, when `None`) and
/// returns its name. Raises `shmbus.DaemonNotRunning` when no daemon serves it.
#[pyfunction]
#[pyo3(signature = (name=None))]
pub(crate) fn connect(py: Python<'_>, name: Option<&str>) -> PyResult<String> {
    let name = resolve(name);
    py.allow_threads(|| bus(&name)).map_err(to_py)?;
    Ok(name)
}

/// The bus used when none is named: `$SHMBUS_BUS`, else `shmbus`.
#[pyfunction]
pub(crate) fn default_bus_name() -> String {
    shmbus_client::default_bus_name()
}
