//! Whose stats page `telemetryctl` believes. shm-ring's read-only open already refuses a page
//! that is a symlink, writable by group or others, or not owned by its directory's owner; here
//! that owner must also be one `telemetryctl` trusts: the pipeline's user (`[pipeline] user`,
//! the unit's `User=`), root, or the user running `telemetryctl`. A page another local user made
//! in a directory of their own (say while the pipeline was stopped) is refused unread: its
//! "ok" would be a lie.

use nix::unistd::{Uid, User};
use shm_ring::stats::StatsReader;

use crate::error::{page_error, Access, CtlError, EXIT_UNTRUSTED};
use crate::sample::{page_name, page_path};

/// The owners whose stats page is believed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owners {
    /// The pipeline's user, by name.
    pub user: String,
    /// Its uid, if the user exists on this host.
    pub user_uid: Option<u32>,
    /// Who runs `telemetryctl`.
    pub euid: u32,
}

impl Owners {
    /// The pipeline's user `user` (looked up now), root, and this process's euid.
    pub fn for_user(user: &str) -> Owners {
        Owners {
            user: user.to_owned(),
            user_uid: User::from_name(user).ok().flatten().map(|u| u.uid.as_raw()),
            euid: nix::unistd::geteuid().as_raw(),
        }
    }

    /// Whether a page owned by `uid` is believed.
    pub fn allows(&self, uid: u32) -> bool {
        uid == 0 || uid == self.euid || Some(uid) == self.user_uid
    }
}

/// Opens the stats page of `prefix` read-only and refuses it unless its owner is in `owners`.
pub fn open_page(prefix: &str, owners: &Owners) -> Result<StatsReader, CtlError> {
    let name = page_name(prefix).map_err(|e| page_error(&e, prefix, Access::Read))?;
    let reader = StatsReader::open(&name).map_err(|e| page_error(&e, prefix, Access::Read))?;
    let owner = reader.owner_uid();
    if !owners.allows(owner) {
        return Err(refusal(prefix, owner, owners));
    }
    Ok(reader)
}

fn refusal(prefix: &str, owner: u32, owners: &Owners) -> CtlError {
    let user = match owners.user_uid {
        Some(uid) => format!("the pipeline's user {} (uid {uid})", owners.user),
        None => format!("the pipeline's user {} (no such user here)", owners.user),
    };
    let owner_name = User::from_uid(Uid::from_raw(owner))
        .ok()
        .flatten()
        .map_or_else(|| format!("uid {owner}"), |u| format!("uid {owner} ({})", u.name));
    CtlError {
        code: EXIT_UNTRUSTED,
        message: format!(
            "refusing {}: it belongs to {owner_name}, not to {user}, root, or you (uid {}); another local \
             user may have planted it. Remove it as root, or set [pipeline] user if the pipeline runs as \
             another user",
            page_path(prefix),
            owners.euid
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_self_and_the_pipeline_user_are_believed_nobody_else() {
        let owners = Owners {
            user: "telemetry".into(),
            user_uid: Some(998),
            euid: 1000,
        };
        assert!(owners.allows(0) && owners.allows(998) && owners.allows(1000));
        assert!(!owners.allows(1001));
        let e = refusal("p", 1001, &owners);
        assert_eq!(e.code, EXIT_UNTRUSTED);
        assert!(
            e.message
                .starts_with("refusing /dev/shm/p/stats: it belongs to uid 1001"),
            "{e}"
        );
        assert!(
            e.message
                .contains("not to the pipeline's user telemetry (uid 998), root, or you (uid 1000)"),
            "{e}"
        );
        let unknown = Owners {
            user_uid: None,
            ..owners
        };
        assert!(!unknown.allows(998));
        assert!(refusal("p", 5, &unknown).message.contains("(no such user here)"));
    }
}
