//! Durable jobs in SQLite.
//!
//! A job is created once per key (Frame.io's interaction id makes a webhook replay
//! harmless), then claimed, run one step at a time, and moved on with the step's
//! outcome. A claimed job holds a lease: if the host dies mid-step, the job is handed
//! out again once the lease expires, with its attempt counter raised.
//!
//! Times are Unix milliseconds. While a job runs, `run_after` holds its lease expiry,
//! so "due" means the same thing for queued and running jobs: `run_after <= now`.

use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};
use serde::{Deserialize, Serialize};

use crate::db::{Database, Page, new_id, unix_millis};

/// How long a claimed job stays claimed before another claim may take it over.
pub const LEASE_MS: i64 = 5 * 60 * 1000;
/// Longest job key, in bytes.
pub const MAX_KEY_BYTES: usize = 512;
/// Longest job kind, in bytes.
pub const MAX_KIND_BYTES: usize = 64;
/// Largest payload, in bytes.
pub const MAX_PAYLOAD_BYTES: usize = 1 << 20;

/// A job handed to the worker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Job {
    /// The queue's identifier (`job-` and 12 hex digits).
    pub id: String,
    /// The idempotency key it was queued with.
    pub key: String,
    /// Its kind.
    pub kind: String,
    /// The payload for this step.
    pub payload: Vec<u8>,
    /// How many times this step was tried before (0 on the first try).
    pub attempt: u32,
}

/// A job as the admin view shows it (payload left out).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRow {
    /// The queue's identifier.
    pub id: String,
    /// The idempotency key.
    pub key: String,
    /// Its kind.
    pub kind: String,
    /// `queued`, `running`, `done` or `failed`.
    pub state: String,
    /// Tries of the current step so far.
    pub attempt: u32,
    /// The last step's status (from `next`) or retry reason.
    pub status_text: Option<String>,
    /// The summary (`done`) or the reason (`failed`).
    pub result_text: Option<String>,
    /// When the job is due (queued) or its lease ends (running).
    pub run_after: i64,
    /// When it was queued.
    pub created_at: i64,
    /// When it last changed.
    pub updated_at: i64,
}

/// Why a job could not be queued.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The key, kind or payload was refused.
    #[error("invalid job: {0}")]
    Invalid(String),
    /// The database failed.
    #[error("job queue unavailable: {0}")]
    Database(#[from] rusqlite::Error),
}

/// Columns of a [`JobRow`], in the order [`job_row`] reads them.
const ROW_COLUMNS: &str = "id, key, kind, state, attempt, status_text, result_text, run_after, created_at, updated_at";

/// A job to queue: key, kind and payload.
pub type NewJob = (String, String, Vec<u8>);

/// The job queue.
#[derive(Clone)]
pub struct JobQueue {
    db: Database,
}

impl JobQueue {
    /// The queue in `db`.
    pub fn new(db: Database) -> JobQueue {
        JobQueue { db }
    }

    /// Queues a job due now. Returns its id, or `None` if a job with `key` exists
    /// (whatever its state): a key is only ever queued once.
    pub fn enqueue(&self, key: &str, kind: &str, payload: &[u8]) -> Result<Option<String>, QueueError> {
        check_job(key, kind, payload)?;
        Ok(self.db.with(|c| insert_job(c, key, kind, payload))?)
    }

    /// Queues several jobs in one transaction: either all new ones are queued or none
    /// is. Returns, per job, its new id or `None` for a key that existed.
    pub fn enqueue_all(&self, jobs: &[(String, String, Vec<u8>)]) -> Result<Vec<Option<String>>, QueueError> {
        self.enqueue_all_and(jobs, |_| Ok(()))
    }

