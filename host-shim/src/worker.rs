//! Runs queued jobs through the component, one step at a time.
//!
//! Jobs are rows in SQLite: a step's outcome is written back before the next is
//! claimed, so a crash loses at most the step under way, which the queue's lease
//! hands out again (steps are idempotent by contract).
//!
//! A step runs when it is due, not at the worker's next idle check: the loop sleeps
//! until the earliest due job (at most `MAX_IDLE`), and a step recorded due before
//! that (a `next` with no delay, a transfer the job waits for that settled) wakes it.

use std::collections::HashSet;
use std::future::Future;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore};

use crate::config::WorkerConfig;
use crate::db::unix_millis;
use crate::imports::transfer::{TransferEngine, TransferStatus};
use crate::queue::{Job, JobQueue, NewJob};
use crate::runtime::{JobRequest, Runtime, jobs};

/// The longest the worker sleeps before looking for due jobs again.
const MAX_IDLE: Duration = Duration::from_secs(1);

/// The job worker.
pub struct Worker {
    runtime: Arc<Runtime>,
    scheduler: Arc<Scheduler>,
    concurrency: usize,
}

impl Worker {
    pub fn new(runtime: Arc<Runtime>, queue: JobQueue, wake: Arc<Notify>, config: WorkerConfig) -> Worker {
        let transfers = runtime.services().transfers.clone();
        let scheduler = Arc::new(Scheduler::new(queue, transfers, wake, config.max_step_failures));
        Worker { runtime, scheduler, concurrency: config.concurrency }
    }

    /// Claims and runs due jobs, `concurrency` at a time, until the task is dropped.
    pub async fn run(self) {
        let Worker { runtime, scheduler, concurrency } = self;
        let recorder = scheduler.clone();
        scheduler
            .run(concurrency, move |job| {
                let (runtime, recorder) = (runtime.clone(), recorder.clone());
                async move {
                    let call = jobs::Job {
                        id: job.id.clone(),
                        key: job.key.clone(),
                        kind: job.kind.clone(),
                        payload: job.payload.clone(),
                        attempt: job.attempt,
                    };
                    let outcome = runtime.run_job(&call).await;
                    recorder.record(&job, outcome);
                }
            })
            .await;
    }
}

/// The worker without the component: the loop that claims due jobs, and the
/// recording of each step's outcome, which tells the loop when the job is due next.
struct Scheduler {
    queue: JobQueue,
    transfers: TransferEngine,
    alarm: Alarm,
    max_step_failures: u32,
    /// The jobs waiting for a transfer, by job and transfer, each watched by one
    /// task (see `wake_when_settled`).
    watched: Mutex<HashSet<(String, String)>>,
}

impl Scheduler {
    fn new(queue: JobQueue, transfers: TransferEngine, wake: Arc<Notify>, max_step_failures: u32) -> Scheduler {
        Scheduler { queue, transfers, alarm: Alarm::new(wake), max_step_failures, watched: Mutex::default() }
    }

