//! The push flow against a Frame.io faked at the traits and an in-memory host:
//! binding, the custom-action conversation and every step of the import job, on
//! both API generations where their events differ.

use std::cell::RefCell;
use std::rc::Rc;

use serde_json::{Value, json};

use crate::error::{Error, FrameioError};
use crate::fake_host::FakeHost;
use crate::flows::bindings::{self, BindRequest, Binding};
use crate::flows::fake_frameio::{World, context, file, world};
use crate::frameio::model::{Generation, Original};
use crate::host::{Blob, Host, Recipient, TransferError, TransferStatus};
use crate::inbound::{self, Request};
use crate::jobs::{self, Job, Outcome, retry};
use crate::signature;

struct Setup {
    host: FakeHost,
    world: Rc<RefCell<World>>,
    generation: Generation,
    binding: Binding,
}

fn setup_for(generation: Generation) -> Setup {
    let host = FakeHost::new();
    let world = world();
    let binding = {
        let ctx = context(&host, &world, generation);
        let req = BindRequest {
            user: "alice".into(),
            folder_id: "f1".into(),
            account_id: "acc1".into(),
            project_id: "p1".into(),
            action_name: "Publish to DAM".into(),
        };
        bindings::bind(&ctx, &req).unwrap()
    };
    Setup { host, world, generation, binding }
}

fn setup() -> Setup {
    setup_for(Generation::V2)
}

impl Setup {
    fn deliver(&self, body: &Value) -> (u16, Value, Vec<crate::flows::JobRequest>) {
        let body = body.to_string().into_bytes();
        let now = self.host.now.get();
        let headers = vec![
            ("x-frameio-request-timestamp".into(), now.to_string()),
            ("x-frameio-signature".into(), signature::sign("whsec", now, &body)),
        ];
        let req =
            Request { method: "POST".into(), path: format!("/actions/{}", self.binding.id), query: String::new(), headers, body, received_at: now };
        let reply = inbound::handle_in(&self.host, &req, |host| Ok(context(host, &self.world, self.generation)));
        (reply.status, serde_json::from_slice(&reply.body).unwrap(), reply.enqueue)
    }

    /// A click on `resource` of wire type `kind`, in this setup's generation.
    fn click_on(&self, resource: &str, kind: &str) -> Value {
        let mut event = json!({"action_id": "act1", "interaction_id": "i1", "resource": {"id": resource, "type": kind}, "user": {"id": "u7"}, "type": "dam.push"});
        match self.generation {
            Generation::V2 => event["team"] = json!({"id": "t1"}),
            Generation::V4 => {
                event["account_id"] = json!("acc1");
                event["workspace"] = json!({"id": "t1"});
            }
        }
        event
    }

    fn click(&self, asset: &str) -> Value {
        let kind = if self.generation == Generation::V2 { "asset" } else { "file" };
        self.click_on(asset, kind)
    }

    fn submit(&self, data: Value) -> Value {
        let mut event = self.click("a1");
        event.as_object_mut().unwrap().remove("resource");
        event["data"] = data;
        event
    }

    fn push_job(&self, asset: &str) -> Job {
        self.deliver(&self.click(asset));
        let (_, _, mut enqueue) = self.deliver(&self.submit(json!({"title": "", "notify": "yes"})));
        let request = enqueue.pop().expect("the submission queues a job");
        Job { id: "j1".into(), key: request.key, kind: request.kind, payload: request.payload, attempt: 0 }
    }

    fn run(&self, job: &Job) -> Outcome {
        jobs::run(&context(&self.host, &self.world, self.generation), job)
    }

    fn step(&self, job: &mut Job) -> Outcome {
        let outcome = self.run(job);
        if let Outcome::Next { payload, .. } = &outcome {
            job.payload = payload.clone();
        }
        outcome
    }

    fn calls(&self, prefix: &str) -> usize {
        self.world.borrow().calls.iter().filter(|c| c.starts_with(prefix)).count()
    }
}

