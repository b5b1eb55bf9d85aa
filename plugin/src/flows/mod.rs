//! The connector's flows, written once for both Frame.io API generations.
//!
//! A flow sees the host, the provider settings and, through [`Context::api`], a
//! Frame.io client behind the generation-neutral traits of `crate::frameio`. Long
//! work is a [`Flow`]: a job whose steps are idempotent; the job runner runs the
//! steps and owns the retry policy.

pub mod archive;
pub mod bindings;
pub mod browse;
pub mod push;
pub mod review;
pub mod sync;

#[cfg(test)]
pub(crate) mod fake_frameio;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::auth;
use crate::error::Result;
use crate::frameio::FrameioApi;
use crate::host::Host;
use crate::settings::{self, Settings};

/// Opens a Frame.io client for a DAM user.
type Connect<'h> = Box<dyn Fn(&Settings, &str) -> Result<Box<dyn FrameioApi + 'h>> + 'h>;

/// What every flow works with.
pub struct Context<'h> {
    pub host: &'h dyn Host,
    pub settings: Settings,
    connect: Connect<'h>,
}

impl<'h> Context<'h> {
    /// The context of a configured provider, reaching Frame.io with each user's
    /// connection. `NotConfigured` before `provider.configure`.
    pub fn load(host: &'h dyn Host) -> Result<Self> {
        let settings = settings::load(host)?;
        Ok(Context { host, settings, connect: Box::new(move |settings, user| auth::api_for(host, settings, user)) })
    }

    /// A context whose Frame.io clients come from `connect` (tests fake Frame.io so).
    pub fn with_connect(host: &'h dyn Host, settings: Settings, connect: Connect<'h>) -> Self {
        Context { host, settings, connect }
    }

    /// A Frame.io client acting for DAM user `user`.
    pub fn api(&self, user: &str) -> Result<Box<dyn FrameioApi + 'h>> {
        (self.connect)(&self.settings, user)
    }

    /// Runs `call` as DAM user `user` when they are connected, else as `fallback`
    /// (whoever bound the folder): work a DAM user starts is done in their name
    /// where it can be.
    pub fn as_user_or<T>(&self, user: &str, fallback: &str, call: impl Fn(&dyn FrameioApi) -> Result<T>) -> Result<T> {
        use crate::error::Error;
        match self.api(user).and_then(|api| call(api.as_ref())) {
            Err(Error::NotConnected(_) | Error::ReconnectRequired(_) | Error::InvalidInput(_)) if user != fallback => {
                call(self.api(fallback)?.as_ref())
            }
            other => other,
        }
    }
}

/// A job the host must queue once (WIT `inbound.job-request`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobRequest {
    pub key: String,
    pub kind: String,
    pub payload: Vec<u8>,
}

/// What a step of a flow's job came to. A passing failure is an `Err` of a
/// transient [`crate::error::Error`]; the job runner decides when to retry it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Finished; a summary, and follow-up jobs to queue.
    Done { summary: String, enqueue: Vec<JobRequest> },
    /// Run another step with this payload after the delay, or as soon as the
    /// transfer `wake_on_transfer` ends; queue `enqueue` first.
    Next { delay_ms: u32, payload: Vec<u8>, status: String, wake_on_transfer: Option<String>, enqueue: Vec<JobRequest> },
    /// Finished without success; the reason. Not retried.
    Failed(String),
}

impl Step {
    /// Finished, with nothing more to queue.
    pub fn done(summary: impl Into<String>) -> Step {
        Step::Done { summary: summary.into(), enqueue: Vec::new() }
    }
}

/// A kind of job: its payload type, its steps, and what it does once it has failed.
pub trait Flow: Serialize + DeserializeOwned {
    /// The job kind, as queued.
    const KIND: &'static str;
    /// Runs one step. Must be idempotent: the host may run a step again.
    fn step(&self, ctx: &Context) -> Result<Step>;
    /// Called once when the job has failed for good (a `Failed` step, a final error,
    /// or passing errors that outlasted the retry policy), to tell whoever waits.
    fn failed(&self, ctx: &Context, why: &str);
}

/// A title short enough for a subject line (hosts refuse subjects over 200 characters).
pub(crate) fn subject_title(title: &str) -> String {
    const MAX: usize = 150;
    if title.chars().count() <= MAX { title.to_string() } else { format!("{}…", title.chars().take(MAX).collect::<String>()) }
}
