//! The one entry point for requests Frame.io sends: routing, limits, verification.
//!
//! Order of checks, each answering before anything is recorded: size (413), route
//! (404/405), binding (404), signature and timestamp (401), JSON (400). Only a
//! verified, well-formed request reaches the custom-action conversation.

use serde::Serialize;
use serde_json::json;

use crate::bindings::{self, Binding};
use crate::custom_action;
use crate::host::{Header, Host};
use crate::signature;

/// Largest body accepted. Frame.io's action and webhook payloads are a few hundred
/// bytes; anything near this is not from Frame.io.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// A request as received (WIT `inbound.request`).
#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: Vec<Header>,
    pub body: Vec<u8>,
    pub received_at: u64,
}

/// A job to queue once (WIT `inbound.job-request`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobRequest {
    pub key: String,
    pub kind: String,
    pub payload: Vec<u8>,
}

/// The answer (WIT `inbound.reply`).
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<Header>,
    pub body: Vec<u8>,
    pub enqueue: Vec<JobRequest>,
}

impl Reply {
    /// A JSON answer.
    pub fn json(status: u16, body: &impl Serialize) -> Reply {
        Reply {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            // Serialising a `serde_json::Value` or our plain records cannot fail.
            body: serde_json::to_vec(body).expect("replies serialise to JSON"),
            enqueue: Vec::new(),
        }
    }

    /// An error answer: `{"error": reason}`.
    pub fn error(status: u16, reason: &str) -> Reply {
        Reply::json(status, &json!({ "error": reason }))
    }
}

/// Handles one request; every outcome is an HTTP reply.
pub fn handle(host: &dyn Host, req: &Request) -> Reply {
    if req.body.len() > MAX_BODY_BYTES {
        return Reply::error(413, &format!("body larger than {MAX_BODY_BYTES} bytes"));
    }
    let segments: Vec<&str> = req.path.trim_start_matches('/').split('/').collect();
    match segments.as_slice() {
        ["actions", binding_id] if req.method == "POST" => action(host, binding_id, req),
        ["actions", _] => Reply::error(405, "custom actions are delivered with POST"),
        _ => Reply::error(404, "no such endpoint"),
    }
}

fn action(host: &dyn Host, binding_id: &str, req: &Request) -> Reply {
    let binding = match bindings::load(host, binding_id) {
        Ok(Some(b)) => b,
        Ok(None) => return Reply::error(404, "unknown binding"),
        // Our store failed: 503 makes Frame.io deliver again later.
        Err(e) => return Reply::error(503, &format!("temporarily unavailable: {e}")),
    };
    if let Err(rejection) = verify(&binding, req) {
        return Reply::error(401, &rejection.to_string());
    }
    let event = match custom_action::Event::parse(&req.body) {
        Ok(event) => event,
        Err(why) => return Reply::error(400, &why),
    };
    if event.action_id != binding.action_id {
        return Reply::error(400, "the event names another custom action");
    }
    custom_action::respond(host, &binding, &event)
}

fn verify(binding: &Binding, req: &Request) -> Result<(), signature::Rejection> {
    let secrets: Vec<&str> = binding.secrets.iter().map(String::as_str).collect();
    signature::verify(&req.headers, &req.body, &secrets, req.received_at)
}
