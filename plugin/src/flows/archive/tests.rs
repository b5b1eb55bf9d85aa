//! The archive against a Frame.io faked at the traits and an in-memory host: the
//! tree mirrored, a stack as one document with its versions in order, comments,
//! assets without an original reported, replays and second starts that make
//! nothing twice, the queue per connection, and the marker rule.

use std::cell::RefCell;
use std::rc::Rc;

use super::{ArchiveRequest, ArchiveState, list, start};
use crate::fake_host::FakeHost;
use crate::flows::fake_frameio::{World, context, file, world};
use crate::flows::{JobRequest, fake_frameio};
use crate::frameio::model::{Comment, File, Generation, ItemKind, Original, User};
use crate::host::{Blob, Host, TransferStatus};
use crate::jobs::{self, Job, Outcome};

struct Setup {
    host: FakeHost,
    world: Rc<RefCell<World>>,
}

/// The fake world plus a subfolder `fold` holding `deep`, and two comments on `v1`.
fn setup() -> Setup {
    let host = FakeHost::new();
    *host.next_transfer.borrow_mut() = TransferStatus::Complete(Blob { id: "blob1".into(), size: 10, xxhash64: "00112233445566aa".into() });
    let world = world();
    {
        let mut w = world.borrow_mut();
        w.files.remove("other");
        w.files.insert("deep".into(), file("deep", "fold"));
        for (id, parent) in [("c1", None), ("c2", Some("c1"))] {
            w.comments.push(Comment {
                id: id.into(),
                file_id: "v1".into(),
                parent_id: parent.map(str::to_string),
                text: format!("note {id}"),
                author: User { id: "u7".into(), name: "Pat".into(), email: "pat@example.com".into() },
                ..Comment::default()
            });
        }
    }
    Setup { host, world }
}

fn request(folder: &str) -> ArchiveRequest {
    ArchiveRequest { user: "alice".into(), account_id: "acc1".into(), project_id: "p1".into(), folder_id: folder.into() }
}

impl Setup {
    /// Runs `first` and every job it queues to their ends, one step at a time in
    /// turn, as a host's worker would; with `replay`, every step runs twice, as a
    /// host that crashed after each would run it. Returns how each job ended.
    fn drive(&self, first: JobRequest, generation: Generation, replay: bool) -> Vec<(String, Outcome)> {
        let ctx = context(&self.host, &self.world, generation);
        let job_of = |r: JobRequest| Job { id: "j".into(), key: r.key, kind: r.kind, payload: r.payload, attempt: 0 };
        let mut queue = std::collections::VecDeque::from([job_of(first)]);
        let mut ended = Vec::new();
        for _ in 0..10_000 {
            let Some(mut job) = queue.pop_front() else { return ended };
            if replay {
                let _ = jobs::run(&ctx, &job);
            }
            match jobs::run(&ctx, &job) {
                Outcome::Next { payload, enqueue, .. } => {
                    queue.extend(enqueue.into_iter().map(job_of));
                    job.payload = payload;
                    queue.push_back(job);
                }
                Outcome::Done { summary, enqueue } => {
                    queue.extend(enqueue.clone().into_iter().map(job_of));
                    ended.push((job.key.clone(), Outcome::Done { summary, enqueue }));
                }
                other => ended.push((job.key.clone(), other)),
            }
        }
        panic!("the jobs did not end");
    }

    fn run_all(&self, first: JobRequest) -> Vec<(String, Outcome)> {
        self.drive(first, Generation::V4, false)
    }

    fn document(&self, key: &str) -> crate::host::Document {
        let docs = self.host.documents.borrow();
        docs.iter().find(|d| d.external_key == key).cloned().unwrap_or_else(|| panic!("no document {key}"))
    }

