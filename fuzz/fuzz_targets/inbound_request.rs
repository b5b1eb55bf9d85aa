//! `inbound::handle` on arbitrary raw requests (method, path, query, headers, body,
//! clock), a few in a row, against the in-memory fake host with one binding made
//! through the real `bindings::bind` (its action `act1` signs with `whsec`) and a
//! click on asset `a1` already answered as interaction `i1`. A flag makes the target
//! sign the body itself, so inputs get past the HMAC into the JSON parsing and the
//! custom-action conversation (clicks and form submissions).
//!
//! Checks, for every request: no panic; the status is one of the documented ones
//! (200, 400, 401, 404, 405, 413, 503); error replies are `{"error": reason}`; a
//! request whose signature an independent model refuses changes nothing in storage
//! and makes no outbound call; a request to the binding's route is refused with 401
//! exactly when that model refuses its signature; jobs are asked for only by a
//! verified 200 and keyed `push:<interaction_id>`; nothing is ever imported.

#![no_main]

use std::collections::BTreeMap;
use std::sync::LazyLock;

use arbitrary::Arbitrary;
use frameio_connector::flows::Context;
use frameio_connector::flows::bindings::{self, BindRequest, Binding};
use frameio_connector::fake_host::{FakeHost, configure, connect, serve_frameio};
use frameio_connector::host::{Entry, Header};
use frameio_connector::inbound::{self, MAX_BODY_BYTES, Request};
use frameio_connector_fuzz::{SIGNATURE_HEADER, TIMESTAMP_HEADER, expected_verdict, sign};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value, json};

const STATUSES: [u16; 7] = [200, 400, 401, 404, 405, 413, 503];
const SECRET: &str = "whsec";

#[derive(Arbitrary, Debug)]
enum Method {
    Post,
    Get,
    Raw(String),
}

#[derive(Arbitrary, Debug)]
enum Path {
    /// `/actions/<the binding>`.
    Binding,
    /// The binding's route with something appended.
    BindingThen(String),
    /// A well-formed binding id that does not exist.
    Unknown([u8; 12]),
    Raw(String),
}

#[derive(Arbitrary, Debug)]
enum Id {
    Known(u8),
    Raw(String),
}

