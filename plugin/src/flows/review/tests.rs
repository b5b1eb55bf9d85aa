//! Send for review against a Frame.io faked at the traits and an in-memory host.

use std::cell::RefCell;
use std::rc::Rc;

use super::{Destination, ReviewRequest, send};
use crate::fake_host::FakeHost;
use crate::flows::bindings::{self, BindRequest, Binding};
use crate::flows::fake_frameio::{World, context, world};
use crate::flows::sync::links;
use crate::flows::JobRequest;
use crate::frameio::model::Generation;
use crate::host::{Blob, Folder, Host, Recipient, Rendition, RenditionKind, TransferStatus};
use crate::jobs::{self, Job, Outcome};

struct Setup {
    host: FakeHost,
    world: Rc<RefCell<World>>,
    generation: Generation,
    binding: Binding,
}

fn setup_for(generation: Generation) -> Setup {
    let host = FakeHost::new();
    host.folders.borrow_mut().push(Folder { id: "f2".into(), path: "/Harbor/Ep01".into(), title: "Ep01".into() });
    let world = world();
    let binding = {
        let ctx = context(&host, &world, generation);
        let req = BindRequest { user: "alice".into(), folder_id: "f1".into(), account_id: "acc1".into(), project_id: "p1".into(), action_name: "Push".into() };
        bindings::bind(&ctx, &req).unwrap()
    };
    Setup { host, world, generation, binding }
}

impl Setup {
    /// A document in `folder` with `versions` versions, each with a master and a proxy.
    fn document(&self, folder: &str, title: &str, versions: u32) -> String {
        let doc = self.host.ensure_document(folder, &format!("dam:{title}"), title).unwrap();
        for n in 1..=versions {
            self.host.add_version(&doc.id, &format!("v{n}"), "blob", &[]).unwrap();
        }
        let rendition = |kind, blob: &str, size| Rendition { kind, blob_id: blob.into(), size, media_type: "video/mp4".into(), file_name: title.into() };
        self.host.renditions.borrow_mut().insert(doc.id.clone(), vec![rendition(RenditionKind::Master, "b-master", 1000), rendition(RenditionKind::Proxy, "b-proxy", 100)]);
        doc.id
    }

    fn request(&self, document_id: &str, destination: Destination) -> ReviewRequest {
        ReviewRequest {
            user: "alice".into(),
            document_id: document_id.into(),
            version: 0,
            destination,
            reviewers: vec!["rita@client.example".into(), "sam@client.example".into()],
            description: "Cut 3 for sign-off".into(),
            expires_at: Some(self.host.now.get() + 86_400),
            password: Some("s3cret-link".into()),
            rendition: RenditionKind::Master,
            allow_download: false,
            watermark: self.generation == Generation::V4,
        }
    }

    /// Runs a job to its end; uploads complete and Frame.io confirms them as the job
    /// waits for them.
    fn run(&self, request: &JobRequest) -> Outcome {
        let ctx = context(&self.host, &self.world, self.generation);
        let mut job = Job { id: "j".into(), key: request.key.clone(), kind: request.kind.clone(), payload: request.payload.clone(), attempt: 0 };
        for _ in 0..20 {
            match jobs::run(&ctx, &job) {
                Outcome::Next { payload, .. } => job.payload = payload,
                other => return other,
            }
            let keys: Vec<String> = self.host.uploads.borrow().keys().cloned().collect();
            for key in keys {
                self.host.transfers.borrow_mut().insert(key, TransferStatus::Complete(Blob { id: "b-master".into(), size: 1000, xxhash64: "00".into() }));
            }
            for done in self.world.borrow_mut().uploads.values_mut() {
                *done = true;
            }
        }
        panic!("the job did not end")
    }

    fn calls(&self, prefix: &str) -> usize {
        self.world.borrow().calls.iter().filter(|c| c.starts_with(prefix)).count()
    }
}

