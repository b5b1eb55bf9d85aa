//! `custom_action::Event::parse`, the JSON parser of custom-action deliveries (clicks
//! and form submissions), on arbitrary bytes: the parser `inbound::handle` runs once
//! a signature has been verified, fuzzed directly so that no HMAC stands in the way.
//!
//! Checks: no panic; in an accepted body, `action_id`, `interaction_id` and
//! `resource.id` (when there is a resource) are Frame.io-shaped identifiers (1 to 128
//! of `A-Za-z0-9-_:.`, not `.` or `..`: nothing that could reshape a URL path or a
//! storage key); an accepted body is strict JSON (valid UTF-8, valid escapes) and an
//! object; and its ids and `data` are the values that JSON holds.
//!
//! This target found two leniencies of serde's derive, since closed: a struct also
//! came as an array of its fields, and the strings of unknown fields were skipped
//! without checking their UTF-8 or `\u` escapes.

#![no_main]

use frameio_connector::custom_action::Event;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fn frameio_shaped(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_:.".contains(&b))
        && id != "."
        && id != ".."
}

fuzz_target!(|body: &[u8]| {
    let Ok(event) = Event::parse(body) else { return };
    for id in [&event.action_id, &event.interaction_id] {
        assert!(frameio_shaped(id), "accepted id {id:?}");
    }
    if let Some(resource) = &event.resource {
        assert!(frameio_shaped(&resource.id), "accepted resource id {:?}", resource.id);
    }
    let value = serde_json::from_slice::<Value>(body).expect("an accepted body is strict JSON");
    let Value::Object(object) = value else { panic!("accepted a JSON {value}") };
    assert_eq!(object.get("action_id").and_then(Value::as_str), Some(event.action_id.as_str()));
    assert_eq!(object.get("interaction_id").and_then(Value::as_str), Some(event.interaction_id.as_str()));
    if let Some(data) = &event.data {
        assert_eq!(object.get("data").and_then(Value::as_object), Some(data));
    }
});
