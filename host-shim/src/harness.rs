//! A whole product on one machine, for tests and the demo: the Frame.io simulator,
//! a host-shim in a scratch directory, and clients for the admin API and the
//! simulator's control API. DAM developers use it to test against the component.
//!
//! Everything talks over loopback HTTP, exactly as in production: the harness never
//! reaches into the component or the host except through their APIs (and reads the
//! .eml outbox, as a mail client would).

pub mod archive;
pub mod child;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use frameio_connector::frameio::model::Generation;
use frameio_sim::{ActionReply, Seed, SimClient, SimOptions, Simulator};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::app::{self, RunningHost};
use crate::config::{Config, RuntimeConfig};
use crate::console::users::{ConsoleConfig, ConsoleUser, PasswordHash, Role};
use crate::queue::JobRow;

/// Ids from the bundled simulator seed (`fixtures/seed.json`).
pub mod fixture {
    use frameio_connector::frameio::model::Generation;

    /// Dana, who consents to the Legacy OAuth grant and binds folders.
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

    /// One API generation's part of the seed, under the same names, so that a test
    /// runs on either.
    #[derive(Debug)]
    pub struct Fixture {
        pub api: Generation,
        /// The Frame.io user who consents when a DAM user connects.
        pub consenting_user: &'static str,
        /// A member of the workspace who pushes assets, and their email.
        pub pusher: &'static str,
        pub pusher_email: &'static str,
        pub account: &'static str,
        pub workspace: &'static str,
        /// The project bound in tests, its name and root folder.
        pub project: &'static str,
        pub project_name: &'static str,
        pub root: &'static str,
        /// A folder in the project's root.
        pub folder: &'static str,
        pub folder_name: &'static str,
        /// A fully uploaded video: its id, name, media type and size.
        pub video: &'static str,
        pub video_name: &'static str,
        pub video_type: &'static str,
        pub video_size: u64,
        /// A file whose upload has not finished.
        pub unfinished: &'static str,
        /// A version stack, its first and second (head) versions, their names and
        /// the head's size.
        pub stack: &'static str,
        pub stack_v1: &'static str,
        pub stack_v2: &'static str,
        pub stack_v1_name: &'static str,
        pub stack_v2_size: u64,
        /// Something in another project of the same workspace.
        pub elsewhere: &'static str,
        /// The OAuth app (or Adobe credential) the provider is configured with.
        pub client_id: &'static str,
        pub client_secret: &'static str,
    }

    /// The Legacy API (v2) part: Reyes Studio's Editorial team.
    pub const V2: Fixture = Fixture {
        api: Generation::V2,
        consenting_user: DANA,
        pusher: SAM,
        pusher_email: "sam@reyes-studio.example",
        account: REYES_STUDIO,
        workspace: EDITORIAL_TEAM,
        project: SPRING_CAMPAIGN,
        project_name: "Spring Campaign",
        root: SPRING_ROOT,
        folder: FOOTAGE_FOLDER,
        folder_name: "Footage",
        video: INTERVIEW_MP4,
        video_name: "interview.mp4",
        video_type: "video/mp4",
        video_size: 3_145_728,
        unfinished: UNFINISHED_UPLOAD,
        stack: "a0000000-0000-4000-8000-000000000009",
        stack_v1: TRAILER_V1,
        stack_v2: TRAILER_V2,
        stack_v1_name: "trailer_v1.mp4",
        stack_v2_size: 2_359_301,
        elsewhere: "a0000000-0000-4000-8000-000000000012",
        client_id: CLIENT_ID,
        client_secret: CLIENT_SECRET,
    };