    /// [`JobQueue::enqueue_all`], and `also` in the same transaction: the jobs are
    /// queued if and only if `also` succeeds.
    pub fn enqueue_all_and(
        &self,
        jobs: &[(String, String, Vec<u8>)],
        also: impl FnOnce(&Connection) -> rusqlite::Result<()>,
    ) -> Result<Vec<Option<String>>, QueueError> {
        for (key, kind, payload) in jobs {
            check_job(key, kind, payload)?;
        }
        let ids = self.db.with(|c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let ids =
                jobs.iter().map(|(key, kind, payload)| insert_job(&tx, key, kind, payload)).collect::<rusqlite::Result<_>>()?;
            also(&tx)?;
            tx.commit()?;
            Ok::<_, rusqlite::Error>(ids)
        })?;
        Ok(ids)
    }

    /// Claims the job that has been due longest, if any: a queued job whose time has
    /// come, or a running job whose lease expired (its step is presumed lost, so its
    /// attempt counter goes up). The job gets a lease of [`LEASE_MS`] from `now_ms`.
    ///
    /// A single statement, so two workers can never claim the same job.
    pub fn claim_due(&self, now_ms: i64) -> rusqlite::Result<Option<Job>> {
        self.db.with(|c| {
            c.query_row(
                "UPDATE jobs SET state = 'running', attempt = attempt + (state = 'running'),
                                 run_after = ?2, updated_at = ?1
                 WHERE id = (SELECT id FROM jobs WHERE state IN ('queued', 'running') AND run_after <= ?1
                             ORDER BY run_after, created_at, rowid LIMIT 1)
                 RETURNING id, key, kind, payload, attempt",
                params![now_ms, now_ms.saturating_add(LEASE_MS)],
                |row| {
                    Ok(Job { id: row.get(0)?, key: row.get(1)?, kind: row.get(2)?, payload: row.get(3)?, attempt: row.get(4)? })
                },
            )
            .optional()
        })
    }

    /// Hands back every job a previous run of this host was running when it stopped
    /// (crashed, killed): due now, with its attempt counter raised, instead of waiting
    /// out its lease. Only for startup, while no worker of this host runs yet; the
    /// data directory lock (see `app::start`) keeps other hosts away. Returns how many.
    pub fn requeue_orphans(&self, now_ms: i64) -> rusqlite::Result<usize> {
        self.db.with(|c| {
            c.execute(
                "UPDATE jobs SET state = 'queued', attempt = attempt + 1, run_after = ?1, updated_at = ?1,
                                 status_text = 'resumed after the host restarted'
                 WHERE state = 'running'",
                [now_ms],
            )
        })
    }

    /// Moves a running job on to its next step: new payload, due after `delay_ms`,
    /// attempt counter back to 0.
    pub fn next(&self, id: &str, payload: &[u8], delay_ms: u32, status: &str, children: &[NewJob]) -> rusqlite::Result<()> {
        let now = unix_millis();
        self.update_running(
            id,
            "UPDATE jobs SET state = 'queued', payload = ?2, attempt = 0, run_after = ?3, status_text = ?4, updated_at = ?5
             WHERE id = ?1 AND state = 'running'",
            params![id, payload, now + i64::from(delay_ms), status, now],
            children,
        )
    }

    /// Makes a queued job due now if it was due later (its awaited transfer ended).
    pub fn wake(&self, id: &str, now_ms: i64) -> rusqlite::Result<()> {
        self.db.with(|c| {
            c.execute("UPDATE jobs SET run_after = ?2 WHERE id = ?1 AND state = 'queued' AND run_after > ?2", params![id, now_ms])
        })?;
        Ok(())
    }

    /// Puts a running job back to run the same step again after `delay_ms`, counting
    /// the attempt.
    pub fn retry(&self, id: &str, delay_ms: u32, reason: &str) -> rusqlite::Result<()> {
        let now = unix_millis();
        self.update_running(
            id,
            "UPDATE jobs SET state = 'queued', attempt = attempt + 1, run_after = ?2, status_text = ?3, updated_at = ?4
             WHERE id = ?1 AND state = 'running'",
            params![id, now + i64::from(delay_ms), reason, now],
            &[],
        )
    }

    /// Marks a running job done, with a summary, queueing its follow-up jobs in the
    /// same transaction.
    pub fn finish(&self, id: &str, summary: &str, children: &[NewJob]) -> rusqlite::Result<()> {
        self.end(id, "done", summary, children)
    }

    /// Marks a running job failed, with the reason. It is not run again.
    pub fn fail(&self, id: &str, reason: &str) -> rusqlite::Result<()> {
        self.end(id, "failed", reason, &[])
    }

    /// Runs a failed job again from the step that failed, at once, with a fresh
    /// count of tries (steps are idempotent, so the step may run again). Whether the
    /// job was failed; a job in any other state is left as it is.
    pub fn retry_failed(&self, id: &str, now_ms: i64) -> rusqlite::Result<bool> {
        let changed = self.db.with(|c| {
            c.execute(
                "UPDATE jobs SET state = 'queued', attempt = 0, run_after = ?2, updated_at = ?2, result_text = NULL,
                 status_text = 'retried after: ' || COALESCE(result_text, 'a failure')
                 WHERE id = ?1 AND state = 'failed'",
                params![id, now_ms],
            )
        })?;
        Ok(changed == 1)
    }

    /// Ends a job. Its status says how it ended, not what its last step was doing.
    fn end(&self, id: &str, state: &str, text: &str, children: &[NewJob]) -> rusqlite::Result<()> {
        self.update_running(
            id,
            "UPDATE jobs SET state = ?2, result_text = ?3, status_text = ?2 || ': ' || ?3, updated_at = ?4
             WHERE id = ?1 AND state = 'running'",
            params![id, state, text, unix_millis()],
            children,
        )
    }

    /// Runs an outcome's update, which only matches a running job: an outcome for a
    /// job that is no longer running (a step that outlived its lease, whose job was
    /// claimed again and finished) must not overwrite what happened since.
    ///
    /// `children` are queued in the same transaction, and only if the update
    /// matched, so a step's child jobs are queued exactly when its outcome is
    /// recorded. A child that is malformed is left out, and logged.
    fn update_running(&self, id: &str, sql: &str, params: &[&dyn rusqlite::ToSql], children: &[NewJob]) -> rusqlite::Result<()> {
        let valid: Vec<&NewJob> = children
            .iter()
            .filter(|(key, kind, payload)| match check_job(key, kind, payload) {
                Ok(()) => true,
                Err(e) => {
                    tracing::warn!(job = id, child = %key, error = %e, "a malformed child job was not queued");
                    false
                }
            })
            .collect();
        let changed = self.db.with(|c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let changed = tx.execute(sql, params)?;
            if changed == 1 {
                for (key, kind, payload) in valid {
                    insert_job(&tx, key, kind, payload)?;
                }
            }
            tx.commit()?;
            Ok::<_, rusqlite::Error>(changed)
        })?;
        if changed == 0 {
            tracing::warn!(job = id, "outcome ignored: the job is not running (lease lost or unknown id)");
        }
        Ok(())
    }

    /// The job `id`, if it exists.
    pub fn get(&self, id: &str) -> rusqlite::Result<Option<JobRow>> {
        self.db.with(|c| c.query_row(&format!("SELECT {ROW_COLUMNS} FROM jobs WHERE id = ?1"), [id], job_row).optional())
    }

    /// The job queued with `key`, if any.
    pub fn find_by_key(&self, key: &str) -> rusqlite::Result<Option<JobRow>> {
        self.db.with(|c| c.query_row(&format!("SELECT {ROW_COLUMNS} FROM jobs WHERE key = ?1"), [key], job_row).optional())
    }

    /// A page of jobs, newest first, and the cursor of the next page.
    pub fn list(&self, page: &Page) -> rusqlite::Result<(Vec<JobRow>, Option<String>)> {
        let rows = self.db.with(|c| {
            let mut stmt = c.prepare_cached(&format!("SELECT {ROW_COLUMNS} FROM jobs {}", Page::sql("created_at", "id")))?;
            let (time, id, limit) = page.params();
            let rows = stmt.query_map(params![time, id, limit], job_row)?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
        })?;
        Ok(page.finish(rows, |job| (job.created_at, &job.id)))
    }

    /// Deletes the jobs that ended (done or failed) before `cutoff_ms`; returns how many.
    pub fn prune_finished(&self, cutoff_ms: i64) -> rusqlite::Result<usize> {
        self.db.with(|c| c.execute("DELETE FROM jobs WHERE state IN ('done', 'failed') AND updated_at < ?1", [cutoff_ms]))
    }

    /// How many jobs are in each state (`queued`, `running`, `done`, `failed`).
    pub fn counts(&self) -> rusqlite::Result<std::collections::BTreeMap<String, u64>> {
        self.db.with(|c| {
            let mut stmt = c.prepare_cached("SELECT state, COUNT(*) FROM jobs GROUP BY state")?;
            let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, u64>(1)?)))?;
            let mut counts: std::collections::BTreeMap<String, u64> =
                ["queued", "running", "done", "failed"].into_iter().map(|s| (s.to_string(), 0)).collect();
            for row in rows {
                let (state, n) = row?;
                counts.insert(state, n);
            }
            Ok(counts)
        })
    }

    /// When the next job falls due (a queued job's time or a running job's lease
    /// expiry), `None` if nothing is pending. Lets the worker sleep until then.
    pub fn next_due_at(&self) -> rusqlite::Result<Option<i64>> {
        self.db.with(|c| c.query_row("SELECT MIN(run_after) FROM jobs WHERE state IN ('queued', 'running')", [], |r| r.get(0)))
    }
}

