//! The `http` import: outbound HTTP for the connector's small API calls (Frame.io,
//! OAuth), behind an egress policy.
//!
//! The policy ([`EgressPolicy`], shared with the transfer engine) has two layers,
//! both applied before any byte leaves the host:
//! - the URL's host must be on the allowlist (exact `host`, `host:port`, or a
//!   `*.suffix` wildcard);
//! - the addresses the host resolves to must be public, unless private addresses are
//!   explicitly allowed. The check runs inside the client's DNS resolver, so the
//!   connection goes to exactly the addresses that were checked (no DNS rebinding
//!   between check and connect). IP-literal URLs skip DNS and are checked up front.
//!
//! Redirects are never followed (a redirect could leave the allowlist): 3xx responses
//! come back as they are.

use std::error::Error as StdError;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;
use url::{Host, Url};

/// The smallest response limit the WIT allows a host to have.
const MIN_RESPONSE_LIMIT: u64 = 8 << 20;
/// How long establishing a connection (TCP and TLS) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Request headers the host manages itself (hop-by-hop, framing, routing).
const FORBIDDEN_HEADERS: &[&str] =
    &["host", "connection", "transfer-encoding", "content-length", "upgrade", "keep-alive", "te", "trailer"];

/// Outbound HTTP settings (`[http]` in the host's config).
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Hosts the connector may call: `host` (any port), `host:port`, `[v6]`,
    /// `[v6]:port`, or `*.example.com` (any subdomain of example.com, not example.com
    /// itself). Lowercase. Default: Frame.io's API, Frame.io's Legacy OAuth server and
    /// Adobe's IMS (V4 OAuth).
    pub allow_hosts: Vec<String>,
    /// Non-public networks that hosts may nevertheless resolve to, as CIDR blocks
    /// (`127.0.0.0/8`, `10.1.2.3/32`, `::1/128`) or single addresses. Default none:
    /// loopback, private, link-local (cloud metadata at 169.254.169.254), CGNAT and
    /// the other special ranges are refused. Only for tests and local development;
    /// name the smallest block that works.
    pub allow_private_networks: Vec<String>,
    /// Deadline of a request whose caller gave none, in milliseconds. Default 30 000.
    pub timeout_ms: u64,
    /// Largest response body, in bytes; at least 8 MiB. Default 8 MiB.
    pub max_response_bytes: u64,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            allow_hosts: vec!["api.frame.io".into(), "applications.frame.io".into(), "ims-na1.adobelogin.com".into()],
            allow_private_networks: Vec::new(),
            timeout_ms: 30_000,
            max_response_bytes: MIN_RESPONSE_LIMIT,
        }
    }
}

impl HttpConfig {
    /// The egress policy these settings describe; refuses malformed host patterns.
    pub fn egress_policy(&self) -> anyhow::Result<EgressPolicy> {
        EgressPolicy::new(&self.allow_hosts, &self.allow_private_networks)
    }
}

/// Why the egress policy refused a URL.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EgressError {
    /// The URL is malformed or its scheme is not `http`/`https`.
    #[error("{0}")]
    Invalid(String),
    /// The host, or the address it resolves to, is not allowed.
    #[error("{0}")]
    Denied(String),
}

