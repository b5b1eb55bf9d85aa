//! Frame.io's request signature (custom actions and webhooks, v2 and V4 alike):
//! `X-Frameio-Signature: v0=<hex HMAC-SHA256(secret, "v0:" + timestamp + ":" + raw body)>`
//! with the timestamp in `X-Frameio-Request-Timestamp`.
//!
//! The check runs over the raw body bytes, bounds the timestamp in both directions,
//! accepts exactly one well-formed header of each kind, and compares in constant time.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::host::Header;

/// Largest distance between the signed timestamp and our clock, either way.
pub const MAX_SKEW_SECS: u64 = 300;
const TIMESTAMP_HEADER: &str = "x-frameio-request-timestamp";
const SIGNATURE_HEADER: &str = "x-frameio-signature";

/// Why a request's signature was refused. The text is safe to send back: it never
/// says what the right signature would have been.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rejection {
    Missing(&'static str),
    Duplicated(&'static str),
    MalformedTimestamp,
    OutsideWindow,
    MalformedSignature,
    Mismatch,
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rejection::Missing(h) => write!(f, "missing {h} header"),
            Rejection::Duplicated(h) => write!(f, "{h} header given more than once"),
            Rejection::MalformedTimestamp => f.write_str("malformed request timestamp"),
            Rejection::OutsideWindow => write!(f, "request timestamp is more than {MAX_SKEW_SECS} seconds from now"),
            Rejection::MalformedSignature => f.write_str("malformed signature"),
            Rejection::Mismatch => f.write_str("signature does not match"),
        }
    }
}

/// The one value of a header (names compare case-insensitively).
fn single_header<'a>(headers: &'a [Header], name: &'static str) -> Result<&'a str, Rejection> {
    let mut values = headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str());
    let first = values.next().ok_or(Rejection::Missing(name))?;
    if values.next().is_some() {
        return Err(Rejection::Duplicated(name));
    }
    Ok(first)
}

/// Decimal seconds, digits only: no sign, no spaces, no exponent, at most 12 digits.
fn parse_timestamp(raw: &str) -> Result<u64, Rejection> {
    if raw.is_empty() || raw.len() > 12 || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Rejection::MalformedTimestamp);
    }
    raw.parse().map_err(|_| Rejection::MalformedTimestamp)
}

/// `v0=` and exactly 64 lowercase hex digits, as Frame.io sends it.
fn parse_signature(raw: &str) -> Result<[u8; 32], Rejection> {
    let hex_part = raw.strip_prefix("v0=").ok_or(Rejection::MalformedSignature)?;
    let lower_hex = hex_part.len() == 64 && hex_part.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if !lower_hex {
        return Err(Rejection::MalformedSignature);
    }
    let mut mac = [0u8; 32];
    hex::decode_to_slice(hex_part, &mut mac).map_err(|_| Rejection::MalformedSignature)?;
    Ok(mac)
}

fn mac_for(secret: &str, timestamp: &str, body: &[u8]) -> Hmac<Sha256> {
    // HMAC takes keys of any length, so this cannot fail.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC accepts any key length");
    mac.update(b"v0:");
    mac.update(timestamp.as_bytes());
    mac.update(b":");
    mac.update(body);
    mac
}

/// Checks a request signed with any of `secrets` (more than one during a rotation),
/// at time `now` (Unix seconds).
pub fn verify(headers: &[Header], body: &[u8], secrets: &[&str], now: u64) -> Result<(), Rejection> {
    let timestamp = single_header(headers, TIMESTAMP_HEADER)?;
    let signature = single_header(headers, SIGNATURE_HEADER)?;
    let signed_at = parse_timestamp(timestamp)?;
    if signed_at.abs_diff(now) > MAX_SKEW_SECS {
        return Err(Rejection::OutsideWindow);
    }
    let expected = parse_signature(signature)?;
    let matches = secrets
        .iter()
        .filter(|s| !s.is_empty())
        .any(|secret| mac_for(secret, timestamp, body).verify_slice(&expected).is_ok());
    if matches { Ok(()) } else { Err(Rejection::Mismatch) }
}

