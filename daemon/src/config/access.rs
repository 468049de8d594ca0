//! Who may use the bus: the permission mode of the segment and the socket,
//! the allowed uids and groups ([`Access`]), and the check that the mode lets
//! every allowed client in (see "Access" in the module docs of
//! [`crate::config`]).

/// Parses a permission mode in octal (`600`, `0640`, `0o660`).
///
/// # Errors
/// A message if it is not octal, has bits beyond `0o777`, or does not give the
/// owner read and write (the daemon's own clients need both).
///
/// # Examples
/// ```
/// use shmbus_daemon::config::parse_mode;
/// assert_eq!(parse_mode("0640"), Ok(0o640));
/// assert!(parse_mode("0400").is_err());
/// ```
pub fn parse_mode(s: &str) -> Result<u32, String> {
    let t = s.trim();
    let digits = t.strip_prefix("0o").unwrap_or(t);
    if digits.is_empty() || digits.len() > 4 || !digits.bytes().all(|b| (b'0'..=b'7').contains(&b))
    {
        return Err(format!(
            "{s:?} is not an octal permission mode like 0600 or 0660"
        ));
    }
    let m = u32::from_str_radix(digits, 8).map_err(|e| format!("{s:?}: {e}"))?;
    check_mode(m)
}

pub(super) fn check_mode(m: u32) -> Result<u32, String> {
    if m > 0o777 {
        return Err(format!(
            "{m:#o} has bits beyond 0777 (setuid, setgid and sticky make no sense here)"
        ));
    }
    if m & 0o600 != 0o600 {
        return Err(format!(
            "{m:04o} does not give the owner read and write permission"
        ));
    }
    Ok(m)
}

/// Checks that `mode` lets every allowed client open the segment and the
/// socket (see the module docs, "Access").
pub(super) fn check_access(
    mode: u32,
    uids: &[u32],
    groups: &[u32],
    daemon_uid: u32,
) -> Result<(), String> {
    if let Some(u) = uids.iter().find(|&&u| u != daemon_uid && u != 0) {
        if mode & 0o006 != 0o006 {
            return Err(format!(
                "--allow-uid {u} needs a mode that lets other users read and write the \
                 segment and the socket, e.g. --mode 0666 (the mode is {mode:04o})"
            ));
        }
    }
    if let Some(g) = groups.first() {
        if mode & 0o060 != 0o060 {
            return Err(format!(
                "--allow-group {g} needs a mode that lets the group read and write the \
                 segment and the socket, e.g. --mode 0660 (the mode is {mode:04o})"
            ));
        }
    }
    if let Some(g) = groups.get(1) {
        if mode & 0o006 != 0o006 {
            return Err(format!(
                "--allow-group {g}: the segment and the socket belong to one group (the \
                 first allowed, {}), so other allowed groups need the \"other\" read and \
                 write bits, e.g. --mode 0666 (the mode is {mode:04o})",
                groups[0]
            ));
        }
    }
    Ok(())
}

/// The uids and groups accepted besides the daemon's own uid and root.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Access {
    pub(super) uids: Vec<u32>,
    pub(super) groups: Vec<u32>,
}

impl Access {
    /// Whether a client of `uid` and primary group `gid` may use the bus,
    /// given the daemon's effective uid `daemon_uid`. `in_groups` is asked
    /// (only if needed) whether the client's supplementary groups meet the
    /// given list.
    pub(super) fn allows(
        &self,
        uid: u32,
        gid: u32,
        daemon_uid: u32,
        in_groups: impl FnOnce(&[u32]) -> bool,
    ) -> bool {
        uid == daemon_uid
            || uid == 0
            || self.uids.contains(&uid)
            || (!self.groups.is_empty() && (self.groups.contains(&gid) || in_groups(&self.groups)))
    }

    /// Who may use the bus, for a refusal message: "uid 0 (root), uid 1000
    /// (the daemon's), uid 7 and members of group 100".
    pub(super) fn describe(&self, daemon_uid: u32) -> String {
        let mut who = vec!["uid 0 (root)".to_owned()];
        if daemon_uid != 0 {
            who.push(format!("uid {daemon_uid} (the daemon's)"));
        }
        for u in &self.uids {
            who.push(format!("uid {u}"));
        }
        for g in &self.groups {
            who.push(format!("members of group {g}"));
        }
        match who.split_last() {
            Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
            _ => who.join(""),
        }
    }
}
