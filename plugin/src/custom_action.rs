//! The custom-action conversation: a click gets a form, the form's submission
//! queues the import and gets a message.
//!
//! Both answers go out well inside Frame.io's 5 seconds: the click reads one asset,
//! the submission only records and queues. Frame.io may deliver either more than
//! once; the click's record is overwritten with the same content and the job is
//! keyed by the interaction id, so a repeat changes nothing.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::bindings::Binding;
use crate::error::Error;
use crate::frameio::is_frameio_id;
use crate::frameio::model::Asset;
use crate::host::Host;
use crate::inbound::{JobRequest, Reply};
use crate::oauth::Session;
use crate::push::{self, PushJob};
use crate::{store, strict_json};

/// Longest document title accepted from the form.
const MAX_TITLE_CHARS: usize = 255;
/// How long a click's record answers a form submission.
const INTERACTION_TTL_SECS: u64 = 3600;

/// A custom-action delivery (v2 and V4 share these fields).
#[derive(Debug, Deserialize)]
pub struct Event {
    pub action_id: String,
    pub interaction_id: String,
    pub resource: Option<Resource>,
    pub user: Option<IdRef>,
    /// Present on a form submission: field name to value.
    pub data: Option<Map<String, Value>>,
}

/// The thing the action was run on.
#[derive(Debug, Deserialize)]
pub struct Resource {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
}

/// `{"id": ...}`.
#[derive(Debug, Deserialize)]
pub struct IdRef {
    pub id: String,
}

impl Event {
    /// Decodes and checks a delivery; the error is the 400 reason.
    pub fn parse(body: &[u8]) -> Result<Event, String> {
        // As a strict JSON value first: the struct alone would also accept an array of
        // its fields, would skip fields it does not use without checking them, and
        // would keep the last of two equal keys inside `data`.
        let value = strict_json::parse(body)?;
        if !value.is_object() {
            return Err("malformed JSON: the event must be an object".into());
        }
        let event: Event = serde_json::from_value(value).map_err(|e| format!("malformed JSON: {e}"))?;
        if !is_frameio_id(&event.action_id) || !is_frameio_id(&event.interaction_id) {
            return Err("action_id and interaction_id must be Frame.io identifiers".into());
        }
        if let Some(r) = &event.resource
            && !is_frameio_id(&r.id) {
                return Err("resource.id must be a Frame.io identifier".into());
            }
        Ok(event)
    }
}

/// What a click records, for the submission that follows it.
#[derive(Debug, Serialize, Deserialize)]
struct Interaction {
    binding_id: String,
    asset_id: String,
    asset_name: String,
    frameio_user_id: String,
    created_at: u64,
}

/// A message to show the user.
fn message(title: &str, description: &str) -> Reply {
    Reply::json(200, &json!({ "title": title, "description": description }))
}

/// Answers a verified delivery for `binding`.
pub fn respond(host: &dyn Host, binding: &Binding, event: &Event) -> Reply {
    if binding.unbound_at.is_some() {
        return message(
            "This folder is no longer bound",
            &format!("{} is no longer bound to Frame.io; nothing was imported.", binding.folder_path),
        );
    }
    match &event.data {
        None => click(host, binding, event),
        Some(data) => submit(host, binding, event, data),
    }
}

fn click(host: &dyn Host, binding: &Binding, event: &Event) -> Reply {
    let Some(resource) = event.resource.as_ref().filter(|r| r.kind == "asset" || r.kind == "file") else {
        return message("Nothing to push", "Run this action on a file.");
    };
    let asset = match Session::open(host, &binding.user).and_then(|s| s.with_api(|api| api.asset(&resource.id))) {
        Ok(asset) => asset,
        Err(e) => return message("The asset could not be read", &reason_for_user(&e)),
    };
    if let Err(why) = push::check_importable(&asset) {
        return message("This asset cannot be pushed", &why);
    }
    let interaction = Interaction {
        binding_id: binding.id.clone(),
        asset_id: asset.id.clone(),
        asset_name: asset.name.clone(),
        frameio_user_id: event.user.as_ref().map(|u| u.id.clone()).unwrap_or_default(),
        created_at: host.now(),
    };
    let key = format!("{}{}", store::INTERACTION, event.interaction_id);
    if let Err(e) = store::save_expiring(host, &key, &interaction, interaction.created_at + INTERACTION_TTL_SECS) {
        return Reply::error(503, &format!("temporarily unavailable: {e}"));
    }
    form(host, binding, &asset)
}

