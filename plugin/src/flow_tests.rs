//! The push flow against a scripted Frame.io and an in-memory host: binding, the
//! custom-action conversation and every step of the import job.

use serde_json::Value;

use crate::bindings::{self, BindRequest, Binding};
use crate::error::Error;
use crate::fake_host::{FakeHost, configure, connect, serve_frameio};
use crate::host::{Blob, Method, Recipient, TransferError, TransferStatus};
use crate::inbound::{self, Request};
use crate::jobs::{self, Job, Outcome};
use crate::signature;

fn setup() -> (FakeHost, Binding) {
    let host = FakeHost::new();
    configure(&host);
    connect(&host, "alice", host.now.get() + 3600);
    serve_frameio(&host);
    let binding = bindings::bind(
        &host,
        &BindRequest { user: "alice".into(), folder_id: "f1".into(), project_id: "p1".into(), action_name: "Publish to DAM".into() },
    )
    .unwrap();
    (host, binding)
}

fn deliver(host: &FakeHost, binding: &Binding, body: &Value) -> (u16, Value, Vec<inbound::JobRequest>) {
    let body = body.to_string().into_bytes();
    let now = host.now.get();
    let headers = vec![
        ("x-frameio-request-timestamp".into(), now.to_string()),
        ("x-frameio-signature".into(), signature::sign("whsec", now, &body)),
    ];
    let req = Request { method: "POST".into(), path: format!("/actions/{}", binding.id), query: String::new(), headers, body, received_at: now };
    let reply = inbound::handle(host, &req);
    (reply.status, serde_json::from_slice(&reply.body).unwrap(), reply.enqueue)
}

fn click(asset: &str) -> Value {
    serde_json::json!({"action_id": "act1", "interaction_id": "i1", "resource": {"id": asset, "type": "asset"}, "user": {"id": "u7"}, "type": "dam.push"})
}

fn submit(title: &str) -> Value {
    serde_json::json!({"action_id": "act1", "interaction_id": "i1", "data": {"title": title, "notify": "yes"}})
}

fn push_job(host: &FakeHost, binding: &Binding, asset: &str) -> Job {
    deliver(host, binding, &click(asset));
    let (_, _, mut enqueue) = deliver(host, binding, &submit(""));
    let request = enqueue.pop().expect("the submission queues a job");
    Job { id: "j1".into(), key: request.key, kind: request.kind, payload: request.payload, attempt: 0 }
}

fn step(host: &FakeHost, job: &mut Job) -> Outcome {
    let outcome = jobs::run(host, job);
    if let Outcome::Next { payload, .. } = &outcome {
        job.payload = payload.clone();
    }
    outcome
}

fn blob() -> TransferStatus {
    TransferStatus::Complete(Blob { id: "blob1".into(), size: 10, xxhash64: "00112233445566aa".into() })
}

#[test]
fn bind_creates_a_named_action_pointing_at_the_binding() {
    let (host, binding) = setup();
    assert_eq!(binding.action_id, "act1");
    assert_eq!(binding.secrets, vec!["whsec".to_string()]);
    let create = host.requests.borrow().iter().find(|r| r.method == Method::Post && r.url.ends_with("/actions")).cloned().unwrap();
    let body: Value = serde_json::from_slice(&create.body).unwrap();
    assert_eq!(body["name"], "Publish to DAM");
    assert_eq!(body["url"], format!("https://dam.example.com/frameio/actions/{}", binding.id));
    assert_eq!(bindings::list(&host).unwrap().len(), 1);
}

#[test]
fn a_clashing_action_name_creates_nothing() {
    let (host, _) = setup();
    let before = host.requests_to("/teams/t1/actions");
    let err = bindings::bind(
        &host,
        &BindRequest { user: "alice".into(), folder_id: "f1".into(), project_id: "p1".into(), action_name: "send to archive".into() },
    )
    .unwrap_err();
    assert!(matches!(err, Error::Conflict(_)), "{err:?}");
    let posts = host.requests.borrow().iter().filter(|r| r.method == Method::Post && r.url.contains("/actions")).count();
    assert_eq!(posts, 1, "only the first bind created an action");
    assert_eq!(host.requests_to("/teams/t1/actions"), before + 1);
    assert_eq!(bindings::list(&host).unwrap().len(), 1);
}

