//! Pacing calls under Frame.io's rate limits, so that a long walk (an archive of
//! thousands of assets) runs at the limits rather than into them.
//!
//! Frame.io limits each user per class of route, and says on every answer how:
//! `x-ratelimit-limit` requests per `x-ratelimit-window` milliseconds, of which
//! `x-ratelimit-remaining` are left. Each route (method and path, with identifiers
//! masked) gets a bucket per connected user in `storage`, so every job of that
//! connection shares it. The bucket is a generic cell rate algorithm: it keeps the
//! theoretical arrival time `tat` of the next call; a call takes its slot by
//! compare-and-swap, waiting first when the bucket is full. Answers correct the
//! bucket from what Frame.io says remains, which also accounts for calls made by
//! other clients of the same user.
//!
//! Short waits are slept inside the call; a longer one ends the step with
//! [`Error::Paced`], which the job runner turns into a later step without counting
//! it as a failure. 429s that happen anyway are retried by the one retry policy.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::host::{Host, HttpResponse, Method};
use crate::store;

/// `pace/<user>/<route>`: one bucket.
const PACE: &str = "pace/";
/// Longest wait slept inside a call; a call's step must fit the host's deadline.
const MAX_INLINE_WAIT_MS: u64 = 3_000;
/// Compare-and-swap attempts when other calls take slots at the same moment.
const RESERVE_ATTEMPTS: u32 = 8;

/// A route's bucket, learnt from Frame.io's headers.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
struct Bucket {
    /// Milliseconds per request at the limit (`window / limit`).
    interval_ms: u64,
    /// Requests that may go at once (the limit).
    capacity: u64,
    /// When the bucket is next empty, in Unix milliseconds.
    tat_ms: u64,
}

impl Bucket {
    /// How long a call now must wait for room, and the bucket once it has gone.
    fn reserve(&self, now_ms: u64) -> (u64, Bucket) {
        let tat = self.tat_ms.max(now_ms);
        let allowance = self.capacity.saturating_sub(1) * self.interval_ms;
        let wait = tat.saturating_sub(now_ms + allowance);
        (wait, Bucket { tat_ms: tat + self.interval_ms, ..self.clone() })
    }
}

/// The pacing of one connected user's calls.
pub struct Pacer<'h> {
    host: &'h dyn Host,
    user: String,
}

impl<'h> Pacer<'h> {
    pub fn new(host: &'h dyn Host, user: &str) -> Self {
        Pacer { host, user: user.to_string() }
    }

    /// Takes a slot for a call to `path`, sleeping when the wait is short;
    /// `Error::Paced` when it is longer. A route not heard from yet goes at once.
    pub fn admit(&self, method: Method, path: &str) -> Result<()> {
        let key = self.key(method, path);
        for _ in 0..RESERVE_ATTEMPTS {
            let Some(stored) = store::load::<Bucket>(self.host, &key)? else { return Ok(()) };
            let (wait, taken) = stored.value.reserve(self.host.now_ms());
            if wait > MAX_INLINE_WAIT_MS {
                return Err(Error::Paced { wait_ms: u32::try_from(wait).unwrap_or(u32::MAX), route: route_of(method, path) });
            }
            if store::save_if(self.host, &key, Some(stored.revision), &taken)?.is_some() {
                if wait > 0 {
                    self.host.sleep_ms(wait as u32);
                }
                return Ok(());
            }
        }
        // Many calls at once on one route: go, and let Frame.io's answer correct the bucket.
        Ok(())
    }