    /// Claims due jobs and hands each to `step` in a task of its own, `concurrency`
    /// at a time; with nothing due, sleeps until the earliest job falls due (at most
    /// `MAX_IDLE`) or the alarm rings. Runs until the task is dropped.
    async fn run<F, Fut>(self: Arc<Self>, concurrency: usize, step: F)
    where
        F: Fn(Job) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let slots = Arc::new(Semaphore::new(concurrency));
        loop {
            let Ok(permit) = slots.clone().acquire_owned().await else { return };
            match self.queue.claim_due(unix_millis()) {
                Ok(Some(job)) => {
                    let step = step(job);
                    tokio::spawn(async move {
                        step.await;
                        drop(permit);
                    });
                }
                Ok(None) => {
                    drop(permit);
                    // Read after the claim, so a job recorded since is either seen
                    // here or rings the alarm (which is still "awake" until `set`).
                    let next_due = self.queue.next_due_at().unwrap_or_else(|e| {
                        tracing::warn!(error = %e, "reading when the next job is due failed");
                        None
                    });
                    let deadline = self.alarm.set(unix_millis(), next_due);
                    self.alarm.sleep_until(deadline).await;
                }
                Err(e) => {
                    drop(permit);
                    tracing::error!(error = %e, "claiming a job failed");
                    tokio::time::sleep(MAX_IDLE).await;
                }
            }
        }
    }

    /// Records a step's outcome (or the component's failure) and, when that makes
    /// a job due sooner than the loop would look again, rings the alarm.
    fn record(self: &Arc<Self>, job: &Job, outcome: anyhow::Result<jobs::Outcome>) {
        // Taken before the queue takes its own: the due time told to the alarm is
        // never later than the one recorded, so the loop is never woken too late.
        let now = unix_millis();
        let due_after = |delay_ms: u32| now.saturating_add(i64::from(delay_ms));
        let (recorded, due) = match outcome {
            Ok(jobs::Outcome::Done(finished)) => {
                let children = children(finished.enqueue);
                (self.queue.finish(&job.id, &finished.summary, &children), (!children.is_empty()).then_some(now))
            }
            Ok(jobs::Outcome::Next(next)) => {
                // Children are due at once, whatever the parent's delay.
                let due = if next.enqueue.is_empty() { due_after(next.delay_ms) } else { now };
                let recorded = self.queue.next(&job.id, &next.payload, next.delay_ms, &next.status, &children(next.enqueue));
                if let (Ok(()), Some(transfer)) = (&recorded, next.wake_on_transfer) {
                    self.wake_when_settled(job.id.clone(), transfer);
                }
                (recorded, Some(due))
            }
            Ok(jobs::Outcome::Retry((delay_ms, reason))) => (self.queue.retry(&job.id, delay_ms, &reason), Some(due_after(delay_ms))),
            Ok(jobs::Outcome::Failed(reason)) => (self.queue.fail(&job.id, &reason), None),
            Err(e) => self.step_failed(job, &e, now),
        };
        match recorded {
            Ok(()) => {
                if let Some(at) = due {
                    self.alarm.job_due_at(at);
                }
            }
            Err(e) => tracing::error!(job = %job.id, error = %e, "recording a job outcome failed; the lease will hand it out again"),
        }
    }

    /// Makes the job due as soon as `transfer` completes or fails, rather than when
    /// its poll delay runs out, so a finished transfer is noticed at once. One task
    /// watches a job's transfer however often the job polls it.
    ///
    /// A transfer that is no longer running here may have ended while the step was
    /// still running (a small upload ends before its first poll is recorded), or be
    /// unknown: the job is due at once then, as the WIT promises. Only a transfer
    /// left running by a crash, which no task of this host runs, is not watched:
    /// the poll delay applies, else the job would poll it in a busy loop.
    fn wake_when_settled(self: &Arc<Self>, job_id: String, transfer: String) {
        if !self.transfers.is_running_here(&transfer) {
            match self.transfers.status(&transfer) {
                Ok(Some(TransferStatus::Running { .. })) => {}
                Ok(_) => self.wake_job(&job_id),
                Err(e) => tracing::debug!(job = %job_id, error = %e, "a transfer a job waits for is unreadable; it runs after its delay"),
            }
            return;
        }
        let watch = (job_id, transfer);
        if !lock(&self.watched).insert(watch.clone()) {
            return;
        }
        let scheduler = self.clone();
        tokio::spawn(async move {
            scheduler.transfers.settled(&watch.1).await;
            lock(&scheduler.watched).remove(&watch);
            scheduler.wake_job(&watch.0);
        });
    }

    /// Makes a queued job due now and tells the loop.
    fn wake_job(&self, job_id: &str) {
        let now = unix_millis();
        match self.queue.wake(job_id, now) {
            Ok(()) => self.alarm.job_due_at(now),
            Err(e) => tracing::warn!(job = %job_id, error = %e, "waking a job failed; it runs after its delay"),
        }
    }

    /// The component trapped or missed its deadline: a bug or a hostile input, so
    /// retry a few times in case it was the host, then fail the job with the reason.
    /// Returns what was recorded and when the job is due again.
    fn step_failed(&self, job: &Job, e: &anyhow::Error, now: i64) -> (rusqlite::Result<()>, Option<i64>) {
        let reason = format!("the connector failed: {e:#}");
        tracing::error!(job = %job.id, attempt = job.attempt, error = %reason, "job step failed");
        if job.attempt + 1 >= self.max_step_failures {
            (self.queue.fail(&job.id, &reason), None)
        } else {
            let delay_ms = 1000 << job.attempt.min(6);
            (self.queue.retry(&job.id, delay_ms, &reason), Some(now + i64::from(delay_ms)))
        }
    }
}

/// When the worker loop looks for due jobs next, and how to make it look sooner.
///
/// The loop sleeps until the earliest due job (at most `MAX_IDLE`) or a
/// notification. A step's outcome notifies only when its job is due before the
/// loop's deadline; while the loop is awake (claiming, reading the next due time,
/// waiting for a slot) every due job notifies, as the loop may have read the queue
/// before that job was recorded: `Notify` keeps that one notification until the
/// loop waits, so none is lost.
struct Alarm {
    wake: Arc<Notify>,
    /// When the loop's sleep ends, Unix milliseconds; `AWAKE` while it is not asleep.
    sleeping_until: AtomicI64,
}