/// One allowlist entry.
#[derive(Clone, Debug, PartialEq, Eq)]
enum HostPattern {
    /// The host exactly (a domain, `1.2.3.4` or `[::1]`).
    Exact(String),
    /// Any host ending in this suffix, which starts with `.`.
    Subdomains(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct HostRule {
    pattern: HostPattern,
    /// `None`: any port.
    port: Option<u16>,
}

/// Which hosts and addresses outbound requests may reach.
#[derive(Clone, Debug)]
pub struct EgressPolicy {
    rules: Vec<HostRule>,
    private_networks: Vec<Network>,
}

impl EgressPolicy {
    /// A policy allowing `allow_hosts` (see [`HttpConfig::allow_hosts`] for the forms)
    /// and, beyond public addresses, `allow_private_networks` (see
    /// [`HttpConfig::allow_private_networks`]).
    pub fn new(allow_hosts: &[String], allow_private_networks: &[String]) -> anyhow::Result<EgressPolicy> {
        let rules = allow_hosts.iter().map(|entry| parse_rule(entry)).collect::<anyhow::Result<_>>()?;
        let private_networks = allow_private_networks.iter().map(|entry| Network::parse(entry)).collect::<anyhow::Result<_>>()?;
        Ok(EgressPolicy { rules, private_networks })
    }

    /// Parses `url` and checks everything that can be checked without DNS: the
    /// scheme, the allowlist, and the address of an IP-literal host.
    pub fn check_url(&self, url: &str) -> Result<Url, EgressError> {
        let parsed = Url::parse(url).map_err(|e| EgressError::Invalid(format!("bad URL: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(EgressError::Invalid(format!("scheme {:?} is not http or https", parsed.scheme())));
        }
        let host = parsed.host().ok_or_else(|| EgressError::Invalid("the URL has no host".into()))?;
        let host_text = host.to_string();
        let port = parsed.port_or_known_default().unwrap_or(0);
        if !self.rules.iter().any(|rule| rule.matches(&host_text, port)) {
            return Err(EgressError::Denied(format!("{host_text}:{port} is not on the allowlist")));
        }
        match host {
            Host::Ipv4(ip) => self.check_ip(IpAddr::V4(ip))?,
            Host::Ipv6(ip) => self.check_ip(IpAddr::V6(ip))?,
            Host::Domain(_) => {}
        }
        Ok(parsed)
    }

    /// Refuses non-public addresses outside the policy's allowed private networks.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), EgressError> {
        if is_public(ip) || self.private_networks.iter().any(|network| network.contains(ip)) {
            Ok(())
        } else {
            Err(EgressError::Denied(format!("{ip} is not a public address")))
        }
    }

    /// A client builder that enforces the address policy in DNS resolution, never
    /// follows redirects and ignores proxy settings from the environment (a proxy
    /// would make the resolved address meaningless).
    pub fn client_builder(&self) -> reqwest::ClientBuilder {
        let resolver = PolicyResolver { policy: self.clone() };
        reqwest::Client::builder()
            .dns_resolver(Arc::new(resolver))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("frameio-dam-host-shim/", env!("CARGO_PKG_VERSION")))
    }
}

impl HostRule {
    fn matches(&self, host: &str, port: u16) -> bool {
        let host_ok = match &self.pattern {
            HostPattern::Exact(exact) => host == exact,
            HostPattern::Subdomains(suffix) => host.len() > suffix.len() && host.ends_with(suffix.as_str()),
        };
        host_ok && self.port.is_none_or(|p| p == port)
    }
}

/// A block of addresses, `address/prefix length`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Network {
    base: IpAddr,
    prefix: u8,
}

impl Network {
    /// Parses `a.b.c.d/n`, `v6/n`, or a single address (a block of one).
    fn parse(entry: &str) -> anyhow::Result<Network> {
        let malformed = || anyhow::anyhow!("allowed private network {entry:?} must be `address/prefix length` or an address");
        let (address, prefix) = match entry.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix.parse::<u8>().map_err(|_| malformed())?)),
            None => (entry, None),
        };
        let base: IpAddr = address.parse().map_err(|_| malformed())?;
        if let IpAddr::V6(v6) = base {
            // Addresses are matched in their IPv4 form (see `contains`).
            if let Some(v4) = embedded_ipv4(v6) {
                anyhow::bail!("allowed private network {entry:?} embeds an IPv4 address: write it as {v4}");
            }
        }
        let bits = if base.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(bits);
        if prefix > bits {
            return Err(malformed());
        }
        if prefix == 0 {
            anyhow::bail!("allowed private network {entry:?} would allow every address, cloud metadata included");
        }
        Ok(Network { base, prefix })
    }

    /// Whether `ip` is in the block. An IPv6 address embedding an IPv4 one is judged
    /// by the IPv4 address, as [`is_public`] does.
    fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => embedded_ipv4(v6).map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.base, ip) {
            (IpAddr::V4(base), IpAddr::V4(ip)) => same_prefix(&base.octets(), &ip.octets(), self.prefix),
            (IpAddr::V6(base), IpAddr::V6(ip)) => same_prefix(&base.octets(), &ip.octets(), self.prefix),
            _ => false,
        }
    }
}