    fn version_keys(&self, document_id: &str) -> Vec<String> {
        let versions = self.host.versions.borrow();
        let mut mine: Vec<_> = versions.iter().filter(|(_, v)| v.document_id == document_id).collect();
        mine.sort_by_key(|(_, v)| v.number);
        mine.into_iter().map(|(k, _)| k.clone()).collect()
    }
}

#[test]
fn a_project_becomes_folders_documents_versions_and_comments_with_a_report() {
    let s = setup();
    let ctx = context(&s.host, &s.world, Generation::V4);
    let (job, progress) = start(&ctx, &request("f1")).unwrap();
    assert_eq!(progress.record.state, ArchiveState::Queued);
    let ended = s.run_all(job);
    assert!(ended.iter().all(|(_, o)| matches!(o, Outcome::Done { .. })), "{ended:?}");

    let folders = s.host.folders.borrow().clone();
    let fold = folders.iter().find(|f| f.path == "/Marketing/fold.mov").expect("the subfolder is mirrored");
    assert_eq!(s.document("frameio:deep").folder_id, fold.id);
    assert_eq!(s.document("frameio:a1").folder_id, "f1");
    let stack = s.document("frameio:vs");
    assert_eq!(stack.title, "clip");
    assert_eq!(s.version_keys(&stack.id), vec!["frameio:v1", "frameio:v2"], "oldest first");
    let comments = s.host.list_comments(&stack.id).unwrap();
    assert_eq!(comments.len(), 2);
    assert!(comments.iter().any(|c| c.parent_id.is_some()), "the reply stays a reply");

    let report = s.host.folder_properties.borrow().get("f1").cloned().unwrap();
    assert_eq!(report["frameio.project"], "Spring");
    assert_eq!(report["frameio.archive.folders"], "1");
    assert_eq!(report["frameio.archive.documents"], "3");
    assert_eq!(report["frameio.archive.versions"], "4");
    assert_eq!(report["frameio.archive.comments"], "2");
    assert_eq!(report["frameio.archive.skipped"], "1");
    assert!(report["frameio.archive.skipped-assets"].contains("up.mov: "), "{report:?}");
    let sent = s.host.sent.borrow();
    assert!(sent.iter().any(|m| m.subject.contains("is archived") && m.body.contains("up.mov")), "{sent:?}");
    let progress = &list(&ctx, 10).unwrap()[0];
    assert_eq!(progress.record.state, ArchiveState::Done);
    assert_eq!((progress.totals.documents, progress.totals.versions, progress.totals.skipped), (3, 4, 1));
}

#[test]
fn replayed_steps_and_a_second_start_make_nothing_twice() {
    let s = setup();
    let ctx = context(&s.host, &s.world, Generation::V2);
    let (job, first) = start(&ctx, &request("f1")).unwrap();
    let (again, joined) = start(&ctx, &request("f1")).unwrap();
    assert_eq!((again.key.clone(), joined.record.key.clone()), (job.key.clone(), first.record.key.clone()), "a second start joins");
    let ended = s.drive(job, Generation::V2, true);
    assert!(ended.iter().all(|(_, o)| matches!(o, Outcome::Done { .. })), "{ended:?}");
    assert_eq!(s.host.documents.borrow().len(), 3);
    assert_eq!(s.host.versions.borrow().len(), 4);
    assert_eq!(s.host.folders.borrow().len(), 2);
    assert_eq!(s.host.list_comments(&s.document("frameio:vs").id).unwrap().len(), 2);
    let report = s.host.folder_properties.borrow().get("f1").cloned().unwrap();
    assert_eq!(report["frameio.archive.documents"], "3");
}