/// `sleeping_until` while the loop is not asleep: every due time is sooner.
const AWAKE: i64 = i64::MAX;

impl Alarm {
    fn new(wake: Arc<Notify>) -> Alarm {
        Alarm { wake, sleeping_until: AtomicI64::new(AWAKE) }
    }

    /// The loop's deadline at `now` when the next job is due at `next_due`: that
    /// time, but no later than `MAX_IDLE` from now (jobs queued by other means
    /// notify too; this bounds what a lost notification could cost) and no earlier
    /// than now.
    fn deadline(now: i64, next_due: Option<i64>) -> i64 {
        let latest = now.saturating_add(MAX_IDLE.as_millis() as i64);
        next_due.map_or(latest, |due| due.clamp(now, latest))
    }

    /// Records the deadline of the sleep the loop is about to start; returns it.
    fn set(&self, now: i64, next_due: Option<i64>) -> i64 {
        let deadline = Alarm::deadline(now, next_due);
        self.sleeping_until.store(deadline, Ordering::SeqCst);
        deadline
    }

    /// Sleeps until `deadline` or a notification, then counts as awake.
    async fn sleep_until(&self, deadline: i64) {
        let wait = Duration::from_millis(deadline.saturating_sub(unix_millis()).max(0) as u64);
        let _ = tokio::time::timeout(wait, self.wake.notified()).await;
        self.sleeping_until.store(AWAKE, Ordering::SeqCst);
    }

    /// A job was recorded due at `at` (Unix milliseconds): wakes the loop if it
    /// would otherwise look later (or is awake, and may have looked before).
    fn job_due_at(&self, at: i64) {
        if at < self.sleeping_until.load(Ordering::SeqCst) {
            self.wake.notify_one();
        }
    }
}

/// A step's child jobs as the queue takes them.
fn children(requests: Vec<JobRequest>) -> Vec<NewJob> {
    requests.into_iter().map(|j| (j.key, j.kind, j.payload)).collect()
}

