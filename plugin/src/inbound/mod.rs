//! The one entry point for requests Frame.io sends: routing, limits, verification.
//!
//! Order of checks, each answering before anything is recorded: size (413), route
//! (404/405), binding (404), signature and timestamp (401), the payload in the
//! binding's API generation (400), the action, account and workspace it names
//! (400). Only a verified, well-formed event reaches the custom-action conversation,
//! and its answer is written here as Frame.io's form or message JSON.

mod answer;
mod webhook;

use serde::Serialize;
use serde_json::json;

use crate::flows::bindings::{self, Binding};
use crate::flows::push::conversation;
use crate::flows::{Context, JobRequest};
use crate::frameio::model::{ActionEvent, Generation};
use crate::frameio::{v2, v4};
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
    handle_in(host, req, Context::load)
}

/// [`handle`], with the flows' context made by `context` once the request is
/// verified (tests give one whose Frame.io is faked).
pub fn handle_in<'h>(host: &'h dyn Host, req: &Request, context: impl FnOnce(&'h dyn Host) -> crate::error::Result<Context<'h>>) -> Reply {
    if req.body.len() > MAX_BODY_BYTES {
        return Reply::error(413, &format!("body larger than {MAX_BODY_BYTES} bytes"));
    }
    let segments: Vec<&str> = req.path.trim_start_matches('/').split('/').collect();
    match segments.as_slice() {
        ["actions", binding_id] if req.method == "POST" => action(host, binding_id, req, context),
        ["actions", _] => Reply::error(405, "custom actions are delivered with POST"),
        ["webhooks", subscription_id] if req.method == "POST" => webhook::deliver(host, subscription_id, req),
        ["webhooks", _] => Reply::error(405, "webhooks are delivered with POST"),
        _ => Reply::error(404, "no such endpoint"),
    }
}

fn action<'h>(
    host: &'h dyn Host,
    binding_id: &str,
    req: &Request,
    context: impl FnOnce(&'h dyn Host) -> crate::error::Result<Context<'h>>,
) -> Reply {
    let binding = match bindings::load(host, binding_id) {
        Ok(Some(b)) => b,
        Ok(None) => return Reply::error(404, "unknown binding"),
        // Our store failed: 503 makes Frame.io deliver again later.
        Err(e) => return Reply::error(503, &format!("temporarily unavailable: {e}")),
    };
    if let Err(rejection) = verify(&binding, req) {
        return Reply::error(401, &rejection.to_string());
    }
    let event = match parse_for(&binding, &req.body) {
        Ok(event) => event,
        Err(why) => return Reply::error(400, &why),
    };
    if let Err(why) = check_names_binding(&binding, &event) {
        return Reply::error(400, why);
    }
    let ctx = match context(host) {
        Ok(ctx) => ctx,
        Err(e) => return Reply::error(503, &format!("temporarily unavailable: {e}")),
    };
    answer::reply(conversation::respond(&ctx, &binding, &event))
}

/// Decodes the payload in the binding's generation: an action made on one API is
/// only ever run through that API.
fn parse_for(binding: &Binding, body: &[u8]) -> Result<ActionEvent, String> {
    match binding.generation {
        Generation::V2 => v2::parse_action(body),
        Generation::V4 => v4::parse_action(body),
    }
}

/// The event must be about the binding's own action, in its account and workspace.
fn check_names_binding(binding: &Binding, event: &ActionEvent) -> Result<(), &'static str> {
    if event.action_id != binding.action_id {
        return Err("the event names another custom action");
    }
    let other = |named: &Option<String>, ours: &str| named.as_deref().is_some_and(|n| !ours.is_empty() && n != ours);
    if other(&event.account_id, &binding.account_id) {
        return Err("the event names another account");
    }
    if other(&event.workspace_id, &binding.workspace_id) {
        return Err("the event names another workspace");
    }
    Ok(())
}

fn verify(binding: &Binding, req: &Request) -> Result<(), signature::Rejection> {
    verify_with(&binding.secrets, req)
}

/// Checks the request's signature against any of `secrets`.
fn verify_with(secrets: &[String], req: &Request) -> Result<(), signature::Rejection> {
    let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
    signature::verify(&req.headers, &req.body, &secrets, req.received_at)
}