/// Whether the first `bits` bits of `a` and `b` are equal.
fn same_prefix(a: &[u8], b: &[u8], bits: u8) -> bool {
    let (whole, rest) = (usize::from(bits / 8), bits % 8);
    let mask = 0xffu8.checked_shl(u32::from(8 - rest)).unwrap_or(0);
    a[..whole] == b[..whole] && (rest == 0 || (a[whole] & mask) == (b[whole] & mask))
}

/// Parses `host`, `host:port`, `[v6]`, `[v6]:port` or `*.suffix[:port]`. The host
/// must be in the canonical form the URL parser gives request hosts (lowercase,
/// dotted-decimal IPv4, compressed IPv6), so that an entry means what it says.
fn parse_rule(entry: &str) -> anyhow::Result<HostRule> {
    let malformed = || anyhow::anyhow!("allowed host {entry:?} must be a canonical lowercase `host`, `host:port` or `*.domain`");
    let (wildcard, rest) = match entry.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, entry),
    };
    let (host_text, port) = split_port(rest).ok_or_else(malformed)?;
    let host = Host::parse(host_text).map_err(|_| malformed())?;
    let canonical = host.to_string();
    if canonical != host_text || canonical.contains('*') || (wildcard && !matches!(host, Host::Domain(_))) {
        return Err(malformed());
    }
    let pattern = if wildcard { HostPattern::Subdomains(format!(".{canonical}")) } else { HostPattern::Exact(canonical) };
    Ok(HostRule { pattern, port })
}

/// Splits `host:port`; a colon inside `[v6]` is not a port separator. `None` when
/// the port is not a number from 0 to 65535.
fn split_port(text: &str) -> Option<(&str, Option<u16>)> {
    match text.rsplit_once(':') {
        Some((host, port)) if host.ends_with(']') || !host.contains(':') => Some((host, Some(port.parse().ok()?))),
        _ => Some((text, None)),
    }
}

/// Whether `ip` is a public unicast address: not loopback, private, link-local
/// (which includes cloud metadata at 169.254.169.254), CGNAT, unique-local,
/// multicast, unspecified, documentation or reserved. IPv6 forms that embed an IPv4
/// address (mapped, compatible, NAT64) are judged by the embedded address.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match embedded_ipv4(v6) {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(v6),
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    let special = ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_documentation()
        || a == 0 // "this network"
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT), 100.64/10
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking, 198.18/15
        || a >= 240; // reserved
    !special
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    let special = ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (s[0] & 0xfe00) == 0xfc00 // unique local, fc00::/7
        || (s[0] & 0xffc0) == 0xfe80 // link-local, fe80::/10
        || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated), fec0::/10
        || (s[0] == 0x2001 && s[1] == 0x0db8); // documentation
    !special
}

/// The IPv4 address inside an IPv4-mapped (`::ffff:a.b.c.d`), IPv4-compatible
/// (`::a.b.c.d`, deprecated) or NAT64 (`64:ff9b::a.b.c.d`) IPv6 address.
fn embedded_ipv4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let [.., a, b, c, d] = ip.octets();
    let low = Ipv4Addr::new(a, b, c, d);
    match ip.segments() {
        [0, 0, 0, 0, 0, 0xffff, _, _] => Some(low),
        // `::` and `::1` are IPv6's own unspecified and loopback addresses.
        [0, 0, 0, 0, 0, 0, _, _] if !ip.is_unspecified() && !ip.is_loopback() => Some(low),
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(low),
        _ => None,
    }
}

/// Resolves names with the system resolver and keeps only the addresses the policy
/// allows; the client then connects to those and nothing else.
struct PolicyResolver {
    policy: EgressPolicy,
}

