//! The sync both ways against a Frame.io faked at the traits and an in-memory host:
//! webhook subscriptions, converging on Frame.io's state, coalescing, posting DAM
//! comments without echoes, status, and the reconcile.

use std::cell::RefCell;
use std::rc::Rc;

use serde_json::json;

use super::links::{self, Link};
use super::outgoing::{self, DamComment, DamEvent};
use super::{PostJob, ReconcileJob, SyncJob};
use crate::fake_host::FakeHost;
use crate::flows::bindings::{self, BindRequest, Binding};
use crate::flows::fake_frameio::{World, context, world};
use crate::flows::{Flow, JobRequest, Step};
use crate::frameio::model::{Comment, Generation, ReviewStatus, User};
use crate::host::Host;
use crate::inbound::{self, Request};
use crate::jobs::{self, Job, Outcome};
use crate::signature;

struct Setup {
    host: FakeHost,
    world: Rc<RefCell<World>>,
    binding: Binding,
    document_id: String,
}

fn setup() -> Setup {
    let host = FakeHost::new();
    let world = world();
    let binding = {
        let ctx = context(&host, &world, Generation::V4);
        let req = BindRequest { user: "alice".into(), folder_id: "f1".into(), account_id: "acc1".into(), project_id: "p1".into(), action_name: "Push".into() };
        bindings::bind(&ctx, &req).unwrap()
    };
    let document = host.ensure_document("f1", "frameio:a1", "a1.mov").unwrap();
    links::record(&host, &Link::new("a1", &document.id, &binding, Some(24.0))).unwrap();
    Setup { host, world, binding, document_id: document.id }
}

/// Runs a job to its end, returning its last outcome and every job it asked for.
fn run_job(host: &dyn Host, world: &Rc<RefCell<World>>, request: &JobRequest) -> (Outcome, Vec<JobRequest>) {
    let ctx = context(host, world, Generation::V4);
    let mut job = Job { id: "j".into(), key: request.key.clone(), kind: request.kind.clone(), payload: request.payload.clone(), attempt: 0 };
    let mut spawned = Vec::new();
    for _ in 0..20 {
        match jobs::run(&ctx, &job) {
            Outcome::Next { payload, enqueue, .. } => {
                spawned.extend(enqueue);
                job.payload = payload;
            }
            Outcome::Done { summary, enqueue } => {
                spawned.extend(enqueue.clone());
                return (Outcome::Done { summary, enqueue }, spawned);
            }
            other => return (other, spawned),
        }
    }
    panic!("the job did not end");
}

impl Setup {
    /// Runs a job to its end, returning its last outcome and every job it asked for.
    fn run(&self, request: &JobRequest) -> (Outcome, Vec<JobRequest>) {
        run_job(&self.host, &self.world, request)
    }

    fn deliver(&self, event: serde_json::Value) -> (u16, Vec<JobRequest>) {
        let subscription = self.host.storage_list("subscription/").unwrap()[0].trim_start_matches("subscription/").to_string();
        let body = event.to_string().into_bytes();
        let now = self.host.now.get();
        let headers = vec![
            ("x-frameio-request-timestamp".into(), now.to_string()),
            ("x-frameio-signature".into(), signature::sign("hooksec", now, &body)),
        ];
        let req = Request { method: "POST".into(), path: format!("/webhooks/{subscription}"), query: String::new(), headers, body, received_at: now };
        let reply = inbound::handle_in(&self.host, &req, |host| Ok(context(host, &self.world, Generation::V4)));
        (reply.status, reply.enqueue)
    }

