//! What the connector remembers of each archive, in `storage`:
//!
//! - `archive/<key>`: the archive itself (who, what, where, its state), written by
//!   its parent job and by `start`;
//! - `archive-item/<key>/<asset id>`: one per file or version stack, written once
//!   by the child job that copied it (or gave up on it): the exact record the
//!   report is counted from;
//! - `archive-tally/<key>`: running totals of the items, for progress while the
//!   archive runs;
//! - `archive-run/<project id>/<folder id>`: how many archives of that project into
//!   that folder were ever started, which numbers the next one's key.

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::frameio::model::Generation;
use crate::host::Host;
use crate::store;

const ARCHIVE: &str = "archive/";
const ITEM: &str = "archive-item/";
const TALLY: &str = "archive-tally/";
const RUN: &str = "archive-run/";
/// How often a tally update retries when another child job updated it meanwhile.
const TALLY_ATTEMPTS: u32 = 20;

/// Where an archive stands (WIT `archive-state`).
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ArchiveState {
    Queued,
    Running,
    Done,
    Failed,
}

impl ArchiveState {
    /// Whether the archive still holds its place in its connection's queue.
    pub fn is_open(self) -> bool {
        matches!(self, ArchiveState::Queued | ArchiveState::Running)
    }
}

/// An archive: what, where, for whom, and how far.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ArchiveRecord {
    pub key: String,
    pub user: String,
    pub generation: Generation,
    pub account_id: String,
    pub workspace_id: String,
    pub project_id: String,
    pub project_name: String,
    pub folder_id: String,
    pub state: ArchiveState,
    /// When it was started (milliseconds, so that archives started in one second
    /// keep their order).
    pub queued_at_ms: u64,
    pub started_at: Option<u64>,
    pub finished_at: Option<u64>,
    /// What it is doing, or why it failed.
    pub message: String,
    /// Folders made and assets found by the walk so far.
    pub folders: u32,
    pub found: u32,
}

/// What one asset's copy came to, or the sum of many.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Tally {
    pub documents: u32,
    pub versions: u32,
    pub comments: u32,
    pub bytes: u64,
    /// What was left out, each as `name: reason`.
    pub skipped: Vec<String>,
}

impl Tally {
    /// Adds `other` in (its reasons too).
    pub fn add(&mut self, other: &Tally) {
        self.documents += other.documents;
        self.versions += other.versions;
        self.comments += other.comments;
        self.bytes += other.bytes;
        self.skipped.extend(other.skipped.iter().cloned());
    }
}

/// The running totals kept for progress: counts only, the reasons stay with items.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Totals {
    pub documents: u32,
    pub versions: u32,
    pub comments: u32,
    pub bytes: u64,
    pub skipped: u32,
}

pub fn load(host: &dyn Host, key: &str) -> Result<Option<ArchiveRecord>> {
    Ok(store::load(host, &format!("{ARCHIVE}{key}"))?.map(|s| s.value))
}

pub fn save(host: &dyn Host, record: &ArchiveRecord) -> Result<()> {
    store::save(host, &format!("{ARCHIVE}{}", record.key), record)?;
    Ok(())
}

/// Every archive, newest first.
pub fn all(host: &dyn Host) -> Result<Vec<ArchiveRecord>> {
    let mut records = Vec::new();
    for key in host.storage_list(ARCHIVE)? {
        if let Some(found) = store::load::<ArchiveRecord>(host, &key)? {
            records.push(found.value);
        }
    }
    records.sort_by(|a, b| (b.queued_at_ms, &b.key).cmp(&(a.queued_at_ms, &a.key)));
    Ok(records)
}

/// How many open archives of the same user come before `record`.
pub fn ahead(all: &[ArchiveRecord], record: &ArchiveRecord) -> u32 {
    let before = |other: &ArchiveRecord| (other.queued_at_ms, &other.key) < (record.queued_at_ms, &record.key);
    all.iter().filter(|other| other.user == record.user && other.state.is_open() && before(other)).count() as u32
}

/// The open archive of `project_id` into `folder_id`, if there is one.
pub fn open_for(host: &dyn Host, project_id: &str, folder_id: &str) -> Result<Option<ArchiveRecord>> {
    let Some(run) = runs(host, project_id, folder_id)? else { return Ok(None) };
    Ok(load(host, &key_of(project_id, folder_id, run))?.filter(|r| r.state.is_open()))
}

