//! Showing and submitting a dialog the connector describes, whatever it is: the
//! console's screens wrap this with their own page around it.

use axum::http::StatusCode;

use super::render::{FormView, Posted, REFRESH};
use super::session::Viewer;
use super::{ConsoleState, enqueue};
use crate::runtime::dialogs::{FormContext, Outcome, SubmitError};
use crate::runtime::{ConnectorError, Property};
use crate::server::error_status;

/// Which dialog, about what, posting where.
pub struct Dialog<'a> {
    pub name: &'a str,
    pub subject: &'a str,
    pub post_to: &'a str,
}

/// What became of a dialog: a form to show (with the status to answer it with and a
/// notice, when an action worked without ending the dialog), or its outcome.
pub enum Shown {
    Form { form: FormView, status: StatusCode, notice: Option<String> },
    Done(Outcome),
    /// The connector could not describe the dialog at all: the reason, for the page.
    Unavailable { status: StatusCode, why: String },
}

fn context(viewer: &Viewer, dialog: &Dialog) -> FormContext {
    FormContext { user: viewer.user.clone(), subject: dialog.subject.to_string() }
}

/// The reason a connector error gives a person, and the status that fits it.
pub fn explain(e: &ConnectorError) -> (StatusCode, String) {
    match e {
        ConnectorError::NotConnected(_) => {
            (StatusCode::CONFLICT, "Connect your Frame.io account first (Connect, in the menu).".to_string())
        }
        ConnectorError::ReconnectRequired(why) => {
            (StatusCode::CONFLICT, format!("Frame.io no longer accepts your sign-in ({why}): connect again (Connect, in the menu)."))
        }
        ConnectorError::NotConfigured => {
            (StatusCode::CONFLICT, "Frame.io is not set up yet: an administrator must save its settings under Cloud services.".to_string())
        }
        other => error_status(other),
    }
}

/// The dialog with `values` entered, each of `problems` beside its field.
pub async fn describe(
    state: &ConsoleState,
    viewer: &Viewer,
    dialog: &Dialog<'_>,
    values: &[Property],
    problems: &[(String, String)],
    status: StatusCode,
    notice: Option<String>,
) -> Shown {
    match state.app.runtime.form_describe(dialog.name, &context(viewer, dialog), values).await {
        Ok(Ok(form)) => Shown::Form { form: FormView::new(form, dialog.post_to, viewer).with_problems(problems), status, notice },
        Ok(Err(e)) => {
            let (status, why) = explain(&e);
            Shown::Unavailable { status, why }
        }
        Err(e) => {
            tracing::error!(dialog = dialog.name, error = %format!("{e:#}"), "the connector failed to describe a dialog");
            Shown::Unavailable { status: StatusCode::INTERNAL_SERVER_ERROR, why: "The connector failed; the host's log says why.".into() }
        }
    }
}

/// A posted dialog: described again (the refresh button, or a refusal with its
/// problems), or submitted and its jobs queued.
pub async fn post(state: &ConsoleState, viewer: &Viewer, dialog: &Dialog<'_>, posted: &Posted) -> Shown {
    let values = posted.values();
    let action = posted.get(super::render::ACTION_FIELD);
    if action == REFRESH {
        return describe(state, viewer, dialog, &values, &[], StatusCode::OK, None).await;
    }
    let submitted = state.app.runtime.form_submit(dialog.name, action, &context(viewer, dialog), &values).await;
    match submitted {
        Ok(Ok(outcome)) if action.is_empty() => {
            if let Err(e) = enqueue(state, outcome.enqueue.clone()) {
                let problem = vec![(String::new(), format!("The job could not be queued: {e}"))];
                return describe(state, viewer, dialog, &values, &problem, StatusCode::SERVICE_UNAVAILABLE, None).await;
            }
            Shown::Done(outcome)
        }
        // Another button (Test connection): its message, on the dialog as it was.
        Ok(Ok(outcome)) => describe(state, viewer, dialog, &values, &[], StatusCode::OK, Some(outcome.message)).await,
        Ok(Err(SubmitError::Invalid(problems))) => {
            let problems: Vec<(String, String)> = problems.into_iter().map(|p| (p.field, p.message)).collect();
            describe(state, viewer, dialog, &values, &problems, StatusCode::BAD_REQUEST, None).await
        }
        Ok(Err(SubmitError::Failed(e))) => {
            let (status, why) = explain(&e);
            describe(state, viewer, dialog, &values, &[(String::new(), why)], status, None).await
        }
        Err(e) => {
            tracing::error!(dialog = dialog.name, error = %format!("{e:#}"), "the connector failed to take a dialog");
            let problem = vec![(String::new(), "The connector failed; the host's log says why.".to_string())];
            describe(state, viewer, dialog, &values, &problem, StatusCode::INTERNAL_SERVER_ERROR, None).await
        }
    }
}

/// A shown dialog as a page's parts: its status, the form (or why there is none),
/// and a notice.
pub struct Parts {
    pub status: StatusCode,
    pub form: Option<FormView>,
    pub unavailable: Option<String>,
    pub notice: Option<String>,
}

impl Parts {
    /// The parts of a dialog that is still open (`Done` has none: its caller redirects).
    pub fn of(shown: Shown) -> Parts {
        match shown {
            Shown::Form { form, status, notice } => Parts { status, form: Some(form), unavailable: None, notice },
            Shown::Unavailable { status, why } => Parts { status, form: None, unavailable: Some(why), notice: None },
            Shown::Done(outcome) => Parts { status: StatusCode::OK, form: None, unavailable: None, notice: Some(outcome.message) },
        }
    }
}