fn blob() -> TransferStatus {
    TransferStatus::Complete(Blob { id: "blob1".into(), size: 10, xxhash64: "00112233445566aa".into() })
}

#[test]
fn bind_creates_a_named_action_pointing_at_the_binding() {
    for generation in [Generation::V2, Generation::V4] {
        let s = setup_for(generation);
        assert_eq!(s.binding.action_id, "act1");
        assert_eq!(s.binding.secrets, vec!["whsec".to_string()]);
        assert_eq!((s.binding.generation, s.binding.account_id.as_str(), s.binding.workspace_id.as_str()), (generation, "acc1", "t1"));
        let url = format!("https://dam.example.com/frameio/actions/{}", s.binding.id);
        assert!(s.world.borrow().calls.contains(&format!("create_action t1 {url}")));
        assert_eq!(bindings::list(&s.host).unwrap().len(), 1);
    }
}

#[test]
fn a_v4_bind_needs_the_account() {
    let host = FakeHost::new();
    let world = world();
    let ctx = context(&host, &world, Generation::V4);
    let req = BindRequest { user: "alice".into(), folder_id: "f1".into(), account_id: String::new(), project_id: "p1".into(), action_name: "Push".into() };
    let err = bindings::bind(&ctx, &req).unwrap_err();
    assert!(matches!(&err, Error::InvalidInput(why) if why.contains("account-id")), "{err:?}");
    assert!(world.borrow().calls.is_empty(), "nothing asked of Frame.io");
}

#[test]
fn a_clashing_action_name_creates_nothing() {
    let s = setup();
    let ctx = context(&s.host, &s.world, Generation::V2);
    let req = BindRequest { user: "alice".into(), folder_id: "f1".into(), account_id: "acc1".into(), project_id: "p1".into(), action_name: "send to archive".into() };
    let err = bindings::bind(&ctx, &req).unwrap_err();
    assert!(matches!(err, Error::Conflict(_)), "{err:?}");
    assert_eq!(s.calls("create_action"), 1, "only the first bind created an action");
    assert_eq!(bindings::list(&s.host).unwrap().len(), 1);
}

#[test]
fn click_answers_a_form_with_title_note_and_email_choice() {
    for generation in [Generation::V2, Generation::V4] {
        let s = setup_for(generation);
        let (status, form, enqueue) = s.deliver(&s.click("a1"));
        assert_eq!(status, 200, "{form}");
        assert!(enqueue.is_empty());
        let fields: Vec<(&str, &str)> =
            form["fields"].as_array().unwrap().iter().map(|f| (f["name"].as_str().unwrap(), f["type"].as_str().unwrap())).collect();
        assert_eq!(fields, [("title", "text"), ("note", "textarea"), ("notify", "select")]);
        assert_eq!(form["fields"][0]["value"], "a1.mov");
    }
}

#[test]
fn folders_and_files_without_download_permission_get_a_message_and_no_job() {
    let s = setup_for(Generation::V4);
    s.world.borrow_mut().files.insert("locked".into(), crate::frameio::model::File { original: Original::Forbidden, ..file("locked", "root") });
    for (asset, kind, words) in [("fold", "folder", "folder"), ("locked", "file", "download permission")] {
        let (status, reply, enqueue) = s.deliver(&s.click_on(asset, kind));
        assert_eq!(status, 200);
        assert!(reply["description"].as_str().unwrap().contains(words), "{reply}");
        assert!(reply.get("fields").is_none());
        assert!(enqueue.is_empty());
    }
}

#[test]
fn an_asset_of_another_project_is_refused_naming_the_bound_project() {
    let s = setup();
    let (status, reply, enqueue) = s.deliver(&s.click("other"));
    assert_eq!(status, 200);
    assert_eq!(reply["title"], "This asset is in another project");
    assert!(reply["description"].as_str().unwrap().contains("\"Spring\""), "{reply}");
    assert!(enqueue.is_empty());
    assert!(s.host.storage_list(crate::store::INTERACTION).unwrap().is_empty(), "nothing recorded");
}

