//! "Send to Frame.io for review" on a DAM document: the version and rendition, where
//! it goes (a bound project, or the show/episode structure beside one), reviewers,
//! a note, an expiry, a password, downloading and, where the API honours it, a
//! watermark. Submitting checks the request with `review::send` and answers its job.

use super::dates;
use super::{Choice, Field, FieldKind, FieldProblem, Form, FormContext, Outcome, SubmitError, Values};
use crate::error::{Error, Result};
use crate::flows::review::{self, Destination, Refused, ReviewRequest};
use crate::flows::{Context, bindings};
use crate::host::RenditionKind;

pub const DIALOG: &str = "send-for-review";

/// How long a link lasts unless the user picks another day.
const DEFAULT_EXPIRY_DAYS: u64 = 7;

/// `why` as a sentence: capitalised, with a full stop.
fn sentence(why: &str) -> String {
    let mut chars = why.chars();
    let mut out: String = chars.next().map(|c| c.to_uppercase().collect::<String>()).unwrap_or_default();
    out.push_str(chars.as_str());
    if !out.ends_with('.') {
        out.push('.');
    }
    out
}

fn size_text(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 => format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
        b => format!("{} KiB", b.div_ceil(1024)),
    }
}

/// The send dialog for the document named by the context.
pub fn describe(ctx: &Context, context: &FormContext, values: &Values) -> Result<Form> {
    let document = ctx.host.get_document(&context.subject).map_err(|_| Error::NotFound(format!("document {}", context.subject)))?;
    let caps = review::capabilities(ctx.settings.api);
    let newest = document.version_count;
    let version = values.get("version").parse::<u32>().ok().filter(|v| (1..=newest).contains(v)).unwrap_or(newest);
    let version_choices = (1..=newest)
        .rev()
        .map(|n| Choice::new(n.to_string(), if n == newest { format!("Version {n} (newest)") } else { format!("Version {n}") }))
        .collect();

    let renditions = if version == 0 { Vec::new() } else { ctx.host.renditions(&document.id, version)? };
    let rendition_choices: Vec<Choice> = renditions
        .iter()
        .map(|r| {
            let kind = review::kind_name(r.kind);
            let what = if r.kind == RenditionKind::Master { "Master" } else { "Proxy" };
            Choice::new(kind, format!("{what}: {} ({})", r.file_name, size_text(r.size)))
        })
        .collect();
    let rendition = match values.get("rendition") {
        chosen if rendition_choices.iter().any(|c| c.value == chosen) => chosen.to_string(),
        _ => rendition_choices.first().map(|c| c.value.clone()).unwrap_or_default(),
    };

    let bound = bindings::list(ctx.host)?;
    let mut destinations: Vec<Choice> =
        bound.iter().map(|b| Choice::new(format!("binding:{}", b.id), &b.project_name).in_group("Bound projects")).collect();
    destinations.extend(bound.iter().map(|b| {
        Choice::new(format!("structure:{}", b.id), format!("{} beside {}", ctx.settings.structure, b.project_name))
            .in_group("Automatic show/episode structure")
    }));
    let folder_binding = bound.iter().find(|b| b.folder_id == document.folder_id).or(bound.first());
    let destination = match values.get("destination") {
        chosen if destinations.iter().any(|c| c.value == chosen) => chosen.to_string(),
        _ => folder_binding.map(|b| format!("binding:{}", b.id)).unwrap_or_default(),
    };

    let mut fields = vec![
        Field::new("version", "Version", FieldKind::Choice).required().refresh().value(version.to_string()).choices(version_choices),
        Field::new("rendition", "File to send", FieldKind::Choice)
            .required()
            .value(rendition)
            .choices(rendition_choices)
            .help(if renditions.is_empty() { "This version has no file to send." } else { "The master as it is, or the DAM's proxy." }),
        Field::new("destination", "Destination", FieldKind::Choice)
            .required()
            .value(destination)
            .choices(destinations)
            .help(if bound.is_empty() {
                "Bind a folder to a Frame.io project first: a send goes to a bound project, or to a show/episode structure in its workspace."
            } else {
                "A bound project's root folder, or one project per show and a folder per episode, read from the document's folder path."
            }),
        Field::new("reviewers", "Reviewers", FieldKind::EmailList)
            .required()
            .value(values.get("reviewers"))
            .help(if caps.invites {
                "Email addresses, separated by commas or lines, at most 50. Frame.io invites them, and each gets the link by email."
            } else {
                "Email addresses, separated by commas or lines, at most 50. Each gets the link by email."
            }),
        Field::new("description", "Note for the reviewers", FieldKind::Multiline).max_length(2000).value(values.get("description")),
    ];
    if caps.expiry {
        let default = dates::date_of(ctx.host.now() + DEFAULT_EXPIRY_DAYS * 86_400);
        fields.push(
            Field::new("expires-at", "Link expires", FieldKind::Date)
                .value(values.or("expires-at", &default))
                .help("The link stops working at the end of this day (UTC). Empty: it does not expire."),
        );
    }
    if caps.password {
        fields.push(Field::new("password", "Password", FieldKind::Secret).max_length(128).help("4 to 128 characters. Empty: no password."));
    }
    fields.push(Field::new("allow-download", "Reviewers may download the file", FieldKind::Toggle).value(values.or("allow-download", "false")));
    let mut intro = format!("Upload a version of \"{}\" to Frame.io and send the reviewers a link.", document.title);
    if caps.watermark {
        fields.push(Field::new("watermark", "Watermark what the reviewers see", FieldKind::Toggle).value(values.or("watermark", "false")).help(caps.watermark_note));
    } else {
        intro = format!("{intro} {}", caps.watermark_note);
    }
    Ok(Form {
        dialog: DIALOG.into(),
        title: format!("Send \"{}\" for review", document.title),
        intro,
        fields,
        submit_label: "Send for review".into(),
        actions: Vec::new(),
        problem: String::new(),
    })
}

