//! The sandbox around every call into the component, proven with a deliberately
//! misbehaving component (`tests/misbehaving`) in the real host: a guest that loops
//! forever, exhausts its memory, overflows its stack or panics fails that call only
//! (a 500 with a JSON reason, logged; a job step retried, then the job failed),
//! while every other request is served, during the misbehaviour and after it.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use connector_e2e::{cache_dir, misbehaving_component};
use futures_util::future::join_all;
use host_shim::app::{self, RunningHost};
use host_shim::config::Config;
use host_shim::harness::AdminClient;
use serde_json::Value;
use tempfile::TempDir;

/// The call deadline of most tests: short, so they are quick.
const DEADLINE: Duration = Duration::from_millis(500);
/// The linear-memory cap of every call.
const MAX_MEMORY: usize = 8 << 20;
/// Tries of a trapping job step before its job fails.
const MAX_STEP_FAILURES: u32 = 3;
/// A generous bound for anything that should end at once or at a deadline.
const PATIENCE: Duration = Duration::from_secs(15);

/// Everything the host logged so far, from every test of this binary.
fn logs() -> String {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    let buffer = LOGS.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let sink = buffer.clone();
        tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing_subscriber::filter::LevelFilter::INFO)
            .with_writer(move || LogSink(sink.clone()))
            .init();
        buffer
    });
    String::from_utf8_lossy(&buffer.lock().unwrap()).into_owned()
}

struct LogSink(Arc<Mutex<Vec<u8>>>);

impl Write for LogSink {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A host running the misbehaving component, in a scratch directory.
struct Sandbox {
    host: RunningHost,
    admin: AdminClient,
    client: Client,
    _dir: TempDir,
}

/// Sends requests to the host's public listener.
#[derive(Clone)]
struct Client {
    http: reqwest::Client,
    public_url: String,
}

/// An answer: status, JSON body, and how long it took.
struct Answer {
    status: u16,
    body: Value,
    took: Duration,
}

impl Client {
    /// Asks the component to behave as `mode` says (the path's last segment).
    async fn call(&self, mode: &str) -> Answer {
        let started = Instant::now();
        let url = format!("{}/frameio/sandbox/{mode}", self.public_url);
        let resp = self.http.post(url).send().await.unwrap_or_else(|e| panic!("{mode}: the host answered: {e}"));
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Answer { status, body, took: started.elapsed() }
    }

