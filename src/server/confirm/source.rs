//! The source guard: `--allow-from`, with the client read from `X-Forwarded-For` behind a
//! trusted load balancer.

use std::net::{IpAddr, SocketAddr};

use axum::http::HeaderMap;
use axum::response::Response;

use super::body::{closing, unread_body};
use super::Arrival;
use crate::server::AppState;

impl AppState {
    /// The 403 of `--allow-from`, when the source is not allowed.
    pub(super) fn source_refused(
        &self,
        arrival: &Arrival,
        peer: SocketAddr,
        headers: &HeaderMap,
    ) -> Option<Response> {
        let allow_from = &self.0.allow_from;
        if allow_from.is_empty() {
            return None;
        }
        let client = self.client_addr(peer, headers);
        match &client {
            Ok(client) if allow_from.iter().any(|net| net.contains(client)) => return None,
            Ok(client)
                if self.0.trust_forwarded_for
                    && !self.forwarded_by(peer.ip())
                    && headers.contains_key("x-forwarded-for") =>
            {
                tracing::warn!(decision_id = arrival.id.as_str(), %client, "source address not allowed (its X-Forwarded-For was not read: the connection comes from no --forwarded-by load balancer)");
            }
            Ok(client) => {
                tracing::warn!(decision_id = arrival.id.as_str(), %client, "source address not allowed");
            }
            Err(Unknown::NoHeader) => {
                tracing::warn!(
                    decision_id = arrival.id.as_str(),
                    "source address unknown: no X-Forwarded-For, and --trust-forwarded-for takes the client only from it (a request that did not come through the load balancer, or one that does not add the header)"
                );
            }
            Err(Unknown::NotAnAddress(entry)) => {
                tracing::warn!(
                    decision_id = arrival.id.as_str(),
                    entry = %entry,
                    "source address unknown: the right-most X-Forwarded-For entry is not an address"
                );
            }
        }
        let arrival = Arrival {
            refused_source: client.ok(),
            ..arrival.clone()
        };
        let refusal = self.refuse(&arrival, 403, "허용되지 않은 발신 주소입니다".into());
        // The socket's own peer is refused: it keeps no connection open for its next attempt.
        // (Behind a load balancer the connection is the balancer's, shared with allowed clients:
        // kept, unless the body left unread ends it anyway.)
        Some(if self.forwarded_by(peer.ip()) {
            unread_body(headers, refusal)
        } else {
            closing(refusal)
        })
    }

    /// Whether a connection from `peer` is refused whatever it sends: `--allow-from` is set,
    /// `peer` is not in it, and it is not a load balancer speaking for others
    /// (`--trust-forwarded-for`). Such a connection gets a short head timeout.
    pub(in crate::server) fn refuses_at_sight(&self, peer: IpAddr) -> bool {
        let s = &self.0;
        !s.allow_from.is_empty()
            && !self.forwarded_by(peer)
            && !s.allow_from.iter().any(|net| net.contains(&unmapped(peer)))
    }

    /// Whether `peer` is a load balancer whose `X-Forwarded-For` names the client: with
    /// `--trust-forwarded-for`, any peer unless `--forwarded-by` names the balancers. A peer it
    /// does not name is a client of its own, judged by its address: a client that reaches the
    /// listener around the balancer cannot name itself an allowed source.
    fn forwarded_by(&self, peer: IpAddr) -> bool {
        let s = &self.0;
        let peer = unmapped(peer);
        s.trust_forwarded_for
            && (s.forwarded_by.is_empty() || s.forwarded_by.iter().any(|net| net.contains(&peer)))
    }

    /// The client: the socket's peer, or with `--trust-forwarded-for` the right-most
    /// `X-Forwarded-For` entry, the address our own load balancer saw (entries left of it are
    /// written by the client and prove nothing). Unknown when that entry is not an address
    /// (`unknown`, garbage) or there is no header: never the load balancer's own address,
    /// which an allow-list may well contain — and which an operator reading the refusals of a
    /// balancer that adds no header would be told to add, letting everyone in.
    pub(super) fn client_addr(
        &self,
        peer: SocketAddr,
        headers: &HeaderMap,
    ) -> Result<IpAddr, Unknown> {
        if !self.forwarded_by(peer.ip()) {
            return Ok(unmapped(peer.ip()));
        }
        let header = headers
            .get_all("x-forwarded-for")
            .iter()
            .next_back()
            .ok_or(Unknown::NoHeader)?;
        // Only the right-most entry is read: those to its left are the client's to write,
        // bytes that are not text included.
        let last = header
            .as_bytes()
            .rsplit(|&b| b == b',')
            .next()
            .unwrap_or_default();
        std::str::from_utf8(last)
            .ok()
            .and_then(forwarded_addr)
            .map(unmapped)
            .ok_or_else(|| Unknown::NotAnAddress(shown_entry(last)))
    }
}

/// Why the client of a request is not known.
pub(super) enum Unknown {
    NoHeader,
    /// The right-most `X-Forwarded-For` entry, as the log shows it.
    NotAnAddress(String),
}

/// An `X-Forwarded-For` entry for the log: a client may have written it (a request that did
/// not come through the load balancer), so at most 100 characters, escaped where it would not
/// show as itself.
fn shown_entry(entry: &[u8]) -> String {
    let text = String::from_utf8_lossy(entry);
    crate::logfmt::on_one_line(text.trim_matches([' ', '\t']), 100)
}

/// An IPv4 client on a dual-stack socket shows up as ::ffff:a.b.c.d: as a.b.c.d.
pub(crate) fn unmapped(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Whether `ip` is a loopback address, `::ffff:127.0.0.1` (127.0.0.1 on a dual-stack socket)
/// included, which `is_loopback` alone does not count.
pub(crate) fn is_loopback(ip: IpAddr) -> bool {
    unmapped(ip).is_loopback()
}

/// An `X-Forwarded-For` entry: an address, or an address with a port as some load balancers
/// write it (`203.0.113.7:443`, `[2001:db8::1]:443`), or an IPv6 address in brackets without
/// one (`[2001:db8::1]`, as RFC 7239's `Forwarded` writes it).
fn forwarded_addr(entry: &str) -> Option<IpAddr> {
    // HTTP's own whitespace only (spaces and tabs around the comma), not Unicode's.
    let entry = entry.trim_matches([' ', '\t']);
    entry
        .parse::<IpAddr>()
        .or_else(|_| entry.parse::<SocketAddr>().map(|s| s.ip()))
        .ok()
        .or_else(|| {
            let inner = entry.strip_prefix('[')?.strip_suffix(']')?;
            inner.parse::<std::net::Ipv6Addr>().ok().map(IpAddr::V6)
        })
}
