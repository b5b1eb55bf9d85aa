//! Any dialog the connector describes (`forms.form`), as the generic form template
//! draws it; and the posted form it comes back as.

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::session::{self, CSRF_FIELD, Viewer};
use crate::runtime::Property;
use crate::runtime::dialogs::{FieldKind, Form};

/// The field of a posted form that names the button pressed.
pub const ACTION_FIELD: &str = "_action";
/// The button that describes the dialog again with the values so far.
pub const REFRESH: &str = "refresh";

/// One choice of a list.
pub struct ChoiceView {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

/// Consecutive choices under one heading (an `optgroup`; no heading: none).
pub struct GroupView {
    pub label: String,
    pub choices: Vec<ChoiceView>,
}

/// One field, ready for the template.
pub struct FieldView {
    pub name: String,
    pub id: String,
    pub label: String,
    pub help: String,
    /// `text`, `multiline`, `secret`, `choice`, `toggle`, `date` or `email-list`.
    pub kind: &'static str,
    pub required: bool,
    pub value: String,
    pub is_set: bool,
    pub groups: Vec<GroupView>,
    pub refresh: bool,
    pub max_length: u32,
    pub problem: String,
    /// Ids of the help and problem texts, for `aria-describedby`.
    pub described_by: String,
}

impl FieldView {
    pub fn checked(&self) -> bool {
        self.value == "true"
    }
}

/// A button of the form.
pub struct ButtonView {
    pub action: String,
    pub label: String,
}

/// A dialog, ready for `form.html`.
pub struct FormView {
    pub intro: String,
    pub fields: Vec<FieldView>,
    pub submit_label: String,
    pub actions: Vec<ButtonView>,
    pub problem: String,
    /// Where the form posts.
    pub post_to: String,
    pub csrf: String,
    /// Whether any field re-describes the dialog when it changes.
    pub refreshes: bool,
}

fn kind_name(kind: FieldKind) -> &'static str {
    match kind {
        FieldKind::Text => "text",
        FieldKind::Multiline => "multiline",
        FieldKind::Secret => "secret",
        FieldKind::Choice => "choice",
        FieldKind::Toggle => "toggle",
        FieldKind::Date => "date",
        FieldKind::EmailList => "email-list",
    }
}

impl FormView {
    /// The view of `form`, posting to `post_to` with the viewer's CSRF token.
    pub fn new(form: Form, post_to: &str, viewer: &Viewer) -> FormView {
        let fields: Vec<FieldView> = form
            .fields
            .into_iter()
            .map(|f| {
                let id = format!("field-{}", f.name);
                let mut groups: Vec<GroupView> = Vec::new();
                for c in f.choices {
                    let choice = ChoiceView { selected: c.value == f.value, value: c.value, label: c.label };
                    match groups.last_mut() {
                        Some(g) if g.label == c.group => g.choices.push(choice),
                        _ => groups.push(GroupView { label: c.group, choices: vec![choice] }),
                    }
                }
                let mut described = Vec::new();
                if !f.help.is_empty() {
                    described.push(format!("{id}-help"));
                }
                if !f.problem.is_empty() {
                    described.push(format!("{id}-problem"));
                }
                FieldView {
                    described_by: described.join(" "),
                    name: f.name,
                    id,
                    label: f.label,
                    help: f.help,
                    kind: kind_name(f.kind),
                    required: f.required,
                    // A secret is never put back into a page, whatever the connector says.
                    value: if f.kind == FieldKind::Secret { String::new() } else { f.value },
                    is_set: f.is_set,
                    groups,
                    refresh: f.refresh,
                    max_length: f.max_length,
                    problem: f.problem,
                }
            })
            .collect();
        FormView {
            refreshes: fields.iter().any(|f| f.refresh),
            intro: form.intro,
            fields,
            submit_label: form.submit_label,
            actions: form.actions.into_iter().map(|a| ButtonView { action: a.name, label: a.label }).collect(),
            problem: form.problem,
            post_to: post_to.to_string(),
            csrf: viewer.csrf.clone(),
        }
    }

    /// Puts each problem beside its field, or on the form when it names none.
    pub fn with_problems(mut self, problems: &[(String, String)]) -> FormView {
        for (field, message) in problems {
            match self.fields.iter_mut().find(|f| &f.name == field) {
                Some(f) => {
                    f.problem = message.clone();
                    f.described_by = [format!("{}-help", f.id), format!("{}-problem", f.id)]
                        .into_iter()
                        .filter(|id| !id.ends_with("-help") || !f.help.is_empty())
                        .collect::<Vec<_>>()
                        .join(" ");
                }
                None => self.problem = message.clone(),
            }
        }
        self
    }
}

/// A posted form: its pairs in order (a name given twice keeps both).
pub struct Posted {
    pairs: Vec<(String, String)>,
}

impl Posted {
    /// Reads an `application/x-www-form-urlencoded` body and checks its CSRF token
    /// against the viewer's session; anything else is refused.
    pub fn read(viewer: &Viewer, headers: &HeaderMap, body: &Bytes) -> Result<Posted, Response> {
        let urlencoded = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(';').next().is_some_and(|e| e.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded")));
        if !urlencoded {
            return Err((StatusCode::UNSUPPORTED_MEDIA_TYPE, "the console takes HTML forms").into_response());
        }
        let pairs: Vec<(String, String)> = url::form_urlencoded::parse(body).into_owned().collect();
        let posted = Posted { pairs };
        if !session::csrf_matches(viewer, posted.get(CSRF_FIELD)) {
            return Err(session::forbidden("This form is out of date or did not come from the console: reload the page and try again."));
        }
        Ok(posted)
    }

    /// The last value given for `name`; empty when none.
    pub fn get(&self, name: &str) -> &str {
        self.pairs.iter().rev().find(|(n, _)| n == name).map_or("", |(_, v)| v.as_str())
    }

    /// The dialog's values: every field but the console's own (`_csrf`, `_action`).
    pub fn values(&self) -> Vec<Property> {
        self.pairs
            .iter()
            .filter(|(n, _)| !n.starts_with('_'))
            .map(|(name, value)| Property { name: name.clone(), value: value.clone() })
            .collect()
    }
}
