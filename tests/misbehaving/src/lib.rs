//! A deliberately misbehaving connector, for the host's sandbox tests
//! (`tests/sandbox.rs`). It implements the world `connector` so the real host loads
//! it unchanged, and misbehaves on demand:
//!
//! - `inbound.handle` acts on the path's last segment: `ok` answers 200, `loop`
//!   spins forever, `grow` allocates until the memory cap stops it, `recurse`
//!   overflows the stack, `panic` panics; `job-<mode>` answers 202 and asks the host
//!   to queue a job of kind `<mode>` keyed by the query string.
//! - `jobs.run` acts on the job's kind the same way (`ok` finishes the job); before
//!   acting it records the attempt in storage (`attempt/<key>/<n>`), so tests can
//!   count the tries of a step that never returns.
//! - `provider.describe` returns a minimal descriptor; every other export returns
//!   an error.
//!
//! It only builds for `wasm32-wasip2`; natively it is an empty library.

#![cfg(target_arch = "wasm32")]

mod wit {
    wit_bindgen::generate!({ world: "connector", path: "../../wit" });
}

use std::hint::black_box;

use wit::exports::frameio_dam::connector::{archive, bindings, browse, dam_events, forms, inbound, jobs, oauth, provider, review};
use wit::frameio_dam::connector::storage;
use wit::frameio_dam::connector::types::{Error, JobRequest, Property};

/// Misbehaves as `mode` says; returns for `ok` (and unknown modes).
fn act(mode: &str) {
    match mode {
        "loop" => loop {
            black_box(());
        },
        "grow" => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                // Touched, so no allocation is optimised away.
                hoard.push(black_box(vec![1u8; 1 << 20]));
            }
        }
        "recurse" => {
            black_box(recurse(black_box(1)));
        }
        "panic" => panic!("misbehaving component: panic on demand"),
        _ => {}
    }
}

/// Recursion with no end, that the compiler cannot turn into a loop.
#[allow(unconditional_recursion)]
#[inline(never)]
fn recurse(n: u64) -> u64 {
    let frame = black_box([n; 64]);
    recurse(frame[(n % 64) as usize] + 1).wrapping_add(frame[0])
}

fn unsupported<T>() -> Result<T, Error> {
    Err(Error::InvalidInput("the misbehaving component does not do that".into()))
}

struct Misbehaving;

impl provider::Guest for Misbehaving {
    fn describe() -> provider::Descriptor {
        provider::Descriptor {
            service_name: "misbehaving".into(),
            description: "Sandbox test component".into(),
            settings: Vec::new(),
            presets: Vec::new(),
        }
    }

    fn configure(_settings: Vec<Property>) -> Result<(), Error> {
        Ok(())
    }
}

impl oauth::Guest for Misbehaving {
    fn begin(_user: String, _redirect_uri: String) -> Result<oauth::Authorization, Error> {
        unsupported()
    }
    fn complete(_state: String, _code: String) -> Result<oauth::Connection, Error> {
        unsupported()
    }
    fn refresh(_user: String) -> Result<oauth::Connection, Error> {
        unsupported()
    }
    fn status(_user: String) -> Result<Option<oauth::Connection>, Error> {
        Ok(None)
    }
}

impl browse::Guest for Misbehaving {
    fn accounts(_user: String, _cursor: Option<String>) -> Result<browse::Page, Error> {
        unsupported()
    }
    fn workspaces(_user: String, _account_id: String, _cursor: Option<String>) -> Result<browse::Page, Error> {
        unsupported()
    }
    fn projects(_user: String, _account_id: String, _workspace_id: String, _cursor: Option<String>) -> Result<browse::Page, Error> {
        unsupported()
    }
    fn shared_projects(_user: String, _cursor: Option<String>) -> Result<browse::Page, Error> {
        unsupported()
    }
    fn children(
        _user: String,
        _account_id: String,
        _folder_id: String,
        _kinds: browse::ChildKinds,
        _cursor: Option<String>,
    ) -> Result<browse::Page, Error> {
        unsupported()
    }
}

impl bindings::Guest for Misbehaving {
    fn bind(_req: bindings::BindRequest) -> Result<bindings::Binding, Error> {
        unsupported()
    }
    fn unbind(_id: String) -> Result<(), Error> {
        unsupported()
    }
    fn list_bindings() -> Result<Vec<bindings::Binding>, Error> {
        Ok(Vec::new())
    }
}

fn reply(status: u16, body: &str, enqueue: Vec<JobRequest>) -> inbound::Reply {
    inbound::Reply {
        status,
        headers: vec![("content-type".into(), "application/json".into())],
        body: format!("{{\"reply\":\"{body}\"}}").into_bytes(),
        enqueue,
    }
}

impl inbound::Guest for Misbehaving {
    fn handle(req: inbound::Request) -> inbound::Reply {
        let mode = req.path.rsplit('/').next().unwrap_or_default();
        if let Some(kind) = mode.strip_prefix("job-") {
            let job = JobRequest { key: format!("{kind}:{}", req.query), kind: kind.into(), payload: Vec::new() };
            return reply(202, "queued", vec![job]);
        }
        act(mode);
        reply(200, "ok", Vec::new())
    }
}

impl jobs::Guest for Misbehaving {
    fn run(job: jobs::Job) -> jobs::Outcome {
        // Durable at once, so it survives the trap that may follow.
        let _ = storage::set(&format!("attempt/{}/{}", job.key, job.attempt), b"tried");
        act(&job.kind);
        jobs::Outcome::Done(jobs::Finished { summary: format!("{} done", job.key), enqueue: Vec::new() })
    }

    fn schedule() -> Vec<jobs::ScheduledJob> {
        Vec::new()
    }
}

impl review::Guest for Misbehaving {
    fn capabilities() -> Result<review::ReviewCapabilities, Error> {
        unsupported()
    }
    fn send(_req: review::ReviewRequest) -> Result<review::ReviewTicket, Error> {
        unsupported()
    }
}

impl archive::Guest for Misbehaving {
    fn start(_req: archive::ArchiveRequest) -> Result<archive::ArchiveTicket, Error> {
        unsupported()
    }
    fn archives() -> Result<Vec<archive::ArchiveProgress>, Error> {
        unsupported()
    }
}

impl forms::Guest for Misbehaving {
    fn dialogs() -> Vec<String> {
        Vec::new()
    }
    fn describe(_dialog: String, _context: forms::FormContext, _values: Vec<Property>) -> Result<forms::Form, Error> {
        unsupported()
    }
    fn submit(_dialog: String, _action: String, _context: forms::FormContext, _values: Vec<Property>) -> Result<forms::Outcome, forms::SubmitError> {
        Err(forms::SubmitError::Failed(Error::InvalidInput("this component offers no dialogs".into())))
    }
}

impl dam_events::Guest for Misbehaving {
    fn notify(_event: dam_events::Event) -> Result<Vec<JobRequest>, Error> {
        unsupported()
    }
}

wit::export!(Misbehaving with_types_in wit);