#[test]
fn click_answers_a_form_prefilled_with_the_asset_name() {
    let (host, binding) = setup();
    let (status, form, enqueue) = deliver(&host, &binding, &click("a1"));
    assert_eq!(status, 200);
    assert!(enqueue.is_empty());
    assert_eq!(form["fields"][0]["name"], "title");
    assert_eq!(form["fields"][0]["value"], "a1.mov");
    assert_eq!(form["fields"][1]["name"], "notify");
}

#[test]
fn folders_and_unfinished_uploads_get_a_message_and_no_job() {
    let (host, binding) = setup();
    for (asset, words) in [("fold", "folder"), ("up", "still uploading")] {
        let (status, reply, enqueue) = deliver(&host, &binding, &click(asset));
        assert_eq!(status, 200);
        assert!(reply["description"].as_str().unwrap().contains(words), "{reply}");
        assert!(reply.get("fields").is_none());
        assert!(enqueue.is_empty());
    }
}

#[test]
fn submit_queues_one_job_keyed_by_the_interaction() {
    let (host, binding) = setup();
    deliver(&host, &binding, &click("a1"));
    let (status, reply, enqueue) = deliver(&host, &binding, &submit("My clip"));
    assert_eq!(status, 200);
    assert_eq!(reply["title"], "Asset pushed to the DAM");
    assert_eq!(enqueue.len(), 1);
    assert_eq!(enqueue[0].key, "push:i1");
    let (_, _, again) = deliver(&host, &binding, &submit("My clip"));
    assert_eq!(again[0].key, enqueue[0].key, "a repeated delivery asks for the same job");
}

#[test]
fn import_downloads_then_makes_a_document_with_metadata_and_emails_the_pusher() {
    let (host, binding) = setup();
    let mut job = push_job(&host, &binding, "a1");
    let outcome = step(&host, &mut job);
    assert!(matches!(outcome, Outcome::Next { .. }), "{outcome:?}");
    assert!(host.documents.borrow().is_empty(), "no document before the bytes are complete");
    *host.transfers.borrow_mut().get_mut("push:i1#0").unwrap() = blob();
    let outcome = step(&host, &mut job);
    assert!(matches!(&outcome, Outcome::Done(s) if s.contains("version 1")), "{outcome:?}");
    let docs = host.documents.borrow();
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0].title, "a1.mov");
    assert_eq!(docs[0].external_key, "frameio:a1");
    let sent = host.sent.borrow();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].to, Recipient::Email("pat@example.com".into()));
    assert_eq!(sent[0].link.as_deref(), Some("http://dam/documents/doc1"));
}

#[test]
fn metadata_carries_what_frameio_knows() {
    let (host, binding) = setup();
    let mut job = push_job(&host, &binding, "a1");
    step(&host, &mut job);
    let payload: Value = serde_json::from_slice(&job.payload).unwrap();
    let props: Vec<(String, String)> = serde_json::from_value(payload["stage"]["Downloading"]["properties"].clone()).unwrap();
    let get = |k: &str| props.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    assert_eq!(get("frameio.asset-id"), Some("a1"));
    assert_eq!(get("frameio.project"), Some("Spring"));
    assert_eq!(get("frameio.team-id"), Some("t1"));
    assert_eq!(get("frameio.uploader"), Some("Uma <uma@example.com>"));
    assert_eq!(get("frameio.fps"), Some("24"));
    assert_eq!(get("frameio.frames"), Some("60"));
    assert_eq!(get("frameio.label"), Some("approved"));
    assert_eq!(get("frameio.checksum"), Some("xxh64:00112233445566aa"));
    assert_eq!(get("frameio.link"), Some("https://app.frame.io/player/a1"));
}

#[test]
fn a_version_from_a_stack_is_keyed_by_the_stack() {
    let (host, binding) = setup();
    *host.next_transfer.borrow_mut() = blob();
    let mut job = push_job(&host, &binding, "v2");
    assert!(matches!(step(&host, &mut job), Outcome::Done(_)));
    assert_eq!(host.documents.borrow()[0].external_key, "frameio:vs");
}