#[test]
fn submit_queues_one_job_keyed_by_the_interaction_with_the_note_and_the_pushers_email() {
    let s = setup();
    s.deliver(&s.click("a1"));
    let (status, reply, enqueue) = s.deliver(&s.submit(json!({"title": "My clip", "note": "Final grade\nfor review", "notify": "yes"})));
    assert_eq!(status, 200);
    assert_eq!(reply["title"], "Asset pushed to the DAM");
    assert_eq!(enqueue.len(), 1);
    assert_eq!(enqueue[0].key, "push:i1");
    let job: Value = serde_json::from_slice(&enqueue[0].payload).unwrap();
    assert_eq!(job["note"], "Final grade\nfor review");
    assert_eq!(job["pusher_email"], "pat@example.com");
    let (_, _, again) = s.deliver(&s.submit(json!({"title": "My clip", "notify": "yes"})));
    assert_eq!(again[0].key, enqueue[0].key, "a repeated delivery asks for the same job");
    assert_eq!(s.calls("member"), 1, "the pusher is looked up once, at the click");
}

#[test]
fn a_v4_checkbox_asks_for_the_email_too() {
    let s = setup_for(Generation::V4);
    s.deliver(&s.click("a1"));
    let (_, reply, _) = s.deliver(&s.submit(json!({"title": "", "notify": true})));
    assert!(reply["description"].as_str().unwrap().contains("You will get an email"), "{reply}");
}

#[test]
fn import_downloads_then_makes_a_document_with_metadata_and_emails_the_pusher() {
    let s = setup();
    let mut job = s.push_job("a1");
    let outcome = s.step(&mut job);
    assert!(matches!(outcome, Outcome::Next { .. }), "{outcome:?}");
    assert!(s.host.documents.borrow().is_empty(), "no document before the bytes are complete");
    *s.host.transfers.borrow_mut().get_mut("push:i1#0").unwrap() = blob();
    let members_before = s.calls("member");
    let outcome = s.step(&mut job);
    assert!(matches!(&outcome, Outcome::Done { summary: s, .. } if s.contains("version 1")), "{outcome:?}");
    let docs = s.host.documents.borrow();
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0].title, "a1.mov");
    assert_eq!(docs[0].external_key, "frameio:a1");
    let sent = s.host.sent.borrow();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].to, Recipient::Email("pat@example.com".into()));
    assert_eq!(sent[0].link.as_deref(), Some("http://dam/documents/doc1"));
    assert_eq!(s.calls("member"), members_before, "no member paging when the job finishes");
}

#[test]
fn metadata_carries_what_frameio_knows_under_the_same_names_on_both_generations() {
    for generation in [Generation::V2, Generation::V4] {
        let s = setup_for(generation);
        let mut job = s.push_job("a1");
        s.step(&mut job);
        let payload: Value = serde_json::from_slice(&job.payload).unwrap();
        let props: Vec<(String, String)> = serde_json::from_value(payload["stage"]["Downloading"]["properties"].clone()).unwrap();
        let get = |k: &str| props.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("frameio.asset-id"), Some("a1"));
        assert_eq!(get("frameio.api"), Some(generation.name()));
        assert_eq!(get("frameio.project"), Some("Spring"));
        assert_eq!(get("frameio.team-id"), Some("t1"));
        assert_eq!(get("frameio.uploader"), Some("Uma <uma@example.com>"));
        assert_eq!(get("frameio.filetype"), Some("video/quicktime"));
        assert_eq!(get("frameio.filesize"), Some("10"));
        assert_eq!(get("frameio.fps"), Some("24"));
        assert_eq!(get("frameio.label"), Some("approved"));
        assert_eq!(get("frameio.checksum"), Some("xxh64:00112233445566aa"));
        assert_eq!(get("frameio.link"), Some("https://app.frame.io/player/a1"));
    }
}

