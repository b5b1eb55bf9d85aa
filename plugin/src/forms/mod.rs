//! The dialogs a DAM shows (WIT `forms`): the provider settings, binding a folder,
//! and sending a document for review, described as typed fields so that a host
//! renders them without knowing Frame.io, and submitted back here.
//!
//! Each dialog checks its values with the same code its flow uses (`settings::parse`,
//! `bindings::bind`, `review::send`) and turns a refusal into a problem beside the
//! field it concerns; nothing is created while a value is refused.

mod bind;
pub mod dates;
mod review;
mod settings_form;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use crate::error::Error;
use crate::flows::{Context, JobRequest};
use crate::host::Host;

/// The dialogs this connector describes.
pub const DIALOGS: [&str; 3] = [settings_form::DIALOG, bind::DIALOG, review::DIALOG];

/// Which control shows a field (WIT `forms.field-kind`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldKind {
    Text,
    Multiline,
    Secret,
    Choice,
    Toggle,
    Date,
    EmailList,
}

/// One value a choice field can take (WIT `forms.choice`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Choice {
    pub value: String,
    pub label: String,
    pub group: String,
}

impl Choice {
    pub fn new(value: impl Into<String>, label: impl Into<String>) -> Choice {
        Choice { value: value.into(), label: label.into(), group: String::new() }
    }

    pub fn in_group(self, group: &str) -> Choice {
        Choice { group: group.to_string(), ..self }
    }
}

/// One field (WIT `forms.field`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field {
    pub name: String,
    pub label: String,
    pub help: String,
    pub kind: FieldKind,
    pub required: bool,
    pub value: String,
    pub is_set: bool,
    pub choices: Vec<Choice>,
    pub refresh: bool,
    pub max_length: u32,
    pub problem: String,
}

impl Field {
    /// A field of `kind`, optional, empty, with no help.
    pub fn new(name: &str, label: &str, kind: FieldKind) -> Field {
        Field {
            name: name.into(),
            label: label.into(),
            help: String::new(),
            kind,
            required: false,
            value: String::new(),
            is_set: false,
            choices: Vec::new(),
            refresh: false,
            max_length: 0,
            problem: String::new(),
        }
    }

    pub fn help(self, help: impl Into<String>) -> Field {
        Field { help: help.into(), ..self }
    }

    pub fn required(self) -> Field {
        Field { required: true, ..self }
    }

    pub fn value(self, value: impl Into<String>) -> Field {
        Field { value: value.into(), ..self }
    }

    pub fn choices(self, choices: Vec<Choice>) -> Field {
        Field { choices, ..self }
    }

    pub fn refresh(self) -> Field {
        Field { refresh: true, ..self }
    }

    pub fn max_length(self, max: u32) -> Field {
        Field { max_length: max, ..self }
    }
}

/// A button other than submit (WIT `forms.form-action`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FormAction {
    pub name: String,
    pub label: String,
}

/// A dialog, ready to render (WIT `forms.form`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Form {
    pub dialog: String,
    pub title: String,
    pub intro: String,
    pub fields: Vec<Field>,
    pub submit_label: String,
    pub actions: Vec<FormAction>,
    pub problem: String,
}

impl Form {
    /// Puts each problem beside its field (or on the form, when it names none).
    pub fn with_problems(mut self, problems: &[FieldProblem]) -> Form {
        for p in problems {
            match self.fields.iter_mut().find(|f| f.name == p.field) {
                Some(field) => field.problem = p.message.clone(),
                None => self.problem = p.message.clone(),
            }
        }
        self
    }
}

/// Who opens a dialog, and about what (WIT `forms.form-context`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FormContext {
    pub user: String,
    pub subject: String,
}

/// A refused value (WIT `forms.field-problem`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldProblem {
    pub field: String,
    pub message: String,
}

impl FieldProblem {
    pub fn new(field: &str, message: impl Into<String>) -> FieldProblem {
        FieldProblem { field: field.to_string(), message: message.into() }
    }
}

/// Why a submission did nothing (WIT `forms.submit-error`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SubmitError {
    Invalid(Vec<FieldProblem>),
    Failed(Error),
}

impl From<Error> for SubmitError {
    fn from(e: Error) -> Self {
        SubmitError::Failed(e)
    }
}

/// What a submission did (WIT `forms.outcome`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    pub message: String,
    pub enqueue: Vec<JobRequest>,
    pub made: Vec<(String, String)>,
}

/// The values entered so far, by field name; a name given twice keeps the last.
#[derive(Clone, Debug, Default)]
pub struct Values(BTreeMap<String, String>);

impl Values {
    pub fn new(values: &[(String, String)]) -> Values {
        Values(values.iter().cloned().collect())
    }

    /// The value of `name`, trimmed; empty when absent.
    pub fn get(&self, name: &str) -> &str {
        self.0.get(name).map_or("", |v| v.trim())
    }

    /// Whether the user gave `name` at all (an empty value counts).
    pub fn has(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    /// A toggle's value: on only for `true` (or `on`, what an HTML checkbox sends).
    pub fn toggle(&self, name: &str) -> bool {
        matches!(self.get(name), "true" | "on")
    }

    /// The value of `name`, or `default` when the user has not given one.
    pub fn or(&self, name: &str, default: &str) -> String {
        if self.has(name) { self.get(name).to_string() } else { default.to_string() }
    }
}

/// Describes `dialog` for `context` with the values so far.
pub fn describe(host: &dyn Host, dialog: &str, context: &FormContext, values: &Values) -> crate::error::Result<Form> {
    match dialog {
        settings_form::DIALOG => settings_form::describe(host, values),
        bind::DIALOG => bind::describe(&Context::load(host)?, context, values),
        review::DIALOG => review::describe(&Context::load(host)?, context, values),
        other => Err(Error::NotFound(format!("dialog {other:?}"))),
    }
}

/// Submits `dialog` by `action` (empty: its submit button).
pub fn submit(host: &dyn Host, dialog: &str, action: &str, context: &FormContext, values: &Values) -> Result<Outcome, SubmitError> {
    match (dialog, action) {
        (settings_form::DIALOG, "") => settings_form::save(host, values),
        (settings_form::DIALOG, settings_form::TEST) => settings_form::test(host, values),
        (bind::DIALOG, "") => bind::submit(&Context::load(host)?, context, values),
        (review::DIALOG, "") => review::submit(&Context::load(host)?, context, values),
        (dialog, action) if DIALOGS.contains(&dialog) => {
            Err(SubmitError::Failed(Error::NotFound(format!("action {action:?} of dialog {dialog}"))))
        }
        (other, _) => Err(SubmitError::Failed(Error::NotFound(format!("dialog {other:?}")))),
    }
}

/// The first few pages of a list from Frame.io, and whether more were left out: a
/// dialog lists what fits on a screen, not an account's every project.
fn first_pages<T>(mut page: impl FnMut(Option<&str>) -> crate::error::Result<crate::frameio::model::Page<T>>) -> crate::error::Result<(Vec<T>, bool)> {
    const MAX_PAGES: usize = 5;
    let (mut items, mut cursor) = (Vec::new(), None::<String>);
    for _ in 0..MAX_PAGES {
        let listed = page(cursor.as_deref())?;
        items.extend(listed.items);
        match listed.next {
            Some(next) => cursor = Some(next),
            None => return Ok((items, false)),
        }
    }
    Ok((items, true))
}
