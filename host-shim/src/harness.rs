//! A whole product on one machine, for tests and the demo: the Frame.io simulator,
//! a host-shim in a scratch directory, and clients for the admin API and the
//! simulator's control API. DAM developers use it to test against the component.
//!
//! Everything talks over loopback HTTP, exactly as in production: the harness never
//! reaches into the component or the host except through their APIs (and reads the
//! .eml outbox, as a mail client would).

pub mod child;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use frameio_sim::{ActionReply, Seed, SimClient, SimOptions, Simulator};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::app::{self, RunningHost};
use crate::config::{Config, RuntimeConfig};
use crate::queue::JobRow;

/// Ids from the bundled simulator seed (`fixtures/seed.json`).
pub mod fixture {
    /// Dana, who consents to the OAuth grant and binds folders.
    pub const DANA: &str = "10000000-0000-4000-8000-000000000001";
    /// Sam, a member of the Editorial team, who pushes assets.
    pub const SAM: &str = "10000000-0000-4000-8000-000000000002";
    /// Dana's account, "Reyes Studio".
    pub const REYES_STUDIO: &str = "20000000-0000-4000-8000-000000000001";
    /// The Editorial team.
    pub const EDITORIAL_TEAM: &str = "30000000-0000-4000-8000-000000000001";
    /// The "Spring Campaign" project (Editorial team).
    pub const SPRING_CAMPAIGN: &str = "40000000-0000-4000-8000-000000000001";
    /// The "Client Review" project, shared with Dana as a collaborator.
    pub const CLIENT_REVIEW: &str = "40000000-0000-4000-8000-000000000005";
    /// Spring Campaign's root folder.
    pub const SPRING_ROOT: &str = "50000000-0000-4000-8000-000000000001";
    /// A folder ("Footage").
    pub const FOOTAGE_FOLDER: &str = "a0000000-0000-4000-8000-000000000001";
    /// A 3 MiB video, fully uploaded.
    pub const INTERVIEW_MP4: &str = "a0000000-0000-4000-8000-000000000002";
    /// A video whose upload has not finished.
    pub const UNFINISHED_UPLOAD: &str = "a0000000-0000-4000-8000-000000000004";
    /// The first and second version of the "Trailer" version stack.
    pub const TRAILER_V1: &str = "a0000000-0000-4000-8000-000000000010";
    pub const TRAILER_V2: &str = "a0000000-0000-4000-8000-000000000011";
    /// The non-PKCE OAuth app.
    pub const CLIENT_ID: &str = "fio-sim-web";
    pub const CLIENT_SECRET: &str = "fio-sim-web-secret";
}

/// How the world is set up.
pub struct WorldOptions {
    /// The connector component.
    pub component: PathBuf,
    /// A scratch directory for the host's state.
    pub data_dir: PathBuf,
    /// Where the compiled component is cached; share it between worlds to compile once.
    pub cache_dir: Option<PathBuf>,
    /// Configure the provider from the host's config file instead of the admin API.
    pub provider_in_config: bool,
    /// The runtime's pooling allocator size (0: off).
    pub pooling_instances: u32,
    pub seed: Seed,
    pub sim: SimOptions,
    /// Hosts added to the simulator on the media allowlist (`[transfer] allow_hosts`).
    pub extra_media_hosts: Vec<String>,
}

impl WorldOptions {
    /// The bundled seed and default simulator behaviour.
    pub fn new(component: &Path, data_dir: &Path) -> WorldOptions {
        WorldOptions {
            component: component.to_path_buf(),
            data_dir: data_dir.to_path_buf(),
            cache_dir: None,
            provider_in_config: false,
            pooling_instances: RuntimeConfig::default().pooling_instances,
            seed: Seed::default_fixture(),
            sim: SimOptions::default(),
            extra_media_hosts: Vec::new(),
        }
    }
}

/// The simulator and a host, wired together.
pub struct World {
    pub sim: Simulator,
    pub control: SimClient,
    pub host: RunningHost,
    admin: AdminClient,
}

impl std::ops::Deref for World {
    type Target = AdminClient;

    fn deref(&self) -> &AdminClient {
        &self.admin
    }
}

/// A client for a running host's admin API (and, for OAuth, its public listener),
/// wherever the host runs: in this process or another.
#[derive(Clone)]
pub struct AdminClient {
    pub admin_url: String,
    pub public_url: String,
    /// The admin API's bearer token.
    token: String,
    http: reqwest::Client,
}

/// An answer of the admin API.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Value,
}

