//! Resource bounds of the HTTP server and who may tell us a client's address: every one has a
//! safe default, so an unauthenticated client can hold at most a known amount of memory and
//! descriptors, however it misbehaves.

use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;

use crate::config::{ConfigError, Source, parsed, problem};

const DEFAULT_MAX_CONNECTIONS: usize = 1_000;
const DEFAULT_HEADER_TIMEOUT_SECS: u64 = 5;
const DEFAULT_BODY_TIMEOUT_SECS: u64 = 10;
const DEFAULT_WEBHOOK_BUFFER_BYTES: usize = 32 * 1024 * 1024;

/// Server limits, validated.
#[derive(Clone, Debug)]
pub struct LimitSettings {
    /// `HOLDFAST_MAX_CONNECTIONS` (default 1000): open client connections, all workers
    /// together; more wait in the kernel's accept queue.
    pub max_connections: usize,
    /// `HOLDFAST_HEADER_TIMEOUT_SECS` (default 5): time a client has to send its headers.
    pub header_timeout: Duration,
    /// `HOLDFAST_BODY_TIMEOUT_SECS` (default 10): time a client has to send a webhook body
    /// once its headers arrived; slower ones get 408.
    pub body_timeout: Duration,
    /// `HOLDFAST_WEBHOOK_BUFFER_BYTES` (default 32 MiB): webhook bodies buffered at once,
    /// across all connections, before their signature can be checked.
    pub webhook_buffer_bytes: usize,
    /// `HOLDFAST_TRUSTED_PROXY`: whose forwarding headers name the client (rate limits).
    pub trusted_proxy: TrustedProxy,
}

/// Which peers' forwarding headers are believed.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum TrustedProxy {
    /// Unset: the TCP peer is the client; forwarding headers are ignored.
    #[default]
    None,
    /// `fly`: fly.io's edge, which sets `Fly-Client-IP` and reaches the machine over its
    /// private network (`fdaa::/16`, and the loopback for `fly-proxy` on the host).
    Fly,
    /// A comma-separated list of CIDRs (`10.0.0.0/8,192.168.1.7/32`): peers in it are
    /// proxies, and so are `X-Forwarded-For` hops in it.
    Cidrs(Vec<IpNet>),
}

impl TrustedProxy {
    /// Parse `HOLDFAST_TRUSTED_PROXY`'s value.
    pub fn parse(value: &str) -> Result<Self, ConfigError> {
        const VAR: &str = "HOLDFAST_TRUSTED_PROXY";
        let value = value.trim();
        if value.eq_ignore_ascii_case("fly") {
            return Ok(Self::Fly);
        }
        if value.is_empty() || value.eq_ignore_ascii_case("none") {
            return Ok(Self::None);
        }
        let nets: Result<Vec<IpNet>, _> = value
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| s.parse::<IpNet>().or_else(|_| s.parse::<IpAddr>().map(IpNet::from)))
            .collect();
        let nets = nets.map_err(|_| problem(VAR, "must be `fly` or comma-separated CIDRs like 10.0.0.0/8,fdaa::/16"))?;
        Ok(Self::Cidrs(nets))
    }
}

impl LimitSettings {
    pub fn from_source(src: &impl Source) -> Result<Self, ConfigError> {
        let positive = |var: &'static str, v: Option<u64>, default: u64| match v {
            Some(0) => Err(problem(var, "must be at least 1")),
            Some(v) => Ok(v),
            None => Ok(default),
        };
        let max_connections =
            positive("HOLDFAST_MAX_CONNECTIONS", parsed(src, "HOLDFAST_MAX_CONNECTIONS")?, DEFAULT_MAX_CONNECTIONS as u64)?;
        let header =
            positive("HOLDFAST_HEADER_TIMEOUT_SECS", parsed(src, "HOLDFAST_HEADER_TIMEOUT_SECS")?, DEFAULT_HEADER_TIMEOUT_SECS)?;
        let body = positive("HOLDFAST_BODY_TIMEOUT_SECS", parsed(src, "HOLDFAST_BODY_TIMEOUT_SECS")?, DEFAULT_BODY_TIMEOUT_SECS)?;
        let buffer = positive(
            "HOLDFAST_WEBHOOK_BUFFER_BYTES",
            parsed(src, "HOLDFAST_WEBHOOK_BUFFER_BYTES")?,
            DEFAULT_WEBHOOK_BUFFER_BYTES as u64,
        )?;
        let trusted_proxy = match src.get("HOLDFAST_TRUSTED_PROXY") {
            Some(v) => TrustedProxy::parse(&v)?,
            None => TrustedProxy::None,
        };
        Ok(Self {
            max_connections: usize::try_from(max_connections).unwrap_or(usize::MAX),
            header_timeout: Duration::from_secs(header),
            body_timeout: Duration::from_secs(body),
            webhook_buffer_bytes: usize::try_from(buffer).unwrap_or(usize::MAX),
            trusted_proxy,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn defaults_bound_everything_and_zero_is_refused() {
        let empty: HashMap<&str, String> = HashMap::new();
        let s = LimitSettings::from_source(&empty).expect("defaults");
        assert_eq!(s.max_connections, 1_000);
        assert_eq!(s.body_timeout, Duration::from_secs(10));
        assert_eq!(s.webhook_buffer_bytes, 32 * 1024 * 1024);
        assert_eq!(s.trusted_proxy, TrustedProxy::None);
        let zero: HashMap<&str, String> = [("HOLDFAST_BODY_TIMEOUT_SECS", "0".to_owned())].into();
        assert_eq!(LimitSettings::from_source(&zero).map_err(|e| e.var).err(), Some("HOLDFAST_BODY_TIMEOUT_SECS"));
    }

    #[test]
    fn trusted_proxies_are_fly_or_cidrs() {
        assert_eq!(TrustedProxy::parse("fly").ok(), Some(TrustedProxy::Fly));
        let Ok(TrustedProxy::Cidrs(nets)) = TrustedProxy::parse("10.0.0.0/8, 192.168.1.7") else { panic!("cidrs parse") };
        assert_eq!(nets.len(), 2);
        assert!(nets[1].contains(&"192.168.1.7".parse::<IpAddr>().expect("ip")));
        assert!(TrustedProxy::parse("10.0.0.0/8,proxy.internal").is_err());
    }
}
