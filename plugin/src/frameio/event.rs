//! What decoding a custom-action delivery takes on either generation: strict JSON,
//! identifier checks, and the submitted form's values.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::is_frameio_id;
use super::model::FormValue;
use crate::strict_json;

/// `{"id": ...}`.
#[derive(Debug, Deserialize)]
pub(crate) struct IdRef {
    pub(crate) id: String,
}

/// What an action ran on: `{"id", "type"}`.
#[derive(Debug, Deserialize)]
pub(crate) struct WireResource {
    pub(crate) id: String,
    #[serde(rename = "type")]
    pub(crate) kind: String,
}

/// Decodes a delivery into `T` and returns the object too, for checks on its keys.
/// The error is the 400 reason.
pub(crate) fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<(T, Map<String, Value>), String> {
    // As a strict JSON value first: the struct alone would also accept an array of
    // its fields, would skip fields it does not use without checking them, and
    // would keep the last of two equal keys inside `data`.
    let value = strict_json::parse(body)?;
    let Value::Object(object) = value else {
        return Err("malformed JSON: the event must be an object".into());
    };
    let event = serde_json::from_value(Value::Object(object.clone())).map_err(|e| format!("malformed JSON: {e}"))?;
    Ok((event, object))
}

/// `id` if it is shaped like a Frame.io identifier; else the 400 reason naming `field`.
pub(crate) fn checked_id(field: &str, id: String) -> Result<String, String> {
    if is_frameio_id(&id) { Ok(id) } else { Err(format!("{field} must be a Frame.io identifier")) }
}

/// The same for an optional `{"id"}` reference.
pub(crate) fn checked_ref(field: &str, reference: Option<IdRef>) -> Result<Option<String>, String> {
    reference.map(|r| checked_id(field, r.id)).transpose()
}

/// A submitted form's fields: text (`text`, `textarea`, `select`) or a checkbox.
pub(crate) fn form(data: Option<Map<String, Value>>) -> Result<Option<BTreeMap<String, FormValue>>, String> {
    let Some(data) = data else { return Ok(None) };
    let mut fields = BTreeMap::new();
    for (name, value) in data {
        let value = match value {
            Value::String(text) => FormValue::Text(text),
            Value::Bool(on) => FormValue::Bool(on),
            Value::Null => continue,
            _ => return Err(format!("form field {name:?} must be text or a checkbox")),
        };
        fields.insert(name, value);
    }
    Ok(Some(fields))
}
