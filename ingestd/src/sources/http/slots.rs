//! How many HTTP connections may be open (`[ingestd.http] max_connections`), which one gives
//! its place to a new client at the cap, and the open-file limit that the cap must fit in.
//!
//! At the cap, ingestd still accepts: a new client takes the place of the connection that has
//! been quiet the longest without a request inside the handler (idle between requests, still
//! sending its headers, freshly connected and silent, or lingering after a refusal), as nginx
//! reuses idle keep-alive connections. That connection is told to close (at once, or for an
//! idle keep-alive connection once hyper has flushed what it wrote). Only when every open
//! connection has a request inside the handler is the newcomer answered 503. So a flood of idle
//! or slow sockets can never keep a real request out, and never leaves one waiting in the
//! listen backlog.
//!
//! One table operation per connection (a slot taken at accept, given back at close), none per
//! request; the scan for the quietest connection runs only at the cap.

use std::sync::{Arc, Mutex};

use tokio::time::Instant;

use super::phase::{Conn, Phase};

/// Open files ingestd needs besides its HTTP connections (rings, stats page, MQTT, the
/// runtime's own descriptors, connections being closed or refused), on top of
/// `max_connections`.
pub const RESERVED_FILES: u64 = 256;

/// The open connections.
pub struct Slots {
    max: usize,
    base: Instant,
    table: Mutex<Table>,
}

#[derive(Default)]
struct Table {
    conns: Vec<Option<Arc<Conn>>>,
    free: Vec<usize>,
    open: usize,
    evicting: usize,
}

/// What a new client gets.
pub enum Admission {
    /// A slot (having evicted another connection, if `evicted`).
    Admitted {
        /// The new connection.
        conn: Arc<Conn>,
        /// Whether a quiet connection was told to close to make room.
        evicted: bool,
    },
    /// Every open connection has a request inside the handler: answer 503.
    Full,
}

impl Slots {
    /// At most `max` open connections (those being evicted aside).
    pub fn new(max: usize) -> Slots {
        Slots {
            max,
            base: Instant::now(),
            table: Mutex::new(Table::default()),
        }
    }

    /// A slot for a client accepted now.
    pub fn admit(&self) -> Admission {
        let mut t = self.table.lock().unwrap_or_else(|e| e.into_inner());
        let mut evicted = false;
        if t.open - t.evicting >= self.max {
            let Some(quietest) = quietest(&t.conns).cloned() else {
                return Admission::Full;
            };
            if quietest.mark_evicting() {
                t.evicting += 1;
            }
            quietest.evict();
            evicted = true;
        }
        let slot = t.free.pop().unwrap_or_else(|| {
            t.conns.push(None);
            t.conns.len() - 1
        });
        let conn = Arc::new(Conn::new(slot, self.base));
        t.conns[slot] = Some(conn.clone());
        t.open += 1;
        Admission::Admitted { conn, evicted }
    }

    /// Gives back `conn`'s slot (its connection is closed).
    pub fn release(&self, conn: &Conn) {
        let mut t = self.table.lock().unwrap_or_else(|e| e.into_inner());
        if t.conns
            .get(conn.slot)
            .is_some_and(|c| c.as_ref().is_some_and(|c| std::ptr::eq(&**c, conn)))
        {
            t.conns[conn.slot] = None;
            t.free.push(conn.slot);
            t.open -= 1;
            if conn.is_evicting() {
                t.evicting -= 1;
            }
        }
    }

    /// Open connections (those being evicted included).
    pub fn open(&self) -> usize {
        self.table.lock().unwrap_or_else(|e| e.into_inner()).open
    }
}

/// The connection quiet the longest with no request inside the handler, not already evicted.
fn quietest(conns: &[Option<Arc<Conn>>]) -> Option<&Arc<Conn>> {
    conns
        .iter()
        .flatten()
        .filter(|c| !c.is_evicting())
        .filter_map(|c| match c.phase() {
            (Phase::Handler, _) => None,
            (_, since) => Some((since, c)),
        })
        .min_by_key(|(since, _)| *since)
        .map(|(_, c)| c)
}

/// Makes room for `max_connections` in the open-file limit: raises the soft limit to the hard
/// one if the soft one is too low, and refuses (naming the key) when even the hard one leaves
/// less than [`RESERVED_FILES`] for the rest of ingestd. Returns the soft limit in force.
pub fn fit_open_file_limit(max_connections: usize) -> Result<u64, String> {
    use nix::sys::resource::{getrlimit, setrlimit, Resource, RLIM_INFINITY};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).map_err(|e| format!("reading RLIMIT_NOFILE: {e}"))?;
    let needed = max_connections as u64 + RESERVED_FILES;
    let mut limit = soft;
    if soft < needed && soft < hard {
        // An unlimited hard limit is not a valid soft one for open files: ask for what we need.
        let target = if hard == RLIM_INFINITY { needed } else { hard };
        setrlimit(Resource::RLIMIT_NOFILE, target, hard)
            .map_err(|e| format!("raising the open-file limit from {soft} to {target}: {e}"))?;
        limit = target;
    }
    if needed > limit {
        return Err(format!(
            "config: ingestd.http.max_connections = {max_connections}: needs {needed} open files \
             ({RESERVED_FILES} for the rest of ingestd), but the open-file limit is {limit} (hard \
             limit {hard}): lower max_connections or raise LimitNOFILE"
        ));
    }
    Ok(limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admitted(a: Admission) -> (Arc<Conn>, bool) {
        match a {
            Admission::Admitted { conn, evicted } => (conn, evicted),
            Admission::Full => panic!("refused"),
        }
    }

    #[test]
    fn at_the_cap_the_quietest_connection_without_a_request_makes_room() {
        let slots = Slots::new(3);
        let (a, _) = admitted(slots.admit());
        std::thread::sleep(std::time::Duration::from_millis(5));
        let (b, _) = admitted(slots.admit());
        let (c, e) = admitted(slots.admit());
        assert!(!e);
        a.enter(Phase::Handler);
        // b is the quietest without a request inside the handler.
        let (d, evicted) = admitted(slots.admit());
        assert!(evicted && b.is_evicting() && !a.is_evicting() && !c.is_evicting());
        assert_eq!(slots.open(), 4, "b closes when its task sees the eviction");
        slots.release(&b);
        assert_eq!(slots.open(), 3);
        c.enter(Phase::Handler);
        d.enter(Phase::Handler);
        assert!(
            matches!(slots.admit(), Admission::Full),
            "every connection is inside a request"
        );
        d.enter(Phase::Idle);
        let (_e, evicted) = admitted(slots.admit());
        assert!(evicted && d.is_evicting());
        slots.release(&a);
        slots.release(&a);
        assert_eq!(slots.open(), 3, "a slot is given back once");
    }

    #[test]
    fn the_open_file_limit_is_raised_to_the_hard_limit_or_the_cap_is_refused() {
        let limit = fit_open_file_limit(1).unwrap();
        assert!(limit > RESERVED_FILES);
        let e = fit_open_file_limit(1 << 40).unwrap_err();
        assert!(
            e.starts_with("config: ingestd.http.max_connections = 1099511627776") && e.contains("LimitNOFILE"),
            "{e}"
        );
    }
}