impl Id {
    fn render(&self, known: &[&str]) -> String {
        match self {
            Id::Known(i) => known[usize::from(*i) % known.len()].to_string(),
            Id::Raw(s) => s.clone(),
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Notify {
    Yes,
    No,
    True,
    False,
    Missing,
    Raw(String),
}

#[derive(Arbitrary, Debug)]
struct Form {
    title: Option<String>,
    notify: Notify,
    extra: Vec<(String, String)>,
}

/// A custom-action delivery built from parts, most of them plausible.
#[derive(Arbitrary, Debug)]
struct Event {
    action_id: Id,
    interaction_id: Id,
    resource: Option<(Id, Id)>,
    user: Option<Id>,
    data: Option<Form>,
    /// Also send the fields as another JSON type than a string.
    wrong_type: Option<u8>,
}

impl Event {
    fn to_json(&self) -> Vec<u8> {
        let mut event = Map::new();
        event.insert("action_id".into(), self.action_id.render(&["act1", "act1", "act2", ""]).into());
        event.insert("interaction_id".into(), self.interaction_id.render(&["i1", "i1", "i2", "../x"]).into());
        if let Some((id, kind)) = &self.resource {
            let id = id.render(&["a1", "a1", "fold", "up", "v2", "vs", "nope"]);
            let kind = kind.render(&["asset", "file", "folder"]);
            event.insert("resource".into(), json!({ "id": id, "type": kind }));
        }
        if let Some(user) = &self.user {
            event.insert("user".into(), json!({ "id": user.render(&["u7", "u9"]) }));
        }
        if let Some(form) = &self.data {
            let mut data = Map::new();
            if let Some(title) = &form.title {
                data.insert("title".into(), title.clone().into());
            }
            match &form.notify {
                Notify::Yes => drop(data.insert("notify".into(), "yes".into())),
                Notify::No => drop(data.insert("notify".into(), "no".into())),
                Notify::True => drop(data.insert("notify".into(), true.into())),
                Notify::False => drop(data.insert("notify".into(), false.into())),
                Notify::Missing => {}
                Notify::Raw(s) => drop(data.insert("notify".into(), s.clone().into())),
            }
            for (k, v) in &form.extra {
                data.insert(k.clone(), v.clone().into());
            }
            event.insert("data".into(), data.into());
        }
        if let Some(which) = self.wrong_type {
            let keys: Vec<String> = event.keys().cloned().collect();
            let key = &keys[usize::from(which) % keys.len()];
            event.insert(key.clone(), json!([1, null, {"id": 2}]));
        }
        serde_json::to_vec(&Value::Object(event)).unwrap()
    }
}

#[derive(Arbitrary, Debug)]
enum Body {
    Raw(Vec<u8>),
    Event(Event),
}

#[derive(Arbitrary, Debug)]
enum Signing {
    /// The fuzzer's own headers only.
    Unsigned,
    /// A correct timestamp and signature header first (`skew` seconds off the
    /// request's clock), then the fuzzer's headers.
    Signed { skew: i16 },
    /// The same under another secret.
    SignedWith { secret: String, skew: i16 },
}

#[derive(Arbitrary, Debug)]
enum Name {
    Timestamp,
    Signature,
    Other(String),
}

#[derive(Arbitrary, Debug)]
enum Received {
    /// The host's clock moved by this many seconds.
    Near(i16),
    Any(u64),
}

#[derive(Arbitrary, Debug)]
struct RawRequest {
    method: Method,
    path: Path,
    query: String,
    received: Received,
    signing: Signing,
    headers: Vec<(Name, String)>,
    body: Body,
    /// 0xA5 pads the body with spaces to just over the size limit (rarely: an
    /// oversized body costs a thousand small ones).
    oversize: u8,
}

#[derive(Arbitrary, Debug)]
struct Input {
    /// The host's clock after binding, in seconds (past 3540 the user's token is
    /// refreshed before Frame.io is called).
    host_clock: u16,
    unbind_first: bool,
    requests: Vec<RawRequest>,
}

/// A host with one binding (bound, or unbound afterwards) and a click on asset `a1`
/// recorded as interaction `i1`, so a single form submission can reach the import.
fn prepare(unbind: bool) -> (FakeHost, Binding) {
    let host = FakeHost::new();
    configure(&host);
    connect(&host, "alice", host.now.get() + 3600);
    serve_frameio(&host);
    let req = BindRequest {
        user: "alice".into(),
        folder_id: "f1".into(),
        account_id: String::new(),
        project_id: "p1".into(),
        action_name: "Push".into(),
    };
    let binding = bindings::bind(&Context::load(&host).unwrap(), &req).expect("binding against the fake host");
    assert_eq!(binding.secrets, vec![SECRET.to_string()]);
    let click = br#"{"action_id":"act1","interaction_id":"i1","resource":{"id":"a1","type":"asset"},"user":{"id":"u7"}}"#;
    let now = host.now.get();
    let headers = vec![(TIMESTAMP_HEADER.into(), now.to_string()), (SIGNATURE_HEADER.into(), sign(SECRET, &now.to_string(), click))];
    let req = Request { method: "POST".into(), path: format!("/actions/{}", binding.id), query: String::new(), headers, body: click.to_vec(), received_at: now };
    let reply = inbound::handle(&host, &req);
    assert_eq!(reply.status, 200);
    assert!(host.kv.borrow().contains_key("interaction/i1"), "the click is recorded");
    if unbind {
        bindings::unbind(&Context::load(&host).unwrap(), &binding.id).expect("unbinding against the fake host");
    }
    (host, binding)
}

thread_local! {
    /// The prepared storage, bound and unbound: binding through the fake Frame.io
    /// each run would cost more than the requests themselves.
    static PREPARED: [(BTreeMap<String, Entry>, Binding); 2] = [false, true].map(|unbind| {
        let (host, binding) = prepare(unbind);
        (host.kv.take(), binding)
    });
}

fn setup(unbind: bool) -> (FakeHost, Binding) {
    let host = FakeHost::new();
    serve_frameio(&host);
    let binding = PREPARED.with(|prepared| {
        let (kv, binding) = &prepared[usize::from(unbind)];
        *host.kv.borrow_mut() = kv.clone();
        binding.clone()
    });
    (host, binding)
}

fn build(raw: &RawRequest, binding: &Binding, host_now: u64) -> Request {
    let method = match &raw.method {
        Method::Post => "POST".to_string(),
        Method::Get => "GET".to_string(),
        Method::Raw(s) => s.clone(),
    };
    let path = match &raw.path {
        Path::Binding => format!("/actions/{}", binding.id),
        Path::BindingThen(s) => format!("/actions/{}{s}", binding.id),
        Path::Unknown(id) => format!("/actions/b{}", hex::encode(id)),
        Path::Raw(s) => s.clone(),
    };
    let mut body = match &raw.body {
        Body::Raw(b) => b.clone(),
        Body::Event(e) => e.to_json(),
    };
    if raw.oversize == 0xA5 {
        body.resize(body.len().max(MAX_BODY_BYTES + 1), b' ');
    }
    let received_at = match raw.received {
        Received::Near(d) => (i128::from(host_now) + i128::from(d)) as u64,
        Received::Any(t) => t,
    };
    let mut headers: Vec<Header> = Vec::new();
    let mut signed = |secret: &str, skew: i16| {
        let ts = (i128::from(received_at) + i128::from(skew)).max(0).to_string();
        headers.push((TIMESTAMP_HEADER.into(), ts.clone()));
        headers.push((SIGNATURE_HEADER.into(), sign(secret, &ts, &body)));
    };
    match &raw.signing {
        Signing::Unsigned => {}
        Signing::Signed { skew } => signed(SECRET, *skew),
        Signing::SignedWith { secret, skew } => signed(secret, *skew),
    }
    for (name, value) in &raw.headers {
        let name = match name {
            Name::Timestamp => "X-Frameio-Request-Timestamp".to_string(),
            Name::Signature => "X-Frameio-Signature".to_string(),
            Name::Other(s) => s.clone(),
        };
        headers.push((name, value.clone()));
    }
    Request { method, path, query: raw.query.clone(), headers, body, received_at }
}

/// Everything a request could change in the host, bar the clock.
fn snapshot(host: &FakeHost) -> (BTreeMap<String, (Vec<u8>, u64)>, usize) {
    let kv = host.kv.borrow().iter().map(|(k, e)| (k.clone(), (e.value.clone(), e.revision))).collect();
    (kv, host.requests.borrow().len())
}

/// `FUZZ_TRACE=1`: one line per request on stderr (status, verdict, jobs, the reply's
/// title or error), to see what a corpus reaches:
/// `FUZZ_TRACE=1 cargo fuzz run inbound_request -- -runs=0 2>&1 | grep ^trace: | sort | uniq -c`.
static TRACE: LazyLock<bool> = LazyLock::new(|| std::env::var_os("FUZZ_TRACE").is_some());

fuzz_target!(|input: Input| {
    let (host, binding) = setup(input.unbind_first);
    host.now.set(host.now.get() + u64::from(input.host_clock));
    let secrets: Vec<&str> = binding.secrets.iter().map(String::as_str).collect();

    for raw in input.requests.iter().take(4) {
        let req = build(raw, &binding, host.now.get());
        let before = snapshot(&host);
        let reply = inbound::handle(&host, &req);
        let after = snapshot(&host);

        assert!(STATUSES.contains(&reply.status), "undocumented status {}", reply.status);
        let body: Value = serde_json::from_slice(&reply.body).expect("replies are JSON");
        if reply.status != 200 {
            assert!(body["error"].is_string(), "error reply without a reason: {body}");
        }
        assert!(host.documents.borrow().is_empty() && host.versions.borrow().is_empty(), "inbound imported something");
        assert!(host.sent.borrow().is_empty() && host.transfers.borrow().is_empty(), "inbound notified or downloaded");

        let verified = expected_verdict(&req.headers, &req.body, &secrets, req.received_at).is_ok();
        if *TRACE {
            let title = body.get("title").or(body.get("error")).cloned().unwrap_or_default();
            eprintln!("trace: status={} verified={verified} jobs={} {title}", reply.status, reply.enqueue.len());
        }
        if !verified {
            assert!(before == after, "an unverified request changed storage or called out: {req:?} -> {}", reply.status);
            assert!(reply.enqueue.is_empty(), "an unverified request queued a job");
        }
        let to_binding = req.path.trim_start_matches('/') == format!("actions/{}", binding.id) && req.method == "POST";
        if req.body.len() > MAX_BODY_BYTES {
            assert_eq!(reply.status, 413);
        } else if to_binding {
            assert_eq!(reply.status == 401, !verified, "signature verdict and status disagree: {}", reply.status);
            if verified {
                assert!(matches!(reply.status, 200 | 400 | 503), "verified delivery answered {}", reply.status);
            }
        } else {
            assert!(matches!(reply.status, 404 | 405), "request off the binding's route answered {}", reply.status);
        }
        if !reply.enqueue.is_empty() {
            assert_eq!(reply.status, 200);
            assert!(!input.unbind_first, "an unbound binding queued a job");
            let event: Value = serde_json::from_slice(&req.body).unwrap();
            let key = format!("push:{}", event["interaction_id"].as_str().unwrap());
            assert!(reply.enqueue.len() == 1 && reply.enqueue[0].key == key, "job keys {:?}", reply.enqueue);
        }
    }
});