#[test]
fn a_version_from_a_stack_is_keyed_by_the_stack_and_a_click_on_the_stack_imports_its_head() {
    let s = setup_for(Generation::V4);
    *s.host.next_transfer.borrow_mut() = blob();
    let mut job = s.push_job("v1");
    assert!(matches!(s.step(&mut job), Outcome::Done { .. }));
    assert_eq!(s.host.documents.borrow()[0].external_key, "frameio:vs");
    let (_, form, _) = s.deliver(&s.click_on("vs", "version_stack"));
    let description = form["description"].as_str().unwrap();
    assert!(description.starts_with("Import \"v2.mov\""), "the head version: {form}");
    assert!(description.contains("version 2 of \"v1.mov\""), "{form}");
}

#[test]
fn a_file_pushed_before_it_was_stacked_keeps_its_document_when_pushed_from_the_stack() {
    let s = setup();
    *s.host.next_transfer.borrow_mut() = blob();
    let mut first = s.push_job("a1");
    assert!(matches!(s.step(&mut first), Outcome::Done { .. }));
    // a1 is stacked with a newer file, and the stack is pushed.
    {
        let mut world = s.world.borrow_mut();
        world.files.get_mut("a1").unwrap().version_stack_id = Some("vs2".into());
        let newer = crate::frameio::model::File { version_stack_id: Some("vs2".into()), ..file("a2", "vs2") };
        world.files.insert("a2".into(), newer);
        let stack = crate::frameio::model::VersionStack {
            id: "vs2".into(),
            name: "a".into(),
            project_id: "p1".into(),
            head_file_id: "a2".into(),
            version_ids: vec!["a2".into(), "a1".into()],
        };
        world.stacks.insert("vs2".into(), stack);
        let as_asset = crate::frameio::model::File { kind: crate::frameio::model::ItemKind::VersionStack, ..file("vs2", "root") };
        world.files.insert("vs2".into(), as_asset);
    }
    let mut click = s.click_on("vs2", "asset");
    click["interaction_id"] = json!("i2");
    s.deliver(&click);
    let mut submit = s.submit(json!({"title": "", "notify": "no"}));
    submit["interaction_id"] = json!("i2");
    let (_, _, mut enqueue) = s.deliver(&submit);
    let request = enqueue.pop().unwrap();
    let mut second = Job { id: "j2".into(), key: request.key, kind: request.kind, payload: request.payload, attempt: 0 };
    assert!(matches!(s.step(&mut second), Outcome::Done { .. }));
    let docs = s.host.documents.borrow();
    assert_eq!(docs.len(), 1, "one document: {docs:?}");
    assert_eq!(docs[0].version_count, 2);
}

#[test]
fn an_expired_download_url_is_renewed_not_retried() {
    let s = setup();
    *s.host.next_transfer.borrow_mut() = TransferStatus::Failed(TransferError::HttpStatus(403));
    let mut job = s.push_job("a1");
    let reads = s.calls("file a1");
    let outcome = s.step(&mut job);
    // Every transfer fails with 403: renewed five times under new keys, then given up.
    assert!(matches!(&outcome, Outcome::Failed(why) if why.contains("403")), "{outcome:?}");
    let keys: Vec<String> = s.host.transfers.borrow().keys().cloned().collect();
    assert_eq!(keys, ["push:i1#0", "push:i1#1", "push:i1#2", "push:i1#3", "push:i1#4", "push:i1#5"]);
    assert_eq!(s.calls("file a1"), reads + 6);
    assert!(s.host.sent.borrow()[0].subject.contains("could not be imported"));
}

#[test]
fn a_damaged_download_is_fetched_once_more_then_fails_with_the_reason() {
    let s = setup();
    *s.host.next_transfer.borrow_mut() = TransferStatus::Failed(TransferError::ChecksumMismatch("ffff".into()));
    let mut job = s.push_job("a1");
    let outcome = s.step(&mut job);
    assert!(matches!(&outcome, Outcome::Failed(why) if why.contains("damaged") && why.contains("twice")), "{outcome:?}");
    let keys: Vec<String> = s.host.transfers.borrow().keys().cloned().collect();
    assert_eq!(keys, ["push:i1#0", "push:i1#1"], "one fetch from scratch, no more");
    assert!(s.host.documents.borrow().is_empty());
    assert!(s.host.sent.borrow()[0].body.contains("damaged"));
}

