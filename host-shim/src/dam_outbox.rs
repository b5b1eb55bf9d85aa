//! DAM changes on their way to the connector (`dam-events.notify`).
//!
//! A DAM user's comment, edit or delete is written to the repository in the same
//! transaction as its event here; the event is told to the connector, and the jobs
//! the connector asks for are queued in the same transaction that drops the event.
//! A host stopped in between (a crash, a SIGKILL) tells the events left here again
//! when it starts, before it serves anyone. Without this, a comment stored in the
//! DAM could never reach Frame.io, a comment deleted in the DAM would stay in
//! Frame.io (and come back into the DAM with the next sync), and the mark the
//! connector sets when it is told (its syncs wait for the post it announces) would
//! hold until it expires, with no post to clear it.
//!
//! Telling an event again is harmless: the connector's post jobs find a comment
//! already posted, edited or gone.

use rusqlite::{Connection, params};
use serde::{Deserialize, Serialize};

use crate::db::{Database, unix_millis};
use crate::imports::repository::Comment;
use crate::queue::{JobQueue, QueueError};
use crate::runtime::dam_events::{DamComment, Event};
use crate::runtime::{ConnectorError, Runtime};

/// A DAM comment change, as kept until the connector has been told.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Change {
    Added(Said),
    Edited(Said),
    Deleted(Said),
}

/// A comment as the event tells it (WIT `dam-events.dam-comment`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Said {
    pub document_id: String,
    pub comment_id: String,
    pub parent_id: Option<String>,
    pub user: String,
    pub text: String,
    pub frame: Option<u64>,
}

impl Said {
    /// `comment`, as `user` made or changed it.
    pub fn of(comment: &Comment, user: &str) -> Said {
        Said {
            document_id: comment.document_id.clone(),
            comment_id: comment.id.clone(),
            parent_id: comment.parent_id.clone(),
            user: user.to_string(),
            text: comment.body.text.clone(),
            frame: comment.body.frame,
        }
    }

    fn wit(&self) -> DamComment {
        DamComment {
            document_id: self.document_id.clone(),
            comment_id: self.comment_id.clone(),
            parent_id: self.parent_id.clone(),
            user: self.user.clone(),
            text: self.text.clone(),
            frame: self.frame,
        }
    }
}

impl Change {
    /// The WIT event.
    pub fn event(&self) -> Event {
        match self {
            Change::Added(c) => Event::CommentAdded(c.wit()),
            Change::Edited(c) => Event::CommentEdited(c.wit()),
            Change::Deleted(c) => Event::CommentDeleted(c.wit()),
        }
    }
}

/// Events written, by their row ids, in the order they are to be told.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pending(Vec<(i64, Change)>);

/// Writes `changes` (in the caller's transaction, beside the change itself).
pub fn record(c: &Connection, changes: Vec<Change>) -> rusqlite::Result<Pending> {
    let now = unix_millis();
    let mut pending = Vec::with_capacity(changes.len());
    for change in changes {
        let event = serde_json::to_string(&change).expect("DAM events serialise to JSON");
        c.execute("INSERT INTO dam_events (event, created_at) VALUES (?1, ?2)", params![event, now])?;
        pending.push((c.last_insert_rowid(), change));
    }
    Ok(Pending(pending))
}

/// Every event not yet told, oldest first. An unreadable one is dropped and logged.
pub fn pending(db: &Database) -> rusqlite::Result<Pending> {
    let rows: Vec<(i64, String)> = db.with(|c| {
        let mut stmt = c.prepare("SELECT id, event FROM dam_events ORDER BY id")?;
        let rows = stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
        rows.collect::<rusqlite::Result<_>>()
    })?;
    let mut pending = Vec::new();
    for (id, event) in rows {
        match serde_json::from_str(&event) {
            Ok(change) => pending.push((id, change)),
            Err(e) => {
                tracing::error!(id, error = %e, "dropping an unreadable DAM event");
                db.with(|c| forget(c, &[id]))?;
            }
        }
    }
    Ok(Pending(pending))
}