/// The form asking what the import needs.
fn form(host: &dyn Host, binding: &Binding, asset: &Asset) -> Reply {
    let existing = host.find_document(&binding.folder_id, &push::document_key(asset)).ok().flatten();
    let (title, where_to) = match &existing {
        Some(doc) => (
            doc.title.clone(),
            format!("It becomes version {} of \"{}\" in {}.", doc.version_count + 1, doc.title, binding.folder_path),
        ),
        None => (asset.name.clone(), format!("It becomes a new document in {}.", binding.folder_path)),
    };
    Reply::json(
        200,
        &json!({
            "title": "Push to the DAM",
            "description": format!("Import \"{}\" into the DAM. {where_to}", asset.name),
            "fields": [
                { "type": "text", "label": "Document title", "name": "title", "value": title },
                {
                    "type": "select", "label": "Email me when it is ready", "name": "notify", "value": "yes",
                    "options": [ { "name": "Yes", "value": "yes" }, { "name": "No", "value": "no" } ]
                }
            ]
        }),
    )
}

fn submit(host: &dyn Host, binding: &Binding, event: &Event, data: &Map<String, Value>) -> Reply {
    let key = format!("{}{}", store::INTERACTION, event.interaction_id);
    let interaction = match store::load::<Interaction>(host, &key) {
        Ok(Some(stored))
            if stored.value.binding_id == binding.id && host.now() < stored.value.created_at + INTERACTION_TTL_SECS =>
        {
            stored.value
        }
        Ok(_) => return message("This push has expired", "Run the action on the asset again."),
        Err(e) => return Reply::error(503, &format!("temporarily unavailable: {e}")),
    };
    let title = match form_title(data, &interaction.asset_name) {
        Ok(title) => title,
        Err(why) => return message("The title was not accepted", &why),
    };
    // A V4 checkbox sends a boolean; a select sends "yes"/"no".
    let notify = matches!(data.get("notify"), Some(Value::Bool(true))) || data.get("notify").and_then(Value::as_str) == Some("yes");
    let job = PushJob::new(binding, &interaction.asset_id, &event.interaction_id, &interaction.frameio_user_id, title, notify);
    let mut reply = message(
        "Asset pushed to the DAM",
        &format!(
            "\"{}\" is on its way to {}.{}",
            interaction.asset_name,
            binding.folder_path,
            if notify { " You will get an email when it is ready." } else { "" }
        ),
    );
    reply.enqueue.push(JobRequest { key: job.key(), kind: push::KIND.into(), payload: job.encode() });
    reply
}

/// The form's title, or the asset's name when left empty.
fn form_title(data: &Map<String, Value>, asset_name: &str) -> Result<String, String> {
    let given = data.get("title").and_then(Value::as_str).map(str::trim).unwrap_or("");
    let title = if given.is_empty() { asset_name } else { given };
    if title.chars().count() > MAX_TITLE_CHARS || title.chars().any(char::is_control) {
        return Err(format!("Titles are 1 to {MAX_TITLE_CHARS} printable characters."));
    }
    Ok(title.to_string())
}

/// A reason a Frame.io user can act on, without internals.
fn reason_for_user(e: &Error) -> String {
    match e {
        Error::NotConnected(_) | Error::ReconnectRequired(_) => {
            "The DAM's connection to Frame.io needs to be renewed by the person who bound this folder.".into()
        }
        Error::Frameio(f) if f.status == 404 || f.status == 403 => "The asset is not visible to the DAM's connection.".into(),
        Error::Frameio(f) if f.is_transient() => "Frame.io is busy; try again in a minute.".into(),
        other => other.to_string(),
    }
}


#[cfg(test)]
mod tests {
    use super::Event;

    const IDS: &str = r#""action_id":"10000000-0000-4000-8000-000000000001","interaction_id":"10000000-0000-4000-8000-000000000002""#;

    #[test]
    fn an_event_is_a_json_object_with_frameio_ids() {
        assert!(Event::parse(format!("{{{IDS}}}").as_bytes()).is_ok());
        let as_array = br#"["10000000-0000-4000-8000-000000000001","10000000-0000-4000-8000-000000000002",null,null,null]"#;
        assert!(Event::parse(as_array).unwrap_err().contains("object"));
    }

    #[test]
    fn a_field_given_twice_anywhere_is_malformed() {
        let twice = format!(r#"{{{IDS},"interaction_id":"10000000-0000-4000-8000-000000000003"}}"#);
        assert!(Event::parse(twice.as_bytes()).unwrap_err().contains("duplicate key"));
        let in_data = format!(r#"{{{IDS},"data":{{"title":"A","notify":"no","title":"B"}}}}"#);
        assert!(Event::parse(in_data.as_bytes()).unwrap_err().contains("duplicate key \"title\""));
    }

    #[test]
    fn broken_text_in_fields_the_connector_ignores_is_still_malformed() {
        let lone_surrogate = format!(r#"{{{IDS},"extra":"\udc00"}}"#);
        assert!(Event::parse(lone_surrogate.as_bytes()).unwrap_err().starts_with("malformed JSON"));
        let mut invalid_utf8 = format!(r#"{{{IDS},"extra":"x"}}"#).into_bytes();
        let at = invalid_utf8.len() - 3;
        invalid_utf8[at] = 0xff;
        assert!(Event::parse(&invalid_utf8).unwrap_err().starts_with("malformed JSON"));
    }
}
