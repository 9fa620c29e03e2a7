//! Tail probes: while a session has sent data the peer has not yet acknowledged, a tiny
//! ack-eliciting QUIC datagram every [`every`] keeps something behind the last datagram of the
//! push.
//!
//! Why: QUIC finds a lost datagram when the peer acknowledges a later one (RFC 9002: three
//! later packets, or one later packet and 9/8 of a round trip). A lost *last* datagram of a push
//! — and a lost retransmission, which is the last datagram when it is sent — has no later one,
//! so it waits for the probe timeout instead: the smoothed round trip plus four times its
//! variation (0.7–1.1 s on a 300 ms path, three round trips right after the first sample), and
//! doubling with each probe lost. A probe sent after it is acknowledged a round trip later and
//! exposes the loss then. On a lossless path the probes cost a small datagram and its
//! acknowledgement every [`every`] until the peer's answer arrives (about 120 B on the wire
//! each: about 1 KB for a reconnect's push on a 300 ms path).
//!
//! The datagrams are empty and nobody reads them: the receiving QUIC buffers unread datagrams
//! up to a byte limit that counts each one's overhead, dropping the oldest, so they cost the
//! peer nothing lasting. A peer that does not take datagrams (none in the transport
//! parameters) gets none; the send fails silently and the session runs as before.

use std::time::Duration;

use tokio::time::{Instant, Interval, MissedTickBehavior};

/// How often a probe goes while data is unacknowledged: a third of the rural link's round trip,
/// so a loss is found about `9/8` of a round trip after the lost datagram left (QUIC's time
/// threshold) rather than a probe timeout later. `OMSYN_TAIL_PROBE_MS` overrides it, `0` turns
/// probes off (for measuring, see BENCHMARKS.md).
const EVERY_MS: u64 = 100;

/// Probes stop this long after the session last wrote, even if the peer has not answered: a
/// peer that does not answer is dead or stalled (the idle timeout and the session's own limit
/// deal with that), and a phone out of coverage must not keep sending.
const AT_MOST: Duration = Duration::from_secs(3);

/// The probe interval, or `None` when probes are off.
fn every() -> Option<Duration> {
    let ms = std::env::var("OMSYN_TAIL_PROBE_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(EVERY_MS);
    (ms > 0).then(|| Duration::from_millis(ms))
}

/// One empty QUIC datagram: ack-eliciting, carried in a packet of its own when nothing else is
/// waiting. Errors (the peer takes no datagrams, the connection closed) change nothing.
fn send(send_datagram: &impl Fn(bytes::Bytes) -> bool) {
    if !send_datagram(bytes::Bytes::new()) {
        tracing::trace!("tail probe not sent");
    }
}

/// Probes sent by a session's loop: armed when the session writes, disarmed when it is caught
/// up (the peer acknowledged everything) or [`AT_MOST`] after the last write.
#[derive(Debug)]
pub(super) struct TailProbe {
    interval: Option<Interval>,
    until: Option<Instant>,
}

impl TailProbe {
    pub(super) fn new() -> TailProbe {
        let interval = every().map(|every| {
            let mut interval = tokio::time::interval(every);
            interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
            interval
        });
        TailProbe {
            interval,
            until: None,
        }
    }

    /// The session wrote to the peer: probe until it is acknowledged.
    pub(super) fn arm(&mut self) {
        if self.interval.is_some() {
            self.until = Some(Instant::now() + AT_MOST);
        }
    }

    /// The peer has acknowledged everything.
    pub(super) fn disarm(&mut self) {
        self.until = None;
    }

    /// Waits for the next probe's time; pending forever while disarmed.
    pub(super) async fn due(&mut self) {
        match (&mut self.interval, self.until) {
            (Some(interval), Some(until)) => {
                tokio::select! {
                    _ = interval.tick() => {}
                    () = tokio::time::sleep_until(until) => {
                        self.until = None;
                        std::future::pending::<()>().await;
                    }
                }
            }
            _ => std::future::pending().await,
        }
    }

    /// Sends one probe (when [`TailProbe::due`] fired).
    pub(super) fn send(&self, send_datagram: &impl Fn(bytes::Bytes) -> bool) {
        send(send_datagram);
    }
}

/// Runs `work` while probing every [`every`]: a push sent as 0-RTT data, while the handshake
/// completes (the session's loop takes over afterwards).
pub(super) async fn while_probing<T>(
    send_datagram: impl Fn(bytes::Bytes) -> bool,
    work: impl std::future::Future<Output = T>,
) -> T {
    let Some(every) = every() else {
        return work.await;
    };
    let mut interval = tokio::time::interval(every);
    interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
    tokio::pin!(work);
    loop {
        tokio::select! {
            out = &mut work => return out,
            _ = interval.tick() => send(&send_datagram),
        }
    }
}