/// Signs a body the way Frame.io does (for tests and the simulator's peers).
#[cfg(test)]
pub fn sign(secret: &str, timestamp: u64, body: &[u8]) -> String {
    format!("v0={}", hex::encode(mac_for(secret, &timestamp.to_string(), body).finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000;
    const SECRET: &str = "s3cr3t";
    const BODY: &[u8] = br#"{"action_id":"a","interaction_id":"i"}"#;

    fn headers(ts: &str, sig: &str) -> Vec<Header> {
        vec![
            ("X-Frameio-Request-Timestamp".into(), ts.into()),
            ("X-Frameio-Signature".into(), sig.into()),
        ]
    }

    fn signed(ts: u64) -> Vec<Header> {
        headers(&ts.to_string(), &sign(SECRET, ts, BODY))
    }

    #[test]
    fn accepts_a_fresh_correct_signature() {
        assert_eq!(verify(&signed(NOW), BODY, &[SECRET], NOW), Ok(()));
    }

    /// A published vector for the identical `v0:{ts}:{body}` HMAC-SHA256 scheme:
    /// Slack's request-signing documentation example (secret, timestamp, body and
    /// expected signature as published there).
    #[test]
    fn matches_a_third_party_known_answer_vector() {
        let secret = "8f742231b10e8888abcd99yyyzzz85a5";
        let ts = "1531420618";
        let body = b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
        let expected = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";
        let h = headers(ts, expected);
        assert_eq!(verify(&h, body, &[secret], 1_531_420_618), Ok(()));
    }

    #[test]
    fn window_is_enforced_both_ways() {
        assert_eq!(verify(&signed(NOW - 299), BODY, &[SECRET], NOW), Ok(()));
        assert_eq!(verify(&signed(NOW + 299), BODY, &[SECRET], NOW), Ok(()));
        assert_eq!(verify(&signed(NOW - 301), BODY, &[SECRET], NOW), Err(Rejection::OutsideWindow));
        assert_eq!(verify(&signed(NOW + 301), BODY, &[SECRET], NOW), Err(Rejection::OutsideWindow));
    }

    #[test]
    fn malformed_headers_are_refused() {
        let good = sign(SECRET, NOW, BODY);
        let ts = NOW.to_string();
        let cases: Vec<(Vec<Header>, Rejection)> = vec![
            (vec![("x-frameio-signature".into(), good.clone())], Rejection::Missing(TIMESTAMP_HEADER)),
            (vec![("x-frameio-request-timestamp".into(), ts.clone())], Rejection::Missing(SIGNATURE_HEADER)),
            (headers("-1", &good), Rejection::MalformedTimestamp),
            (headers("1e9", &good), Rejection::MalformedTimestamp),
            (headers(" 1700000000", &good), Rejection::MalformedTimestamp),
            (headers("99999999999999999999", &good), Rejection::MalformedTimestamp),
            (headers(&ts, &good.to_uppercase().replacen("V0=", "v0=", 1)), Rejection::MalformedSignature),
            (headers(&ts, &good.replacen("v0=", "v1=", 1)), Rejection::MalformedSignature),
            (headers(&ts, &good.replacen("v0=", "V0=", 1)), Rejection::MalformedSignature),
            (headers(&ts, &good[3..]), Rejection::MalformedSignature),
            (headers(&ts, &good[..good.len() - 1]), Rejection::MalformedSignature),
            (headers(&ts, "v0="), Rejection::MalformedSignature),
            (headers(&ts, &format!("{good}00")), Rejection::MalformedSignature),
            (headers(&ts, &format!("v0={}", "zz".repeat(32))), Rejection::MalformedSignature),
        ];
        for (h, want) in cases {
            assert_eq!(verify(&h, BODY, &[SECRET], NOW), Err(want.clone()), "{h:?}");
        }
    }

    #[test]
    fn duplicated_headers_are_refused_even_if_both_are_valid() {
        let mut h = signed(NOW);
        h.push(("x-frameio-signature".into(), sign(SECRET, NOW, BODY)));
        assert_eq!(verify(&h, BODY, &[SECRET], NOW), Err(Rejection::Duplicated(SIGNATURE_HEADER)));
        let mut h = signed(NOW);
        h.push(("X-FRAMEIO-REQUEST-TIMESTAMP".into(), NOW.to_string()));
        assert_eq!(verify(&h, BODY, &[SECRET], NOW), Err(Rejection::Duplicated(TIMESTAMP_HEADER)));
    }

    #[test]
    fn any_change_to_body_timestamp_or_secret_fails() {
        let h = signed(NOW);
        let mut one_byte = BODY.to_vec();
        one_byte[5] ^= 1;
        let reserialised = serde_json::to_vec_pretty(&serde_json::from_slice::<serde_json::Value>(BODY).unwrap()).unwrap();
        let mut trailing = BODY.to_vec();
        trailing.push(b'\n');
        for body in [&one_byte[..], &reserialised, &trailing, b""] {
            assert_eq!(verify(&h, body, &[SECRET], NOW), Err(Rejection::Mismatch));
        }
        assert_eq!(verify(&h, BODY, &["other"], NOW), Err(Rejection::Mismatch));
        assert_eq!(verify(&h, BODY, &[""], NOW), Err(Rejection::Mismatch));
        let shifted = headers(&(NOW + 1).to_string(), &sign(SECRET, NOW, BODY));
        assert_eq!(verify(&shifted, BODY, &[SECRET], NOW), Err(Rejection::Mismatch));
    }

    #[test]
    fn either_secret_passes_during_rotation() {
        let h = signed(NOW);
        assert_eq!(verify(&h, BODY, &["new-secret", SECRET], NOW), Ok(()));
    }
}