/// Inserts a queued job unless its key exists; returns the new id.
fn insert_job(c: &Connection, key: &str, kind: &str, payload: &[u8]) -> rusqlite::Result<Option<String>> {
    let id = new_id("job-");
    let now = unix_millis();
    let inserted = c.execute(
        "INSERT INTO jobs (id, key, kind, payload, state, attempt, run_after, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, 'queued', 0, ?5, ?5, ?5) ON CONFLICT (key) DO NOTHING",
        params![id, key, kind, payload, now],
    )?;
    Ok((inserted == 1).then_some(id))
}

fn check_job(key: &str, kind: &str, payload: &[u8]) -> Result<(), QueueError> {
    let check = |what: &str, value: &str, max: usize| {
        if value.is_empty() || value.len() > max || value.chars().any(char::is_control) {
            Err(QueueError::Invalid(format!("the {what} must be 1 to {max} bytes without control characters")))
        } else {
            Ok(())
        }
    };
    check("key", key, MAX_KEY_BYTES)?;
    check("kind", kind, MAX_KIND_BYTES)?;
    if payload.len() > MAX_PAYLOAD_BYTES {
        return Err(QueueError::Invalid(format!("the payload is larger than {MAX_PAYLOAD_BYTES} bytes")));
    }
    Ok(())
}

