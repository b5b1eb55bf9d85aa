//! The custom-action conversation: a click gets a form, the form's submission
//! queues the import and gets a message.
//!
//! Both answers go out well inside Frame.io's 5 seconds: the click reads one file
//! (and, for a stack, the stack) and the pusher's address; the submission only
//! records and queues. Frame.io may deliver either more than once; the click's
//! record is overwritten with the same content and the job is keyed by the
//! interaction id, so a repeat changes nothing.

use serde::{Deserialize, Serialize};

use super::super::bindings::Binding;
use super::super::{Context, Flow, JobRequest};
use super::{PushJob, Stage, check_importable, document_key};
use crate::error::{Error, Result};
use crate::frameio::FrameioApi;
use crate::frameio::model::{ActionEvent, File, FormValue, ItemKind};
use crate::store;

/// Longest document title accepted from the form.
const MAX_TITLE_CHARS: usize = 255;
/// Longest note accepted from the form.
const MAX_NOTE_CHARS: usize = 4000;
/// How long a click's record answers a form submission.
const INTERACTION_TTL_SECS: u64 = 3600;

/// One field of a form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Field {
    Text { name: &'static str, label: &'static str, value: String },
    TextArea { name: &'static str, label: &'static str, value: String },
    /// A choice; options are (label, value).
    Select { name: &'static str, label: &'static str, value: &'static str, options: Vec<(&'static str, &'static str)> },
}

/// What to answer the delivery with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// A message to show the Frame.io user.
    Message { title: String, description: String },
    /// A form to fill in; its submission comes back as another delivery.
    Form { title: String, description: String, fields: Vec<Field> },
    /// The connector cannot answer now (its store failed): Frame.io should retry.
    Unavailable(String),
}

/// The answer, and the jobs to queue before it is sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub answer: Answer,
    pub enqueue: Vec<JobRequest>,
}

impl From<Answer> for Response {
    fn from(answer: Answer) -> Response {
        Response { answer, enqueue: Vec::new() }
    }
}

fn message(title: &str, description: &str) -> Response {
    Answer::Message { title: title.into(), description: description.into() }.into()
}

/// What a click records, for the submission that follows it.
#[derive(Debug, Serialize, Deserialize)]
struct Interaction {
    binding_id: String,
    /// The file to import: the one clicked, or the head of the stack clicked.
    asset_id: String,
    asset_name: String,
    frameio_user_id: String,
    #[serde(default)]
    pusher_email: String,
    created_at: u64,
}

/// Answers a verified delivery for `binding`.
pub fn respond(ctx: &Context, binding: &Binding, event: &ActionEvent) -> Response {
    if binding.unbound_at.is_some() {
        return message(
            "This folder is no longer bound",
            &format!("{} is no longer bound to Frame.io; nothing was imported.", binding.folder_path),
        );
    }
    match &event.form {
        None => click(ctx, binding, event),
        Some(form) => submit(ctx, binding, event, form),
    }
}

fn click(ctx: &Context, binding: &Binding, event: &ActionEvent) -> Response {
    let Some(resource) = &event.resource else {
        return message("Nothing to push", "Run this action on a file or a version stack.");
    };
    if matches!(resource.kind, Some(ItemKind::Folder | ItemKind::Other(_))) {
        return message("Nothing to push", "Run this action on a file or a version stack; push the files of a folder one by one.");
    }
    let api = match ctx.api(&binding.user) {
        Ok(api) => api,
        Err(e) => return message("The asset could not be read", &reason_for_user(&e)),
    };
    let file = match importable_file(api.as_ref(), binding, &resource.id, resource.kind.as_ref()) {
        Ok(file) => file,
        Err(e) => return message("The asset could not be read", &reason_for_user(&e)),
    };
    if !file.project_id.is_empty() && file.project_id != binding.project_id {
        return message(
            "This asset is in another project",
            &format!(
                "This action imports assets of the Frame.io project \"{}\" into {}; \"{}\" is in another project.",
                binding.project_name, binding.folder_path, file.name
            ),
        );
    }
    // A file still uploading is accepted: its import waits for the whole file.
    let uploading = file.kind == ItemKind::File && file.original == crate::frameio::model::Original::Uploading;
    if !uploading && let Err(why) = check_importable(&file) {
        return message("This asset cannot be pushed", &why);
    }
    let frameio_user_id = event.user_id.clone().unwrap_or_default();
    let interaction = Interaction {
        binding_id: binding.id.clone(),
        asset_id: file.id.clone(),
        asset_name: file.name.clone(),
        pusher_email: pusher_email(api.as_ref(), binding, &frameio_user_id),
        frameio_user_id,
        created_at: ctx.host.now(),
    };
    let key = format!("{}{}", store::INTERACTION, event.interaction_id);
    if let Err(e) = store::save_expiring(ctx.host, &key, &interaction, interaction.created_at + INTERACTION_TTL_SECS) {
        return Answer::Unavailable(format!("temporarily unavailable: {e}")).into();
    }
    form(ctx, api.as_ref(), binding, &file)
}

