//! Webhook subscriptions: one per workspace the connector follows, made when the
//! first folder there is bound and deleted when the last binding there goes.
//!
//! A subscription's record keeps the webhook's signing secret (returned only when
//! it is made) and the bindings that need it. Deleting the webhook keeps the record,
//! marked removed, so that a late delivery is still verified and then ignored.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::flows::Context;
use crate::flows::bindings::Binding;
use crate::frameio::FrameioApi;
use crate::frameio::model::Generation;
use crate::host::Host;
use crate::store;

/// `subscription/<id>`: a webhook subscription.
const SUBSCRIPTION: &str = "subscription/";
/// `workspace-subscription/<workspace id>`: the live subscription of a workspace.
const WORKSPACE: &str = "workspace-subscription/";
/// How often a concurrent change to a subscription is retried before giving up.
const MAX_TRIES: u32 = 5;

/// A webhook subscription.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Subscription {
    pub id: String,
    pub generation: Generation,
    pub account_id: String,
    pub workspace_id: String,
    pub webhook_id: String,
    /// Secrets that sign its deliveries.
    pub secrets: Vec<String>,
    /// The bindings that need it.
    pub bindings: Vec<String>,
    /// The DAM user whose connection made it.
    pub user: String,
    pub removed_at: Option<u64>,
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("id", &self.id)
            .field("workspace_id", &self.workspace_id)
            .field("webhook_id", &self.webhook_id)
            .field("bindings", &self.bindings)
            .field("removed_at", &self.removed_at)
            .finish_non_exhaustive()
    }
}

/// A subscription id is ours: `s` and hex.
fn is_subscription_id(id: &str) -> bool {
    id.len() == 25 && id.starts_with('s') && id[1..].bytes().all(|b| b.is_ascii_hexdigit())
}

fn key(id: &str) -> String {
    format!("{SUBSCRIPTION}{id}")
}

/// Reads a subscription, live or removed.
pub fn load(host: &dyn Host, id: &str) -> Result<Option<Subscription>> {
    if !is_subscription_id(id) {
        return Ok(None);
    }
    Ok(store::load(host, &key(id))?.map(|s| s.value))
}

/// Makes sure the binding's workspace has a subscription that counts the binding.
pub fn ensure(ctx: &Context, api: &dyn FrameioApi, binding: &Binding) -> Result<Subscription> {
    let index = format!("{WORKSPACE}{}", binding.workspace_id);
    for _ in 0..MAX_TRIES {
        if let Some(id) = store::load::<String>(ctx.host, &index)? {
            let Some(stored) = store::load::<Subscription>(ctx.host, &key(&id.value))? else {
                // An index without its record: make a new subscription below.
                ctx.host.storage_delete(&index)?;
                continue;
            };
            let mut subscription = stored.value;
            if !subscription.bindings.contains(&binding.id) {
                subscription.bindings.push(binding.id.clone());
            }
            if store::save_if(ctx.host, &key(&id.value), Some(stored.revision), &subscription)?.is_some() {
                return Ok(subscription);
            }
            continue;
        }
        return create(ctx, api, binding, &index);
    }
    Err(Error::Host("the webhook subscription kept changing under us; try again".into()))
}

fn create(ctx: &Context, api: &dyn FrameioApi, binding: &Binding, index: &str) -> Result<Subscription> {
    let id = format!("s{}", hex::encode(ctx.host.random_bytes(12)));
    let url = format!("{}/webhooks/{id}", ctx.settings.public_url);
    let name = format!("DAM sync ({})", binding.workspace_id);
    let created = api.create_webhook(&binding.account_id, &binding.workspace_id, &name, &url)?;
    let subscription = Subscription {
        id: id.clone(),
        generation: binding.generation,
        account_id: binding.account_id.clone(),
        workspace_id: binding.workspace_id.clone(),
        webhook_id: created.id.clone(),
        secrets: vec![created.secret],
        bindings: vec![binding.id.clone()],
        user: binding.user.clone(),
        removed_at: None,
    };
    let saved = store::save_if(ctx.host, &key(&id), None, &subscription)
        .and_then(|_| store::save_if(ctx.host, index, None, &id));
    match saved {
        Ok(Some(_)) => Ok(subscription),
        // Another bind made the workspace's subscription first: use theirs.
        other => {
            let _ = api.delete_webhook(&binding.account_id, &created.id);
            let _ = ctx.host.storage_delete(&key(&id));
            other?;
            ensure(ctx, api, binding)
        }
    }
}

/// Takes the binding off its workspace's subscription, and deletes the webhook once
/// no binding needs it. A webhook that cannot be deleted (the owner is no longer
/// connected) is left; its deliveries are answered and ignored.
pub fn release(ctx: &Context, binding: &Binding) -> Result<()> {
    let index = format!("{WORKSPACE}{}", binding.workspace_id);
    let Some(id) = store::load::<String>(ctx.host, &index)? else { return Ok(()) };
    let Some(stored) = store::load::<Subscription>(ctx.host, &key(&id.value))? else { return Ok(()) };
    let mut subscription = stored.value;
    subscription.bindings.retain(|b| b != &binding.id);
    if subscription.bindings.is_empty() {
        subscription.removed_at = Some(ctx.host.now());
        let deleted = ctx.api(&subscription.user).and_then(|api| api.delete_webhook(&subscription.account_id, &subscription.webhook_id));
        match deleted {
            Ok(()) | Err(Error::NotConnected(_) | Error::ReconnectRequired(_)) => {}
            Err(e) => return Err(e),
        }
        ctx.host.storage_delete(&index)?;
    }
    store::save(ctx.host, &key(&subscription.id), &subscription)?;
    Ok(())
}

/// Checks every live subscription's webhook: one Frame.io paused is turned back on,
/// one that is gone is made again under the same URL (its new secret first, the old
/// ones kept for deliveries already under way). One that cannot be checked (its
/// owner's connection is gone, Frame.io is down) is left for the next run. Returns
/// how many were mended.
pub fn heal(ctx: &Context) -> Result<usize> {
    let mut mended = 0;
    for key in ctx.host.storage_list(SUBSCRIPTION)? {
        let Some(stored) = store::load::<Subscription>(ctx.host, &key)? else { continue };
        if stored.value.removed_at.is_some() {
            continue;
        }
        match mend(ctx, &key, stored.value) {
            Ok(true) => mended += 1,
            Ok(false) | Err(_) => {}
        }
    }
    Ok(mended)
}

/// Mends one subscription's webhook; whether it needed it.
fn mend(ctx: &Context, key: &str, subscription: Subscription) -> Result<bool> {
    let api = ctx.api(&subscription.user)?;
    match api.webhook_active(&subscription.account_id, &subscription.webhook_id)? {
        Some(true) => Ok(false),
        Some(false) => {
            api.activate_webhook(&subscription.account_id, &subscription.webhook_id)?;
            Ok(true)
        }
        None => {
            let url = format!("{}/webhooks/{}", ctx.settings.public_url, subscription.id);
            let name = format!("DAM sync ({})", subscription.workspace_id);
            let created = api.create_webhook(&subscription.account_id, &subscription.workspace_id, &name, &url)?;
            let mut secrets = vec![created.secret];
            secrets.extend(subscription.secrets.iter().take(2).cloned());
            store::save(ctx.host, key, &Subscription { webhook_id: created.id, secrets, ..subscription })?;
            Ok(true)
        }
    }
}