#[test]
fn a_bad_request_is_refused_with_the_reason_and_nothing_is_made() {
    let s = setup_for(Generation::V2);
    let doc = s.document("f1", "cut.mp4", 1);
    let ctx = context(&s.host, &s.world, Generation::V2);
    let base = s.request(&doc, Destination::Binding(s.binding.id.clone()));
    let cases: Vec<(ReviewRequest, &str)> = vec![
        (ReviewRequest { document_id: "doc-none".into(), ..base.clone() }, "not found"),
        (ReviewRequest { version: 4, ..base.clone() }, "no version 4"),
        (ReviewRequest { expires_at: Some(1), ..base.clone() }, "in the past"),
        (ReviewRequest { reviewers: vec!["not an email".into()], ..base.clone() }, "not an email"),
        (ReviewRequest { reviewers: vec!["a@b.example".into(); 51], ..base.clone() }, "at most 50"),
        (ReviewRequest { password: Some("abc".into()), ..base.clone() }, "4 to 128"),
        (ReviewRequest { watermark: true, ..base.clone() }, "watermark settings"),
        (ReviewRequest { destination: Destination::Binding("b000000000000000000000000".into()), ..base.clone() }, "binding"),
    ];
    let before = s.world.borrow().calls.len();
    for (request, words) in cases {
        let err = send(&ctx, request).unwrap_err().to_string();
        assert!(err.contains(words), "{words}: {err}");
    }
    assert_eq!(s.world.borrow().calls.len(), before, "nothing asked of Frame.io");
    s.host.renditions.borrow_mut().get_mut(&doc).unwrap().retain(|r| r.kind == RenditionKind::Master);
    let err = send(&ctx, ReviewRequest { rendition: RenditionKind::Proxy, ..base }).unwrap_err().to_string();
    assert!(err.contains("no proxy rendition"), "{err}");
}

#[test]
fn a_send_uploads_the_rendition_links_it_and_tells_each_reviewer_once() {
    for generation in [Generation::V2, Generation::V4] {
        let s = setup_for(generation);
        let doc = s.document("f1", "cut.mp4", 1);
        let ctx = context(&s.host, &s.world, generation);
        let job = send(&ctx, s.request(&doc, Destination::Binding(s.binding.id.clone()))).unwrap();
        let outcome = s.run(&job);
        assert!(matches!(&outcome, Outcome::Done { summary, .. } if summary.contains("https://f.io/r1")), "{outcome:?}");
        let uploads = s.host.uploads.borrow();
        let upload = uploads.values().next().unwrap();
        assert_eq!((upload.blob_id.as_str(), upload.parts.iter().map(|p| p.size).sum::<u64>()), ("b-master", 1000));
        assert!(upload.headers.contains(&("content-type".into(), "video/mp4".into())));
        assert!(upload.headers.contains(&("x-amz-acl".into(), "private".into())));
        let share = s.world.borrow().shares[0].clone();
        assert_eq!((share.password.as_deref(), share.allow_download, share.watermark), (Some("s3cret-link"), false, generation == Generation::V4));
        assert_eq!(share.asset_ids, ["up-1"]);
        let sent = s.host.sent.borrow();
        assert_eq!(sent.iter().filter(|m| matches!(&m.to, Recipient::Email(e) if e.ends_with("@client.example"))).count(), 2);
        assert_eq!(s.host.properties.borrow()[&doc]["frameio.review-link"], "https://f.io/r1");
        assert_eq!(links::of_file(&s.host, "up-1").unwrap().unwrap().document_id, doc, "linked for the review sync");
    }
}

#[test]
fn the_same_send_again_makes_no_second_upload_link_or_email() {
    let s = setup_for(Generation::V4);
    let doc = s.document("f1", "cut.mp4", 1);
    let ctx = context(&s.host, &s.world, Generation::V4);
    let first = send(&ctx, s.request(&doc, Destination::Binding(s.binding.id.clone()))).unwrap();
    let again = send(&ctx, s.request(&doc, Destination::Binding(s.binding.id.clone()))).unwrap();
    assert_eq!(first.key, again.key, "the host queues one job for both");
    s.run(&first);
    let emails = s.host.sent.borrow().len();
    // Even a job run twice (a replayed step, or a second host) changes nothing more.
    s.run(&again);
    assert_eq!((s.calls("create_upload"), s.calls("create_share")), (1, 1));
    assert_eq!(s.host.sent.borrow().len(), emails);
}