/// The file a click imports: the one clicked, or a stack's head version.
fn importable_file(api: &dyn FrameioApi, binding: &Binding, id: &str, kind: Option<&ItemKind>) -> Result<File> {
    let head_of = |stack_id: &str| -> Result<File> {
        let stack = api.version_stack(&binding.account_id, stack_id)?;
        api.file(&binding.account_id, &stack.head_file_id)
    };
    if kind == Some(&ItemKind::VersionStack) {
        return head_of(id);
    }
    let file = api.file(&binding.account_id, id)?;
    // The Legacy API says "asset" for every kind: a stack shows itself on reading.
    if file.kind == ItemKind::VersionStack { head_of(&file.id) } else { Ok(file) }
}

/// The pusher's email, looked up once here so that the job never pages members.
/// Not knowing it is no reason to refuse the push: the binding's owner is told then.
fn pusher_email(api: &dyn FrameioApi, binding: &Binding, frameio_user_id: &str) -> String {
    if frameio_user_id.is_empty() {
        return String::new();
    }
    match api.member(&binding.account_id, &binding.workspace_id, frameio_user_id) {
        Ok(Some(user)) => user.email,
        _ => String::new(),
    }
}

/// The form asking what the import needs.
fn form(ctx: &Context, api: &dyn FrameioApi, binding: &Binding, file: &File) -> Response {
    let key = document_key(ctx, api, binding, file).unwrap_or_default();
    let existing = ctx.host.find_document(&binding.folder_id, &key).ok().flatten();
    let (title, where_to) = match &existing {
        Some(doc) => (
            doc.title.clone(),
            format!("It becomes version {} of \"{}\" in {}.", doc.version_count + 1, doc.title, binding.folder_path),
        ),
        None => (file.name.clone(), format!("It becomes a new document in {}.", binding.folder_path)),
    };
    let where_to = if file.original == crate::frameio::model::Original::Uploading {
        format!("{where_to} Frame.io does not have the whole file yet: it will be imported when the upload completes.")
    } else {
        where_to
    };
    Answer::Form {
        title: "Push to the DAM".into(),
        description: format!("Import \"{}\" into the DAM. {where_to}", file.name),
        fields: vec![
            Field::Text { name: "title", label: "Document title", value: title },
            Field::TextArea { name: "note", label: "Note for this version", value: String::new() },
            Field::Select {
                name: "notify",
                label: "Email me when it is ready",
                value: "yes",
                options: vec![("Yes", "yes"), ("No", "no")],
            },
        ],
    }
    .into()
}

fn submit(ctx: &Context, binding: &Binding, event: &ActionEvent, form: &std::collections::BTreeMap<String, FormValue>) -> Response {
    let key = format!("{}{}", store::INTERACTION, event.interaction_id);
    let interaction = match store::load::<Interaction>(ctx.host, &key) {
        Ok(Some(stored))
            if stored.value.binding_id == binding.id && ctx.host.now() < stored.value.created_at + INTERACTION_TTL_SECS =>
        {
            stored.value
        }
        Ok(_) => return message("This push has expired", "Run the action on the asset again."),
        Err(e) => return Answer::Unavailable(format!("temporarily unavailable: {e}")).into(),
    };
    let text = |name: &str| match form.get(name) {
        Some(FormValue::Text(t)) => t.trim().to_string(),
        _ => String::new(),
    };
    let title = match checked_text(&text("title"), &interaction.asset_name, MAX_TITLE_CHARS, false) {
        Ok(title) => title,
        Err(why) => return message("The title was not accepted", &why),
    };
    let note = match checked_text(&text("note"), "", MAX_NOTE_CHARS, true) {
        Ok(note) => Some(note).filter(|n| !n.is_empty()),
        Err(why) => return message("The note was not accepted", &why),
    };
    // A V4 checkbox sends a boolean; a select sends "yes"/"no".
    let notify = matches!(form.get("notify"), Some(FormValue::Bool(true))) || text("notify") == "yes";
    let job = PushJob {
        binding_id: binding.id.clone(),
        asset_id: interaction.asset_id,
        interaction_id: event.interaction_id.clone(),
        frameio_user_id: interaction.frameio_user_id,
        pusher_email: interaction.pusher_email,
        title,
        note,
        notify,
        stage: Stage::Start,
    };
    let mut response = message(
        "Asset pushed to the DAM",
        &format!(
            "\"{}\" is on its way to {}.{}",
            interaction.asset_name,
            binding.folder_path,
            if notify { " You will get an email when it is ready." } else { "" }
        ),
    );
    response.enqueue.push(JobRequest { key: job.key(), kind: PushJob::KIND.into(), payload: job.encode() });
    response
}

/// `given`, or `fallback` when empty, if it is short enough and printable (line
/// breaks allowed in multi-line fields).
fn checked_text(given: &str, fallback: &str, max_chars: usize, multi_line: bool) -> std::result::Result<String, String> {
    let text = if given.is_empty() { fallback } else { given };
    let bad_char = |c: char| c.is_control() && !(multi_line && (c == '\n' || c == '\r' || c == '\t'));
    if text.chars().count() > max_chars || text.chars().any(bad_char) {
        return Err(format!("At most {max_chars} printable characters."));
    }
    Ok(text.to_string())
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