fn forget(c: &Connection, ids: &[i64]) -> rusqlite::Result<()> {
    for id in ids {
        c.execute("DELETE FROM dam_events WHERE id = ?1", [id])?;
    }
    Ok(())
}

/// Why events were not told; they are dropped all the same (the change stays in the
/// DAM only, as when the connector refuses it).
#[derive(Debug)]
pub enum Untold {
    /// The connector refused an event.
    Refused(ConnectorError),
    /// The call into the component failed (a trap, a deadline).
    Failed(anyhow::Error),
    /// The jobs could not be queued (the events are kept, to be told again).
    Queue(QueueError),
}

/// Tells the connector `pending`, in order, and queues every job it asks for in the
/// transaction that drops the events. Returns how many jobs were queued.
pub async fn tell(runtime: &Runtime, queue: &JobQueue, pending: Pending) -> Result<usize, Untold> {
    let ids: Vec<i64> = pending.0.iter().map(|(id, _)| *id).collect();
    let mut jobs = Vec::new();
    for (_, change) in &pending.0 {
        let refusal = match runtime.dam_event(&change.event()).await {
            Ok(Ok(more)) => {
                jobs.extend(more.into_iter().map(|j| (j.key, j.kind, j.payload)));
                continue;
            }
            Ok(Err(e)) => Untold::Refused(e),
            Err(e) => Untold::Failed(e),
        };
        queue.enqueue_all_and(&[], |tx| forget(tx, &ids)).map_err(Untold::Queue)?;
        return Err(refusal);
    }
    let count = jobs.len();
    queue.enqueue_all_and(&jobs, |tx| forget(tx, &ids)).map_err(Untold::Queue)?;
    Ok(count)
}

/// Tells the connector every event a stopped host left untold. Run at start, before
/// the worker and the listeners.
pub async fn replay(runtime: &Runtime, queue: &JobQueue, db: &Database) -> anyhow::Result<()> {
    let Pending(pending) = pending(db)?;
    if pending.is_empty() {
        return Ok(());
    }
    tracing::warn!(events = pending.len(), "telling the connector DAM changes the host stopped before telling");
    for (id, change) in pending {
        match tell(runtime, queue, Pending(vec![(id, change)])).await {
            Ok(_) => {}
            Err(Untold::Queue(e)) => return Err(e.into()),
            Err(e) => tracing::error!(id, error = ?e, "the connector did not take a DAM change"),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn said(id: &str) -> Said {
        Said { document_id: "doc-1".into(), comment_id: id.into(), parent_id: None, user: "dana".into(), text: "Hi".into(), frame: Some(3) }
    }

    #[test]
    fn events_wait_in_order_until_their_jobs_are_queued() {
        let db = Database::open_in_memory().unwrap();
        let queue = JobQueue::new(db.clone());
        let written = db.with(|c| record(c, vec![Change::Deleted(said("cmt-2")), Change::Deleted(said("cmt-1"))])).unwrap();
        db.with(|c| record(c, vec![Change::Added(said("cmt-3"))])).unwrap();
        let left = pending(&db).unwrap();
        assert_eq!(left.0.len(), 3);
        assert_eq!(left.0[..2], written.0[..], "oldest first, in the order written");
        // What `tell` does once the connector has answered: the jobs and the
        // events' removal in one transaction.
        let ids: Vec<i64> = written.0.iter().map(|(id, _)| *id).collect();
        let jobs = vec![("post:1".to_string(), "post".to_string(), b"{}".to_vec())];
        queue.enqueue_all_and(&jobs, |tx| forget(tx, &ids)).unwrap();
        assert_eq!(pending(&db).unwrap().0.iter().map(|(_, c)| c.clone()).collect::<Vec<_>>(), [Change::Added(said("cmt-3"))]);
        // A refused job (an invalid key) queues nothing and keeps the events.
        let bad = vec![(String::new(), "post".to_string(), Vec::new())];
        assert!(queue.enqueue_all_and(&bad, |tx| forget(tx, &[left.0[2].0])).is_err());
        assert_eq!(pending(&db).unwrap().0.len(), 1);
    }
}
