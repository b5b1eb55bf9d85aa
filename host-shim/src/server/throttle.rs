//! Limiting failed signature checks per source address. A request whose signature
//! fails costs the host as much as a real one (its body is read and handed to the
//! component), so a source that keeps failing is answered 429 with `Retry-After`
//! before its body is read. Requests that pass never spend the source's allowance,
//! so Frame.io's own addresses are never held back by a stranger's failures.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;

use super::error_response;

/// Sources tracked at most; past this, sources with a full allowance are forgotten.
const MAX_TRACKED: usize = 16_384;

/// A token bucket per source: a failure takes a token, time puts them back.
pub struct FailureLimiter {
    burst: f64,
    per_second: f64,
    sources: Mutex<HashMap<IpAddr, Bucket>>,
}

#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl FailureLimiter {
    /// `burst` failures at once, `per_minute` more each minute; `None` when the
    /// limit is turned off (0 per minute).
    pub fn new(burst: u32, per_minute: u32) -> Option<Arc<FailureLimiter>> {
        (per_minute > 0).then(|| {
            Arc::new(FailureLimiter {
                burst: f64::from(burst.max(1)),
                per_second: f64::from(per_minute) / 60.0,
                sources: Mutex::new(HashMap::new()),
            })
        })
    }

    /// `Err(wait)` when `source` has no failures left: how long until it has one.
    pub fn check(&self, source: IpAddr, now: Instant) -> Result<(), Duration> {
        let sources = self.sources.lock().unwrap_or_else(|p| p.into_inner());
        let Some(bucket) = sources.get(&group(source)) else { return Ok(()) };
        let tokens = self.refilled(*bucket, now);
        if tokens >= 1.0 { Ok(()) } else { Err(Duration::from_secs_f64((1.0 - tokens) / self.per_second)) }
    }

    /// Counts a failed verification from `source`.
    pub fn record_failure(&self, source: IpAddr, now: Instant) {
        let mut sources = self.sources.lock().unwrap_or_else(|p| p.into_inner());
        if sources.len() >= MAX_TRACKED {
            sources.retain(|_, bucket| self.refilled(*bucket, now) < self.burst);
            if sources.len() >= MAX_TRACKED {
                // Every tracked source is failing: start over rather than grow.
                sources.clear();
            }
        }
        let bucket = sources.entry(group(source)).or_insert(Bucket { tokens: self.burst, updated: now });
        let tokens = self.refilled(*bucket, now);
        *bucket = Bucket { tokens: (tokens - 1.0).max(0.0), updated: now };
    }

    fn refilled(&self, bucket: Bucket, now: Instant) -> f64 {
        let earned = now.saturating_duration_since(bucket.updated).as_secs_f64() * self.per_second;
        (bucket.tokens + earned).min(self.burst)
    }
}

/// The unit a limit applies to: an IPv4 address, or an IPv6 /64 (one subscriber's
/// network, whose addresses cost nothing to change).
fn group(source: IpAddr) -> IpAddr {
    match source.to_canonical() {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

/// Middleware for the routes Frame.io calls (the public listener layers it on them only).
pub async fn limit(
    State(limiter): State<Arc<FailureLimiter>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    if let Err(wait) = limiter.check(peer.ip(), Instant::now()) {
        let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
        let mut response = error_response(StatusCode::TOO_MANY_REQUESTS, "too many failed signature checks from this address");
        let headers = response.headers_mut();
        headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        return response;
    }
    let response = next.run(request).await;
    if response.status() == StatusCode::UNAUTHORIZED {
        limiter.record_failure(peer.ip(), Instant::now());
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_gets_its_burst_then_one_failure_per_refill() {
        let limiter = FailureLimiter::new(3, 60).unwrap();
        let (source, t0) = ("198.51.100.7".parse().unwrap(), Instant::now());
        for _ in 0..3 {
            assert!(limiter.check(source, t0).is_ok());
            limiter.record_failure(source, t0);
        }
        let wait = limiter.check(source, t0).unwrap_err();
        assert!(wait > Duration::from_millis(900) && wait <= Duration::from_secs(1), "{wait:?}");
        assert!(limiter.check(source, t0 + Duration::from_secs(1)).is_ok(), "a second earns one back");
        assert!(limiter.check("198.51.100.8".parse().unwrap(), t0).is_ok(), "other sources are not held back");
    }

    #[test]
    fn an_ipv6_subnet_shares_one_allowance_and_mapped_ipv4_is_ipv4() {
        let limiter = FailureLimiter::new(1, 60).unwrap();
        let now = Instant::now();
        limiter.record_failure("2001:db8:1:2::1".parse().unwrap(), now);
        assert!(limiter.check("2001:db8:1:2::ffff".parse().unwrap(), now).is_err(), "same /64");
        assert!(limiter.check("2001:db8:1:3::1".parse().unwrap(), now).is_ok(), "another /64");
        limiter.record_failure("::ffff:192.0.2.1".parse().unwrap(), now);
        assert!(limiter.check("192.0.2.1".parse().unwrap(), now).is_err());
    }

    #[test]
    fn the_table_of_sources_stays_bounded() {
        let limiter = FailureLimiter::new(2, 60).unwrap();
        let now = Instant::now();
        for i in 0..(MAX_TRACKED as u32 + 100) {
            limiter.record_failure(IpAddr::from(i.to_be_bytes()), now);
        }
        assert!(limiter.sources.lock().unwrap().len() <= MAX_TRACKED);
    }

    #[test]
    fn zero_per_minute_turns_the_limit_off() {
        assert!(FailureLimiter::new(20, 0).is_none());
    }
}
