//! The client's address for rate limits. Behind a proxy the TCP peer is the proxy, so every
//! customer would share one bucket; but forwarding headers are whatever the sender wrote, so
//! they are believed only when the peer is a configured proxy (`HOLDFAST_TRUSTED_PROXY`) —
//! never as actix's `realip_remote_addr()` does, for anyone. Of `X-Forwarded-For` only the
//! right-most hop that is not itself a trusted proxy counts: hops to its left were written
//! by the client.

use std::net::IpAddr;

use actix_web::HttpRequest;
use ipnet::IpNet;

use crate::config::TrustedProxy;

/// Where fly.io's proxy reaches a machine from: its private IPv4 range, the private IPv6
/// network (`fdaa::/16`), and the loopback. Machines have no public address of their own, so
/// on fly.io nothing else can connect.
fn fly_networks() -> [IpNet; 4] {
    [
        IpNet::V4(ipnet::Ipv4Net::new_assert([172, 16, 0, 0].into(), 12)),
        IpNet::V6(ipnet::Ipv6Net::new_assert([0xfdaa, 0, 0, 0, 0, 0, 0, 0].into(), 16)),
        IpNet::V4(ipnet::Ipv4Net::new_assert([127, 0, 0, 0].into(), 8)),
        IpNet::V6(ipnet::Ipv6Net::new_assert(std::net::Ipv6Addr::LOCALHOST, 128)),
    ]
}

/// Whether `ip` is one of the configured proxies.
fn trusted(proxy: &TrustedProxy, ip: IpAddr) -> bool {
    let ip = canonical(ip);
    match proxy {
        TrustedProxy::None => false,
        TrustedProxy::Fly => fly_networks().iter().any(|net| net.contains(&ip)),
        TrustedProxy::Cidrs(nets) => nets.iter().any(|net| net.contains(&ip)),
    }
}

/// IPv4 peers on a dual-stack socket show up as `::ffff:a.b.c.d`.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The address to count a request against.
pub fn client_ip(req: &HttpRequest, proxy: &TrustedProxy) -> Option<IpAddr> {
    let peer = canonical(req.peer_addr()?.ip());
    let headers = req.headers();
    let fly_client_ip = headers.get("fly-client-ip").and_then(|v| v.to_str().ok());
    let forwarded_for: Vec<&str> = headers.get_all("x-forwarded-for").filter_map(|v| v.to_str().ok()).collect();
    Some(resolve(peer, proxy, fly_client_ip, &forwarded_for))
}

/// `client_ip` on plain values (unit-tested without a server).
fn resolve(peer: IpAddr, proxy: &TrustedProxy, fly_client_ip: Option<&str>, forwarded_for: &[&str]) -> IpAddr {
    if !trusted(proxy, peer) {
        return peer;
    }
    if *proxy == TrustedProxy::Fly
        && let Some(ip) = fly_client_ip.and_then(|v| v.trim().parse::<IpAddr>().ok())
    {
        return canonical(ip);
    }
    // Walk X-Forwarded-For from the right (several headers are one list, in order).
    let mut client = peer;
    for hop in forwarded_for.iter().rev().flat_map(|h| h.rsplit(',')) {
        let Ok(ip) = hop.trim().parse::<IpAddr>().map(canonical) else {
            // Garbage is the sender's: the last proxy that wrote a readable hop is the client.
            break;
        };
        client = ip;
        if !trusted(proxy, ip) {
            break;
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    fn cidrs(list: &str) -> TrustedProxy {
        TrustedProxy::parse(list).expect("cidrs")
    }

    #[test]
    fn without_a_trusted_proxy_headers_are_ignored() {
        let got = resolve(ip("203.0.113.9"), &TrustedProxy::None, Some("198.51.100.1"), &["198.51.100.2"]);
        assert_eq!(got, ip("203.0.113.9"));
    }

    #[test]
    fn an_untrusted_peer_cannot_claim_another_address() {
        let proxy = cidrs("10.0.0.0/8");
        assert_eq!(resolve(ip("203.0.113.9"), &proxy, None, &["198.51.100.2"]), ip("203.0.113.9"));
        assert_eq!(resolve(ip("203.0.113.9"), &TrustedProxy::Fly, Some("198.51.100.1"), &[]), ip("203.0.113.9"));
    }

    #[test]
    fn the_right_most_untrusted_hop_is_the_client() {
        let proxy = cidrs("10.0.0.0/8");
        // The client wrote "1.1.1.1" itself; the proxy appended the address it saw.
        let got = resolve(ip("10.0.0.2"), &proxy, None, &["1.1.1.1, 198.51.100.7", "10.0.0.9"]);
        assert_eq!(got, ip("198.51.100.7"));
        assert_eq!(resolve(ip("10.0.0.2"), &proxy, None, &[]), ip("10.0.0.2"), "no header: the proxy itself");
        assert_eq!(resolve(ip("10.0.0.2"), &proxy, None, &["198.51.100.7, garbage"]), ip("10.0.0.2"));
        assert_eq!(resolve(ip("::ffff:10.0.0.2"), &proxy, None, &["198.51.100.7"]), ip("198.51.100.7"));
    }

    #[test]
    fn on_fly_the_edge_header_names_the_client() {
        let got = resolve(ip("172.16.4.2"), &TrustedProxy::Fly, Some("198.51.100.1"), &["6.6.6.6, 198.51.100.1"]);
        assert_eq!(got, ip("198.51.100.1"));
        let got = resolve(ip("fdaa:0:1::3"), &TrustedProxy::Fly, None, &["6.6.6.6, 198.51.100.1"]);
        assert_eq!(got, ip("198.51.100.1"), "without Fly-Client-IP, X-Forwarded-For's right-most hop");
    }
}
