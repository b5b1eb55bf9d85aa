//! The one retry policy, for every flow: how long to wait after a passing failure,
//! and when to stop trying.

use crate::host::Host;

/// Attempts of one step before a passing failure counts as final. With the backoff
/// below, a step keeps trying through about a minute of failures (two at most)
/// before it gives up: a step of several calls, each failing now and then, must not
/// give up on a bad minute of Frame.io's.
pub const MAX_ATTEMPTS: u32 = 8;
/// Shortest wait before a retry.
const MIN_RETRY_MS: u32 = 100;
/// Longest wait before a retry, even when Frame.io asks for more: its rate-limit
/// windows are a minute at most.
const MAX_RETRY_MS: u32 = 120_000;
/// The most one step can spend waiting between its attempts: a failing step gives
/// up within this (plus its attempts' own run time, each bounded by the host's
/// call deadline).
pub const RETRY_BUDGET_MS: u32 = (MAX_ATTEMPTS - 1) * MAX_RETRY_MS;

/// Whether attempt number `attempt` (0 for the first) was the last one allowed.
pub fn exhausted(attempt: u32) -> bool {
    attempt + 1 >= MAX_ATTEMPTS
}

/// Frame.io's own hint when it gave one (at most [`MAX_RETRY_MS`]); else capped
/// exponential backoff with full jitter (1 s, 2 s, 4 s, ... up to 60 s, each drawn
/// at random below its cap), so that jobs failing together do not retry together.
pub fn delay_ms(host: &dyn Host, attempt: u32, hint_ms: Option<u32>) -> u32 {
    if let Some(hint) = hint_ms {
        return hint.clamp(MIN_RETRY_MS, MAX_RETRY_MS);
    }
    let cap = (1000u32 << attempt.min(6)).min(60_000);
    let random = host.random_bytes(4);
    let draw = u32::from_le_bytes([random[0], random[1], random[2], random[3]]);
    MIN_RETRY_MS + draw % cap
}