    /// The Frame.io V4 part: Harbor Films' Harbor Post workspace, signed in with
    /// Adobe IMS as Noor.
    pub const V4: Fixture = Fixture {
        api: Generation::V4,
        consenting_user: "10000000-0000-4000-8000-000000000005",
        pusher: "10000000-0000-4000-8000-000000000006",
        pusher_email: "ines@harbor-films.example",
        account: "20000000-0000-4000-8000-000000000003",
        workspace: "30000000-0000-4000-8000-000000000004",
        project: "40000000-0000-4000-8000-000000000007",
        project_name: "Feature Film",
        root: "50000000-0000-4000-8000-000000000007",
        folder: "b0000000-0000-4000-8000-000000000001",
        folder_name: "Dailies",
        video: "b0000000-0000-4000-8000-000000000002",
        video_name: "day01-cam-a.mov",
        video_type: "video/quicktime",
        video_size: 5_242_880,
        unfinished: "b0000000-0000-4000-8000-000000000008",
        stack: "b0000000-0000-4000-8000-000000000004",
        stack_v1: "b0000000-0000-4000-8000-000000000005",
        stack_v2: "b0000000-0000-4000-8000-000000000006",
        stack_v1_name: "teaser_v1.mp4",
        stack_v2_size: 1_835_017,
        elsewhere: "b0000000-0000-4000-8000-000000000010",
        client_id: "fio-sim-ims",
        client_secret: "fio-sim-ims-secret",
    };

    impl Fixture {
        /// The part of the seed for `api`.
        pub fn of(api: Generation) -> &'static Fixture {
            match api {
                Generation::V2 => &V2,
                Generation::V4 => &V4,
            }
        }
    }
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
    /// The Frame.io API generation the provider is configured for.
    pub api: Generation,
    /// The console's users (none by default): see [`console_user`].
    pub console: ConsoleConfig,
    /// Bytes per ranged GET and ranges in flight of each download, to make a
    /// download take several steps (the console's progress bars are tested so).
    pub transfer_ranges: Option<(u64, usize)>,
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
            api: Generation::V2,
            console: ConsoleConfig::default(),
            transfer_ranges: None,
        }
    }
}

/// A console user with `password`, hashed with few iterations: harness users are
/// throwaway, and their sign-in should be quick.
pub fn console_user(role: Role, password: &str) -> ConsoleUser {
    ConsoleUser { role, password_hash: PasswordHash::with_iterations(password, 10_000).to_string() }
}

