//! The provider settings as a dialog: the descriptor's fields, prefilled with what
//! is stored (never the secret: only whether one is set), saved with
//! `settings::configure`, and a "Test connection" that asks the authorization server
//! and the API whether they know the app, without storing anything.

use std::collections::BTreeMap;

use super::{Choice, Field, FieldKind, FieldProblem, Form, FormAction, Outcome, SubmitError, Values};
use crate::auth;
use crate::error::{Error, Result};
use crate::host::Host;
use crate::settings::{self, Settings};

pub const DIALOG: &str = "provider-settings";
/// The "Test connection" action.
pub const TEST: &str = "test";

/// The stored settings as form values, by setting name. Setting names are the
/// stored fields' names with dashes (`client_id` is `client-id`), so a setting added
/// to [`Settings`] is prefilled without a change here. The secret is left out.
fn stored_values(stored: &Settings) -> BTreeMap<String, String> {
    let json = serde_json::to_value(stored).unwrap_or_default();
    let mut values = BTreeMap::new();
    for (key, value) in json.as_object().into_iter().flatten() {
        let text = match value {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Bool(b) => b.to_string(),
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::Array(items) => items.iter().filter_map(|i| i.as_str()).collect::<Vec<_>>().join(" "),
            _ => continue,
        };
        values.insert(key.replace('_', "-"), text);
    }
    values.remove("client-secret");
    values
}

fn stored(host: &dyn Host) -> Result<Option<Settings>> {
    match settings::load(host) {
        Ok(s) => Ok(Some(s)),
        Err(Error::NotConfigured) => Ok(None),
        Err(e) => Err(e),
    }
}

/// What each field holds: the user's value, else the stored one, else the default
/// of the chosen API. A field still holding some API's default follows the API
/// chosen, so switching the API starts from working values while values the
/// administrator typed stay.
fn resolve(stored: Option<&Settings>, values: &Values) -> BTreeMap<String, String> {
    let descriptor = settings::describe();
    let saved = stored.map(stored_values).unwrap_or_default();
    let mut resolved = BTreeMap::new();
    for field in &descriptor.settings {
        let value = if values.has(field.name) {
            values.get(field.name).to_string()
        } else if let Some(v) = saved.get(field.name) {
            v.clone()
        } else {
            field.default_value.unwrap_or("").to_string()
        };
        resolved.insert(field.name.to_string(), value);
    }
    let chosen = resolved.get("api").cloned().unwrap_or_default();
    for preset in descriptor.presets.iter().filter(|p| p.field == "api" && p.choice == chosen) {
        for (name, value) in &preset.values {
            let current = resolved.get(*name).map(String::as_str).unwrap_or("");
            let some_default = descriptor.presets.iter().any(|p| p.values.iter().any(|(n, v)| n == name && *v == current));
            if current.is_empty() || some_default {
                resolved.insert(name.to_string(), value.to_string());
            }
        }
    }
    resolved
}

fn api_label(choice: &str) -> String {
    match choice {
        "v4" => "Frame.io V4 (sign-in with Adobe IMS)".into(),
        "v2" => "Legacy API v2 (Frame.io OAuth)".into(),
        other => other.into(),
    }
}

/// The settings dialog, prefilled.
pub fn describe(host: &dyn Host, values: &Values) -> Result<Form> {
    let descriptor = settings::describe();
    let stored = stored(host)?;
    let resolved = resolve(stored.as_ref(), values);
    let fields = descriptor
        .settings
        .iter()
        .map(|f| {
            let toggle = matches!(f.default_value, Some("true" | "false"));
            let kind = match () {
                _ if f.secret => FieldKind::Secret,
                _ if !f.choices.is_empty() => FieldKind::Choice,
                _ if toggle => FieldKind::Toggle,
                _ => FieldKind::Text,
            };
            let mut field = Field::new(f.name, f.label, kind).help(f.help);
            field.required = f.required;
            if kind == FieldKind::Secret {
                field.is_set = stored.as_ref().is_some_and(|s| !s.client_secret.is_empty());
            } else {
                field.value = resolved.get(f.name).cloned().unwrap_or_default();
            }
            field.choices = f.choices.iter().map(|c| Choice::new(*c, api_label(c))).collect();
            // Picking the API prefills the endpoints of that API.
            field.refresh = descriptor.presets.iter().any(|p| p.field == f.name);
            field
        })
        .collect();
    let status = match &stored {
        Some(s) => format!("Configured for {}.", api_label(s.api.name())),
        None => "Not configured yet: users cannot connect until these settings are saved.".into(),
    };
    Ok(Form {
        dialog: DIALOG.into(),
        title: "Frame.io".into(),
        intro: format!("{}. {status}", descriptor.description.trim_end_matches('.')),
        fields,
        submit_label: "Save".into(),
        actions: vec![FormAction { name: TEST.into(), label: "Test connection".into() }],
        problem: String::new(),
    })
}

/// The settings to check or store: every field of the form, the stored secret kept
/// when the field was left empty.
fn filled(host: &dyn Host, values: &Values) -> Result<Vec<(String, String)>> {
    let stored = stored(host)?;
    let mut resolved = resolve(stored.as_ref(), values);
    if resolved.get("client-secret").is_none_or(|s| s.is_empty())
        && let Some(s) = &stored
    {
        resolved.insert("client-secret".into(), s.client_secret.clone());
    }
    Ok(resolved.into_iter().collect())
}

/// Where `settings::parse` put its refusal: its messages read "setting <name> <why>".
fn problem(e: Error) -> SubmitError {
    let Error::InvalidInput(message) = e else { return SubmitError::Failed(e) };
    let descriptor = settings::describe();
    let named = message.strip_prefix("setting ").and_then(|rest| rest.split_once(' '));
    match named.and_then(|(name, why)| descriptor.settings.iter().find(|f| f.name == name).map(|f| (f, why))) {
        Some((field, why)) => SubmitError::Invalid(vec![FieldProblem::new(field.name, format!("{} {why}", field.label))]),
        None => SubmitError::Invalid(vec![FieldProblem::new("", message)]),
    }
}

/// Validates and stores the settings.
pub fn save(host: &dyn Host, values: &Values) -> std::result::Result<Outcome, SubmitError> {
    let form = filled(host, values)?;
    settings::configure(host, &form).map_err(problem)?;
    let api = settings::load(host)?.api;
    Ok(Outcome { message: format!("Saved: Frame.io is set up for {}.", api_label(api.name())), ..Outcome::default() })
}

/// Checks the settings against Frame.io without storing them.
pub fn test(host: &dyn Host, values: &Values) -> std::result::Result<Outcome, SubmitError> {
    let settings = settings::parse(&filled(host, values)?).map_err(problem)?;
    let mut problems = Vec::new();
    if let Err((field, why)) = auth::check_app(host, &settings) {
        problems.push(FieldProblem::new(field, why));
    }
    if let Err(why) = auth::check_api(host, &settings) {
        problems.push(FieldProblem::new("api-url", why));
    }
    if !problems.is_empty() {
        return Err(SubmitError::Invalid(problems));
    }
    let message = format!(
        "Connection works: the authorization server knows this client, and the API answers at {}. Nothing was saved.",
        settings.api_url
    );
    Ok(Outcome { message, ..Outcome::default() })
}