fn job_row(row: &Row) -> rusqlite::Result<JobRow> {
    Ok(JobRow {
        id: row.get(0)?,
        key: row.get(1)?,
        kind: row.get(2)?,
        state: row.get(3)?,
        attempt: row.get(4)?,
        status_text: row.get(5)?,
        result_text: row.get(6)?,
        run_after: row.get(7)?,
        created_at: row.get(8)?,
        updated_at: row.get(9)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue() -> JobQueue {
        JobQueue::new(Database::open_in_memory().unwrap())
    }

    /// A time after everything queued so far is due.
    fn later() -> i64 {
        unix_millis() + 1
    }

    #[test]
    fn enqueue_claim_finish() {
        let q = queue();
        let id = q.enqueue("push:1", "push", b"payload").unwrap().unwrap();
        assert_eq!(q.next_due_at().unwrap().map(|at| at <= unix_millis()), Some(true));
        let job = q.claim_due(later()).unwrap().unwrap();
        assert_eq!(
            job,
            Job { id: id.clone(), key: "push:1".into(), kind: "push".into(), payload: b"payload".to_vec(), attempt: 0 }
        );
        assert_eq!(q.claim_due(later()).unwrap(), None, "a claimed job is not handed out twice");
        q.finish(&id, "imported", &[]).unwrap();
        let row = q.get(&id).unwrap().unwrap();
        assert_eq!((row.state.as_str(), row.result_text.as_deref()), ("done", Some("imported")));
        assert_eq!(q.next_due_at().unwrap(), None);
        assert_eq!(q.claim_due(i64::MAX).unwrap(), None, "done jobs never come back");
    }

    #[test]
    fn orphans_of_a_dead_host_are_due_at_once_with_a_higher_attempt() {
        let q = queue();
        let running = q.enqueue("push:1", "push", b"a").unwrap().unwrap();
        let waiting = q.enqueue("push:2", "push", b"b").unwrap().unwrap();
        assert_eq!(q.claim_due(later()).unwrap().unwrap().id, running);
        let restart = later();
        assert_eq!(q.requeue_orphans(restart).unwrap(), 1, "only the running job");
        let row = q.get(&running).unwrap().unwrap();
        assert_eq!((row.state.as_str(), row.attempt, row.run_after), ("queued", 1, restart));
        assert_eq!(q.get(&waiting).unwrap().unwrap().attempt, 0);
        let claimed: Vec<(String, u32)> = (0..2).map(|_| q.claim_due(restart).unwrap().unwrap()).map(|j| (j.id, j.attempt)).collect();
        assert!(claimed.contains(&(running, 1)), "handed out again without waiting for the lease: {claimed:?}");
    }

    #[test]
    fn pages_list_every_job_once_newest_first() {
        let q = queue();
        for i in 0..5 {
            q.enqueue(&format!("k{i}"), "push", b"").unwrap();
        }
        let (mut seen, mut page) = (Vec::new(), Page::first(2));
        loop {
            let (rows, next) = q.list(&page).unwrap();
            assert!(rows.len() <= 2);
            seen.extend(rows.into_iter().map(|j| (j.created_at, j.id)));
            let Some(cursor) = next else { break };
            page.after = Some(Page::parse_cursor(&cursor).unwrap());
        }
        assert_eq!(seen.len(), 5);
        let mut sorted = seen.clone();
        sorted.sort_by(|a, b| b.cmp(a));
        assert_eq!(seen, sorted, "newest first, none twice");
        assert_eq!(Page::parse_cursor("not a cursor"), None);
    }

    #[test]
    fn finished_jobs_older_than_the_cutoff_are_pruned() {
        let q = queue();
        q.enqueue("old", "push", b"").unwrap();
        let job = q.claim_due(later()).unwrap().unwrap();
        q.finish(&job.id, "imported", &[]).unwrap();
        assert_eq!(q.get(&job.id).unwrap().unwrap().status_text.as_deref(), Some("done: imported"));
        q.enqueue("queued", "push", b"").unwrap();
        assert_eq!(q.prune_finished(unix_millis() + 1).unwrap(), 1, "only the finished one");
        assert!(q.find_by_key("queued").unwrap().is_some());
    }

    #[test]
    fn a_steps_children_are_queued_with_its_outcome_and_only_then() {
        let q = queue();
        let id = q.enqueue("parent", "reconcile", b"").unwrap().unwrap();
        let children = vec![("child:1".to_string(), "sync".to_string(), b"a".to_vec()), ("bad\n".to_string(), "sync".to_string(), Vec::new())];
        // Not running yet: the outcome is ignored, and so are its children.
        q.next(&id, b"", 0, "fanned out", &children).unwrap();
        assert!(q.find_by_key("child:1").unwrap().is_none());
        let job = q.claim_due(later()).unwrap().unwrap();
        q.next(&job.id, b"", 0, "fanned out", &children).unwrap();
        assert!(q.find_by_key("child:1").unwrap().is_some(), "queued with the step's outcome");
        let parent = std::iter::from_fn(|| q.claim_due(later()).unwrap()).find(|j| j.key == "parent").unwrap();
        q.finish(&parent.id, "done", &[("child:2".to_string(), "sync".to_string(), Vec::new())]).unwrap();
        assert!(q.find_by_key("child:2").unwrap().is_some(), "and with the final one");
    }

    #[test]
    fn counts_jobs_by_state() {
        let q = queue();
        let first = q.enqueue("push:1", "push", b"a").unwrap().unwrap();
        q.enqueue("push:2", "push", b"b").unwrap();
        assert_eq!(q.claim_due(later()).unwrap().unwrap().id, first);
        q.finish(&first, "imported", &[]).unwrap();
        let counts = q.counts().unwrap();
        let counts: Vec<(&str, u64)> = counts.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        assert_eq!(counts, [("done", 1), ("failed", 0), ("queued", 1), ("running", 0)]);
    }

    #[test]
    fn a_failed_job_is_retried_from_its_failed_step_and_others_are_not() {
        let q = queue();
        let id = q.enqueue("push:1", "push", b"a").unwrap().unwrap();
        q.claim_due(later()).unwrap().unwrap();
        q.next(&id, b"step-2", 0, "downloading", &[]).unwrap();
        assert!(!q.retry_failed(&id, unix_millis()).unwrap(), "a queued job is not failed");
        q.claim_due(later()).unwrap().unwrap();
        q.fail(&id, "asset deleted").unwrap();
        assert!(q.retry_failed(&id, unix_millis()).unwrap());
        let row = q.get(&id).unwrap().unwrap();
        assert_eq!((row.state.as_str(), row.attempt, row.result_text), ("queued", 0, None));
        assert_eq!(row.status_text.as_deref(), Some("retried after: asset deleted"));
        let again = q.claim_due(later()).unwrap().unwrap();
        assert_eq!(again.payload, b"step-2", "the step that failed runs again");
    }

    #[test]
    fn waking_makes_a_queued_job_due_now_and_leaves_others_alone() {
        let q = queue();
        let id = q.enqueue("push:1", "push", b"a").unwrap().unwrap();
        q.claim_due(later()).unwrap().unwrap();
        q.next(&id, b"poll", 60_000, "downloading", &[]).unwrap();
        let now = unix_millis();
        assert_eq!(q.claim_due(now).unwrap(), None, "not due for a minute");
        q.wake(&id, now).unwrap();
        assert_eq!(q.claim_due(now).unwrap().map(|j| j.id), Some(id.clone()), "due at once");
        q.wake(&id, now).unwrap();
        assert_eq!(q.get(&id).unwrap().unwrap().state, "running", "a running job is left alone");
    }

    #[test]
    fn duplicate_key_is_queued_once() {
        let q = queue();
        let id = q.enqueue("push:1", "push", b"a").unwrap();
        assert!(id.is_some());
        assert_eq!(q.enqueue("push:1", "push", b"b").unwrap(), None);
        assert_eq!(q.list(&Page::first(10)).unwrap().0.len(), 1);
        let row = q.find_by_key("push:1").unwrap().unwrap();
        assert_eq!(Some(row.id), id);
        let job = q.claim_due(later()).unwrap().unwrap();
        assert_eq!(job.payload, b"a", "the first payload is kept");
    }

    #[test]
    fn enqueue_all_is_one_transaction_and_skips_existing_keys() {
        let q = queue();
        q.enqueue("a", "k", b"").unwrap();
        let jobs = vec![("a".to_string(), "k".to_string(), vec![]), ("b".to_string(), "k".to_string(), vec![1])];
        let ids = q.enqueue_all(&jobs).unwrap();
        assert_eq!(ids[0], None);
        assert!(ids[1].is_some());
        assert_eq!(q.list(&Page::first(10)).unwrap().0.len(), 2);

        let with_bad = vec![("c".to_string(), "k".to_string(), vec![]), (String::new(), "k".to_string(), vec![])];
        assert!(matches!(q.enqueue_all(&with_bad), Err(QueueError::Invalid(_))));
        assert_eq!(q.find_by_key("c").unwrap(), None, "nothing is queued when one job is refused");
    }

    #[test]
    fn enqueue_validates() {
        let q = queue();
        assert!(matches!(q.enqueue("", "k", b""), Err(QueueError::Invalid(_))));
        assert!(matches!(q.enqueue("k", "", b""), Err(QueueError::Invalid(_))));
        assert!(matches!(q.enqueue(&"k".repeat(513), "k", b""), Err(QueueError::Invalid(_))));
        assert!(matches!(q.enqueue("k\n", "k", b""), Err(QueueError::Invalid(_))));
        assert!(matches!(q.enqueue("k", "k", &vec![0; MAX_PAYLOAD_BYTES + 1]), Err(QueueError::Invalid(_))));
        assert!(q.list(&Page::first(10)).unwrap().0.is_empty());
    }

    #[test]
    fn next_step_replaces_payload_resets_attempt_and_waits() {
        let q = queue();
        let id = q.enqueue("j", "k", b"step-1").unwrap().unwrap();
        q.claim_due(later()).unwrap().unwrap();
        q.retry(&id, 0, "flaky").unwrap();
        assert_eq!(q.claim_due(later()).unwrap().unwrap().attempt, 1);
        q.next(&id, b"step-2", 60_000, "waiting for transfer", &[]).unwrap();
        let row = q.get(&id).unwrap().unwrap();
        assert_eq!((row.state.as_str(), row.attempt, row.status_text.as_deref()), ("queued", 0, Some("waiting for transfer")));
        assert_eq!(q.claim_due(later()).unwrap(), None, "not due before the delay");
        let job = q.claim_due(later() + 60_000).unwrap().unwrap();
        assert_eq!((job.payload.as_slice(), job.attempt), (b"step-2".as_slice(), 0));
    }

    #[test]
    fn retry_counts_attempts_and_delays() {
        let q = queue();
        let id = q.enqueue("j", "k", b"p").unwrap().unwrap();
        q.claim_due(later()).unwrap().unwrap();
        q.retry(&id, 5_000, "frame.io 503").unwrap();
        assert_eq!(q.claim_due(later()).unwrap(), None);
        let due = q.next_due_at().unwrap().unwrap();
        assert!(due >= unix_millis() + 4_000, "due in about 5 s");
        let job = q.claim_due(due).unwrap().unwrap();
        assert_eq!((job.attempt, job.payload.as_slice()), (1, b"p".as_slice()));
        assert_eq!(q.get(&id).unwrap().unwrap().status_text.as_deref(), Some("frame.io 503"));
    }

    #[test]
    fn fail_is_final() {
        let q = queue();
        let id = q.enqueue("j", "k", b"").unwrap().unwrap();
        q.claim_due(later()).unwrap().unwrap();
        q.fail(&id, "asset deleted").unwrap();
        let row = q.get(&id).unwrap().unwrap();
        assert_eq!((row.state.as_str(), row.result_text.as_deref()), ("failed", Some("asset deleted")));
        assert_eq!(q.claim_due(i64::MAX).unwrap(), None);
    }

    #[test]
    fn expired_lease_is_reclaimed_with_a_higher_attempt() {
        let q = queue();
        let id = q.enqueue("j", "k", b"").unwrap().unwrap();
        let now = later();
        q.claim_due(now).unwrap().unwrap();
        assert_eq!(q.next_due_at().unwrap(), Some(now + LEASE_MS), "the worker wakes when the lease ends");
        assert_eq!(q.claim_due(now + LEASE_MS - 1).unwrap(), None, "the lease still holds");
        let again = q.claim_due(now + LEASE_MS).unwrap().unwrap();
        assert_eq!((again.id.as_str(), again.attempt), (id.as_str(), 1));
    }

    #[test]
    fn outcomes_for_jobs_that_are_not_running_are_ignored() {
        let q = queue();
        let id = q.enqueue("j", "k", b"").unwrap().unwrap();
        q.finish(&id, "too early", &[]).unwrap();
        assert_eq!(q.get(&id).unwrap().unwrap().state, "queued");
        q.claim_due(later()).unwrap().unwrap();
        q.finish(&id, "ok", &[]).unwrap();
        q.fail(&id, "a stale worker").unwrap();
        let row = q.get(&id).unwrap().unwrap();
        assert_eq!((row.state.as_str(), row.result_text.as_deref()), ("done", Some("ok")));
        q.finish("job-unknown", "x", &[]).unwrap();
        assert_eq!(q.get("job-unknown").unwrap(), None);
    }

    #[test]
    fn claims_oldest_due_first() {
        let q = queue();
        let first = q.enqueue("first", "k", b"").unwrap().unwrap();
        let second = q.enqueue("second", "k", b"").unwrap().unwrap();
        let now = later();
        assert_eq!(q.claim_due(now).unwrap().unwrap().id, first);
        assert_eq!(q.claim_due(now).unwrap().unwrap().id, second);
        assert_eq!(q.list(&Page::first(1)).unwrap().0.len(), 1);
    }
}
