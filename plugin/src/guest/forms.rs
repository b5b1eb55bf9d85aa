//! The `forms` export: conversions between the WIT records and `crate::forms`.

use super::wit::exports::frameio_dam::connector::forms as wit_forms;
use super::wit::frameio_dam::connector::types;
use super::{Connector, WitHost, job_requests, wit_error};
use crate::forms::{self, FieldKind, SubmitError, Values};

fn kind(k: FieldKind) -> wit_forms::FieldKind {
    match k {
        FieldKind::Text => wit_forms::FieldKind::Text,
        FieldKind::Multiline => wit_forms::FieldKind::Multiline,
        FieldKind::Secret => wit_forms::FieldKind::Secret,
        FieldKind::Choice => wit_forms::FieldKind::Choice,
        FieldKind::Toggle => wit_forms::FieldKind::Toggle,
        FieldKind::Date => wit_forms::FieldKind::Date,
        FieldKind::EmailList => wit_forms::FieldKind::EmailList,
    }
}

fn form(f: forms::Form) -> wit_forms::Form {
    wit_forms::Form {
        dialog: f.dialog,
        title: f.title,
        intro: f.intro,
        fields: f
            .fields
            .into_iter()
            .map(|f| wit_forms::Field {
                name: f.name,
                label: f.label,
                help: f.help,
                kind: kind(f.kind),
                required: f.required,
                value: f.value,
                is_set: f.is_set,
                choices: f.choices.into_iter().map(|c| wit_forms::Choice { value: c.value, label: c.label, group: c.group }).collect(),
                refresh: f.refresh,
                max_length: f.max_length,
                problem: f.problem,
            })
            .collect(),
        submit_label: f.submit_label,
        actions: f.actions.into_iter().map(|a| wit_forms::FormAction { name: a.name, label: a.label }).collect(),
        problem: f.problem,
    }
}

fn context(c: wit_forms::FormContext) -> forms::FormContext {
    forms::FormContext { user: c.user, subject: c.subject }
}

fn values(values: Vec<types::Property>) -> Values {
    Values::new(&values.into_iter().map(|p| (p.name, p.value)).collect::<Vec<_>>())
}

impl wit_forms::Guest for Connector {
    fn dialogs() -> Vec<String> {
        forms::DIALOGS.iter().map(|d| d.to_string()).collect()
    }

    fn describe(dialog: String, ctx: wit_forms::FormContext, entered: Vec<types::Property>) -> Result<wit_forms::Form, types::Error> {
        forms::describe(&WitHost, &dialog, &context(ctx), &values(entered)).map(form).map_err(wit_error)
    }

    fn submit(
        dialog: String,
        action: String,
        ctx: wit_forms::FormContext,
        entered: Vec<types::Property>,
    ) -> Result<wit_forms::Outcome, wit_forms::SubmitError> {
        match forms::submit(&WitHost, &dialog, &action, &context(ctx), &values(entered)) {
            Ok(o) => Ok(wit_forms::Outcome {
                message: o.message,
                enqueue: job_requests(o.enqueue),
                made: o.made.into_iter().map(|(name, value)| types::Property { name, value }).collect(),
            }),
            Err(SubmitError::Invalid(problems)) => Err(wit_forms::SubmitError::Invalid(
                problems.into_iter().map(|p| wit_forms::FieldProblem { field: p.field, message: p.message }).collect(),
            )),
            Err(SubmitError::Failed(e)) => Err(wit_forms::SubmitError::Failed(wit_error(e))),
        }
    }
}