/// The error the resolver returns when a name resolves only to refused addresses.
/// It travels inside the client's error, where [`address_denied`] finds it.
#[derive(Debug, thiserror::Error)]
#[error("{host} resolves only to addresses that are not allowed ({addresses})")]
pub struct AddressDenied {
    host: String,
    addresses: String,
}

impl Resolve for PolicyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        Box::pin(async move {
            let host = name.as_str().to_string();
            // Port 0: the client puts the URL's port on the addresses it gets back.
            let resolved: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = resolved.iter().copied().filter(|a| policy.check_ip(a.ip()).is_ok()).collect();
            if allowed.is_empty() && !resolved.is_empty() {
                let addresses = resolved.iter().map(|a| a.ip().to_string()).collect::<Vec<_>>().join(", ");
                return Err(Box::new(AddressDenied { host, addresses }) as Box<dyn StdError + Send + Sync>);
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

/// The policy refusal inside a client error, if that is why the request failed.
pub(crate) fn address_denied(err: &reqwest::Error) -> Option<&AddressDenied> {
    let mut source = err.source();
    while let Some(e) = source {
        if let Some(denied) = e.downcast_ref::<AddressDenied>() {
            return Some(denied);
        }
        source = e.source();
    }
    None
}

/// A client error with its causes, which reqwest keeps out of its own message.
pub(crate) fn error_chain(err: &dyn StdError) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

/// Builds a header map from the caller's pairs, refusing malformed names and values,
/// the headers the host manages (hop-by-hop, framing, `proxy-*`) and the `reserved`
/// ones the caller manages itself.
pub(crate) fn request_headers(headers: &[(String, String)], reserved: &[&str]) -> Result<HeaderMap, String> {
    let mut map = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| format!("{name:?} is not a valid header name"))?;
        let lower = name.as_str();
        if FORBIDDEN_HEADERS.contains(&lower) || reserved.contains(&lower) || lower.starts_with("proxy-") {
            return Err(format!("header {lower:?} is set by the host and may not be given"));
        }
        let value = HeaderValue::from_str(value).map_err(|_| format!("the value of header {lower:?} is not valid"))?;
        map.append(name, value);
    }
    Ok(map)
}

/// One outbound request. Headers and body carry credentials (bearer tokens, client
/// secrets, refresh tokens), so `Debug` shows only the method and URL.
#[derive(Clone)]
pub struct Request {
    /// `GET`, `HEAD`, `POST`, `PUT`, `PATCH` or `DELETE`.
    pub method: String,
    /// Absolute `http` or `https` URL.
    pub url: String,
    /// Request headers, in order.
    pub headers: Vec<(String, String)>,
    /// Request body; empty for none.
    pub body: Vec<u8>,
    /// Whole-request deadline in milliseconds; 0 for the configured default.
    pub timeout_ms: u32,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request").field("method", &self.method).field("url", &self.url).finish_non_exhaustive()
    }
}

/// A complete response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// Response headers in order, names in lowercase (values decoded lossily as UTF-8).
    pub headers: Vec<(String, String)>,
    /// The whole body.
    pub body: Vec<u8>,
}

/// Why a request produced no response; mirrors the WIT `http-error`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HttpError {
    /// The host, or the address it resolves to, is not allowed.
    #[error("denied: {0}")]
    Denied(String),
    /// Bad URL, method or header.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The deadline passed before the response was complete.
    #[error("timed out")]
    Timeout,
    /// DNS, TCP or TLS failed, or the connection was cut.
    #[error("connection failed: {0}")]
    Connection(String),
    /// The body exceeded the limit (the limit in bytes).
    #[error("response larger than {0} bytes")]
    TooLarge(u64),
}

impl From<EgressError> for HttpError {
    fn from(e: EgressError) -> Self {
        match e {
            EgressError::Invalid(why) => HttpError::InvalidRequest(why),
            EgressError::Denied(why) => HttpError::Denied(why),
        }
    }
}

