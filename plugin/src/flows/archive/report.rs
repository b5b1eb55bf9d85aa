//! How an archive ends: the report on the destination folder and to the user who
//! started it.

use super::record::{self, ArchiveRecord, ArchiveState, Tally};
use crate::error::Result;
use crate::flows::{Context, Step, subject_title};
use crate::host::{Message, Recipient};

/// Most bytes of the list of assets left out kept on the folder (a property's
/// value is bounded); the email and the job's record say how many there were.
const MAX_SKIPPED_BYTES: usize = 60 * 1024;
/// Most assets left out named in the email.
const MAX_SKIPPED_IN_EMAIL: usize = 50;

/// Counts every item, writes the report, tells the user, and closes the archive.
pub fn finished(ctx: &Context, mut record: ArchiveRecord) -> Result<Step> {
    let tally = record::sum_items(ctx.host, &record.key)?;
    let now = ctx.host.now();
    let seconds = now.saturating_sub(record.started_at.unwrap_or(now));
    ctx.host.set_folder_properties(&record.folder_id, &report_properties(&record, &tally, seconds, now))?;
    let summary = format!(
        "{} folders, {} documents, {} versions, {} comments, {} bytes in {seconds} s; {} assets left out",
        record.folders,
        tally.documents,
        tally.versions,
        tally.comments,
        tally.bytes,
        tally.skipped.len()
    );
    let message = Message {
        to: Recipient::DamUser(record.user.clone()),
        subject: format!("Frame.io project \"{}\" is archived", subject_title(&record.project_name)),
        body: email_body(&record, &summary, &tally.skipped),
        link: None,
    };
    record.state = ArchiveState::Done;
    record.finished_at = Some(now);
    record.message = summary.clone();
    record::save(ctx.host, &record)?;
    // The archive is complete and recorded; an email that cannot go out must not
    // undo that.
    let summary = match ctx.host.notify(message) {
        Ok(()) => summary,
        Err(e) => format!("{summary}; the email could not be sent: {e}"),
    };
    Ok(Step::done(summary))
}

/// Closes an archive that could not finish, and tells the user why.
pub fn failed(ctx: &Context, mut record: ArchiveRecord, why: &str) {
    record.state = ArchiveState::Failed;
    record.finished_at = Some(ctx.host.now());
    record.message = why.to_string();
    let message = Message {
        to: Recipient::DamUser(record.user.clone()),
        subject: format!("Frame.io project \"{}\" could not be archived", subject_title(&record.project_name)),
        body: format!("The archive of {} stopped: {why}\nWhat was copied stays; starting the archive again copies the rest.", record.project_name),
        link: None,
    };
    // The failure is on the job either way; neither a lost write nor a lost email may hide it.
    let _ = record::save(ctx.host, &record);
    let _ = ctx.host.notify(message);
}

fn report_properties(record: &ArchiveRecord, tally: &Tally, seconds: u64, now: u64) -> Vec<(String, String)> {
    let mut skipped = String::new();
    for line in &tally.skipped {
        if skipped.len() + line.len() + 1 > MAX_SKIPPED_BYTES {
            break;
        }
        skipped.push_str(line);
        skipped.push('\n');
    }
    [
        ("frameio.archive.key", record.key.clone()),
        ("frameio.archive.folders", record.folders.to_string()),
        ("frameio.archive.documents", tally.documents.to_string()),
        ("frameio.archive.versions", tally.versions.to_string()),
        ("frameio.archive.comments", tally.comments.to_string()),
        ("frameio.archive.bytes", tally.bytes.to_string()),
        ("frameio.archive.seconds", seconds.to_string()),
        ("frameio.archive.finished-at", now.to_string()),
        ("frameio.archive.skipped", tally.skipped.len().to_string()),
        ("frameio.archive.skipped-assets", skipped),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_string(), value))
    .collect()
}

fn email_body(record: &ArchiveRecord, summary: &str, skipped: &[String]) -> String {
    let mut body = format!("The Frame.io project {} is archived: {summary}.", record.project_name);
    if !skipped.is_empty() {
        body.push_str("\n\nLeft out:\n");
        for line in skipped.iter().take(MAX_SKIPPED_IN_EMAIL) {
            body.push_str(&format!("- {line}\n"));
        }
        if skipped.len() > MAX_SKIPPED_IN_EMAIL {
            body.push_str(&format!("... and {} more, listed on the folder.\n", skipped.len() - MAX_SKIPPED_IN_EMAIL));
        }
    }
    body
}