#[test]
fn a_damaged_download_that_arrives_whole_the_second_time_is_imported() {
    let s = setup();
    s.host.transfers.borrow_mut().insert("push:i1#0".into(), TransferStatus::Failed(TransferError::SizeMismatch(3)));
    *s.host.next_transfer.borrow_mut() = blob();
    let mut job = s.push_job("a1");
    let outcome = s.step(&mut job);
    assert!(matches!(&outcome, Outcome::Done { .. }), "{outcome:?}");
    assert_eq!(s.host.versions.borrow().len(), 1);
}

#[test]
fn replaying_the_final_step_adds_no_second_version() {
    let s = setup();
    *s.host.next_transfer.borrow_mut() = blob();
    let job = s.push_job("a1");
    for _ in 0..3 {
        assert!(matches!(s.run(&job), Outcome::Done { .. }));
    }
    assert_eq!(s.host.versions.borrow().len(), 1);
    assert_eq!(s.host.documents.borrow()[0].version_count, 1);
}

#[test]
fn frameio_outage_is_retried_with_backoff_then_reported() {
    let s = setup();
    let mut job = s.push_job("a1");
    s.world.borrow_mut().outage = Some(FrameioError::new(503, "down"));
    let outcome = s.run(&job);
    assert!(matches!(outcome, Outcome::Retry(100..1100, _)), "first retry within its jittered cap: {outcome:?}");
    assert!(s.host.sent.borrow().is_empty(), "no email while it may still pass");
    job.attempt = retry::MAX_ATTEMPTS - 1;
    let outcome = s.run(&job);
    assert!(matches!(&outcome, Outcome::Failed(why) if why.contains("gave up")), "{outcome:?}");
    let sent = s.host.sent.borrow();
    assert_eq!(sent.len(), 1, "the final failure is reported");
    assert!(sent[0].body.contains("gave up"), "{}", sent[0].body);
}

#[test]
fn frameio_rate_limit_hints_set_the_retry_delay() {
    let s = setup();
    let job = s.push_job("a1");
    for (hint, expected) in [(7_000, 7_000), (1_000, 1_000), (99_999_000, 120_000)] {
        s.world.borrow_mut().outage = Some(FrameioError { status: 429, message: "slow down".into(), retry_after_ms: Some(hint) });
        assert_eq!(s.run(&job), Outcome::Retry(expected, "Frame.io answered 429: slow down".into()));
    }
}

#[test]
fn a_step_that_keeps_failing_gives_up_within_the_retry_budget() {
    let s = setup();
    let mut job = s.push_job("a1");
    // The worst case: Frame.io asks for the longest wait every time.
    s.world.borrow_mut().outage = Some(FrameioError { status: 503, message: "down".into(), retry_after_ms: Some(86_400_000) });
    let mut waited_ms = 0u64;
    let reason = loop {
        match s.run(&job) {
            Outcome::Retry(delay, _) => waited_ms += u64::from(delay),
            Outcome::Failed(reason) => break reason,
            other => panic!("{other:?}"),
        }
        job.attempt += 1;
    };
    assert!(reason.contains("gave up after 8 attempts"), "{reason}");
    assert!(waited_ms <= u64::from(retry::RETRY_BUDGET_MS), "{waited_ms} ms");
    assert_eq!(retry::RETRY_BUDGET_MS, 840_000, "fourteen minutes, as the README says");
}

#[test]
fn retries_without_a_hint_are_jittered_below_a_growing_cap() {
    let host = FakeHost::new();
    let delays: Vec<u32> = (0..8).map(|attempt| retry::delay_ms(&host, attempt, None)).collect();
    for (attempt, delay) in delays.iter().enumerate() {
        let cap = (1000u32 << attempt.min(6)).min(60_000);
        assert!((100..100 + cap).contains(delay), "attempt {attempt}: {delay}");
    }
    assert!(delays.windows(2).any(|w| w[0] != w[1]), "draws differ: {delays:?}");
}

