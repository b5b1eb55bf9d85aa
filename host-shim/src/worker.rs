//! Runs queued jobs through the component, one step at a time.
//!
//! Jobs are rows in SQLite: a step's outcome is written back before the next is
//! claimed, so a crash loses at most the step under way, which the queue's lease
//! hands out again (steps are idempotent by contract).

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore};

use crate::config::WorkerConfig;
use crate::db::unix_millis;
use crate::queue::{Job, JobQueue, NewJob};
use crate::runtime::{JobRequest, Runtime, jobs};

/// The longest the worker sleeps before looking for due jobs again.
const MAX_IDLE: Duration = Duration::from_secs(1);

/// The job worker.
pub struct Worker {
    runtime: Arc<Runtime>,
    queue: JobQueue,
    wake: Arc<Notify>,
    config: WorkerConfig,
    /// Transfers a job is waiting for, each watched by one task (see `wake_when_settled`).
    watched: Arc<Mutex<HashSet<String>>>,
}

impl Worker {
    pub fn new(runtime: Arc<Runtime>, queue: JobQueue, wake: Arc<Notify>, config: WorkerConfig) -> Worker {
        Worker { runtime, queue, wake, config, watched: Arc::default() }
    }

    /// Claims and runs due jobs, `concurrency` at a time, until the task is dropped.
    pub async fn run(self) {
        let slots = Arc::new(Semaphore::new(self.config.concurrency));
        let worker = Arc::new(self);
        loop {
            let Ok(permit) = slots.clone().acquire_owned().await else { return };
            match worker.queue.claim_due(unix_millis()) {
                Ok(Some(job)) => {
                    let worker = worker.clone();
                    tokio::spawn(async move {
                        worker.step(job).await;
                        drop(permit);
                    });
                }
                Ok(None) => {
                    drop(permit);
                    let idle = worker.idle_time();
                    let _ = tokio::time::timeout(idle, worker.wake.notified()).await;
                }
                Err(e) => {
                    drop(permit);
                    tracing::error!(error = %e, "claiming a job failed");
                    tokio::time::sleep(MAX_IDLE).await;
                }
            }
        }
    }

    /// Until the next job is due, at most `MAX_IDLE`.
    fn idle_time(&self) -> Duration {
        let next = self.queue.next_due_at().ok().flatten();
        let until = next.map(|at| Duration::from_millis(at.saturating_sub(unix_millis()) as u64));
        until.unwrap_or(MAX_IDLE).min(MAX_IDLE)
    }

    /// Runs one step and records its outcome.
    async fn step(&self, job: Job) {
        let call = jobs::Job {
            id: job.id.clone(),
            key: job.key.clone(),
            kind: job.kind.clone(),
            payload: job.payload.clone(),
            attempt: job.attempt,
        };
        let recorded = match self.runtime.run_job(&call).await {
            Ok(jobs::Outcome::Done(finished)) => {
                let recorded = self.queue.finish(&job.id, &finished.summary, &children(finished.enqueue));
                self.wake.notify_one();
                recorded
            }
            Ok(jobs::Outcome::Next(next)) => {
                let spawned = !next.enqueue.is_empty();
                let recorded = self.queue.next(&job.id, &next.payload, next.delay_ms, &next.status, &children(next.enqueue));
                if spawned {
                    self.wake.notify_one();
                }
                if let (Ok(()), Some(transfer)) = (&recorded, next.wake_on_transfer) {
                    self.wake_when_settled(job.id.clone(), transfer);
                }
                recorded
            }
            Ok(jobs::Outcome::Retry((delay_ms, reason))) => self.queue.retry(&job.id, delay_ms, &reason),
            Ok(jobs::Outcome::Failed(reason)) => self.queue.fail(&job.id, &reason),
            Err(e) => self.step_failed(&job, &e),
        };
        if let Err(e) = recorded {
            tracing::error!(job = %job.id, error = %e, "recording a job outcome failed; the lease will hand it out again");
        }
    }

    /// Makes the job due as soon as `transfer` completes or fails, rather than when
    /// its poll delay runs out, so a finished download is noticed at once. One task
    /// watches a transfer however often the job polls it; a transfer no task of this
    /// host runs (gone, or its row left behind by a crash) is not watched, and the
    /// poll delay applies.
    fn wake_when_settled(&self, job_id: String, transfer: String) {
        let transfers = self.runtime.services().transfers.clone();
        if !transfers.is_running_here(&transfer) || !lock(&self.watched).insert(transfer.clone()) {
            return;
        }
        let (queue, wake, watched) = (self.queue.clone(), self.wake.clone(), self.watched.clone());
        tokio::spawn(async move {
            transfers.settled(&transfer).await;
            lock(&watched).remove(&transfer);
            match queue.wake(&job_id, unix_millis()) {
                Ok(()) => wake.notify_one(),
                Err(e) => tracing::warn!(job = %job_id, error = %e, "waking a job failed; it runs after its delay"),
            }
        });
    }

    /// The component trapped or missed its deadline: a bug or a hostile input, so
    /// retry a few times in case it was the host, then fail the job with the reason.
    fn step_failed(&self, job: &Job, e: &anyhow::Error) -> rusqlite::Result<()> {
        let reason = format!("the connector failed: {e:#}");
        tracing::error!(job = %job.id, attempt = job.attempt, error = %reason, "job step failed");
        if job.attempt + 1 >= self.config.max_step_failures {
            self.queue.fail(&job.id, &reason)
        } else {
            self.queue.retry(&job.id, 1000 << job.attempt.min(6), &reason)
        }
    }
}

/// A step's child jobs as the queue takes them.
fn children(requests: Vec<JobRequest>) -> Vec<NewJob> {
    requests.into_iter().map(|j| (j.key, j.kind, j.payload)).collect()
}

/// The set, even if a task panicked while holding it (a set of keys stays valid).
fn lock(watched: &Mutex<HashSet<String>>) -> MutexGuard<'_, HashSet<String>> {
    watched.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