/// The request the values make, or the problems with them.
fn request(context: &FormContext, values: &Values) -> std::result::Result<ReviewRequest, Vec<FieldProblem>> {
    let mut problems = Vec::new();
    let version = match values.get("version") {
        "" => 0,
        v => v.parse::<u32>().unwrap_or_else(|_| {
            problems.push(FieldProblem::new("version", "Choose a version."));
            0
        }),
    };
    let rendition = match values.get("rendition") {
        "" | "master" => RenditionKind::Master,
        "proxy" => RenditionKind::Proxy,
        _ => {
            problems.push(FieldProblem::new("rendition", "Choose the master or the proxy."));
            RenditionKind::Master
        }
    };
    let destination = match values.get("destination").split_once(':') {
        Some(("binding", id)) => Some(Destination::Binding(id.to_string())),
        Some(("structure", id)) => Some(Destination::Structure(id.to_string())),
        _ => None,
    };
    if destination.is_none() {
        problems.push(FieldProblem::new("destination", "Choose where to send it."));
    }
    let reviewers: Vec<String> = values
        .get("reviewers")
        .split([',', ';', '\n', '\r'])
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(String::from)
        .collect();
    if reviewers.is_empty() {
        problems.push(FieldProblem::new("reviewers", "Add at least one reviewer's email address."));
    }
    let expires_at = match values.get("expires-at") {
        "" => None,
        day => dates::end_of_day(day).or_else(|| {
            problems.push(FieldProblem::new("expires-at", format!("{day:?} is not a day: use YYYY-MM-DD.")));
            None
        }),
    };
    let password = Some(values.get("password").to_string()).filter(|p| !p.is_empty());
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(ReviewRequest {
        user: context.user.clone(),
        document_id: context.subject.clone(),
        version,
        destination: destination.expect("checked above"),
        reviewers,
        description: values.get("description").to_string(),
        expires_at,
        password,
        rendition,
        allow_download: values.toggle("allow-download"),
        watermark: values.toggle("watermark"),
    })
}

/// Accepts the send and answers its job, or says which field to fix.
pub fn submit(ctx: &Context, context: &FormContext, values: &Values) -> std::result::Result<Outcome, SubmitError> {
    let document = ctx.host.get_document(&context.subject).map_err(|_| Error::NotFound(format!("document {}", context.subject)))?;
    let req = request(context, values).map_err(SubmitError::Invalid)?;
    let reviewers = req.reviewers.len();
    let job = review::send_checked(ctx, req).map_err(|refused| match refused {
        Refused::Value { field, why } => SubmitError::Invalid(vec![FieldProblem::new(field, sentence(&why))]),
        Refused::Other(Error::NotFound(what)) if what.starts_with("binding") => {
            SubmitError::Invalid(vec![FieldProblem::new("destination", "That project is no longer bound: choose another.")])
        }
        Refused::Other(e) => SubmitError::Failed(e),
    })?;
    let key = job.key.clone();
    Ok(Outcome {
        message: format!(
            "Sending \"{}\" for review: the upload runs in the background, then {reviewers} reviewer{} get the link.",
            document.title,
            if reviewers == 1 { "" } else { "s" }
        ),
        enqueue: vec![job],
        made: vec![("job-key".into(), key)],
    })
}