#[test]
fn after_unbind_a_click_is_told_and_nothing_is_queued() {
    let s = setup();
    bindings::unbind(&context(&s.host, &s.world, Generation::V2), &s.binding.id).unwrap();
    assert_eq!(s.calls("delete_action act1"), 1);
    assert!(bindings::list(&s.host).unwrap().is_empty());
    let (status, reply, enqueue) = s.deliver(&s.click("a1"));
    assert_eq!(status, 200);
    assert_eq!(reply["title"], "This folder is no longer bound");
    assert!(enqueue.is_empty());
    let (_, _, enqueue) = s.deliver(&s.submit(json!({"title": "x"})));
    assert!(enqueue.is_empty());
}

#[test]
fn an_event_of_the_other_generation_or_another_workspace_is_refused_and_nothing_recorded() {
    for generation in [Generation::V2, Generation::V4] {
        let s = setup_for(generation);
        let other = Setup { generation: if generation == Generation::V2 { Generation::V4 } else { Generation::V2 }, ..setup_for(generation) };
        let (status, reply, _) = s.deliver(&other.click("a1"));
        assert_eq!(status, 400, "{reply}");
        let mut elsewhere = s.click("a1");
        match generation {
            Generation::V2 => elsewhere["team"] = json!({"id": "t9"}),
            Generation::V4 => elsewhere["workspace"] = json!({"id": "t9"}),
        }
        let (status, reply, _) = s.deliver(&elsewhere);
        assert_eq!((status, reply["error"].as_str()), (400, Some("the event names another workspace")));
        assert!(s.host.storage_list(crate::store::INTERACTION).unwrap().is_empty());
        assert_eq!(s.calls("file"), 0, "Frame.io was not even asked");
    }
}

#[test]
fn a_file_still_uploading_is_accepted_parked_and_imported_when_frameio_says_it_is_ready() {
    let s = setup_for(Generation::V4);
    let (_, form, _) = s.deliver(&s.click("up"));
    assert!(form["description"].as_str().unwrap().contains("imported when the upload completes"), "{form}");
    let mut job = s.push_job("up");
    let outcome = s.step(&mut job);
    assert!(matches!(&outcome, Outcome::Done { summary, .. } if summary.contains("waiting for Frame.io")), "{outcome:?}");
    assert!(s.host.transfers.borrow().is_empty(), "nothing downloaded yet");
    // The upload completes, and Frame.io says so.
    s.world.borrow_mut().files.get_mut("up").unwrap().original = Original::Ready { url: "https://s3.example/up".into() };
    let subscription = s.host.storage_list("subscription/").unwrap()[0].trim_start_matches("subscription/").to_string();
    let event = json!({"type": "file.ready", "resource": {"type": "file", "id": "up"}, "account": {"id": "acc1"}, "workspace": {"id": "t1"}, "user": {"id": "u7"}});
    let body = event.to_string().into_bytes();
    let now = s.host.now.get();
    let headers = vec![("x-frameio-request-timestamp".into(), now.to_string()), ("x-frameio-signature".into(), signature::sign("hooksec", now, &body))];
    let req = Request { method: "POST".into(), path: format!("/webhooks/{subscription}"), query: String::new(), headers, body, received_at: now };
    let reply = inbound::handle_in(&s.host, &req, |host| Ok(context(host, &s.world, Generation::V4)));
    assert_eq!(reply.status, 200);
    let resumed = reply.enqueue.iter().find(|j| j.kind == "push").expect("the parked push is resumed");
    *s.host.next_transfer.borrow_mut() = blob();
    let mut resumed = Job { id: "j2".into(), key: resumed.key.clone(), kind: resumed.kind.clone(), payload: resumed.payload.clone(), attempt: 0 };
    assert!(matches!(s.step(&mut resumed), Outcome::Done { summary, .. } if summary.contains("version 1")));
    assert_eq!(s.host.documents.borrow().len(), 1);
    assert!(s.host.storage_list("awaiting-upload/").unwrap().is_empty(), "unparked");
}
