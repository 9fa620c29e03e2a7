//! Tickets: how to reach a node, as one line of text a person can copy or put in a QR code.
//!
//! `omsyn1:<node id hex>[@<ip:port>[,<ip:port>...]][?relay=<url>]`. The node id is the node's
//! public key; the addresses and relay are hints, and the connection is authenticated by the key
//! whatever path it takes.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

use omsyn_core::NodeId;

/// How to reach a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    pub node: NodeId,
    pub addrs: Vec<SocketAddr>,
    pub relay: Option<String>,
}

const PREFIX: &str = "omsyn1:";

impl fmt::Display for Ticket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PREFIX}{}", self.node)?;
        if !self.addrs.is_empty() {
            let addrs: Vec<String> = self.addrs.iter().map(|a| a.to_string()).collect();
            write!(f, "@{}", addrs.join(","))?;
        }
        if let Some(relay) = &self.relay {
            write!(f, "?relay={relay}")?;
        }
        Ok(())
    }
}

impl FromStr for Ticket {
    type Err = String;

    fn from_str(s: &str) -> Result<Ticket, String> {
        let bad = |why: &str| {
            format!(
                "invalid ticket {:?}: {why}",
                s.chars().take(120).collect::<String>()
            )
        };
        let rest = s
            .trim()
            .strip_prefix(PREFIX)
            .ok_or_else(|| bad("it must start with omsyn1:"))?;
        let (rest, relay) = match rest.split_once("?relay=") {
            Some((_, "")) => return Err(bad("empty relay url")),
            Some((r, relay)) => {
                // Checked here, once: every command that takes a ticket dials its relay.
                (relay.parse::<iroh::RelayUrl>())
                    .map_err(|e| bad(&format!("bad relay url {relay:?}: {e}")))?;
                (r, Some(relay.to_owned()))
            }
            None => (rest, None),
        };
        let (node, addrs) = match rest.split_once('@') {
            Some((n, a)) => (n, a),
            None => (rest, ""),
        };
        let node = NodeId::parse(node).map_err(|e| bad(&e.to_string()))?;
        let addrs = addrs
            .split(',')
            .filter(|a| !a.is_empty())
            .map(|a| a.parse().map_err(|_| bad(&format!("bad address {a:?}"))))
            .collect::<Result<Vec<SocketAddr>, String>>()?;
        Ok(Ticket { node, addrs, relay })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests fail loudly by design.
mod tests {
    use super::Ticket;

    const NODE: &str = "7c53734bd69365c6443c278568e063b78edc2f3f447bb7d28af83fa298326ec7";

    #[test]
    fn a_ticket_reads_back_as_written_and_a_bad_relay_url_is_named() {
        let text = format!("omsyn1:{NODE}@10.9.2.1:7000?relay=http://10.9.0.1:3340/");
        let ticket: Ticket = text.parse().unwrap();
        assert_eq!(ticket.to_string(), text);
        for (relay, says) in [("", "empty relay url"), ("not a url", "bad relay url")] {
            let err = format!("omsyn1:{NODE}?relay={relay}")
                .parse::<Ticket>()
                .unwrap_err();
            assert!(err.contains(says), "{relay:?}: {err}");
        }
    }
}