    fn frameio_comment(&self, id: &str, parent: Option<&str>, text: &str, frame: Option<u64>) {
        let comment = Comment {
            id: id.into(),
            file_id: "a1".into(),
            parent_id: parent.map(str::to_string),
            text: text.into(),
            author: User { id: "u7".into(), name: "Pat".into(), email: "pat@example.com".into() },
            created_at: 1_700_000_100,
            updated_at: 1_700_000_100,
            frame,
            annotation: Some(r#"[{"tool":"arrow","x":0.5}]"#.into()),
            ..Comment::default()
        };
        self.world.borrow_mut().comments.push(comment);
    }

    fn dam_texts(&self) -> Vec<String> {
        self.host.list_comments(&self.document_id).unwrap().into_iter().map(|c| c.body.text).collect()
    }
}

fn v4_event(kind: &str, resource: &str, id: &str) -> serde_json::Value {
    json!({"type": kind, "resource": {"type": resource, "id": id}, "account": {"id": "acc1"}, "workspace": {"id": "t1"}, "project": {"id": "p1"}, "user": {"id": "u7"}})
}

#[test]
fn binding_subscribes_the_workspace_once_and_the_last_unbind_removes_it() {
    let s = setup();
    assert_eq!(s.world.borrow().webhooks.len(), 1);
    let (_, url) = s.world.borrow().webhooks.values().next().cloned().unwrap();
    assert!(url.starts_with("https://dam.example.com/frameio/webhooks/s"), "{url}");
    let ctx = context(&s.host, &s.world, Generation::V4);
    let second = bindings::bind(&ctx, &BindRequest { user: "alice".into(), folder_id: "f1".into(), account_id: "acc1".into(), project_id: "p1".into(), action_name: "Other".into() }).unwrap();
    assert_eq!(s.world.borrow().webhooks.len(), 1, "one webhook per workspace");
    bindings::unbind(&ctx, &s.binding.id).unwrap();
    assert_eq!(s.world.borrow().webhooks.len(), 1, "still needed by the second binding");
    bindings::unbind(&ctx, &second.id).unwrap();
    assert!(s.world.borrow().webhooks.is_empty(), "deleted with the last binding");
    let (status, jobs) = s.deliver(v4_event("comment.created", "comment", "fc1"));
    assert_eq!((status, jobs.len()), (200, 0), "a late delivery is answered and ignored");
}

#[test]
fn a_comment_converges_into_the_dam_with_timecode_thread_and_annotation() {
    let s = setup();
    s.frameio_comment("fc1", None, "Trim the head", Some(25));
    s.frameio_comment("fc2", Some("fc1"), "Done", None);
    let (status, jobs) = s.deliver(v4_event("comment.created", "comment", "fc1"));
    assert_eq!((status, jobs.len()), (200, 1));
    let (outcome, _) = s.run(&jobs[0]);
    assert!(matches!(&outcome, Outcome::Done { summary, .. } if summary.contains("2 written")), "{outcome:?}");
    let dam = s.host.list_comments(&s.document_id).unwrap();
    let head = dam.iter().find(|c| c.body.text == "Trim the head").unwrap();
    assert_eq!(head.external_key.as_deref(), Some("frameio:fc1"));
    assert_eq!((head.body.frame, head.body.timecode.as_deref()), (Some(25), Some("00:00:01:01")));
    assert_eq!(head.body.author, "Pat <pat@example.com>");
    assert_eq!(head.body.annotation.as_deref(), Some(r#"[{"tool":"arrow","x":0.5}]"#));
    let reply = dam.iter().find(|c| c.body.text == "Done").unwrap();
    assert_eq!(reply.parent_id.as_deref(), Some(head.id.as_str()));
    assert_eq!(s.host.properties.borrow()[&s.document_id]["frameio.status"], "none");
}

#[test]
fn duplicates_while_queued_are_folded_and_replays_change_nothing() {
    let s = setup();
    s.frameio_comment("fc1", None, "Trim", None);
    let (_, first) = s.deliver(v4_event("comment.created", "comment", "fc1"));
    let (_, again) = s.deliver(v4_event("comment.created", "comment", "fc1"));
    assert_eq!((first.len(), again.len()), (1, 0), "folded into the queued sync");
    s.run(&first[0]);
    let (_, late) = s.deliver(v4_event("comment.updated", "comment", "fc1"));
    let (outcome, _) = s.run(&late[0]);
    assert!(matches!(&outcome, Outcome::Done { summary, .. } if summary.contains("0 written")), "{outcome:?}");
    assert_eq!(s.dam_texts(), ["Trim"]);
}

#[test]
fn deletes_and_status_follow_frameio_and_unlinked_files_are_ignored() {
    let s = setup();
    s.frameio_comment("fc1", None, "Trim", None);
    let (_, jobs) = s.deliver(v4_event("comment.created", "comment", "fc1"));
    s.run(&jobs[0]);
    s.world.borrow_mut().comments.clear();
    s.world.borrow_mut().statuses.insert("a1".into(), ReviewStatus::Approved);
    let (_, jobs) = s.deliver(v4_event("comment.deleted", "comment", "fc1"));
    s.run(&jobs[0]);
    assert!(s.dam_texts().is_empty());
    assert_eq!(s.host.properties.borrow()[&s.document_id]["frameio.status"], "approved");
    let (status, jobs) = s.deliver(v4_event("file.ready", "file", "never-linked"));
    assert_eq!((status, jobs.len()), (200, 0));
    let (status, jobs) = s.deliver(v4_event("comment.deleted", "comment", "never-seen"));
    assert_eq!((status, jobs.len()), (200, 0));
}

#[test]
fn a_dam_comment_is_posted_once_and_its_echo_updates_it_instead_of_duplicating() {
    let s = setup();
    let mine = s.host.put_comment(&s.document_id, "local-only", None, &crate::host::CommentBody { text: "From the DAM".into(), ..Default::default() }).unwrap();
    // The DAM's own comments have no key until posted.
    s.host.comments.borrow_mut()[0].external_key = None;
    let event = DamEvent::CommentAdded(DamComment {
        document_id: s.document_id.clone(),
        comment_id: mine.id.clone(),
        parent_id: None,
        user: "bob".into(),
        text: "From the DAM".into(),
        frame: Some(48),
    });
    let jobs = outgoing::notify(&s.host, event).unwrap();
    assert!(outgoing::posting(&s.host, &s.document_id).unwrap(), "syncs wait while it is on its way");
    let (outcome, _) = s.run(&jobs[0]);
    assert!(matches!(&outcome, Outcome::Done { summary, .. } if summary.contains("posted as Frame.io comment fc1")), "{outcome:?}");
    let posted = s.world.borrow().comments[0].clone();
    assert_eq!((posted.text.as_str(), posted.frame), ("From the DAM", Some(48)));
    assert_eq!(s.host.comments.borrow()[0].external_key.as_deref(), Some("frameio:fc1"));
    // Frame.io's webhook for our own comment: the sync finds it paired.
    let (_, echo) = s.deliver(v4_event("comment.created", "comment", "fc1"));
    s.run(&echo[0]);
    assert_eq!(s.dam_texts(), ["From the DAM"], "no second comment");
    // A replayed post finds it posted.
    let (outcome, _) = s.run(&jobs[0]);
    assert!(matches!(&outcome, Outcome::Done { summary, .. } if summary.contains("already posted")), "{outcome:?}");
    assert_eq!(s.world.borrow().comments.len(), 1);
}

#[test]
fn a_post_interrupted_after_frameio_took_it_adopts_that_comment() {
    let s = setup();
    let mine = s.host.put_comment(&s.document_id, "x", None, &crate::host::CommentBody { text: "Once".into(), ..Default::default() }).unwrap();
    s.host.comments.borrow_mut()[0].external_key = None;
    let event = DamEvent::CommentAdded(DamComment { document_id: s.document_id.clone(), comment_id: mine.id.clone(), parent_id: None, user: "alice".into(), text: "Once".into(), frame: None });
    let jobs = outgoing::notify(&s.host, event).unwrap();
    // The first try posted, then died before recording it.
    let started = s.host.now.get();
    crate::store::save(&s.host, &format!("posting/{}", mine.id), &started).unwrap();
    crate::frameio::Reviews::create_comment(&crate::flows::fake_frameio::FakeFrameio(s.world.clone()), "acc1", "a1", &crate::frameio::model::NewComment { text: "Once".into(), ..Default::default() }).unwrap();
    s.world.borrow_mut().comments[0].created_at = started;
    s.run(&jobs[0]);
    assert_eq!(s.world.borrow().comments.len(), 1, "adopted, not posted again");
    assert_eq!(s.host.comments.borrow()[0].external_key.as_deref(), Some("frameio:fc1"));
}

#[test]
fn status_changes_in_the_dam_reach_frameio_and_bad_events_are_refused() {
    let s = setup();
    let status = |status: &str| DamEvent::StatusChanged { document_id: s.document_id.clone(), user: "alice".into(), status: status.into() };
    let jobs = outgoing::notify(&s.host, status("needs-review")).unwrap();
    s.run(&jobs[0]);
    assert_eq!(s.world.borrow().statuses["a1"], ReviewStatus::NeedsReview);
    assert!(outgoing::notify(&s.host, status("rejected")).is_err());
    let empty = DamEvent::CommentAdded(DamComment { document_id: s.document_id.clone(), comment_id: "c9".into(), parent_id: None, user: "a".into(), text: " ".into(), frame: None });
    assert!(outgoing::notify(&s.host, empty).is_err());
    let elsewhere = DamEvent::StatusChanged { document_id: "doc-unlinked".into(), user: "a".into(), status: "approved".into() };
    assert!(outgoing::notify(&s.host, elsewhere).unwrap().is_empty(), "an unlinked document asks for nothing");
}

#[test]
fn the_reconcile_queues_a_sync_per_linked_file() {
    let s = setup();
    let (outcome, spawned) = s.run(&ReconcileJob::request());
    assert!(matches!(outcome, Outcome::Done { .. }), "{outcome:?}");
    assert_eq!(spawned.len(), 1);
    assert_eq!(spawned[0].kind, SyncJob::KIND);
    assert!(spawned[0].key.starts_with("sync:a1:reconcile-"));
    assert_eq!(jobs::schedule(&s.host)[0].job.kind, ReconcileJob::KIND);
}

#[test]
fn a_scheduled_reconcile_sweeps_after_a_start_a_mended_webhook_or_six_hours() {
    let s = setup();
    let syncs = |request: &JobRequest| s.run(request).1.iter().filter(|j| j.kind == SyncJob::KIND).count();
    let started = s.host.now();
    assert_eq!(syncs(&ReconcileJob::scheduled(started)), 1, "the first run after a start catches up");
    assert_eq!(syncs(&ReconcileJob::scheduled(started)), 0, "later runs of the same start only check the webhooks");
    s.world.borrow_mut().paused.push("wh1".into());
    assert_eq!(syncs(&ReconcileJob::scheduled(started)), 1, "a paused webhook missed deliveries");
    assert_eq!(syncs(&ReconcileJob::scheduled(started)), 0);
    s.host.now.set(s.host.now.get() + super::reconcile::SWEEP_EVERY_SECS);
    assert_eq!(syncs(&ReconcileJob::scheduled(started)), 1, "a sweep for what Frame.io never announces");
    assert_eq!(syncs(&ReconcileJob::scheduled(started)), 0);
    assert_eq!(syncs(&ReconcileJob::scheduled(started + 60)), 1, "a restarted host catches up again");
    assert_eq!(syncs(&ReconcileJob::request()), 1, "one queued by hand syncs everything");
}

#[test]
fn the_reconcile_queues_every_linked_file_past_one_listing_a_thousand_a_step() {
    let s = setup();
    for i in 0..2_500u32 {
        links::record(&s.host, &Link::new(&format!("{:08x}-0000-4000-8000-{i:012x}", i % 3), &s.document_id, &s.binding, None)).unwrap();
    }
    let ctx = context(&s.host, &s.world, Generation::V4);
    let mut job = Job { id: "j".into(), key: "reconcile@1".into(), kind: ReconcileJob::KIND.into(), payload: ReconcileJob::request().payload, attempt: 0 };
    let mut keys = std::collections::BTreeSet::new();
    loop {
        match jobs::run(&ctx, &job) {
            Outcome::Next { payload, enqueue, .. } => {
                assert!(enqueue.len() <= 1000, "a step queues {}", enqueue.len());
                keys.extend(enqueue.into_iter().map(|j| j.key));
                job.payload = payload;
            }
            Outcome::Done { summary, .. } => {
                assert!(summary.contains("2501"), "{summary}");
                break;
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(keys.len(), 2_501, "every linked file once");
}

#[test]
fn a_post_for_a_document_no_longer_linked_ends_quietly() {
    let host = FakeHost::new();
    let world = world();
    let ctx = context(&host, &world, Generation::V4);
    let job = PostJob { event: DamEvent::StatusChanged { document_id: "d".into(), user: "u".into(), status: "approved".into() } };
    assert!(matches!(job.step(&ctx), Ok(Step::Done { .. })));
}

#[test]
fn the_reconcile_turns_a_paused_webhook_back_on_and_remakes_a_lost_one() {
    let s = setup();
    s.world.borrow_mut().paused.push("wh1".into());
    s.run(&ReconcileJob::request());
    assert!(s.world.borrow().paused.is_empty(), "re-enabled");
    s.world.borrow_mut().webhooks.clear();
    s.run(&ReconcileJob::request());
    let world = s.world.borrow();
    assert_eq!(world.webhooks.len(), 1, "remade");
    let (_, url) = world.webhooks.values().next().unwrap();
    assert!(url.contains("/webhooks/s"), "under the same subscription URL: {url}");
}

#[test]
fn a_comment_deleted_in_the_dam_after_an_interrupted_post_is_taken_out_of_frameio() {
    let s = setup();
    let mine = s.host.put_comment(&s.document_id, "x", None, &crate::host::CommentBody { text: "Gone soon".into(), ..Default::default() }).unwrap();
    s.host.comments.borrow_mut()[0].external_key = None;
    let comment = DamComment { document_id: s.document_id.clone(), comment_id: mine.id.clone(), parent_id: None, user: "alice".into(), text: "Gone soon".into(), frame: None };
    outgoing::notify(&s.host, DamEvent::CommentAdded(comment.clone())).unwrap();
    // The post reached Frame.io, then the host died before recording it.
    let started = s.host.now.get();
    crate::store::save(&s.host, &format!("posting/{}", mine.id), &started).unwrap();
    crate::frameio::Reviews::create_comment(&crate::flows::fake_frameio::FakeFrameio(s.world.clone()), "acc1", "a1", &crate::frameio::model::NewComment { text: "Gone soon".into(), ..Default::default() }).unwrap();
    s.world.borrow_mut().comments[0].created_at = started;
    // The DAM user deletes it; the delete runs before the interrupted post is retried.
    s.host.comments.borrow_mut().clear();
    let deleted = outgoing::notify(&s.host, DamEvent::CommentDeleted(comment)).unwrap();
    let (outcome, _) = s.run(&deleted[0]);
    assert!(matches!(&outcome, Outcome::Done { summary, .. } if summary.contains("interrupted post")), "{outcome:?}");
    assert!(s.world.borrow().comments.is_empty(), "nothing left for a sync to bring back");
}

#[test]
fn a_dam_reply_posted_while_a_sync_reads_frameio_outlives_its_parent_deleted_there() {
    let Setup { host, world, document_id, .. } = setup();
    let host = Rc::new(host);
    // A reviewer's comment, synced into the DAM.
    let reviewer = Comment {
        id: "rev1".into(),
        file_id: "a1".into(),
        text: "Which take?".into(),
        author: User { id: "u7".into(), name: "Pat".into(), email: "pat@example.com".into() },
        created_at: 1_700_000_100,
        updated_at: 1_700_000_100,
        ..Comment::default()
    };
    world.borrow_mut().comments.push(reviewer);
    run_job(&*host, &world, &SyncJob::request("a1", "first"));
    let parent = host.list_comments(&document_id).unwrap().into_iter().find(|c| c.external_key.as_deref() == Some("frameio:rev1")).unwrap();
    // The reviewer deletes it in Frame.io, and its sync starts: it reads the DAM,
    // then Frame.io. Right after Frame.io answered, a DAM user replies to the
    // comment in the DAM, and the reply's post runs from start to end.
    world.borrow_mut().comments.clear();
    let reply_id = Rc::new(RefCell::new(String::new()));
    let racing = {
        let (host, world, document_id, reply_id) = (host.clone(), world.clone(), document_id.clone(), reply_id.clone());
        move || {
            let body = crate::host::CommentBody { text: "Take 2".into(), author: "dana".into(), ..Default::default() };
            let reply = host.put_comment(&document_id, "local", Some("frameio:rev1"), &body).unwrap();
            host.comments.borrow_mut().iter_mut().find(|c| c.id == reply.id).unwrap().external_key = None;
            let event = DamEvent::CommentAdded(DamComment {
                document_id: document_id.clone(),
                comment_id: reply.id.clone(),
                parent_id: Some(parent.id.clone()),
                user: "alice".into(),
                text: "Take 2".into(),
                frame: None,
            });
            let posts = outgoing::notify(&*host, event).unwrap();
            let (outcome, _) = run_job(&*host, &world, &posts[0]);
            assert!(matches!(&outcome, Outcome::Done { summary, .. } if summary.contains("posted as Frame.io comment fc1")), "{outcome:?}");
            *reply_id.borrow_mut() = reply.id;
        }
    };
    world.borrow_mut().after_listing_comments = Some(Box::new(racing));
    let (outcome, _) = run_job(&*host, &world, &SyncJob::request("a1", "deleted"));
    assert!(matches!(&outcome, Outcome::Done { .. }), "{outcome:?}");
    assert!(world.borrow().after_listing_comments.is_none(), "the post ran while the sync read Frame.io");
    // The parent is gone; the reply, in Frame.io as a comment of its own, stays in
    // the DAM as the DAM user's comment (not deleted with its parent, to come back
    // with the next sync as Frame.io's).
    let reply_id = reply_id.borrow().clone();
    let dam = host.list_comments(&document_id).unwrap();
    assert_eq!(dam.len(), 1, "{dam:?}");
    assert_eq!(dam[0].id, reply_id, "the DAM user's own reply: {dam:?}");
    assert_eq!((dam[0].external_key.as_deref(), dam[0].parent_id.as_deref()), (Some("frameio:fc1"), None));
    assert_eq!(world.borrow().comments.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(), ["fc1"]);
}