impl World {
    /// Starts the simulator, then a host pointed at it. The simulator accepts the
    /// host's loopback OAuth redirect URI on whatever port the host gets.
    pub async fn start(options: WorldOptions) -> anyhow::Result<World> {
        let sim = Simulator::start(options.seed, options.sim, ([127, 0, 0, 1], 0).into()).await?;
        let mut config = Config { data_dir: options.data_dir, component: options.component, ..Config::default() };
        if let Some(cache_dir) = options.cache_dir {
            config.runtime.cache_dir = cache_dir;
        }
        config.runtime.pooling_instances = options.pooling_instances;
        if options.provider_in_config {
            config.provider = provider_settings(&sim);
        }
        config.server.public_listen = ([127, 0, 0, 1], 0).into();
        config.server.admin_listen = ([127, 0, 0, 1], 0).into();
        // The simulator is on loopback, which the egress policy refuses unless told;
        // only its port is allowed, so nothing reaches the host's own listeners.
        let sim_authority = sim.base_url().trim_start_matches("http://").to_string();
        config.http.allow_hosts = vec![sim_authority.clone()];
        config.transfer.allow_hosts = [vec![sim_authority], options.extra_media_hosts].concat();
        config.http.allow_private_networks = vec!["127.0.0.0/8".into()];
        let host = app::start(config).await?;
        let control = SimClient::new(sim.base_url())?;
        let admin = AdminClient::new(&host.admin_url, &host.public_url, &host.admin_token)?;
        Ok(World { sim, control, host, admin })
    }

    /// Registers the provider with the simulator's endpoints, as an administrator would
    /// in the DAM's cloud-service settings.
    pub async fn configure_provider(&self) -> anyhow::Result<()> {
        let mut settings = provider_settings(&self.sim);
        settings.insert("public-url".into(), format!("{}/frameio", self.host.public_url));
        self.admin_ok(reqwest::Method::PUT, "/provider", Some(json!({ "settings": settings }))).await?;
        Ok(())
    }

    /// A Frame.io user runs the action on an asset and submits the form.
    /// Returns the form (the click's answer) and the final message.
    pub async fn push(&self, action_id: &str, asset_id: &str, user: &str, data: Value) -> anyhow::Result<(ActionReply, ActionReply)> {
        let form = self.control.click(action_id, asset_id, Some(user)).await?;
        let message = self.control.submit(action_id, &form.interaction_id, asset_id, Some(user), data).await?;
        Ok((form, message))
    }

    /// The messages in the outbox, oldest first.
    pub fn emails(&self) -> anyhow::Result<Vec<Email>> {
        let mut files: Vec<PathBuf> = match std::fs::read_dir(&self.host.outbox_dir) {
            Ok(dir) => dir.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.extension().is_some_and(|x| x == "eml")).collect(),
            Err(_) => return Ok(Vec::new()),
        };
        files.sort();
        files.iter().map(|p| Email::read(p)).collect()
    }

    /// Stops the host and the simulator.
    pub async fn stop(self) {
        self.host.stop();
        self.sim.shutdown().await;
    }
}

impl AdminClient {
    /// A client for the host whose listeners are at these URLs.
    pub fn new(admin_url: &str, public_url: &str, token: &str) -> anyhow::Result<AdminClient> {
        let http = reqwest::Client::builder().no_proxy().redirect(reqwest::redirect::Policy::none()).build()?;
        Ok(AdminClient { admin_url: admin_url.to_string(), public_url: public_url.to_string(), token: token.to_string(), http })
    }

