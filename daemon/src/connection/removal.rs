//! `REMOVE` and `CLOSE`: channels that can be removed, as files are unlinked.
//!
//! - `REMOVE <name>` takes the name away at once: `OPEN` no longer finds it
//!   and may create a new channel of that name (of any kind). Connections
//!   that have the channel open keep using it, untouched; its directory entry
//!   shows `REMOVED` (listings mark it pending removal) until the last of
//!   them is gone, and then its body is zeroed and its arena space reused.
//! - `CLOSE <index> <generation>` gives back one `OPEN`: the client sends it
//!   once it dropped every handle made from that grant. No answer.
//! - A connection's remaining opens are given back when its peer slot is
//!   recovered (after `BYE`, or once its process has exited: see
//!   [`crate::supervisor`]), after the recovery repaired what it held.
//!
//! Sleepers are not woken by a removal: with `unlink` semantics nothing
//! changes for the holders, so a receiver blocked on a removed pipe keeps
//! waiting for its sender, and sees end of file once the sender is gone and
//! the pipe is drained, exactly as before.

use shmbus::protocol::{ErrorCode, Response};

use super::Conn;
use crate::arena::align_line;
use crate::server::error;

impl Conn<'_> {
    /// `REMOVE <cname>` from the client in `slot`.
    pub(super) fn remove(&self, slot: u16, cname: &str) -> Response {
        let bus = self.bus;
        let mut st = match self.state_for(cname) {
            Ok(st) => st,
            Err(r) => return r,
        };
        let Some(r) = st.channels.remove(&bus.seg, cname) else {
            return error(
                ErrorCode::NotFound,
                format!("no channel named {cname} on bus {}", bus.name),
            );
        };
        let c = &r.channel;
        let what = if r.holders == 0 {
            format!(
                "freed its {} arena bytes ({} free now, in {} blocks)",
                align_line(c.length),
                st.channels.arena_free(),
                st.channels.arena_blocks()
            )
        } else {
            format!(
                "pending removal until its {} holders close it ({} such channels)",
                r.holders,
                st.channels.pending_removal()
            )
        };
        drop(st);
        bus.log.info(format_args!(
            "client pid {} slot {slot} removed {} {} ({}) at offset {}: {what}",
            self.pid,
            c.kind(),
            c.name,
            c.params,
            c.offset
        ));
        Response::Removed {
            index: r.index,
            generation: c.generation,
            holders: r.holders,
        }
    }

    /// `CLOSE <index> <generation>` from the client in `slot`. A `CLOSE`
    /// that matches no open of this client changes nothing and is logged.
    pub(super) fn close(&self, slot: u16, index: u32, generation: u32) {
        let bus = self.bus;
        let r = bus
            .state()
            .channels
            .close(&bus.seg, index, generation, slot);
        match r {
            Ok(None) => {}
            Ok(Some(c)) => bus.log_freed(&[c], self.pid, slot),
            Err(_) => bus.log.warn(format_args!(
                "client pid {} slot {slot} closed directory entry {index} generation \
                 {generation}, which it does not hold; ignored",
                self.pid
            )),
        }
    }
}