#[test]
fn an_expired_download_url_is_renewed_not_retried() {
    let (host, binding) = setup();
    *host.next_transfer.borrow_mut() = TransferStatus::Failed(TransferError::HttpStatus(403));
    let mut job = push_job(&host, &binding, "a1");
    let asset_reads = host.requests_to("/assets/a1");
    let outcome = step(&host, &mut job);
    // Every transfer fails with 403: renewed five times under new keys, then given up.
    assert!(matches!(&outcome, Outcome::Failed(why) if why.contains("403")), "{outcome:?}");
    let keys: Vec<String> = host.transfers.borrow().keys().cloned().collect();
    assert_eq!(keys, ["push:i1#0", "push:i1#1", "push:i1#2", "push:i1#3", "push:i1#4", "push:i1#5"]);
    assert_eq!(host.requests_to("/assets/a1"), asset_reads + 6);
    assert!(host.sent.borrow()[0].subject.contains("could not be imported"));
}

#[test]
fn a_damaged_download_is_fetched_once_more_then_fails_with_the_reason() {
    let (host, binding) = setup();
    *host.next_transfer.borrow_mut() = TransferStatus::Failed(TransferError::ChecksumMismatch("ffff".into()));
    let mut job = push_job(&host, &binding, "a1");
    let outcome = step(&host, &mut job);
    assert!(matches!(&outcome, Outcome::Failed(why) if why.contains("damaged") && why.contains("twice")), "{outcome:?}");
    let keys: Vec<String> = host.transfers.borrow().keys().cloned().collect();
    assert_eq!(keys, ["push:i1#0", "push:i1#1"], "one fetch from scratch, no more");
    assert!(host.documents.borrow().is_empty());
    assert!(host.sent.borrow()[0].body.contains("damaged"));
}

#[test]
fn replaying_the_final_step_adds_no_second_version() {
    let (host, binding) = setup();
    *host.next_transfer.borrow_mut() = blob();
    let job = push_job(&host, &binding, "a1");
    for _ in 0..3 {
        assert!(matches!(jobs::run(&host, &job), Outcome::Done(_)));
    }
    assert_eq!(host.versions.borrow().len(), 1);
    assert_eq!(host.documents.borrow()[0].version_count, 1);
}