/// The key for a new archive of `project_id` into `folder_id`, counting it as started.
pub fn next_key(host: &dyn Host, project_id: &str, folder_id: &str) -> Result<String> {
    let run = runs(host, project_id, folder_id)?.unwrap_or(0) + 1;
    store::save(host, &run_key(project_id, folder_id), &run)?;
    Ok(key_of(project_id, folder_id, run))
}

/// Whether any archive of `project_id` into `folder_id` was ever started.
pub fn ever_started(host: &dyn Host, project_id: &str, folder_id: &str) -> Result<bool> {
    Ok(runs(host, project_id, folder_id)?.is_some())
}

fn runs(host: &dyn Host, project_id: &str, folder_id: &str) -> Result<Option<u32>> {
    Ok(store::load(host, &run_key(project_id, folder_id))?.map(|s| s.value))
}

fn run_key(project_id: &str, folder_id: &str) -> String {
    format!("{RUN}{project_id}/{folder_id}")
}

fn key_of(project_id: &str, folder_id: &str, run: u32) -> String {
    format!("archive:{project_id}:{folder_id}:{run}")
}

/// Records what copying `asset_id` came to, once: a replayed job finds its record
/// and adds nothing to the totals a second time. Returns whether it was new.
pub fn record_item(host: &dyn Host, key: &str, asset_id: &str, item: &Tally) -> Result<bool> {
    let item_key = format!("{ITEM}{key}/{asset_id}");
    if store::save_if(host, &item_key, None, item)?.is_none() {
        return Ok(false);
    }
    add_to_totals(host, key, item)?;
    Ok(true)
}

/// Adds an item to the running totals, with compare-and-swap: child jobs finish
/// concurrently, and none may overwrite another's count. Best effort: a crash
/// between the item and its totals leaves progress one behind, never the report.
fn add_to_totals(host: &dyn Host, key: &str, item: &Tally) -> Result<()> {
    let totals_key = format!("{TALLY}{key}");
    for _ in 0..TALLY_ATTEMPTS {
        let stored = store::load::<Totals>(host, &totals_key)?;
        let revision = stored.as_ref().map(|s| s.revision);
        let mut totals = stored.map(|s| s.value).unwrap_or_default();
        totals.documents += item.documents;
        totals.versions += item.versions;
        totals.comments += item.comments;
        totals.bytes += item.bytes;
        totals.skipped += item.skipped.len() as u32;
        if store::save_if(host, &totals_key, revision, &totals)?.is_some() {
            return Ok(());
        }
    }
    // The totals only show progress; the report counts the items themselves.
    Ok(())
}

/// The running totals, for progress.
pub fn totals(host: &dyn Host, key: &str) -> Result<Totals> {
    Ok(store::load(host, &format!("{TALLY}{key}"))?.map(|s| s.value).unwrap_or_default())
}

/// How many assets have their item record.
pub fn items_recorded(host: &dyn Host, key: &str) -> Result<u32> {
    Ok(item_keys(host, key)?.len() as u32)
}

/// The sum of every item record: the exact account of the archive.
pub fn sum_items(host: &dyn Host, key: &str) -> Result<Tally> {
    let mut sum = Tally::default();
    for item_key in item_keys(host, key)? {
        if let Some(item) = store::load::<Tally>(host, &item_key)? {
            sum.add(&item.value);
        }
    }
    Ok(sum)
}

/// Every item record's key, past the storage's listing cap.
fn item_keys(host: &dyn Host, key: &str) -> Result<Vec<String>> {
    store::list_all(host, &format!("{ITEM}{key}/"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake_host::FakeHost;

    #[test]
    fn items_past_one_listing_are_all_counted() {
        let host = FakeHost::new();
        let item = Tally { documents: 1, versions: 2, ..Tally::default() };
        // Ids sharing long prefixes, so that one split is not enough either.
        let ids: Vec<String> = (0..2_500u32).map(|i| format!("{:08x}-0000-4000-8000-{:012x}", i % 3, i)).collect();
        for id in &ids {
            assert!(record_item(&host, "archive:p:f:1", id, &item).unwrap());
        }
        record_item(&host, "archive:p:f:10", "other", &item).unwrap();
        assert_eq!(host.storage_list(&format!("{ITEM}archive:p:f:1/")).unwrap().len(), store::LISTED_AT_MOST, "one listing stops at the cap");
        assert_eq!(items_recorded(&host, "archive:p:f:1").unwrap(), 2_500);
        let sum = sum_items(&host, "archive:p:f:1").unwrap();
        assert_eq!((sum.documents, sum.versions), (2_500, 5_000));
    }
}