    /// The admin API's bearer token.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Calls the admin API with its token. Requests that change state are sent as
    /// JSON (an empty object when there is no body), as the API requires.
    pub async fn admin(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> anyhow::Result<Answer> {
        let url = format!("{}/admin/api{path}", self.admin_url);
        let mut req = self.http.request(method.clone(), &url).bearer_auth(&self.token);
        match body {
            Some(body) => req = req.json(&body),
            None if matches!(method, reqwest::Method::POST | reqwest::Method::PUT | reqwest::Method::PATCH) => {
                req = req.json(&json!({}));
            }
            None => {}
        }
        let resp = req.send().await.with_context(|| format!("{method} {url}"))?;
        let status = resp.status();
        let text = resp.text().await?;
        let body = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
        Ok(Answer { status, body })
    }

    pub async fn admin_ok(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let answer = self.admin(method.clone(), path, body).await?;
        if !answer.status.is_success() {
            bail!("{method} {path}: {} {}", answer.status, answer.body);
        }
        Ok(answer.body)
    }

    /// Connects `user` the way a browser would: open the authorization URL, follow
    /// the redirect back to the host's callback. Returns the callback page.
    pub async fn connect(&self, user: &str) -> anyhow::Result<String> {
        let auth = self.admin_ok(reqwest::Method::POST, &format!("/users/{user}/connect"), None).await?;
        let url = auth["url"].as_str().context("connect answered no url")?;
        let consent = self.http.get(url).send().await?;
        let callback = consent
            .headers()
            .get("location")
            .and_then(|l| l.to_str().ok())
            .with_context(|| format!("the authorization server answered {} without a redirect", consent.status()))?
            .to_string();
        let page = self.http.get(&callback).send().await?;
        let status = page.status();
        let text = page.text().await?;
        if !status.is_success() {
            bail!("the OAuth callback answered {status}: {text}");
        }
        Ok(text)
    }

    /// Creates a DAM folder.
    pub async fn create_folder(&self, path: &str, title: &str) -> anyhow::Result<Value> {
        self.admin_ok(reqwest::Method::POST, "/folders", Some(json!({ "path": path, "title": title }))).await
    }

    /// Every entry of a browse list (`/users/<user>/accounts`...), following its
    /// page cursors to the end; also how many pages that took.
    pub async fn browse_all(&self, path: &str) -> anyhow::Result<(Vec<Value>, usize)> {
        let (mut entries, mut pages, mut cursor) = (Vec::new(), 0, None::<String>);
        loop {
            let separator = if path.contains('?') { '&' } else { '?' };
            let url = match &cursor {
                Some(c) => format!("{path}{separator}cursor={}", url::form_urlencoded::byte_serialize(c.as_bytes()).collect::<String>()),
                None => path.to_string(),
            };
            let page = self.admin_ok(reqwest::Method::GET, &url, None).await?;
            pages += 1;
            entries.extend(page["entries"].as_array().context("a browse page has entries")?.iter().cloned());
            match page["next"].as_str() {
                Some(next) if pages < 1000 => cursor = Some(next.to_string()),
                _ => return Ok((entries, pages)),
            }
        }
    }

    /// Binds a folder to a project with a named custom action.
    pub async fn bind(&self, user: &str, folder_id: &str, account_id: &str, project_id: &str, action_name: &str) -> anyhow::Result<Answer> {
        let req = json!({ "user": user, "folder_id": folder_id, "account_id": account_id, "project_id": project_id, "action_name": action_name });
        self.admin(reqwest::Method::POST, "/bindings", Some(req)).await
    }

    /// Waits until the job queued under `key` has finished (done or failed).
    pub async fn wait_for_job(&self, key: &str, timeout: Duration) -> anyhow::Result<JobRow> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(job) = self.job_by_key(key).await?
                && (job.state == "done" || job.state == "failed") {
                    return Ok(job);
                }
            if Instant::now() > deadline {
                bail!("job {key} did not finish within {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A document with its versions and properties.
    pub async fn document(&self, id: &str) -> anyhow::Result<Value> {
        self.admin_ok(reqwest::Method::GET, &format!("/documents/{id}"), None).await
    }

    /// The documents of a folder.
    pub async fn documents(&self, folder_id: &str) -> anyhow::Result<Vec<Value>> {
        let list = self.admin_ok(reqwest::Method::GET, &format!("/folders/{folder_id}/documents"), None).await?;
        Ok(list.as_array().cloned().unwrap_or_default())
    }

    /// The job queued under `key`, if any.
    pub async fn job_by_key(&self, key: &str) -> anyhow::Result<Option<JobRow>> {
        let query: String = url::form_urlencoded::Serializer::new(String::new()).append_pair("key", key).finish();
        let mut listed = self.admin_ok(reqwest::Method::GET, &format!("/jobs?{query}"), None).await?;
        let rows: Vec<JobRow> = serde_json::from_value(listed["jobs"].take()).context("the job list is not JobRow JSON")?;
        Ok(rows.into_iter().next())
    }

    /// The most linear memory any call into the component has used.
    pub async fn guest_memory_peak(&self) -> anyhow::Result<u64> {
        let stats = self.admin_ok(reqwest::Method::GET, "/stats", None).await?;
        stats["guest_memory_peak_bytes"].as_u64().context("no guest_memory_peak_bytes in /stats")
    }
}

/// The provider settings for the simulator's OAuth app and endpoints.
fn provider_settings(sim: &Simulator) -> BTreeMap<String, String> {
    let base = sim.base_url();
    [
        ("client-id", fixture::CLIENT_ID.to_string()),
        ("client-secret", fixture::CLIENT_SECRET.to_string()),
        ("authorization-url", format!("{base}/oauth2/auth")),
        ("token-url", format!("{base}/oauth2/token")),
        ("api-url", sim.api_url()),
        ("web-url", base.clone()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// A message from the outbox, with the headers a reader looks at.
#[derive(Debug, Clone)]
pub struct Email {
    pub path: PathBuf,
    pub to: String,
    pub subject: String,
    pub body: String,
}

impl Email {
    fn read(path: &Path) -> anyhow::Result<Email> {
        let raw = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
        let header = |name: &str| {
            head.lines()
                .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(": ")))
                .unwrap_or_default()
                .to_string()
        };
        Ok(Email { path: path.to_path_buf(), to: header("To"), subject: header("Subject"), body: body.to_string() })
    }
}