/// The set, even if a task panicked while holding it (a set of keys stays valid).
fn lock(watched: &Mutex<HashSet<(String, String)>>) -> MutexGuard<'_, HashSet<(String, String)>> {
    watched.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use axum::Router;
    use axum::body::Body;
    use axum::routing::put;
    use futures_util::FutureExt;

    use super::*;
    use crate::blobs::BlobStore;
    use crate::db::Database;
    use crate::imports::http::EgressPolicy;
    use crate::imports::http::tests::serve;
    use crate::imports::transfer::{TransferConfig, UploadPart, UploadRequest};

    struct Fixture {
        _dir: tempfile::TempDir,
        queue: JobQueue,
        blobs: BlobStore,
        transfers: TransferEngine,
        scheduler: Arc<Scheduler>,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open_in_memory().unwrap();
        let blobs = BlobStore::open(dir.path(), db.clone()).unwrap();
        let loopback = EgressPolicy::new(&["127.0.0.1".into()], &["127.0.0.0/8".into()]).unwrap();
        let transfers = TransferEngine::new(db.clone(), blobs.clone(), loopback, TransferConfig::default()).unwrap();
        let queue = JobQueue::new(db);
        let scheduler = Arc::new(Scheduler::new(queue.clone(), transfers.clone(), Arc::new(Notify::new()), 3));
        Fixture { _dir: dir, queue, blobs, transfers, scheduler }
    }

    fn next(delay_ms: u32, payload: Vec<u8>, wake_on_transfer: Option<&str>) -> anyhow::Result<jobs::Outcome> {
        Ok(jobs::Outcome::Next(jobs::NextStep {
            delay_ms,
            payload,
            status: "next".into(),
            wake_on_transfer: wake_on_transfer.map(str::to_string),
            enqueue: Vec::new(),
        }))
    }

    /// Whether the loop was told to look again (and takes the notification).
    fn rang(alarm: &Alarm) -> bool {
        alarm.wake.notified().now_or_never().is_some()
    }

    /// A job queued and claimed, as the loop would have it while its step runs.
    fn claimed(f: &Fixture, key: &str) -> Job {
        let id = f.queue.enqueue(key, "test", b"").unwrap().unwrap();
        let job = f.queue.claim_due(unix_millis() + 1).unwrap().unwrap();
        assert_eq!(job.id, id);
        job
    }

    #[test]
    fn the_loop_sleeps_until_the_earliest_due_job_and_at_most_max_idle() {
        let now = 1_700_000_000_000;
        assert_eq!(Alarm::deadline(now, None), now + 1000, "nothing pending");
        assert_eq!(Alarm::deadline(now, Some(now + 300)), now + 300);
        assert_eq!(Alarm::deadline(now, Some(now + 5 * 60 * 1000)), now + 1000, "a running job's lease");
        assert_eq!(Alarm::deadline(now, Some(now)), now);
        assert_eq!(Alarm::deadline(now, Some(now - 50)), now, "overdue: look again at once");
    }

    #[test]
    fn the_alarm_rings_for_jobs_due_before_the_loops_deadline_and_whenever_it_is_awake() {
        let alarm = Alarm::new(Arc::new(Notify::new()));
        let now = unix_millis();
        alarm.job_due_at(now + 60_000);
        assert!(rang(&alarm), "awake, the loop may have read the queue before the job was recorded");
        assert!(!rang(&alarm), "one notification");
        assert_eq!(alarm.set(now, Some(now + 800)), now + 800);
        alarm.job_due_at(now + 900);
        assert!(!rang(&alarm), "due after the loop looks again anyway");
        alarm.job_due_at(now + 300);
        assert!(rang(&alarm));
        alarm.job_due_at(now);
        assert!(rang(&alarm));
    }

    /// Without timing: a step recorded due now, or in 300 ms, while the loop sleeps
    /// out a running job's lease (bounded by `MAX_IDLE`), wakes it, and the loop's
    /// next deadline is that job's.
    #[test]
    fn a_recorded_step_wakes_the_loop_and_becomes_its_deadline() {
        let f = fixture();
        let alarm = &f.scheduler.alarm;
        let job = claimed(&f, "a");
        let now = unix_millis();
        // What the loop computes while the step runs: only the job's lease is pending.
        assert_eq!(f.scheduler.alarm.set(now, f.queue.next_due_at().unwrap()), now + 1000);
        f.scheduler.record(&job, next(0, b"1".to_vec(), None));
        assert!(rang(alarm), "a step due now wakes the loop");
        let woke = unix_millis();
        assert!(Alarm::deadline(woke, f.queue.next_due_at().unwrap()) <= woke, "and is due at once");

        let job = f.queue.claim_due(unix_millis()).unwrap().unwrap();
        let now = unix_millis();
        alarm.set(now, f.queue.next_due_at().unwrap());
        f.scheduler.record(&job, next(300, b"2".to_vec(), None));
        assert!(rang(alarm), "a step due in 300 ms is due before the loop's deadline");
        let woke = unix_millis();
        let deadline = Alarm::deadline(woke, f.queue.next_due_at().unwrap());
        assert!((now + 300..=woke + 300).contains(&deadline), "the loop sleeps until the step is due: {}", deadline - woke);

        let job = f.queue.claim_due(deadline).unwrap().unwrap();
        let now = unix_millis();
        alarm.set(now, Some(now + 200));
        f.scheduler.record(&job, next(5_000, b"3".to_vec(), None));
        assert!(!rang(alarm), "a step due after the loop's deadline leaves it asleep");
    }

    /// Runs a job of `steps` steps, each `delay_ms` after the one before, through
    /// the worker's loop; returns when each step ran, from the job's queueing.
    async fn run_chain(f: &Fixture, steps: u8, delay_ms: u32) -> Vec<(u8, Duration)> {
        let id = f.queue.enqueue("chain", "test", &[0]).unwrap().unwrap();
        let queued = Instant::now();
        let ran = Arc::new(Mutex::new(Vec::new()));
        let (recorder, log) = (f.scheduler.clone(), ran.clone());
        let worker = tokio::spawn(f.scheduler.clone().run(2, move |job| {
            let (recorder, log) = (recorder.clone(), log.clone());
            async move {
                let n = job.payload[0];
                log.lock().unwrap().push((n, queued.elapsed()));
                let outcome = if n + 1 < steps {
                    next(delay_ms, vec![n + 1], None)
                } else {
                    Ok(jobs::Outcome::Done(jobs::Finished { summary: "chain done".into(), enqueue: Vec::new() }))
                };
                recorder.record(&job, outcome);
            }
        }));
        while f.queue.get(&id).unwrap().unwrap().state != "done" {
            assert!(queued.elapsed() < Duration::from_secs(60), "the chain did not finish: {:?}", ran.lock().unwrap());
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        worker.abort();
        let ran = ran.lock().unwrap().clone();
        let order: Vec<u8> = ran.iter().map(|&(n, _)| n).collect();
        assert_eq!(order, (0..steps).collect::<Vec<_>>(), "each step once, in order");
        ran
    }

    /// The loop used to sleep out `MAX_IDLE` after each step (about 20 s here).
    #[tokio::test]
    async fn a_chain_of_steps_due_at_once_runs_without_idling() {
        let f = fixture();
        let ran = run_chain(&f, 20, 0).await;
        let took = ran.last().unwrap().1;
        println!("20 steps due at once: the last ran after {took:?}");
        assert!(took < Duration::from_secs(2), "20 steps due at once took {took:?}");
    }

    /// Each step runs when it is due: not before, and not a `MAX_IDLE` later (about
    /// 5 s here before).
    #[tokio::test]
    async fn steps_due_in_200_ms_run_at_about_200_ms() {
        let f = fixture();
        let ran = run_chain(&f, 6, 200).await;
        for pair in ran.windows(2) {
            let gap = pair[1].1 - pair[0].1;
            // unix_millis() truncates: a step may start up to a millisecond early.
            assert!(gap >= Duration::from_millis(199), "step {} ran {gap:?} after the one before", pair[1].0);
        }
        let took = ran.last().unwrap().1;
        println!("5 steps due in 200 ms: the last ran after {took:?}");
        assert!(took < Duration::from_millis(3500), "5 steps due in 200 ms took {took:?}");
    }

    /// An upload of a 1000-byte blob to a store at `/part` that answers once `gate`
    /// has a permit.
    async fn upload(f: &Fixture, key: &str, gate: Arc<Semaphore>) {
        let staged = f.blobs.staging_file("source").unwrap();
        std::fs::write(&staged, [7u8; 1000]).unwrap();
        let blob = f.blobs.commit(&staged).unwrap();
        let router = Router::new().route(
            "/part",
            put(move |body: Body| {
                let gate = gate.clone();
                async move {
                    let _ = axum::body::to_bytes(body, usize::MAX).await;
                    gate.acquire().await.unwrap().forget();
                    ""
                }
            }),
        );
        let addr = serve(router).await;
        let request = UploadRequest {
            key: key.into(),
            blob_id: blob.id,
            parts: vec![UploadPart { url: format!("http://{addr}/part"), size: 1000 }],
            headers: Vec::new(),
        };
        f.transfers.start_upload(request).await.unwrap();
    }

    fn due_now(f: &Fixture, job: &Job) -> bool {
        f.queue.get(&job.id).unwrap().unwrap().run_after <= unix_millis()
    }

    /// A transfer that ended while the step that polls it still ran, or that is
    /// unknown, makes the job due at once (it used to wait out its delay).
    #[tokio::test]
    async fn a_job_waiting_for_a_transfer_that_already_ended_is_due_at_once() {
        let f = fixture();
        upload(&f, "up", Arc::new(Semaphore::new(1))).await;
        f.transfers.settled("up").await;
        assert!(matches!(f.transfers.status("up").unwrap(), Some(TransferStatus::Complete(_))));
        for (key, transfer) in [("ended", "up"), ("unknown", "never-started")] {
            let job = claimed(&f, key);
            f.scheduler.alarm.set(unix_millis(), None);
            f.scheduler.record(&job, next(60_000, Vec::new(), Some(transfer)));
            assert!(due_now(&f, &job), "{key}: the job is due at once, not in a minute");
            assert!(rang(&f.scheduler.alarm), "{key}: and the loop is told");
            let again = f.queue.claim_due(unix_millis() + 1).unwrap().map(|j| j.id);
            assert_eq!(again.as_ref(), Some(&job.id), "{key}: the loop would claim it");
            f.queue.finish(&job.id, "polled", &[]).unwrap();
        }
    }

    #[tokio::test]
    async fn a_job_waiting_for_a_transfer_is_due_as_soon_as_it_settles() {
        let f = fixture();
        let gate = Arc::new(Semaphore::new(0));
        upload(&f, "up", gate.clone()).await;
        let job = claimed(&f, "waits");
        f.scheduler.record(&job, next(60_000, Vec::new(), Some("up")));
        assert_eq!(lock(&f.scheduler.watched).len(), 1, "one task watches the transfer for the job");
        assert!(!due_now(&f, &job), "due in a minute while the transfer runs");
        f.scheduler.alarm.set(unix_millis(), None);
        gate.add_permits(1);
        let started = Instant::now();
        while !due_now(&f, &job) {
            assert!(started.elapsed() < Duration::from_secs(10), "the job was not woken when its transfer ended");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(rang(&f.scheduler.alarm), "the loop is told");
        assert!(matches!(f.transfers.status("up").unwrap(), Some(TransferStatus::Complete(_))));
    }
}