#[test]
fn archives_of_one_connection_wait_in_order() {
    let s = setup();
    s.host.folders.borrow_mut().push(crate::host::Folder { id: "f2".into(), path: "/Other".into(), title: "Other".into() });
    let ctx = context(&s.host, &s.world, Generation::V4);
    let (first, _) = start(&ctx, &request("f1")).unwrap();
    s.host.now.set(s.host.now.get() + 1);
    let (second, _) = start(&ctx, &request("f2")).unwrap();
    let job = Job { id: "j".into(), key: second.key.clone(), kind: second.kind.clone(), payload: second.payload.clone(), attempt: 0 };
    match jobs::run(&ctx, &job) {
        Outcome::Next { status, .. } => assert_eq!(status, "queued behind 1 other archive"),
        other => panic!("{other:?}"),
    }
    let listed = list(&ctx, 10).unwrap();
    assert_eq!(listed.iter().map(|p| p.ahead).collect::<Vec<_>>(), vec![1, 0], "newest first");
    s.run_all(first);
    assert!(s.run_all(second).iter().all(|(_, o)| matches!(o, Outcome::Done { .. })));
}

#[test]
fn bad_requests_are_refused_and_record_nothing() {
    let s = setup();
    let ctx = context(&s.host, &s.world, Generation::V4);
    let refused = [
        ArchiveRequest { folder_id: "nope".into(), ..request("f1") },
        ArchiveRequest { project_id: "../x".into(), ..request("f1") },
        ArchiveRequest { project_id: "p404".into(), ..request("f1") },
        ArchiveRequest { user: "bob".into(), ..request("f1") },
    ];
    for req in refused {
        assert!(start(&ctx, &req).is_err(), "{req:?}");
    }
    assert!(s.host.storage_list("archive").unwrap().is_empty());
}

#[test]
fn a_version_without_an_original_is_reported_and_the_rest_of_the_stack_kept() {
    let s = setup();
    s.world.borrow_mut().files.insert("v1".into(), File { original: Original::Forbidden, version_stack_id: Some("vs".into()), ..file("v1", "vs") });
    let ctx = context(&s.host, &s.world, Generation::V4);
    s.run_all(start(&ctx, &request("f1")).unwrap().0);
    assert_eq!(s.version_keys(&s.document("frameio:vs").id), vec!["frameio:v2"]);
    let report = s.host.folder_properties.borrow().get("f1").cloned().unwrap();
    assert!(report["frameio.archive.skipped-assets"].contains("v1.mov: You may not download"), "{report:?}");
}

#[test]
fn the_marker_rule_archives_a_renamed_project_once() {
    let s = setup();
    let mut settings = fake_frameio::settings_for(Generation::V4);
    settings.archive_marker = "[archive]".into();
    settings.archive_folder = "f1".into();
    crate::store::save(&s.host, crate::store::SETTINGS, &settings).unwrap();
    let rule = |s: &Setup| super::RuleJob::request_if_enabled(&s.host, "alice", "acc1", "p1", s.host.now()).unwrap().expect("the rule is on");
    let ctx = crate::flows::Context::with_connect(&s.host, settings.clone(), {
        let world = s.world.clone();
        Box::new(move |_, _| Ok(Box::new(fake_frameio::FakeFrameio(world.clone())) as Box<dyn crate::frameio::FrameioApi>))
    });
    let run = |request: JobRequest| {
        let job = Job { id: "j".into(), key: request.key, kind: request.kind, payload: request.payload, attempt: 0 };
        jobs::run(&ctx, &job)
    };
    match run(rule(&s)) {
        Outcome::Done { enqueue, .. } => assert!(enqueue.is_empty(), "no marker in the name yet"),
        other => panic!("{other:?}"),
    }
    s.world.borrow_mut().projects[0].name = "Spring [archive]".into();
    match run(rule(&s)) {
        Outcome::Done { enqueue, .. } => assert_eq!(enqueue.len(), 1),
        other => panic!("{other:?}"),
    }
    match run(rule(&s)) {
        Outcome::Done { enqueue, summary } => assert!(enqueue.is_empty(), "{summary}"),
        other => panic!("{other:?}"),
    }
    assert!(s.world.borrow().files.values().any(|f| f.kind == ItemKind::VersionStack));
}
