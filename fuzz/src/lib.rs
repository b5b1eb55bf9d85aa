//! Shared by the fuzz targets: an independent model of Frame.io's `v0` request
//! signature, written from the scheme's description rather than from
//! `frameio_connector::signature`, to check the connector's verifier against.

use frameio_connector::host::Header;
use frameio_connector::signature::Rejection;
use hmac::{Hmac, Mac};
use sha2::Sha256;

pub const TIMESTAMP_HEADER: &str = "x-frameio-request-timestamp";
pub const SIGNATURE_HEADER: &str = "x-frameio-signature";
pub const MAX_SKEW_SECS: i128 = 300;

/// `v0=` + lowercase hex HMAC-SHA256(secret, "v0:" + timestamp + ":" + body).
pub fn sign(secret: &str, timestamp: &str, body: &[u8]) -> String {
    let mut message = Vec::with_capacity(body.len() + timestamp.len() + 4);
    message.extend_from_slice(b"v0:");
    message.extend_from_slice(timestamp.as_bytes());
    message.push(b':');
    message.extend_from_slice(body);
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(&message);
    format!("v0={}", hex::encode(mac.finalize().into_bytes()))
}

/// The values of every header called `name`, ignoring ASCII case.
pub fn values<'a>(headers: &'a [Header], name: &str) -> Vec<&'a str> {
    headers.iter().filter(|(n, _)| n.to_ascii_lowercase() == name).map(|(_, v)| v.as_str()).collect()
}

/// The verdict the documented rules give, in the documented order of checks:
/// one timestamp header, one signature header, a timestamp of 1 to 12 decimal
/// digits within 300 s of `now` either way, `v0=` and 64 lowercase hex digits,
/// equal to the signature under one of the non-empty secrets.
pub fn expected_verdict(headers: &[Header], body: &[u8], secrets: &[&str], now: u64) -> Result<(), Rejection> {
    let one = |name: &'static str| match values(headers, name).as_slice() {
        [] => Err(Rejection::Missing(name)),
        [v] => Ok(v.to_string()),
        _ => Err(Rejection::Duplicated(name)),
    };
    let ts = one(TIMESTAMP_HEADER)?;
    let sig = one(SIGNATURE_HEADER)?;
    if ts.is_empty() || ts.len() > 12 || !ts.chars().all(|c| c.is_ascii_digit()) {
        return Err(Rejection::MalformedTimestamp);
    }
    let signed_at: i128 = ts.parse().unwrap();
    if (signed_at - now as i128).abs() > MAX_SKEW_SECS {
        return Err(Rejection::OutsideWindow);
    }
    let hex_part = sig.strip_prefix("v0=").unwrap_or("");
    if !sig.starts_with("v0=") || hex_part.len() != 64 || !hex_part.chars().all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)) {
        return Err(Rejection::MalformedSignature);
    }
    if secrets.iter().any(|s| !s.is_empty() && sign(s, &ts, body) == sig) { Ok(()) } else { Err(Rejection::Mismatch) }
}

/// The brief's acceptance oracle on its own: some signature header is the `v0`
/// signature of the body under one of the non-empty secrets, for a timestamp header
/// within 300 s of `now`.
pub fn genuinely_signed(headers: &[Header], body: &[u8], secrets: &[&str], now: u64) -> bool {
    values(headers, TIMESTAMP_HEADER).iter().any(|ts| {
        let fresh = ts.parse::<u64>().is_ok_and(|t| (t as i128 - now as i128).abs() <= MAX_SKEW_SECS);
        fresh
            && values(headers, SIGNATURE_HEADER)
                .iter()
                .any(|sig| secrets.iter().any(|s| !s.is_empty() && sign(s, ts, body) == *sig))
    })
}
