//! Which addresses a node's ticket names: the ones another machine can actually dial.
//!
//! A socket bound to `0.0.0.0` or `[::]` (the default) is reachable at every address of the
//! machine's interfaces of its family, and at none called `0.0.0.0`. The ticket therefore names
//! each interface address with the socket's port, read afresh every time a ticket is asked for, so
//! it follows the interfaces as they come and go (a home unit whose Wi-Fi came up after it
//! started). Addresses iroh learned from outside (its relay's view of our public address) join
//! them.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

/// Most direct addresses a ticket carries: a LAN, a mobile and a VPN address in both families,
/// and still short enough for a QR code a phone reads off a screen at a glance.
pub const MAX_TICKET_ADDRS: usize = 6;

/// One address of an interface that is up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct InterfaceAddr {
    pub(crate) ip: IpAddr,
    /// On a loopback interface: reachable from this machine only.
    pub(crate) loopback: bool,
    /// An IPv6 address that must not be used for new connections (deprecated, tentative, or
    /// failed duplicate detection).
    pub(crate) unusable: bool,
}

/// The addresses a socket bound at `bound` is reachable at, as of now (for a ticket made before
/// the endpoint exists: `omsyn ticket` without `omsyn run`).
pub fn reachable_at(bound: &[SocketAddr]) -> Vec<SocketAddr> {
    ticket_addrs(bound, &interface_addrs(), &[])
}

/// The addresses of every interface that is up, read from the OS now.
pub(crate) fn interface_addrs() -> Vec<InterfaceAddr> {
    let mut out = Vec::new();
    for iface in netdev::get_interfaces() {
        if !iface.is_up() {
            continue;
        }
        let loopback = iface.is_loopback();
        for net in &iface.ipv4 {
            out.push(InterfaceAddr {
                ip: IpAddr::V4(net.addr()),
                loopback,
                unusable: false,
            });
        }
        for (i, net) in iface.ipv6.iter().enumerate() {
            let flags = iface.ipv6_addr_flags.get(i).copied().unwrap_or_default();
            out.push(InterfaceAddr {
                ip: IpAddr::V6(net.addr()),
                loopback,
                unusable: flags.deprecated || flags.tentative || flags.duplicated,
            });
        }
    }
    out
}

/// The addresses a ticket names, best first: every bound socket's concrete address, each
/// interface address of an unspecified socket's family with its port, and `observed` (what iroh
/// learned, e.g. our public address behind NAT). Loopback addresses only when there is nothing
/// else (one machine, tests), never IPv6 link-local ones (useless without an interface scope).
pub(crate) fn ticket_addrs(
    bound: &[SocketAddr],
    interfaces: &[InterfaceAddr],
    observed: &[SocketAddr],
) -> Vec<SocketAddr> {
    let mut candidates: Vec<(SocketAddr, bool)> = Vec::new();
    for socket in bound {
        if !socket.ip().is_unspecified() {
            candidates.push((*socket, socket.ip().is_loopback()));
            continue;
        }
        for iface in interfaces {
            if iface.ip.is_ipv4() == socket.is_ipv4() && !iface.unusable {
                candidates.push((SocketAddr::new(iface.ip, socket.port()), iface.loopback));
            }
        }
    }
    candidates.extend(observed.iter().map(|a| (*a, a.ip().is_loopback())));
    candidates.retain(|(a, _)| dialable(a.ip()));
    if candidates.iter().any(|(_, loopback)| !loopback) {
        candidates.retain(|(_, loopback)| !loopback);
    }
    let mut addrs: Vec<SocketAddr> = candidates.into_iter().map(|(a, _)| a).collect();
    addrs.sort_by_key(|a| (rank(a.ip()), *a));
    addrs.dedup();
    addrs.truncate(MAX_TICKET_ADDRS);
    addrs
}