    /// A call that must be answered 200 by the component.
    async fn ok(&self) {
        let answer = self.call("ok").await;
        assert_eq!(answer.status, 200, "ok: {}", answer.body);
        assert_eq!(answer.body["reply"], "ok");
    }
}

/// A call that trapped: a 500 with a JSON reason naming what failed.
fn assert_failed_cleanly(mode: &str, answer: &Answer) {
    assert_eq!(answer.status, 500, "{mode}: {}", answer.body);
    let reason = answer.body["error"].as_str().unwrap_or_else(|| panic!("{mode}: no JSON reason: {}", answer.body));
    assert!(reason.contains("inbound request"), "{mode}: {reason}");
    assert!(answer.took < PATIENCE, "{mode} took {:?}", answer.took);
}

/// Starts a host with short limits on the misbehaving component; `adjust` changes them.
async fn sandbox(adjust: impl FnOnce(&mut Config)) -> Sandbox {
    logs();
    let dir = tempfile::tempdir().expect("a scratch directory");
    let mut config = Config { data_dir: dir.path().to_path_buf(), component: misbehaving_component(), ..Config::default() };
    config.runtime.cache_dir = cache_dir();
    config.runtime.call_timeout_ms = DEADLINE.as_millis() as u64;
    config.runtime.max_memory_bytes = MAX_MEMORY;
    config.runtime.pooling_instances = 4;
    config.worker.max_step_failures = MAX_STEP_FAILURES;
    config.server.public_listen = ([127, 0, 0, 1], 0).into();
    config.server.admin_listen = ([127, 0, 0, 1], 0).into();
    adjust(&mut config);
    let host = app::start(config).await.expect("the host starts with the misbehaving component");
    let admin = AdminClient::new(&host.admin_url, &host.public_url, &host.admin_token).unwrap();
    let client = Client { http: reqwest::Client::builder().no_proxy().build().unwrap(), public_url: host.public_url.clone() };
    Sandbox { host, admin, client, _dir: dir }
}

/// Two runtime threads, and twice as many looping calls, so that every thread has
/// a loop to run wherever the scheduler puts them: a guest that kept its thread
/// busy until its deadline, or that gave it back without letting the thread poll
/// for network events, would leave nobody to serve anyone else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_looping_call_fails_at_its_deadline_while_other_requests_are_served() {
    let deadline = Duration::from_millis(1500);
    let looping_calls = 4;
    let sandbox = sandbox(|c| {
        c.runtime.call_timeout_ms = deadline.as_millis() as u64;
        // Room in the pool for the good requests too: this test is about threads.
        c.runtime.pooling_instances = looping_calls + 2;
    })
    .await;
    let started = Instant::now();
    let loops: Vec<_> = (0..looping_calls)
        .map(|_| {
            let client = sandbox.client.clone();
            tokio::spawn(async move { client.call("loop").await })
        })
        .collect();
    // Once the loops have started, good requests are answered while they spin, and
    // promptly: under 0.1 s here, against 0.6 s when a thread full of spinning
    // guests looked for network events only every 61 turns.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let sent = Instant::now();
    join_all((0..8).map(|_| sandbox.client.ok())).await;
    let served_in = sent.elapsed();
    assert!(served_in < deadline / 3, "good requests took {served_in:?} while guests looped");
    let good_answered = started.elapsed();
    for looping in loops {
        let answer = looping.await.unwrap();
        assert_failed_cleanly("loop", &answer);
        assert!(answer.took >= deadline - Duration::from_millis(100), "loop ended before its deadline: {:?}", answer.took);
        assert!(good_answered < answer.took, "good requests waited for the loop: {good_answered:?}, loop {:?}", answer.took);
    }
    let logged = logs();
    assert!(logged.contains("the connector component failed"), "{logged}");
    assert!(logged.contains("interrupt"), "the deadline is named: {logged}");
    sandbox.client.ok().await;
    sandbox.host.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhausting_memory_or_stack_and_panicking_fail_only_that_call() {
    let sandbox = sandbox(|_| {}).await;
    for mode in ["grow", "recurse", "panic"] {
        let answer = sandbox.client.call(mode).await;
        assert_failed_cleanly(mode, &answer);
        sandbox.client.ok().await;
    }
    // The hoarding call grew to the cap and no further.
    let peak = sandbox.admin.guest_memory_peak().await.unwrap() as usize;
    assert!(peak <= MAX_MEMORY && peak > MAX_MEMORY / 2, "memory peak {peak} against a cap of {MAX_MEMORY}");
    let logged = logs();
    assert!(logged.contains("memory limit"), "the memory cap is logged: {logged}");
    assert!(logged.contains("unreachable"), "the panic's trap is logged: {logged}");
    sandbox.host.stop();
}

/// Traps and deadlines return their pool slot: many more of them than the pool
/// holds, then many more good calls than it holds, concurrently.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traps_return_their_instance_slots() {
    let pool = 2;
    let sandbox = sandbox(|c| c.runtime.pooling_instances = pool).await;
    for _ in 0..3 {
        for mode in ["grow", "recurse", "panic"] {
            assert_failed_cleanly(mode, &sandbox.client.call(mode).await);
        }
    }
    let loops = join_all((0..pool + 1).map(|_| sandbox.client.call("loop"))).await;
    for answer in &loops {
        assert_failed_cleanly("loop", answer);
    }
    join_all((0..pool * 10).map(|_| sandbox.client.ok())).await;
    for _ in 0..pool * 3 {
        sandbox.client.ok().await;
    }
    sandbox.host.stop();
}

/// A job step that traps is tried `max_step_failures` times, then its job fails
/// with the reason, visible in the admin API; a good job queued with it finishes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trapping_job_step_is_retried_then_its_job_fails() {
    let sandbox = sandbox(|_| {}).await;
    for kind in ["panic", "loop", "grow", "ok"] {
        let answer = sandbox.client.call(&format!("job-{kind}?1")).await;
        assert_eq!(answer.status, 202, "{kind}: {}", answer.body);
    }
    let ok = sandbox.admin.wait_for_job("ok:1", PATIENCE).await.unwrap();
    assert_eq!(ok.state, "done", "{ok:?}");
    for kind in ["panic", "loop", "grow"] {
        let key = format!("{kind}:1");
        // Retries back off 1 s, then 2 s; a looping step also waits out its deadline.
        let job = sandbox.admin.wait_for_job(&key, PATIENCE * 2).await.unwrap();
        assert_eq!(job.state, "failed", "{job:?}");
        assert_eq!(job.attempt, MAX_STEP_FAILURES - 1, "{job:?}");
        let reason = job.result_text.clone().unwrap_or_default();
        assert!(reason.starts_with("the connector failed"), "{kind}: {reason}");
        // Listed with its reason by the admin API, as an operator sees it.
        let listed = sandbox.admin.admin_ok(reqwest::Method::GET, &format!("/jobs?key={key}"), None).await.unwrap();
        let listed = listed["jobs"][0].clone();
        assert_eq!(listed["state"], "failed");
        assert_eq!(listed["result_text"], reason.as_str());
        // The component saw exactly that many tries, and each failure was logged.
        let tries = sandbox.host.services.storage.list_keys(&format!("attempt/{key}/")).unwrap();
        assert_eq!(tries.len(), MAX_STEP_FAILURES as usize, "{kind}: {tries:?}");
        let logged = logs();
        let failures = logged.lines().filter(|l| l.contains("job step failed") && l.contains(&job.id)).count();
        assert_eq!(failures, MAX_STEP_FAILURES as usize, "{kind}: {logged}");
    }
    sandbox.client.ok().await;
    sandbox.host.stop();
}
