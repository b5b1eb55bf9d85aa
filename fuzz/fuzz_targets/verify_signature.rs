//! `signature::verify` on arbitrary headers (missing, duplicated, any case, any
//! value, or correctly signed by the target itself), bodies, secrets and clocks.
//!
//! Checks: it never panics; its verdict (accept, or which rejection) equals an
//! independent model of the documented rules; whenever it accepts, the request
//! really carries `v0=` + lowercase hex HMAC-SHA256(secret, "v0:"+ts+":"+body) for
//! one of the secrets with a timestamp within 300 s; and a correctly signed request
//! is accepted but rejected once any one byte of its body, its signature or its
//! timestamp changes.

#![no_main]

use std::sync::LazyLock;

use arbitrary::Arbitrary;
use frameio_connector::host::Header;
use frameio_connector::signature::{self, Rejection};
use frameio_connector_fuzz::{SIGNATURE_HEADER, TIMESTAMP_HEADER, expected_verdict, genuinely_signed, sign};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
enum Clock {
    /// Around now: timestamps of 10 digits.
    Realistic(u32),
    Any(u64),
}

impl Clock {
    fn now(&self) -> u64 {
        match self {
            Clock::Realistic(s) => 1_600_000_000 + u64::from(*s),
            Clock::Any(s) => *s,
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Name {
    /// The timestamp header, with the letters whose bit is set in upper case.
    Timestamp(u32),
    Signature(u32),
    Other(String),
}

fn cased(name: &str, mask: u32) -> String {
    name.chars().enumerate().map(|(i, c)| if mask >> (i % 32) & 1 == 1 { c.to_ascii_uppercase() } else { c }).collect()
}

#[derive(Arbitrary, Debug)]
enum Timestamp {
    /// `now + offset` in decimal.
    Offset(i16),
    /// The same with leading zeros (still digits, still signed as sent).
    Padded(u8, i16),
    Raw(String),
}

impl Timestamp {
    fn render(&self, now: u64) -> String {
        let at = |offset: i16| (i128::from(now) + i128::from(offset)).max(0).to_string();
        match self {
            Timestamp::Offset(o) => at(*o),
            Timestamp::Padded(zeros, o) => format!("{}{}", "0".repeat(usize::from(zeros % 16)), at(*o)),
            Timestamp::Raw(s) => s.clone(),
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Mangle {
    None,
    Uppercase,
    /// Replaces one character with another printable ASCII one.
    Replace(u8, u8),
    Truncate(u8),
    Append(String),
}

#[derive(Arbitrary, Debug)]
enum Value {
    Raw(String),
    Timestamp(Timestamp),
    /// A correct signature of the body under secret number `secret`, for the first
    /// timestamp header's value (`None`) or for another timestamp, then mangled.
    Signed { secret: u8, timestamp: Option<Timestamp>, mangle: Mangle },
}

#[derive(Arbitrary, Debug)]
struct Input {
    clock: Clock,
    secrets: Vec<String>,
    body: Vec<u8>,
    headers: Vec<(Name, Value)>,
    /// For the round trip: which body byte to flip and with what.
    flip_at: u16,
    flip_mask: u8,
}

fn build_headers(input: &Input, now: u64) -> Vec<Header> {
    let first_timestamp = input.headers.iter().find_map(|(n, v)| match (n, v) {
        (Name::Timestamp(_), Value::Timestamp(t)) => Some(t.render(now)),
        (Name::Timestamp(_), Value::Raw(s)) => Some(s.clone()),
        _ => None,
    });
    input
        .headers
        .iter()
        .map(|(name, value)| {
            let name = match name {
                Name::Timestamp(mask) => cased(TIMESTAMP_HEADER, *mask),
                Name::Signature(mask) => cased(SIGNATURE_HEADER, *mask),
                Name::Other(s) => s.clone(),
            };
            let value = match value {
                Value::Raw(s) => s.clone(),
                Value::Timestamp(t) => t.render(now),
                Value::Signed { secret, timestamp, mangle } => {
                    let key = match input.secrets.len() {
                        0 => "",
                        n => input.secrets[usize::from(*secret) % n].as_str(),
                    };
                    let ts = match timestamp {
                        Some(t) => t.render(now),
                        None => first_timestamp.clone().unwrap_or_else(|| now.to_string()),
                    };
                    let mut sig = sign(key, &ts, &input.body);
                    match mangle {
                        Mangle::None => {}
                        Mangle::Uppercase => sig = sig.to_ascii_uppercase(),
                        Mangle::Replace(at, with) => {
                            let mut bytes = sig.into_bytes();
                            let at = usize::from(*at) % bytes.len();
                            bytes[at] = 0x20 + with % 0x5f;
                            sig = String::from_utf8(bytes).unwrap();
                        }
                        Mangle::Truncate(n) => sig.truncate(usize::from(*n) % (sig.len() + 1)),
                        Mangle::Append(s) => sig.push_str(s),
                    }
                    sig
                }
            };
            (name, value)
        })
        .collect()
}

fn round_trip(input: &Input, now: u64) {
    let secret = input.secrets.iter().find(|s| !s.is_empty()).map_or("fallback-secret", String::as_str);
    let secrets: Vec<&str> = input.secrets.iter().map(String::as_str).chain([secret]).collect();
    // A clock whose timestamps the verifier can read (at most 12 digits).
    let now = if now > 999_999_999_000 { now % 999_999_999_000 + 300 } else { now.max(300) };
    let ts = now.to_string();
    let body = &input.body;
    let headers = |ts: &str, sig: String| -> Vec<Header> {
        vec![(TIMESTAMP_HEADER.into(), ts.into()), (SIGNATURE_HEADER.into(), sig)]
    };
    let good = sign(secret, &ts, body);
    assert_eq!(signature::verify(&headers(&ts, good.clone()), body, &secrets, now), Ok(()), "a correct signature is refused");

    // Any one byte of the body changed.
    let mut tampered = body.clone();
    if tampered.is_empty() {
        tampered.push(input.flip_mask);
    } else {
        let at = usize::from(input.flip_at) % tampered.len();
        tampered[at] ^= input.flip_mask.max(1);
    }
    let got = signature::verify(&headers(&ts, good.clone()), &tampered, &secrets, now);
    let forged = secrets.iter().any(|s| !s.is_empty() && sign(s, &ts, &tampered) == good);
    assert!(forged || got == Err(Rejection::Mismatch), "body changed in one byte: {got:?}");

    // Any one hex digit of the signature changed to another lowercase hex digit.
    let mut sig = good.clone().into_bytes();
    let at = 3 + usize::from(input.flip_at) % 64;
    let digits = b"0123456789abcdef";
    let pos = digits.iter().position(|d| *d == sig[at]).unwrap();
    sig[at] = digits[(pos + 1 + usize::from(input.flip_mask) % 15) % 16];
    let sig = String::from_utf8(sig).unwrap();
    let got = signature::verify(&headers(&ts, sig), body, &secrets, now);
    assert_eq!(got, Err(Rejection::Mismatch), "signature changed in one digit");

    // The timestamp moved by a second (still inside the window).
    let moved = (now - 1).to_string();
    let got = signature::verify(&headers(&moved, good), body, &secrets, now);
    assert_eq!(got, Err(Rejection::Mismatch), "timestamp changed");
}

/// `FUZZ_TRACE=1`: each verdict on stderr, to see what a corpus reaches:
/// `FUZZ_TRACE=1 cargo fuzz run verify_signature -- -runs=0 2>&1 | grep ^trace: | sort | uniq -c`.
static TRACE: LazyLock<bool> = LazyLock::new(|| std::env::var_os("FUZZ_TRACE").is_some());

fuzz_target!(|input: Input| {
    let now = input.clock.now();
    let headers = build_headers(&input, now);
    let secrets: Vec<&str> = input.secrets.iter().map(String::as_str).collect();

    let got = signature::verify(&headers, &input.body, &secrets, now);
    if *TRACE {
        eprintln!("trace: {got:?}");
    }
    let want = expected_verdict(&headers, &input.body, &secrets, now);
    assert_eq!(got, want, "verdict differs from the documented rules for {headers:?}");
    if got.is_ok() {
        assert!(genuinely_signed(&headers, &input.body, &secrets, now), "accepted a request that is not signed: {headers:?}");
        assert_eq!(headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case(SIGNATURE_HEADER)).count(), 1);
        assert_eq!(headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case(TIMESTAMP_HEADER)).count(), 1);
    }
    // Rejection texts are safe to send back: they never contain the right signature.
    if let Err(rejection) = &got {
        let text = rejection.to_string();
        for secret in secrets.iter().filter(|s| !s.is_empty()) {
            for ts in frameio_connector_fuzz::values(&headers, TIMESTAMP_HEADER) {
                let right = sign(secret, ts, &input.body);
                assert!(!text.contains(&right[3..]), "rejection text reveals the signature");
            }
        }
    }

    round_trip(&input, now);
});
