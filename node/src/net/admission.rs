//! Who may hold a connection before proving who it is.
//!
//! A connection takes one of the node's session slots ([`super::daemon::MAX_PEERS`]) once its
//! handshake is complete, but the peer is known to be enrolled only once the session has
//! verified its `Hello` — anybody who can reach the node can complete a QUIC handshake with a
//! fresh key. So at most [`MAX_UNVERIFIED`] connections without a verified `Hello` are held at
//! once: a newcomer closes the one that has waited longest (an honest peer's `Hello` is its
//! first frame, so whoever waits longest is the likeliest to hold a slot for nothing); and one
//! is closed when its handshake, its stream, or — before its `Hello` is verified — a silence of
//! the peer's lasts [`hello_limit`]. A peer still sending is not cut off by the clock (a large
//! first push on a slow link); it is the cap that bounds what trickling connections hold.
//! Silent connections by the dozen then hold a quarter of the slots at most, and briefly.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use iroh::endpoint::{Connection, VarInt};
use tracing::warn;

/// How long a connection's handshake, its stream, or the peer's silence before its `Hello` is
/// verified may last, unless `OMSYN_HELLO_LIMIT_MS` says otherwise (tests). Generous for a
/// rural link: each takes a round trip or two, lost datagrams a few seconds more.
pub const HELLO_LIMIT: Duration = Duration::from_secs(20);
/// Most connections held at once whose peer has not yet shown a verified `Hello`.
pub const MAX_UNVERIFIED: usize = 16;
/// The code a connection closed for holding a slot without a `Hello` is closed with.
pub const NO_HELLO_CLOSE: VarInt = VarInt::from_u32(3);

/// [`HELLO_LIMIT`], or `OMSYN_HELLO_LIMIT_MS`.
pub fn hello_limit() -> Duration {
    super::env_number("OMSYN_HELLO_LIMIT_MS").map_or(HELLO_LIMIT, Duration::from_millis)
}

/// The accepted connections whose peer has not yet shown a verified `Hello`, oldest first.
#[derive(Debug, Default)]
pub struct Unverified {
    waiting: Mutex<(u64, VecDeque<(u64, Connection)>)>,
}

impl Unverified {
    /// Holds `conn` until [`Unverified::settle`]; closes the oldest held beyond
    /// [`MAX_UNVERIFIED`]. Returns its place, for `settle`.
    pub fn admit(&self, conn: &Connection) -> u64 {
        let mut guard = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        let (next, waiting) = &mut *guard;
        while waiting.len() >= MAX_UNVERIFIED && close_oldest(waiting) {}
        let place = *next;
        *next += 1;
        waiting.push_back((place, conn.clone()));
        place
    }

    /// Closes the connection that has waited longest for its `Hello`, if any: its slot is
    /// freed for a newcomer when every slot is taken.
    pub fn evict_oldest(&self) -> bool {
        let mut guard = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        close_oldest(&mut guard.1)
    }

    /// The connection at `place` showed a verified `Hello`, or ended.
    pub fn settle(&self, place: u64) {
        let mut guard = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        guard.1.retain(|(p, _)| *p != place);
    }
}

/// Closes and forgets the oldest of `waiting`, if any.
fn close_oldest(waiting: &mut VecDeque<(u64, Connection)>) -> bool {
    let Some((_, oldest)) = waiting.pop_front() else {
        return false;
    };
    warn!("closing a connection that showed no verified Hello to make room for a newcomer");
    oldest.close(NO_HELLO_CLOSE, b"too many connections without a Hello");
    true
}