/// The simulator and a host, wired together.
pub struct World {
    pub sim: Simulator,
    pub control: SimClient,
    pub host: RunningHost,
    /// The seed's ids for the generation the provider is configured for.
    pub fixture: &'static fixture::Fixture,
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
            config.provider = provider_settings(&sim.base_url(), options.api);
        }
        config.server.public_listen = ([127, 0, 0, 1], 0).into();
        config.server.admin_listen = ([127, 0, 0, 1], 0).into();
        // The simulator is on loopback, which the egress policy refuses unless told;
        // only its port is allowed, so nothing reaches the host's own listeners.
        let sim_authority = sim.base_url().trim_start_matches("http://").to_string();
        config.http.allow_hosts = vec![sim_authority.clone()];
        config.transfer.allow_hosts = [vec![sim_authority], options.extra_media_hosts].concat();
        config.http.allow_private_networks = vec!["127.0.0.0/8".into()];
        // The DAM users of the stories, so that what the connector tells them lands in the outbox.
        config.notifications.users.insert("dana".into(), "dana@dam.example".into());
        config.console = options.console;
        if let Some((range_size, concurrency)) = options.transfer_ranges {
            config.transfer.range_size = range_size;
            config.transfer.concurrency = concurrency;
        }
        let host = app::start(config).await?;
        let control = SimClient::new(sim.base_url())?;
        let admin = AdminClient::new(&host.admin_url, &host.public_url, &host.admin_token)?;
        Ok(World { sim, control, host, fixture: fixture::Fixture::of(options.api), admin })
    }

    /// Registers the provider with the simulator's endpoints, as an administrator would
    /// in the DAM's cloud-service settings.
    pub async fn configure_provider(&self) -> anyhow::Result<()> {
        let mut settings = provider_settings(&self.sim.base_url(), self.fixture.api);
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

/// The provider settings for the simulator's OAuth app (or Adobe credential) and
/// endpoints, for API generation `api`; the rest takes the generation's defaults.
pub fn provider_settings(base: &str, api: Generation) -> BTreeMap<String, String> {
    let fixture = fixture::Fixture::of(api);
    let endpoints = match api {
        Generation::V2 => [format!("{base}/oauth2/auth"), format!("{base}/oauth2/token"), format!("{base}/v2")],
        Generation::V4 => [format!("{base}/ims/authorize/v2"), format!("{base}/ims/token/v3"), format!("{base}/v4")],
    };
    let [authorization_url, token_url, api_url] = endpoints;
    [
        ("api", api.name().to_string()),
        ("client-id", fixture.client_id.to_string()),
        ("client-secret", fixture.client_secret.to_string()),
        ("authorization-url", authorization_url),
        ("token-url", token_url),
        ("api-url", api_url),
        ("web-url", base.to_string()),
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

/// A DAM document made by [`seed_document`].
#[derive(Debug, Clone)]
pub struct SeededDocument {
    pub folder_id: String,
    pub document_id: String,
    /// The version's blob (BLAKE3 id, size, xxHash64).
    pub blob: crate::blobs::BlobInfo,
    /// The blob's file, for peers that read the same bytes.
    pub blob_path: PathBuf,
}

/// Writes a DAM folder (`folder_path`, made if missing) holding a document `title`
/// whose one version is `size` bytes of the simulator's generated content for
/// `content_key` ([`frameio_sim::Content`]), into the data directory of a host that
/// is not running (a running host holds the directory's lock). Content from a key
/// costs nothing to store beforehand and can be generated again to check what a
/// far end received. The blob goes through the blob store's own staging, sealing
/// and installing, so the host finds it exactly as if it had imported it.
pub fn seed_document(data_dir: &Path, folder_path: &str, title: &str, content_key: &str, size: u64) -> anyhow::Result<SeededDocument> {
    use std::io::Write;

    use crate::blobs::{BlobStore, ContentHash};
    use crate::imports::repository::Repository;

    std::fs::create_dir_all(data_dir)?;
    let db = crate::db::Database::open(&data_dir.join("host.sqlite3"))?;
    let blobs = BlobStore::open(&data_dir.join(app::BLOBS_DIR), db.clone())?;
    let staged = blobs.staging_file(&format!("seed-{}", hex::encode(rand::random::<[u8; 8]>())))?;
    let content = frameio_sim::Content::new(content_key, size);
    let mut hash = ContentHash::new();
    {
        let mut out = std::io::BufWriter::with_capacity(8 << 20, std::fs::File::create(&staged)?);
        let mut buf = vec![0u8; 8 << 20];
        let mut offset = 0u64;
        while offset < size {
            let n = (size - offset).min(buf.len() as u64) as usize;
            content.fill(offset, &mut buf[..n]);
            hash.update(&buf[..n]);
            out.write_all(&buf[..n])?;
            offset += n as u64;
        }
        out.flush()?;
    }
    let blob = blobs.install(blobs.seal_with(&staged, || Ok(hash))?)?;
    let repository = Repository::new(db, blobs.clone(), "http://127.0.0.1");
    let folder = match repository.list_folders()?.into_iter().find(|f| f.path == folder_path) {
        Some(folder) => folder,
        None => repository.create_folder(folder_path, folder_path.trim_start_matches('/'))?,
    };
    let document = repository.ensure_document(&folder.id, &format!("seed:{content_key}"), title)?;
    repository.add_version(&document.id, &format!("seed:{content_key}:{}", blob.id), &blob.id, &[])?;
    let blob_path = blobs.path(&blob.id).context("the seeded blob's file is missing")?;
    Ok(SeededDocument { folder_id: folder.id, document_id: document.id, blob, blob_path })
}
