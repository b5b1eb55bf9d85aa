//! `frameio::v2::parse_action` and `frameio::v4::parse_action`, the JSON parsers of
//! custom-action deliveries (clicks and form submissions) of either API generation,
//! on arbitrary bytes: the parsers `inbound::handle` runs once a signature has been
//! verified, fuzzed directly so that no HMAC stands in the way.
//!
//! Checks: no panic; in an accepted body, `action_id`, `interaction_id` and
//! `resource.id` (when there is a resource), and V4's `account_id` and `workspace.id`,
//! are Frame.io-shaped identifiers (1 to 128
//! of `A-Za-z0-9-_:.`, not `.` or `..`: nothing that could reshape a URL path or a
//! storage key); an accepted body is strict JSON (valid UTF-8, valid escapes) and an
//! object; and its ids and `data` fields are the values that JSON holds.
//!
//! This target found two leniencies of serde's derive, since closed: a struct also
//! came as an array of its fields, and the strings of unknown fields were skipped
//! without checking their UTF-8 or `\u` escapes.

#![no_main]

use frameio_connector::frameio::model::{ActionEvent, FormValue};
use frameio_connector::frameio::{v2, v4};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fn frameio_shaped(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_:.".contains(&b))
        && id != "."
        && id != ".."
}

fn check(body: &[u8], event: &ActionEvent) {
    let ids = [Some(&event.action_id), Some(&event.interaction_id), event.account_id.as_ref(), event.workspace_id.as_ref()];
    for id in ids.into_iter().flatten() {
        assert!(frameio_shaped(id), "accepted id {id:?}");
    }
    if let Some(resource) = &event.resource {
        assert!(frameio_shaped(&resource.id), "accepted resource id {:?}", resource.id);
    }
    let value = serde_json::from_slice::<Value>(body).expect("an accepted body is strict JSON");
    let Value::Object(object) = value else { panic!("accepted a JSON {value}") };
    assert_eq!(object.get("action_id").and_then(Value::as_str), Some(event.action_id.as_str()));
    assert_eq!(object.get("interaction_id").and_then(Value::as_str), Some(event.interaction_id.as_str()));
    for (name, field) in event.form.iter().flatten() {
        let sent = object.get("data").and_then(|d| d.get(name));
        match field {
            FormValue::Text(text) => assert_eq!(sent.and_then(Value::as_str), Some(text.as_str())),
            FormValue::Bool(on) => assert_eq!(sent.and_then(Value::as_bool), Some(*on)),
        }
    }
}

fuzz_target!(|body: &[u8]| {
    for parse in [v2::parse_action, v4::parse_action] {
        if let Ok(event) = parse(body) {
            check(body, &event);
        }
    }
});