#[test]
fn frameio_outage_is_retried_with_backoff_then_reported() {
    let (host, binding) = setup();
    let mut job = push_job(&host, &binding, "a1");
    host.respond_with(|_| crate::fake_host::json_response(503, r#"{"message":"down"}"#));
    let outcome = jobs::run(&host, &job);
    assert!(matches!(outcome, Outcome::Retry(100..1100, _)), "first retry within its jittered cap: {outcome:?}");
    assert!(host.sent.borrow().is_empty(), "no email while it may still pass");
    job.attempt = 5;
    let outcome = jobs::run(&host, &job);
    assert!(matches!(&outcome, Outcome::Failed(why) if why.contains("gave up")), "{outcome:?}");
    let sent = host.sent.borrow();
    assert_eq!(sent.len(), 1, "the final failure is reported");
    assert!(sent[0].body.contains("gave up"), "{}", sent[0].body);
}

#[test]
fn after_unbind_a_click_is_told_and_nothing_is_queued() {
    let (host, binding) = setup();
    bindings::unbind(&host, &binding.id).unwrap();
    assert!(host.requests.borrow().iter().any(|r| r.method == Method::Delete && r.url.ends_with("/actions/act1")));
    assert!(bindings::list(&host).unwrap().is_empty());
    let (status, reply, enqueue) = deliver(&host, &binding, &click("a1"));
    assert_eq!(status, 200);
    assert_eq!(reply["title"], "This folder is no longer bound");
    assert!(enqueue.is_empty());
    let (_, _, enqueue) = deliver(&host, &binding, &submit("x"));
    assert!(enqueue.is_empty());
}

#[test]
fn an_expired_token_is_refreshed_before_use() {
    let host = FakeHost::new();
    configure(&host);
    connect(&host, "alice", host.now.get() + 10);
    serve_frameio(&host);
    crate::browse::accounts(&host, "alice").unwrap_err();
    assert_eq!(host.requests_to("/oauth2/token"), 1);
    let auth = host.requests.borrow().iter().rev().find(|r| r.url.contains("/v2/")).unwrap().headers.clone();
    assert!(auth.iter().any(|(n, v)| n == "authorization" && v == "Bearer tok-2"));
}

#[test]
fn a_damaged_download_that_arrives_whole_the_second_time_is_imported() {
    let (host, binding) = setup();
    host.transfers.borrow_mut().insert("push:i1#0".into(), TransferStatus::Failed(TransferError::SizeMismatch(3)));
    *host.next_transfer.borrow_mut() = blob();
    let mut job = push_job(&host, &binding, "a1");
    let outcome = step(&host, &mut job);
    assert!(matches!(&outcome, Outcome::Done(_)), "{outcome:?}");
    assert_eq!(host.versions.borrow().len(), 1);
}

#[test]
fn a_token_frameio_rejects_before_its_expiry_is_refreshed_once_and_the_call_retried() {
    let host = FakeHost::new();
    configure(&host);
    connect(&host, "alice", host.now.get() + 3600);
    serve_frameio(&host);
    // Frame.io revoked tok-1 early: it answers 401 to it, and accepts the refreshed tok-2.
    host.respond_with(|req| {
        let revoked = req.headers.iter().any(|(n, v)| n == "authorization" && v == "Bearer tok-1");
        if req.url.ends_with("/oauth2/token") {
            crate::fake_host::json_response(200, r#"{"access_token":"tok-2","refresh_token":"ref-2","expires_in":3600}"#)
        } else if revoked {
            crate::fake_host::json_response(401, r#"{"message":"invalid token"}"#)
        } else {
            crate::fake_host::json_response(200, r#"[{"id":"acc1","display_name":"Studio"}]"#)
        }
    });
    let accounts = crate::browse::accounts(&host, "alice").unwrap();
    assert_eq!(accounts[0].name, "Studio");
    assert_eq!(host.requests_to("/oauth2/token"), 1, "one refresh");
    assert_eq!(host.requests_to("/accounts"), 2, "the call, then its one retry");
}

#[test]
fn an_authorization_state_works_once() {
    let host = FakeHost::new();
    configure(&host);
    serve_frameio(&host);
    let auth = crate::oauth::begin(&host, "alice", "https://dam.example.com/oauth/callback").unwrap();
    crate::oauth::complete(&host, &auth.state, "code-1").unwrap();
    let again = crate::oauth::complete(&host, &auth.state, "code-1").unwrap_err();
    assert!(matches!(again, Error::InvalidInput(_)), "{again:?}");
}

#[test]
fn a_refresh_that_lost_to_a_concurrent_rotation_uses_the_winners_tokens() {
    let host = FakeHost::new();
    configure(&host);
    connect(&host, "alice", host.now.get() + 10);
    // The token endpoint says invalid_grant (our refresh token was just used by another
    // call), and by then that call has stored fresh tokens.
    let key = format!("{}alice", crate::store::CONNECTION);
    host.respond_with(move |req| {
        if req.url.ends_with("/oauth2/token") {
            crate::fake_host::json_response(400, r#"{"error":"invalid_grant"}"#)
        } else {
            crate::fake_host::json_response(200, "[]")
        }
    });
    let winner = serde_json::json!({
        "user": "alice", "frameio_user": "Ada", "access_token": "tok-winner", "refresh_token": "ref-winner",
        "expires_at": host.now.get() + 3600, "reconnect_reason": null
    });
    // The other call's write lands while our token request is in flight.
    host.writes_during_token_request.borrow_mut().push((key, winner.to_string().into_bytes()));
    crate::browse::accounts(&host, "alice").unwrap();
    assert_eq!(host.requests_to("/oauth2/token"), 1, "our refresh was tried and refused");
    let auth = host.requests.borrow().iter().rev().find(|r| r.url.contains("/v2/")).unwrap().headers.clone();
    assert!(auth.iter().any(|(n, v)| n == "authorization" && v == "Bearer tok-winner"), "{auth:?}");
    assert!(host.sent.borrow().is_empty(), "no reconnect email for a race");
}

#[test]
fn frameio_rate_limit_hints_set_the_retry_delay() {
    let (host, binding) = setup();
    let job = push_job(&host, &binding, "a1");
    let limited = |headers: &'static [(&'static str, &'static str)]| {
        move |_: &crate::host::HttpRequest| crate::host::HttpResponse {
            status: 429,
            headers: headers.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect(),
            body: br#"{"message":"Too Many Requests"}"#.to_vec(),
        }
    };
    host.respond_with(limited(&[("retry-after", "7")]));
    assert!(matches!(jobs::run(&host, &job), Outcome::Retry(7000, _)));
    host.respond_with(limited(&[("x-ratelimit-remaining", "0"), ("x-ratelimit-window", "1000"), ("x-ratelimit-limit", "5")]));
    assert!(matches!(jobs::run(&host, &job), Outcome::Retry(1000, _)));
    host.respond_with(limited(&[("retry-after", "99999")]));
    assert!(matches!(jobs::run(&host, &job), Outcome::Retry(120_000, _)), "a hint is capped at two minutes");
}

#[test]
fn a_step_that_keeps_failing_gives_up_within_the_retry_budget() {
    let (host, binding) = setup();
    let mut job = push_job(&host, &binding, "a1");
    // The worst case: Frame.io asks for the longest wait every time.
    host.respond_with(|_| crate::host::HttpResponse {
        status: 503,
        headers: vec![("retry-after".into(), "86400".into())],
        body: br#"{"message":"Service Unavailable"}"#.to_vec(),
    });
    let mut waited_ms = 0u64;
    let reason = loop {
        match jobs::run(&host, &job) {
            Outcome::Retry(delay, _) => waited_ms += u64::from(delay),
            Outcome::Failed(reason) => break reason,
            other => panic!("{other:?}"),
        }
        job.attempt += 1;
    };
    assert!(reason.contains("gave up after 6 attempts"), "{reason}");
    assert!(waited_ms <= u64::from(crate::push::RETRY_BUDGET_MS), "{waited_ms} ms");
    assert_eq!(crate::push::RETRY_BUDGET_MS, 600_000, "ten minutes, as the README says");
}

#[test]
fn retries_without_a_hint_are_jittered_below_a_growing_cap() {
    let host = FakeHost::new();
    let delays: Vec<u32> = (0..8).map(|attempt| crate::push::retry_delay(&host, attempt, None)).collect();
    for (attempt, delay) in delays.iter().enumerate() {
        let cap = (1000u32 << attempt.min(6)).min(60_000);
        assert!((100..100 + cap).contains(delay), "attempt {attempt}: {delay}");
    }
    assert!(delays.windows(2).any(|w| w[0] != w[1]), "draws differ: {delays:?}");
}

/// A configured host whose HTTP goes to the scripted Frame.io (no connection yet).
fn frameio_host() -> FakeHost {
    let host = FakeHost::new();
    configure(&host);
    serve_frameio(&host);
    host
}

/// A stored connection for alice whose token `tok-1` expires at `expires_at`, with
/// another call's refresh lease running until `lease_until`.
fn connect_with_lease(host: &FakeHost, expires_at: u64, lease_until: u64) -> String {
    let key = format!("{}alice", crate::store::CONNECTION);
    let conn = serde_json::json!({
        "user": "alice", "frameio_user": "Ada", "access_token": "tok-1", "refresh_token": "ref-1",
        "expires_at": expires_at, "reconnect_reason": null, "refresh_lease_until": lease_until
    });
    crate::host::Host::storage_set(host, &key, conn.to_string().as_bytes()).unwrap();
    key
}

fn bearer_of_last_api_call(host: &FakeHost) -> String {
    let requests = host.requests.borrow();
    let last = requests.iter().rev().find(|r| r.url.contains("/v2/")).expect("an API call");
    last.headers.iter().find(|(n, _)| n == "authorization").map(|(_, v)| v.clone()).unwrap_or_default()
}

#[test]
fn a_call_whose_token_expired_waits_for_a_refresh_under_way_instead_of_refreshing() {
    let host = frameio_host();
    let now = host.now.get();
    let key = connect_with_lease(&host, now - 1, now + 10);
    let done = serde_json::json!({
        "user": "alice", "frameio_user": "Ada", "access_token": "tok-other", "refresh_token": "ref-other",
        "expires_at": now + 3600, "reconnect_reason": null, "refresh_lease_until": null
    });
    // The lease holder stores its tokens while we wait.
    host.writes_during_sleep.borrow_mut().push((key, done.to_string().into_bytes()));
    crate::browse::accounts(&host, "alice").unwrap_err();
    assert_eq!(host.requests_to("/oauth2/token"), 0, "single flight: the holder's refresh is the only one");
    assert!(host.slept_ms.get() > 0, "it waited");
    assert_eq!(bearer_of_last_api_call(&host), "Bearer tok-other");
}

#[test]
fn a_token_that_has_not_expired_is_used_while_another_call_refreshes_it() {
    let host = frameio_host();
    let now = host.now.get();
    connect_with_lease(&host, now + 30, now + 10);
    crate::browse::accounts(&host, "alice").unwrap_err();
    assert_eq!((host.slept_ms.get(), host.requests_to("/oauth2/token")), (0, 0), "no wait, no second refresh");
    assert_eq!(bearer_of_last_api_call(&host), "Bearer tok-1");
}

#[test]
fn a_lease_whose_holder_died_makes_callers_fail_briefly_then_runs_out() {
    let host = frameio_host();
    let started = host.now.get();
    connect_with_lease(&host, started - 1, started + 10);
    let waited = crate::browse::accounts(&host, "alice").unwrap_err();
    assert!(waited.is_transient(), "a passing error after a bounded wait: {waited:?}");
    assert_eq!(host.now.get() - started, 6, "waited six seconds");
    assert_eq!(host.requests_to("/oauth2/token"), 0);
    host.now.set(started + 11);
    crate::browse::accounts(&host, "alice").unwrap_err();
    assert_eq!(host.requests_to("/oauth2/token"), 1, "the lease ran out: this call refreshes");
    assert_eq!(bearer_of_last_api_call(&host), "Bearer tok-2");
    let stored = crate::store::load::<Value>(&host, &format!("{}alice", crate::store::CONNECTION)).unwrap().unwrap();
    assert_eq!(stored.value["refresh_lease_until"], Value::Null, "the lease is released with the new tokens");
    assert_eq!(stored.value["refresh_token"], "ref-2", "the new refresh token is stored");
}

#[test]
fn a_lease_set_impossibly_far_ahead_is_not_honoured() {
    let host = frameio_host();
    connect_with_lease(&host, host.now.get() - 1, u64::MAX);
    crate::browse::accounts(&host, "alice").unwrap_err();
    assert_eq!(host.slept_ms.get(), 0);
    assert_eq!(host.requests_to("/oauth2/token"), 1);
}

#[test]
fn a_connection_without_a_refresh_token_needs_reconnecting_and_takes_no_lease() {
    let host = FakeHost::new();
    configure(&host);
    let key = format!("{}alice", crate::store::CONNECTION);
    let conn = serde_json::json!({
        "user": "alice", "frameio_user": "Ada", "access_token": "tok-1", "refresh_token": null,
        "expires_at": host.now.get() - 1, "reconnect_reason": null
    });
    crate::host::Host::storage_set(&host, &key, conn.to_string().as_bytes()).unwrap();
    let before = crate::host::Host::storage_get(&host, &key).unwrap().unwrap().revision;
    let e = crate::browse::accounts(&host, "alice").unwrap_err();
    assert!(matches!(e, Error::ReconnectRequired(_)), "{e:?}");
    assert_eq!(crate::host::Host::storage_get(&host, &key).unwrap().unwrap().revision, before, "the record is untouched");
}

#[test]
fn a_failed_refresh_releases_its_lease() {
    let host = FakeHost::new();
    configure(&host);
    connect(&host, "alice", host.now.get() + 10);
    host.respond_with(|_| crate::fake_host::json_response(503, r#"{"message":"unavailable"}"#));
    crate::browse::accounts(&host, "alice").unwrap_err();
    let stored = crate::store::load::<Value>(&host, &format!("{}alice", crate::store::CONNECTION)).unwrap().unwrap();
    assert_eq!(stored.value["refresh_lease_until"], Value::Null);
    assert_eq!(stored.value["access_token"], "tok-1", "nothing else changed");
}
