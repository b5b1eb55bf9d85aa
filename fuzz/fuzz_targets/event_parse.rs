//! `custom_action::Event::parse`, the JSON parser of custom-action deliveries (clicks
//! and form submissions), on arbitrary bytes: the parser `inbound::handle` runs once
//! a signature has been verified, fuzzed directly so that no HMAC stands in the way.
//!
//! Checks: no panic; in an accepted body, `action_id`, `interaction_id` and
//! `resource.id` (when there is a resource) are Frame.io-shaped identifiers (1 to 128
//! of `A-Za-z0-9-_:.`, not `.` or `..`: nothing that could reshape a URL path or a
//! storage key); and when the body is strict JSON, they and `data` are the values
//! the JSON holds.
//!
//! Two leniencies of serde's derive, found by this target and harmless (the body is
//! verified first, and the parts concerned are never read): a struct may also come as
//! an array of its fields in order (`["act1","i1",null,null,null]`), and the strings
//! of unknown fields are skipped without checking that they are UTF-8 or that their
//! `\u` escapes are valid, so such a body is accepted although it is not strict JSON.

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
    let Ok(value) = serde_json::from_slice::<Value>(body) else { return };
    // A field by name, or by position in the array form.
    let field = |name: &str, position: usize| match &value {
        Value::Object(object) => object.get(name),
        Value::Array(fields) => fields.get(position),
        other => panic!("accepted a JSON {other}"),
    };
    assert_eq!(field("action_id", 0).and_then(Value::as_str), Some(event.action_id.as_str()));
    assert_eq!(field("interaction_id", 1).and_then(Value::as_str), Some(event.interaction_id.as_str()));
    if let Some(data) = &event.data {
        assert_eq!(field("data", 4).and_then(Value::as_object), Some(data));
    }
});