impl From<reqwest::Error> for HttpError {
    fn from(e: reqwest::Error) -> Self {
        if let Some(denied) = address_denied(&e) {
            HttpError::Denied(denied.to_string())
        } else if e.is_timeout() {
            HttpError::Timeout
        } else {
            // URLs may carry credentials (presigned queries): leave them out.
            HttpError::Connection(error_chain(&e.without_url()))
        }
    }
}

/// The outbound HTTP client. Cheap to clone.
#[derive(Clone)]
pub struct HttpClient {
    client: reqwest::Client,
    policy: EgressPolicy,
    default_timeout: Duration,
    max_response_bytes: u64,
}

impl HttpClient {
    /// A client for `config`; refuses malformed allowlist entries and limits.
    pub fn new(config: HttpConfig) -> anyhow::Result<HttpClient> {
        anyhow::ensure!(config.timeout_ms > 0, "http.timeout_ms must be positive");
        anyhow::ensure!(config.max_response_bytes >= MIN_RESPONSE_LIMIT, "http.max_response_bytes must be at least 8 MiB");
        let policy = config.egress_policy()?;
        let client = policy.client_builder().build().context("building the HTTP client")?;
        Ok(HttpClient {
            client,
            policy,
            default_timeout: Duration::from_millis(config.timeout_ms),
            max_response_bytes: config.max_response_bytes,
        })
    }

    /// Sends one request and returns the complete response, whatever its status.
    /// Everything about the request is checked before any network activity.
    pub async fn send(&self, req: Request) -> Result<Response, HttpError> {
        let method = parse_method(&req.method)?;
        let url = self.policy.check_url(&req.url)?;
        let headers = request_headers(&req.headers, &[]).map_err(HttpError::InvalidRequest)?;
        let deadline = match req.timeout_ms {
            0 => self.default_timeout,
            ms => Duration::from_millis(ms.into()),
        };
        let request = self.client.request(method, url).headers(headers).body(req.body);
        tokio::time::timeout(deadline, self.execute(request)).await.map_err(|_| HttpError::Timeout)?
    }

    async fn execute(&self, request: reqwest::RequestBuilder) -> Result<Response, HttpError> {
        let mut response = request.send().await?;
        let limit = self.max_response_bytes;
        if response.content_length().is_some_and(|len| len > limit) {
            return Err(HttpError::TooLarge(limit));
        }
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(name, value)| (name.as_str().to_string(), String::from_utf8_lossy(value.as_bytes()).into_owned()))
            .collect();
        // Count as we go: a missing or lying Content-Length must not let a body grow
        // past the limit in memory.
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await? {
            if body.len() as u64 + chunk.len() as u64 > limit {
                return Err(HttpError::TooLarge(limit));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Response { status, headers, body })
    }
}

