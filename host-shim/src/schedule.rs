//! Queues the connector's scheduled jobs (`jobs.schedule`): at start, and then at
//! the start of each of their periods. A run's key is `<key>@<n>`, `n` the number of
//! whole periods since the Unix epoch, so a restart within a period queues nothing
//! twice, and a host that was down for several periods queues the current one only.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::queue::JobQueue;
use crate::runtime::{Runtime, jobs};

/// The shortest period honoured, whatever the component asks for.
const MIN_PERIOD_SECS: u64 = 60;
/// How long to wait before asking again when the component could not be asked.
const RETRY: Duration = Duration::from_secs(10);

/// The key of the run of `job` in the period that contains `now_secs`, and the time
/// that period ends.
fn run_key(job: &jobs::ScheduledJob, now_secs: u64) -> (String, u64) {
    let period = u64::from(job.every_secs).max(MIN_PERIOD_SECS);
    let n = now_secs / period;
    (format!("{}@{n}", job.job.key), (n + 1) * period)
}

/// Queues the current period's run of each scheduled job; returns when the next
/// period starts (Unix seconds).
fn queue_runs(queue: &JobQueue, scheduled: &[jobs::ScheduledJob], now_secs: u64) -> u64 {
    let mut next = now_secs + 3600;
    for job in scheduled {
        let (key, ends) = run_key(job, now_secs);
        match queue.enqueue(&key, &job.job.kind, &job.job.payload) {
            Ok(Some(_)) => tracing::info!(job = %key, "queued a scheduled job"),
            Ok(None) => {}
            Err(e) => tracing::warn!(job = %key, error = %e, "queueing a scheduled job failed"),
        }
        next = next.min(ends);
    }
    next
}

/// Runs the scheduler until the task is dropped.
pub fn spawn(runtime: Arc<Runtime>, queue: JobQueue, wake: Arc<Notify>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let scheduled = loop {
            match runtime.scheduled_jobs().await {
                Ok(scheduled) => break scheduled,
                Err(e) => {
                    tracing::warn!(error = %e, "asking the connector for its scheduled jobs failed");
                    tokio::time::sleep(RETRY).await;
                }
            }
        };
        loop {
            let now = crate::server::unix_now();
            let next = queue_runs(&queue, &scheduled, now);
            wake.notify_one();
            tokio::time::sleep(Duration::from_secs(next.saturating_sub(now).max(1))).await;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::Database;
    use crate::runtime::JobRequest;

    fn every(secs: u32) -> jobs::ScheduledJob {
        jobs::ScheduledJob { job: JobRequest { key: "reconcile".into(), kind: "reconcile".into(), payload: Vec::new() }, every_secs: secs }
    }

    #[test]
    fn one_run_per_period_whatever_the_restarts() {
        let queue = JobQueue::new(Database::open_in_memory().unwrap());
        let next = queue_runs(&queue, &[every(900)], 9_000);
        assert_eq!(next, 9_900);
        assert_eq!(queue_runs(&queue, &[every(900)], 9_899), 9_900, "a restart in the same period");
        assert!(queue.find_by_key("reconcile@10").unwrap().is_some());
        assert_eq!(queue.list(&crate::db::Page::first(10)).unwrap().0.len(), 1, "queued once");
        queue_runs(&queue, &[every(900)], 9_900);
        assert!(queue.find_by_key("reconcile@11").unwrap().is_some(), "the next period's run");
    }

    #[test]
    fn a_too_short_period_is_raised_to_a_minute() {
        assert_eq!(run_key(&every(1), 125), ("reconcile@2".into(), 180));
    }
}