    /// Corrects the route's bucket from the answer's `x-ratelimit-*` headers.
    pub fn learn(&self, method: Method, path: &str, resp: &HttpResponse) -> Result<()> {
        let number = |name| resp.header(name).and_then(|v| v.trim().parse::<u64>().ok());
        let (Some(limit), Some(window), Some(remaining)) =
            (number("x-ratelimit-limit"), number("x-ratelimit-window"), number("x-ratelimit-remaining"))
        else {
            return Ok(());
        };
        if limit == 0 || window == 0 {
            return Ok(());
        }
        let interval_ms = (window / limit).max(1);
        let used = limit - remaining.min(limit);
        let said = self.host.now_ms() + used * interval_ms;
        let key = self.key(method, path);
        let known = store::load::<Bucket>(self.host, &key)?.map(|s| s.value);
        let tat_ms = match &known {
            Some(b) if b.interval_ms == interval_ms && b.capacity == limit => b.tat_ms.max(said),
            _ => said,
        };
        let bucket = Bucket { interval_ms, capacity: limit, tat_ms };
        if known.as_ref() != Some(&bucket) {
            store::save(self.host, &key, &bucket)?;
        }
        Ok(())
    }

    fn key(&self, method: Method, path: &str) -> String {
        format!("{PACE}{}/{}", self.user, route_of(method, path))
    }
}

/// The route of a call: its method and path without the query, identifiers masked
/// (`GET /assets/*/children`), so every call to one endpoint shares a bucket.
pub fn route_of(method: Method, path: &str) -> String {
    let path = path.split('?').next().unwrap_or_default();
    let masked: Vec<&str> = path.split('/').map(|segment| if looks_like_id(segment) { "*" } else { segment }).collect();
    format!("{} {}", method.name(), masked.join("/"))
}

/// Frame.io's identifiers are UUIDs or long opaque strings; route words are short
/// and have no digits.
fn looks_like_id(segment: &str) -> bool {
    segment.len() >= 20 || segment.bytes().any(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake_host::FakeHost;

    fn answer(limit: u64, remaining: u64, window: u64) -> HttpResponse {
        let headers = [("x-ratelimit-limit", limit), ("x-ratelimit-remaining", remaining), ("x-ratelimit-window", window)];
        HttpResponse { status: 200, headers: headers.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect(), body: Vec::new() }
    }

    #[test]
    fn routes_mask_identifiers_and_drop_queries() {
        let id = "6f2b9c1e-0d7a-4f43-9a55-2c0d1e7b8a90";
        assert_eq!(route_of(Method::Get, &format!("/assets/{id}/children?page=2")), "GET /assets/*/children");
        assert_eq!(route_of(Method::Get, "/accounts/acc1/folders/f9/children"), "GET /accounts/*/folders/*/children");
        assert_eq!(route_of(Method::Post, "/version_stacks"), "POST /version_stacks");
    }

    #[test]
    fn a_full_bucket_waits_its_interval_and_a_long_wait_ends_the_step() {
        let host = FakeHost::new();
        let pacer = Pacer::new(&host, "dana");
        // 40 a minute, all spent: the next call is 1.5 s away, slept inline.
        pacer.learn(Method::Get, "/assets/a1/children", &answer(40, 0, 60_000)).unwrap();
        let before = host.slept_ms.get();
        pacer.admit(Method::Get, "/assets/a2/children").unwrap();
        assert_eq!(host.slept_ms.get() - before, 1_500);
        // 5 a minute, all spent: 12 s is too long to sleep in a step.
        pacer.learn(Method::Get, "/projects/p1", &answer(5, 0, 60_000)).unwrap();
        match pacer.admit(Method::Get, "/projects/p2") {
            Err(Error::Paced { wait_ms, route }) => assert_eq!((wait_ms, route.as_str()), (12_000, "GET /projects/*")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn room_in_the_bucket_goes_at_once_and_unknown_routes_are_not_held() {
        let host = FakeHost::new();
        let pacer = Pacer::new(&host, "dana");
        pacer.admit(Method::Get, "/me").unwrap();
        pacer.learn(Method::Get, "/assets/a1", &answer(5, 4, 1_000)).unwrap();
        for _ in 0..4 {
            pacer.admit(Method::Get, "/assets/a1").unwrap();
        }
        assert_eq!(host.slept_ms.get(), 0, "the limit's burst goes without waiting");
        pacer.admit(Method::Get, "/assets/a1").unwrap();
        assert!(host.slept_ms.get() > 0, "the sixth call in a second waits");
    }
}