fn parse_method(method: &str) -> Result<reqwest::Method, HttpError> {
    match method {
        "GET" => Ok(reqwest::Method::GET),
        "HEAD" => Ok(reqwest::Method::HEAD),
        "POST" => Ok(reqwest::Method::POST),
        "PUT" => Ok(reqwest::Method::PUT),
        "PATCH" => Ok(reqwest::Method::PATCH),
        "DELETE" => Ok(reqwest::Method::DELETE),
        other => Err(HttpError::InvalidRequest(format!("method {other:?} is not supported"))),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::Router;
    use axum::body::Body;
    use axum::http::{HeaderMap as AxumHeaders, StatusCode};
    use axum::response::IntoResponse;
    use axum::routing::{any, get};

    use super::*;

    /// Serves `router` on an ephemeral loopback port for the rest of the test.
    pub(crate) async fn serve(router: Router) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        addr
    }

    /// A client for `allow_hosts`; `loopback` allows the loopback networks too.
    fn client(allow_hosts: &[&str], loopback: bool) -> HttpClient {
        let allow_hosts = allow_hosts.iter().map(|h| h.to_string()).collect();
        let allow_private_networks = if loopback { vec!["127.0.0.0/8".into(), "::1".into()] } else { vec![] };
        HttpClient::new(HttpConfig { allow_hosts, allow_private_networks, ..HttpConfig::default() }).unwrap()
    }

    #[test]
    fn allowed_private_networks_admit_only_their_own_addresses() {
        let policy = EgressPolicy::new(&[], &["127.0.0.0/8".into(), "10.1.0.0/16".into(), "fd00::1".into()]).unwrap();
        for ip in ["127.0.0.1", "127.255.0.9", "10.1.200.3", "fd00::1", "::ffff:127.0.0.1", "8.8.8.8"] {
            assert!(policy.check_ip(ip.parse().unwrap()).is_ok(), "{ip} is allowed");
        }
        for ip in ["169.254.169.254", "10.2.0.1", "192.168.1.1", "fd00::2", "::1", "fe80::1", "::ffff:169.254.169.254"] {
            assert!(policy.check_ip(ip.parse().unwrap()).is_err(), "{ip} is refused");
        }
        let odd_prefix = EgressPolicy::new(&[], &["10.0.0.0/12".into()]).unwrap();
        assert!(odd_prefix.check_ip("10.15.255.1".parse().unwrap()).is_ok());
        assert!(odd_prefix.check_ip("10.16.0.1".parse().unwrap()).is_err());
        for bad in ["127.0.0.0/33", "localhost", "10.0.0.0/x", "::1/129", "", "0.0.0.0/0", "::/0", "::ffff:10.0.0.0/104"] {
            assert!(EgressPolicy::new(&[], &[bad.to_string()]).is_err(), "{bad:?} is refused");
        }
    }

    fn get_request(url: String) -> Request {
        Request { method: "GET".into(), url, headers: vec![], body: vec![], timeout_ms: 0 }
    }

    /// A server that counts requests, echoes the method, a header and the body, and
    /// offers a redirect, a slow answer and bodies just over the response limit.
    async fn test_server(hits: Arc<AtomicUsize>) -> SocketAddr {
        let counted = move |path: &'static str| {
            let hits = hits.clone();
            move |method: axum::http::Method, headers: AxumHeaders, body: axum::body::Bytes| {
                let hits = hits.clone();
                async move {
                    hits.fetch_add(1, Ordering::SeqCst);
                    let seen = headers.get("x-test").map(|v| v.to_str().unwrap_or("").to_string()).unwrap_or_default();
                    let text = format!("{path} {method} {seen} {}", String::from_utf8_lossy(&body));
                    ([("x-echo", "yes")], text)
                }
            }
        };
        let over_limit = (MIN_RESPONSE_LIMIT + 1) as usize;
        let router = Router::new()
            .route("/echo", any(counted("/echo")))
            .route("/redirect", get(|| async { (StatusCode::FOUND, [("location", "/echo")]) }))
            .route("/slow", get(|| async { tokio::time::sleep(Duration::from_secs(5)).await }))
            .route("/big", get(move || async move { vec![b'x'; over_limit] }))
            .route(
                "/big-chunked",
                get(move || async move {
                    let chunks = (0..=MIN_RESPONSE_LIMIT / 65536).map(|_| Ok::<_, std::io::Error>(vec![b'y'; 65536]));
                    Body::from_stream(futures_util::stream::iter(chunks)).into_response()
                }),
            );
        serve(router).await
    }

    #[tokio::test]
    async fn sends_method_headers_body_and_returns_lowercase_headers() {
        let hits = Arc::new(AtomicUsize::new(0));
        let addr = test_server(hits.clone()).await;
        let http = client(&["127.0.0.1"], true);
        let request = Request {
            method: "POST".into(),
            url: format!("http://{addr}/echo"),
            headers: vec![("X-Test".into(), "hello".into())],
            body: b"payload".to_vec(),
            timeout_ms: 5_000,
        };
        let response = http.send(request).await.unwrap();
        assert_eq!(response.status, 200);
        assert_eq!(String::from_utf8(response.body).unwrap(), "/echo POST hello payload");
        assert!(response.headers.contains(&("x-echo".to_string(), "yes".to_string())));
        assert_eq!(hits.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn redirects_are_returned_not_followed() {
        let hits = Arc::new(AtomicUsize::new(0));
        let addr = test_server(hits.clone()).await;
        let response = client(&["127.0.0.1"], true).send(get_request(format!("http://{addr}/redirect"))).await.unwrap();
        assert_eq!(response.status, 302);
        assert!(response.headers.contains(&("location".to_string(), "/echo".to_string())));
        assert_eq!(hits.load(Ordering::SeqCst), 0, "the redirect target was not fetched");
    }

    #[tokio::test]
    async fn private_addresses_are_refused_unless_allowed() {
        let hits = Arc::new(AtomicUsize::new(0));
        let addr = test_server(hits.clone()).await;
        let strict = client(&["127.0.0.1", "localhost"], false);
        let literal = strict.send(get_request(format!("http://{addr}/echo"))).await;
        assert!(matches!(literal, Err(HttpError::Denied(_))), "{literal:?}");
        // A name is checked after resolution, inside the resolver.
        let named = strict.send(get_request(format!("http://localhost:{}/echo", addr.port()))).await;
        assert!(matches!(&named, Err(HttpError::Denied(why)) if why.contains("localhost")), "{named:?}");
        assert_eq!(hits.load(Ordering::SeqCst), 0);

        let relaxed = client(&["localhost"], true);
        let response = relaxed.send(get_request(format!("http://localhost:{}/echo", addr.port()))).await.unwrap();
        assert_eq!(response.status, 200);
    }

    #[tokio::test]
    async fn hosts_off_the_allowlist_are_denied_before_connecting() {
        let hits = Arc::new(AtomicUsize::new(0));
        let addr = test_server(hits.clone()).await;
        let other_port = client(&[&format!("127.0.0.1:{}", addr.port().wrapping_add(1))], true);
        let result = other_port.send(get_request(format!("http://{addr}/echo"))).await;
        assert!(matches!(result, Err(HttpError::Denied(_))), "{result:?}");
        let result = client(&["api.frame.io"], true).send(get_request(format!("http://{addr}/echo"))).await;
        assert!(matches!(result, Err(HttpError::Denied(_))), "{result:?}");
        assert_eq!(hits.load(Ordering::SeqCst), 0);
        let exact_port = client(&[&format!("127.0.0.1:{}", addr.port())], true);
        assert_eq!(exact_port.send(get_request(format!("http://{addr}/echo"))).await.unwrap().status, 200);
    }

    #[tokio::test]
    async fn responses_over_the_limit_are_refused() {
        let addr = test_server(Arc::new(AtomicUsize::new(0))).await;
        let http = client(&["127.0.0.1"], true);
        for path in ["big", "big-chunked"] {
            let result = http.send(get_request(format!("http://{addr}/{path}"))).await;
            assert_eq!(result, Err(HttpError::TooLarge(MIN_RESPONSE_LIMIT)), "{path}");
        }
    }

    #[tokio::test]
    async fn deadline_gives_timeout() {
        let addr = test_server(Arc::new(AtomicUsize::new(0))).await;
        let mut request = get_request(format!("http://{addr}/slow"));
        request.timeout_ms = 200;
        assert_eq!(client(&["127.0.0.1"], true).send(request).await, Err(HttpError::Timeout));
    }

    #[tokio::test]
    async fn malformed_requests_are_refused_before_connecting() {
        let hits = Arc::new(AtomicUsize::new(0));
        let addr = test_server(hits.clone()).await;
        let http = client(&["127.0.0.1"], true);
        let url = format!("http://{addr}/echo");
        let cases = [
            Request { method: "TRACE".into(), ..get_request(url.clone()) },
            Request { headers: vec![("Host".into(), "evil".into())], ..get_request(url.clone()) },
            Request { headers: vec![("transfer-encoding".into(), "chunked".into())], ..get_request(url.clone()) },
            Request { headers: vec![("Proxy-Authorization".into(), "x".into())], ..get_request(url.clone()) },
            Request { headers: vec![("bad name".into(), "x".into())], ..get_request(url.clone()) },
            Request { headers: vec![("x-ok".into(), "line\r\nbreak".into())], ..get_request(url.clone()) },
            get_request("not a url".into()),
            get_request(format!("ftp://{addr}/echo")),
            get_request("file:///etc/passwd".into()),
        ];
        for request in cases {
            let shown = format!("{request:?}");
            assert!(matches!(http.send(request).await, Err(HttpError::InvalidRequest(_))), "{shown}");
        }
        assert_eq!(hits.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn connection_refused_is_a_connection_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let result = client(&["127.0.0.1"], true).send(get_request(format!("http://{addr}/"))).await;
        assert!(matches!(result, Err(HttpError::Connection(_))), "{result:?}");
    }

    #[test]
    fn allowlist_patterns() {
        let policy = EgressPolicy::new(
            &["api.frame.io".into(), "*.example.com".into(), "ims.test:8443".into(), "[2001:db8::1]".into()],
            &["2001:db8::/32".into()],
        )
        .unwrap();
        let allowed = |url: &str| policy.check_url(url).is_ok();
        assert!(allowed("https://api.frame.io/v4/me"));
        assert!(allowed("http://api.frame.io:8080/"), "a bare host allows any port");
        assert!(allowed("https://API.Frame.IO/"), "URL hosts are normalised to lowercase");
        assert!(!allowed("https://api.frame.io.evil.test/"));
        assert!(!allowed("https://xapi.frame.io/"));
        assert!(allowed("https://cdn.example.com/a"));
        assert!(allowed("https://a.b.example.com/a"));
        assert!(!allowed("https://example.com/"), "the wildcard does not match the bare domain");
        assert!(!allowed("https://badexample.com/"));
        assert!(allowed("https://ims.test:8443/"));
        assert!(!allowed("https://ims.test/"), "port 443 is not 8443");
        assert!(allowed("http://[2001:db8::1]:9000/"));
        assert_eq!(
            policy.check_url("https://other.test/"),
            Err(EgressError::Denied("other.test:443 is not on the allowlist".into()))
        );
    }

    #[test]
    fn malformed_allowlist_entries_are_refused() {
        for bad in [
            "API.frame.io",
            "",
            "*.",
            "*.1.2.3.4",
            "http://x.test",
            "x.test/path",
            "user@x.test",
            "x.test:99999",
            "*x.test",
            "2130706433",
            "::1",
            "a b",
        ] {
            assert!(EgressPolicy::new(&[bad.to_string()], &[]).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn address_classification() {
        let public = ["8.8.8.8", "1.1.1.1", "2606:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"];
        let private = [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "0.1.2.3",
            "224.0.0.1",
            "255.255.255.255",
            "240.0.0.1",
            "198.18.0.1",
            "192.0.0.8",
            "::",
            "::1",
            "fe80::1",
            "fc00::1",
            "fd12:3456::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "64:ff9b::a00:1",
            "2001:db8::1",
        ];
        for ip in public {
            assert!(is_public(ip.parse().unwrap()), "{ip} is public");
        }
        for ip in private {
            assert!(!is_public(ip.parse().unwrap()), "{ip} is not public");
        }
    }

    #[test]
    fn ip_literal_urls_are_checked_without_dns() {
        let policy = EgressPolicy::new(&["169.254.169.254".into(), "127.0.0.1".into(), "[::1]".into()], &[]).unwrap();
        for url in ["http://169.254.169.254/latest/meta-data", "http://2130706433/", "http://[::1]:8080/"] {
            assert!(
                matches!(policy.check_url(url), Err(EgressError::Denied(why)) if why.contains("not a public address")),
                "{url}"
            );
        }
    }

    #[test]
    fn config_limits_are_validated() {
        let small = HttpConfig { max_response_bytes: 1024, ..HttpConfig::default() };
        assert!(HttpClient::new(small).is_err());
        let no_timeout = HttpConfig { timeout_ms: 0, ..HttpConfig::default() };
        assert!(HttpClient::new(no_timeout).is_err());
        let parsed: HttpConfig = toml::from_str("allow_hosts = [\"*.frame.io\"]").unwrap();
        assert_eq!((parsed.timeout_ms, parsed.max_response_bytes, parsed.allow_private_networks.len()), (30_000, 8 << 20, 0));
    }
}