fn dialable(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => !(v4.is_unspecified() || v4.is_multicast() || v4.is_broadcast()),
        IpAddr::V6(v6) => {
            !(v6.is_unspecified() || v6.is_multicast() || is_link_local_v6(v6))
                && v6.to_ipv4_mapped().is_none()
        }
    }
}

/// Order in the ticket: where a peer most likely is first (the same LAN), so a ticket cut to its
/// first addresses keeps the useful ones.
fn rank(ip: IpAddr) -> u8 {
    match ip {
        IpAddr::V4(v4) if v4.is_private() => 0,
        IpAddr::V4(v4) if v4.is_loopback() || v4.is_link_local() => 4,
        IpAddr::V4(_) => 1,
        IpAddr::V6(v6) if v6.is_loopback() => 5,
        IpAddr::V6(v6) if is_unique_local_v6(v6) => 3,
        IpAddr::V6(_) => 2,
    }
}

fn is_link_local_v6(ip: Ipv6Addr) -> bool {
    ip.segments()[0] & 0xffc0 == 0xfe80
}

fn is_unique_local_v6(ip: Ipv6Addr) -> bool {
    ip.segments()[0] & 0xfe00 == 0xfc00
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iface(ip: &str, loopback: bool) -> InterfaceAddr {
        InterfaceAddr {
            ip: ip.parse().expect("ip"),
            loopback,
            unusable: false,
        }
    }

    fn sock(s: &str) -> SocketAddr {
        s.parse().expect("socket address")
    }

    fn machine() -> Vec<InterfaceAddr> {
        vec![
            iface("127.0.0.1", true),
            iface("::1", true),
            iface("192.168.1.20", false),
            iface("fe80::1", false),
            iface("fd00:1::20", false),
            iface("2001:db8::20", false),
            InterfaceAddr {
                unusable: true,
                ..iface("2001:db8::99", false)
            },
        ]
    }

    #[test]
    fn a_wildcard_socket_is_named_by_each_interface_address_of_its_family() {
        let v4 = ticket_addrs(&[sock("0.0.0.0:4433")], &machine(), &[]);
        assert_eq!(v4, vec![sock("192.168.1.20:4433")]);
        let v6 = ticket_addrs(&[sock("[::]:4433")], &machine(), &[]);
        assert_eq!(
            v6,
            vec![sock("[2001:db8::20]:4433"), sock("[fd00:1::20]:4433")]
        );
        let both = ticket_addrs(&[sock("0.0.0.0:1"), sock("[::]:2")], &machine(), &[]);
        assert_eq!(both.len(), 3);
        assert!(both.iter().all(|a| !a.ip().is_unspecified()), "{both:?}");
    }

    #[test]
    fn loopback_is_named_only_when_there_is_nothing_else() {
        let only_lo = [iface("127.0.0.1", true)];
        assert_eq!(
            ticket_addrs(&[sock("0.0.0.0:7")], &only_lo, &[]),
            vec![sock("127.0.0.1:7")]
        );
        assert_eq!(
            ticket_addrs(&[sock("127.0.0.1:7")], &machine(), &[]),
            vec![sock("127.0.0.1:7")],
            "a node bound to loopback is reachable there only"
        );
    }

    #[test]
    fn observed_addresses_join_and_the_list_is_bounded() {
        let many: Vec<InterfaceAddr> = (1..20)
            .map(|i| iface(&format!("10.0.0.{i}"), false))
            .collect();
        let addrs = ticket_addrs(&[sock("0.0.0.0:9")], &many, &[sock("203.0.113.5:9")]);
        assert_eq!(addrs.len(), MAX_TICKET_ADDRS);
        assert_eq!(addrs[0], sock("10.0.0.1:9"), "the LAN first");
        let few = ticket_addrs(&[sock("0.0.0.0:9")], &machine(), &[sock("203.0.113.5:9")]);
        assert_eq!(few, vec![sock("192.168.1.20:9"), sock("203.0.113.5:9")]);
    }
}