#[test]
fn a_newer_version_goes_on_the_earlier_uploads_stack() {
    let s = setup_for(Generation::V2);
    let doc = s.document("f1", "cut.mp4", 1);
    let ctx = context(&s.host, &s.world, Generation::V2);
    s.run(&send(&ctx, s.request(&doc, Destination::Binding(s.binding.id.clone()))).unwrap());
    s.host.add_version(&doc, "v2", "blob", &[]).unwrap();
    s.run(&send(&ctx, s.request(&doc, Destination::Binding(s.binding.id.clone()))).unwrap());
    assert_eq!(s.world.borrow().stacked["stack-1"], ["up-1", "up-2"]);
    assert_eq!(s.world.borrow().shares[1].asset_ids, ["stack-1"], "the link follows the newest version");
}

#[test]
fn the_automatic_structure_makes_a_show_project_once_and_a_folder_per_episode() {
    let s = setup_for(Generation::V4);
    let ctx = context(&s.host, &s.world, Generation::V4);
    s.host.folders.borrow_mut().push(Folder { id: "f3".into(), path: "/Harbor/Ep02".into(), title: "Ep02".into() });
    let one = s.document("f2", "ep01.mov", 1);
    let two = s.document("f3", "ep02.mov", 1);
    for doc in [&one, &two] {
        let outcome = s.run(&send(&ctx, s.request(doc, Destination::Structure(s.binding.id.clone()))).unwrap());
        assert!(matches!(outcome, Outcome::Done { .. }), "{outcome:?}");
    }
    assert_eq!(s.calls("create_project Harbor"), 1, "one project for the show");
    let folders: Vec<String> = s.world.borrow().folders.iter().map(|f| f.name.clone()).collect();
    assert_eq!(folders, ["Ep01", "Ep02"]);
    let outside = s.document("f1", "promo.mov", 1);
    let outcome = s.run(&send(&ctx, s.request(&outside, Destination::Structure(s.binding.id.clone()))).unwrap());
    assert!(matches!(&outcome, Outcome::Failed(why) if why.contains("does not fit the review structure")), "{outcome:?}");
}

#[test]
fn expired_part_urls_start_the_upload_over_with_a_fresh_file() {
    let s = setup_for(Generation::V4);
    let doc = s.document("f1", "cut.mp4", 1);
    let ctx = context(&s.host, &s.world, Generation::V4);
    let request = send(&ctx, s.request(&doc, Destination::Binding(s.binding.id.clone()))).unwrap();
    let mut job = Job { id: "j".into(), key: request.key.clone(), kind: request.kind.clone(), payload: request.payload.clone(), attempt: 0 };
    // The first upload's URLs have expired by the time its parts go.
    *s.host.next_transfer.borrow_mut() = TransferStatus::Failed(crate::host::TransferError::HttpStatus(403));
    for _ in 0..2 {
        if let Outcome::Next { payload, .. } = jobs::run(&ctx, &job) {
            job.payload = payload;
        }
    }
    assert_eq!(s.calls("delete_file up-1"), 1, "the abandoned file is deleted");
    *s.host.next_transfer.borrow_mut() = TransferStatus::Running { done: 0, total: 1000 };
    let outcome = s.run(&JobRequest { key: job.key.clone(), kind: job.kind.clone(), payload: job.payload.clone() });
    assert!(matches!(outcome, Outcome::Done { .. }), "{outcome:?}");
    assert_eq!(s.world.borrow().shares[0].asset_ids, ["up-2"], "the fresh upload is shared");
}
