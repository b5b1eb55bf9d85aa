//! Webhook deliveries: verified like custom actions, then turned into sync jobs and
//! answered 200 at once. A delivery about something the connector does not follow
//! is answered 200 too, and changes nothing.

use serde_json::json;

use super::{Reply, verify_with};
use crate::flows::push::awaiting;
use crate::flows::sync::incoming;
use crate::flows::archive;
use crate::flows::sync::subscriptions::{self, Subscription};
use crate::frameio::model::{Change, ChangeKind, Generation};
use crate::frameio::{v2, v4};
use crate::host::Host;

/// Handles a delivery to `/webhooks/<subscription id>`.
pub(super) fn deliver(host: &dyn Host, subscription_id: &str, req: &super::Request) -> Reply {
    let subscription = match subscriptions::load(host, subscription_id) {
        Ok(Some(s)) => s,
        Ok(None) => return Reply::error(404, "unknown webhook subscription"),
        Err(e) => return Reply::error(503, &format!("temporarily unavailable: {e}")),
    };
    if let Err(rejection) = verify_with(&subscription.secrets, req) {
        return Reply::error(401, &rejection.to_string());
    }
    let change = match parse_for(&subscription, &req.body) {
        Ok(change) => change,
        Err(why) => return Reply::error(400, &why),
    };
    if change.workspace_id.as_deref().is_some_and(|w| w != subscription.workspace_id) {
        return Reply::error(400, "the event names another workspace");
    }
    if change.account_id.as_deref().is_some_and(|a| !subscription.account_id.is_empty() && a != subscription.account_id) {
        return Reply::error(400, "the event names another account");
    }
    if subscription.removed_at.is_some() {
        return accepted(Vec::new());
    }
    let mut jobs = match incoming::on_change(host, &change, req.received_at) {
        Ok(jobs) => jobs,
        Err(e) => return Reply::error(503, &format!("temporarily unavailable: {e}")),
    };
    if change.kind == ChangeKind::ProjectUpdated {
        // The project's name is read by a job, off the delivery's path.
        let account_id = change.account_id.clone().unwrap_or_else(|| subscription.account_id.clone());
        match archive::RuleJob::request_if_enabled(host, &subscription.user, &account_id, &change.resource_id, req.received_at) {
            Ok(rule) => jobs.extend(rule),
            Err(e) => return Reply::error(503, &format!("temporarily unavailable: {e}")),
        }
    }
    if change.kind == ChangeKind::FileReady {
        // Pushes accepted while the file was still uploading can import it now.
        match awaiting::resume_for_file(host, &change.resource_id, req.received_at) {
            Ok(resumed) => jobs.extend(resumed),
            Err(e) => return Reply::error(503, &format!("temporarily unavailable: {e}")),
        }
    }
    accepted(jobs)
}

/// Decodes the payload in the subscription's generation.
fn parse_for(subscription: &Subscription, body: &[u8]) -> Result<Change, String> {
    match subscription.generation {
        Generation::V2 => v2::parse_change(body),
        Generation::V4 => v4::parse_change(body),
    }
}

fn accepted(jobs: Vec<crate::flows::JobRequest>) -> Reply {
    let mut reply = Reply::json(200, &json!({ "received": true }));
    reply.enqueue = jobs;
    reply
}
