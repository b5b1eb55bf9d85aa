//! The component glue: the WIT imports as a [`Host`], and the WIT exports calling
//! the connector's logic. Only type conversions live here.

use crate::error::Error;
use crate::flows::{archive, review};
use crate::flows::sync::outgoing;
use crate::flows::{Context, bindings, browse};
use crate::frameio::model::{self, ItemKind, Page};
use crate::host::{self, Host, HostError, HostResult};
use crate::{auth, inbound, jobs, settings};

mod wit {
    wit_bindgen::generate!({ world: "connector", path: "../wit" });
}

mod forms;

use wit::exports::frameio_dam::connector as exports;
use wit::frameio_dam::connector::{http, notifications, repository, storage, transfer, types};

/// The host, as the component's imports.
struct WitHost;

fn http_error(e: http::HttpError) -> HostError {
    match e {
        http::HttpError::Denied(why) | http::HttpError::InvalidRequest(why) => HostError::Refused(why),
        http::HttpError::Timeout => HostError::Unavailable("timed out".into()),
        http::HttpError::Connection(why) => HostError::Unavailable(why),
        http::HttpError::TooLarge(limit) => HostError::Refused(format!("response larger than {limit} bytes")),
    }
}

fn storage_error(e: storage::StorageError) -> HostError {
    match e {
        storage::StorageError::Conflict => HostError::Conflict,
        storage::StorageError::InvalidKey(why) => HostError::Refused(why),
        storage::StorageError::TooLarge(limit) => HostError::Refused(format!("value larger than {limit} bytes")),
        storage::StorageError::Unavailable(why) => HostError::Unavailable(why),
    }
}

fn repository_error(e: repository::RepositoryError) -> HostError {
    match e {
        repository::RepositoryError::NotFound(what) => HostError::NotFound(what),
        repository::RepositoryError::Invalid(why) => HostError::Refused(why),
        repository::RepositoryError::Unavailable(why) => HostError::Unavailable(why),
    }
}

fn transfer_error(e: transfer::TransferError) -> host::TransferError {
    match e {
        transfer::TransferError::Denied(why) => host::TransferError::Denied(why),
        transfer::TransferError::HttpStatus(code) => host::TransferError::HttpStatus(code),
        transfer::TransferError::SizeMismatch(size) => host::TransferError::SizeMismatch(size),
        transfer::TransferError::ChecksumMismatch(hash) => host::TransferError::ChecksumMismatch(hash),
        transfer::TransferError::InvalidRequest(why) => host::TransferError::InvalidRequest(why),
        transfer::TransferError::Io(why) => host::TransferError::Io(why),
    }
}

fn transfer_status(s: transfer::TransferStatus) -> host::TransferStatus {
    match s {
        transfer::TransferStatus::Running(p) => host::TransferStatus::Running { done: p.done, total: p.total },
        transfer::TransferStatus::Complete(b) => {
            host::TransferStatus::Complete(host::Blob { id: b.id, size: b.size, xxhash64: b.xxhash64 })
        }
        transfer::TransferStatus::Failed(e) => host::TransferStatus::Failed(transfer_error(e)),
    }
}

fn document(d: repository::Document) -> host::Document {
    host::Document {
        id: d.id,
        folder_id: d.folder_id,
        title: d.title,
        external_key: d.external_key,
        url: d.url,
        version_count: d.version_count,
    }
}

fn comment(c: repository::Comment) -> host::Comment {
    let b = c.body;
    host::Comment {
        id: c.id,
        document_id: c.document_id,
        external_key: c.external_key,
        parent_id: c.parent_id,
        body: host::CommentBody {
            author: b.author,
            text: b.text,
            created_at: b.created_at,
            updated_at: b.updated_at,
            frame: b.frame,
            timecode: b.timecode,
            duration_frames: b.duration_frames,
            page: b.page,
            annotation: b.annotation,
            completed: b.completed,
        },
    }
}

fn properties(props: &[(String, String)]) -> Vec<types::Property> {
    props.iter().map(|(name, value)| types::Property { name: name.clone(), value: value.clone() }).collect()
}

impl Host for WitHost {
    fn http_send(&self, req: host::HttpRequest) -> HostResult<host::HttpResponse> {
        let method = match req.method {
            host::Method::Get => http::Method::Get,
            host::Method::Post => http::Method::Post,
            host::Method::Put => http::Method::Put,
            host::Method::Patch => http::Method::Patch,
            host::Method::Delete => http::Method::Delete,
        };
        let request = http::Request { method, url: req.url, headers: req.headers, body: req.body, timeout_ms: req.timeout_ms };
        let resp = http::send(&request).map_err(http_error)?;
        Ok(host::HttpResponse { status: resp.status, headers: resp.headers, body: resp.body })
    }

    fn storage_get(&self, key: &str) -> HostResult<Option<host::Entry>> {
        let entry = storage::get(key).map_err(storage_error)?;
        Ok(entry.map(|e| host::Entry { value: e.value, revision: e.revision }))
    }

    fn storage_set(&self, key: &str, value: &[u8]) -> HostResult<u64> {
        storage::set(key, value).map_err(storage_error)
    }

    fn storage_set_expiring(&self, key: &str, value: &[u8], expires_at: u64) -> HostResult<u64> {
        storage::set_expiring(key, value, expires_at).map_err(storage_error)
    }

    fn storage_cas(&self, key: &str, expected: Option<u64>, value: &[u8]) -> HostResult<u64> {
        storage::compare_and_swap(key, expected, value).map_err(storage_error)
    }

    fn storage_delete(&self, key: &str) -> HostResult<bool> {
        storage::delete(key).map_err(storage_error)
    }

    fn storage_list(&self, prefix: &str) -> HostResult<Vec<String>> {
        storage::list_keys(prefix).map_err(storage_error)
    }

    fn get_folder(&self, id: &str) -> HostResult<host::Folder> {
        let f = repository::get_folder(id).map_err(repository_error)?;
        Ok(host::Folder { id: f.id, path: f.path, title: f.title })
    }

    fn ensure_folder(&self, parent_id: &str, external_key: &str, title: &str) -> HostResult<host::Folder> {
        let f = repository::ensure_folder(parent_id, external_key, title).map_err(repository_error)?;
        Ok(host::Folder { id: f.id, path: f.path, title: f.title })
    }

    fn set_folder_properties(&self, folder_id: &str, props: &[(String, String)]) -> HostResult<()> {
        repository::set_folder_properties(folder_id, &properties(props)).map_err(repository_error)
    }

    fn find_document(&self, folder_id: &str, external_key: &str) -> HostResult<Option<host::Document>> {
        Ok(repository::find_document(folder_id, external_key).map_err(repository_error)?.map(document))
    }

    fn ensure_document(&self, folder_id: &str, external_key: &str, title: &str) -> HostResult<host::Document> {
        repository::ensure_document(folder_id, external_key, title).map(document).map_err(repository_error)
    }

    fn add_version(
        &self,
        document_id: &str,
        version_key: &str,
        blob_id: &str,
        props: &[(String, String)],
    ) -> HostResult<host::Version> {
        let v = repository::add_version(document_id, version_key, blob_id, &properties(props)).map_err(repository_error)?;
        Ok(host::Version { id: v.id, document_id: v.document_id, number: v.number, blob_id: v.blob_id, size: v.size })
    }

    fn get_document(&self, id: &str) -> HostResult<host::Document> {
        repository::get_document(id).map(document).map_err(repository_error)
    }

    fn renditions(&self, document_id: &str, number: u32) -> HostResult<Vec<host::Rendition>> {
        let renditions = repository::renditions(document_id, number).map_err(repository_error)?;
        Ok(renditions
            .into_iter()
            .map(|r| host::Rendition {
                kind: match r.kind {
                    repository::RenditionKind::Master => host::RenditionKind::Master,
                    repository::RenditionKind::Proxy => host::RenditionKind::Proxy,
                },
                blob_id: r.blob_id,
                size: r.size,
                media_type: r.media_type,
                file_name: r.file_name,
            })
            .collect())
    }

    fn set_properties(&self, document_id: &str, props: &[(String, String)]) -> HostResult<()> {
        repository::set_properties(document_id, &properties(props)).map_err(repository_error)
    }

    fn put_comment(&self, document_id: &str, external_key: &str, parent_key: Option<&str>, body: &host::CommentBody) -> HostResult<host::Comment> {
        let body = repository::CommentBody {
            author: body.author.clone(),
            text: body.text.clone(),
            created_at: body.created_at,
            updated_at: body.updated_at,
            frame: body.frame,
            timecode: body.timecode.clone(),
            duration_frames: body.duration_frames,
            page: body.page,
            annotation: body.annotation.clone(),
            completed: body.completed,
        };
        repository::put_comment(document_id, external_key, parent_key, &body).map(comment).map_err(repository_error)
    }

    fn set_comment_key(&self, comment_id: &str, external_key: &str) -> HostResult<()> {
        repository::set_comment_key(comment_id, external_key).map_err(repository_error)
    }

    fn delete_comment(&self, document_id: &str, external_key: &str) -> HostResult<bool> {
        repository::delete_comment(document_id, external_key).map_err(repository_error)
    }

    fn list_comments(&self, document_id: &str) -> HostResult<Vec<host::Comment>> {
        Ok(repository::list_comments(document_id).map_err(repository_error)?.into_iter().map(comment).collect())
    }

    fn notify(&self, message: host::Message) -> HostResult<()> {
        let to = match message.to {
            host::Recipient::DamUser(user) => notifications::Recipient::DamUser(user),
            host::Recipient::Email(address) => notifications::Recipient::Email(address),
        };
        let msg = notifications::Message { to, subject: message.subject, body: message.body, link: message.link };
        notifications::send(&msg).map_err(|e| match e {
            notifications::NotifyError::UnknownRecipient(who) => HostError::NotFound(who),
            notifications::NotifyError::InvalidMessage(why) => HostError::Refused(why),
            notifications::NotifyError::Unavailable(why) => HostError::Unavailable(why),
        })
    }

    fn start_download(&self, req: host::DownloadRequest) -> Result<host::TransferStatus, host::TransferError> {
        let request = transfer::DownloadRequest {
            key: req.key,
            url: req.url,
            headers: Vec::new(),
            expected_size: req.expected_size,
            expected_xxhash64: req.expected_xxhash64,
        };
        transfer::start_download(&request).map(transfer_status).map_err(transfer_error)
    }

    fn start_upload(&self, req: host::UploadRequest) -> Result<host::TransferStatus, host::TransferError> {
        let request = transfer::UploadRequest {
            key: req.key,
            blob_id: req.blob_id,
            parts: req.parts.into_iter().map(|p| transfer::UploadPart { url: p.url, size: p.size }).collect(),
            headers: req.headers,
        };
        transfer::start_upload(&request).map(transfer_status).map_err(transfer_error)
    }

    fn transfer_status(&self, key: &str) -> Result<Option<host::TransferStatus>, host::TransferError> {
        transfer::status(key).map(|s| s.map(transfer_status)).map_err(transfer_error)
    }

    fn now(&self) -> u64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
    }

    fn random_bytes(&self, n: usize) -> Vec<u8> {
        let mut bytes = vec![0u8; n];
        // WASI's random source does not fail; if it ever did, identifiers and OAuth
        // states would be predictable, so stop rather than go on.
        getrandom::fill(&mut bytes).expect("the host provides wasi:random");
        bytes
    }

    fn sleep_ms(&self, ms: u32) {
        std::thread::sleep(std::time::Duration::from_millis(ms.into()));
    }

    fn now_ms(&self) -> u64 {
        // WASI's wall clock; a clock before the epoch reads as the epoch.
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
    }
}

fn wit_error(e: Error) -> types::Error {
    match e {
        Error::NotConfigured => types::Error::NotConfigured,
        Error::NotConnected(who) => types::Error::NotConnected(who),
        Error::ReconnectRequired(why) => types::Error::ReconnectRequired(why),
        Error::InvalidInput(why) => types::Error::InvalidInput(why),
        Error::NotFound(what) => types::Error::NotFound(what),
        Error::Conflict(why) => types::Error::Conflict(why),
        e @ (Error::Frameio(_) | Error::Paced { .. }) => types::Error::Frameio(e.to_string()),
        Error::Host(why) => types::Error::Host(why),
    }
}

/// The component's exports.
struct Connector;

impl exports::provider::Guest for Connector {
    fn describe() -> exports::provider::Descriptor {
        let d = settings::describe();
        let property = |(name, value): &(&str, &str)| types::Property { name: name.to_string(), value: value.to_string() };
        exports::provider::Descriptor {
            service_name: d.service_name.into(),
            description: d.description.into(),
            settings: d
                .settings
                .into_iter()
                .map(|f| exports::provider::SettingField {
                    name: f.name.into(),
                    label: f.label.into(),
                    help: f.help.into(),
                    required: f.required,
                    secret: f.secret,
                    default_value: f.default_value.map(Into::into),
                    choices: f.choices.into_iter().map(Into::into).collect(),
                })
                .collect(),
            presets: d
                .presets
                .into_iter()
                .map(|p| exports::provider::Preset {
                    field: p.field.into(),
                    choice: p.choice.into(),
                    values: p.values.iter().map(property).collect(),
                })
                .collect(),
        }
    }

    fn configure(form: Vec<types::Property>) -> Result<(), types::Error> {
        let form: Vec<(String, String)> = form.into_iter().map(|p| (p.name, p.value)).collect();
        settings::configure(&WitHost, &form).map_err(wit_error)
    }
}

fn connection(c: auth::ConnectionInfo) -> exports::oauth::Connection {
    exports::oauth::Connection { user: c.user, frameio_user: c.frameio_user, expires_at: c.expires_at }
}

impl exports::oauth::Guest for Connector {
    fn begin(user: String, redirect_uri: String) -> Result<exports::oauth::Authorization, types::Error> {
        let a = auth::begin(&WitHost, &user, &redirect_uri).map_err(wit_error)?;
        Ok(exports::oauth::Authorization { url: a.url, state: a.state })
    }

    fn complete(state: String, code: String) -> Result<exports::oauth::Connection, types::Error> {
        auth::complete(&WitHost, &state, &code).map(connection).map_err(wit_error)
    }

    fn refresh(user: String) -> Result<exports::oauth::Connection, types::Error> {
        auth::refresh(&WitHost, &user).map(connection).map_err(wit_error)
    }

    fn status(user: String) -> Result<Option<exports::oauth::Connection>, types::Error> {
        auth::status(&WitHost, &user).map(|c| c.map(connection)).map_err(wit_error)
    }
}

use exports::browse::{ChildKinds, Entry, EntryKind};

/// One page of entries, each made by `entry`.
fn page<T>(listed: crate::error::Result<Page<T>>, entry: impl Fn(T) -> Entry) -> Result<exports::browse::Page, types::Error> {
    let page = listed.map_err(wit_error)?;
    Ok(exports::browse::Page { entries: page.items.into_iter().map(entry).collect(), next: page.next })
}

fn project_entry(p: model::Project) -> Entry {
    Entry { id: p.id, name: p.name, kind: EntryKind::Project, parent_id: p.workspace_id, account_id: p.account_id, root_folder_id: p.root_folder_id }
}

fn item_kind(kind: &ItemKind) -> EntryKind {
    match kind {
        ItemKind::Folder => EntryKind::Folder,
        ItemKind::VersionStack => EntryKind::VersionStack,
        ItemKind::File | ItemKind::Other(_) => EntryKind::File,
    }
}

fn with_context<T>(f: impl FnOnce(&Context) -> crate::error::Result<T>) -> crate::error::Result<T> {
    f(&Context::load(&WitHost)?)
}

impl exports::browse::Guest for Connector {
    fn accounts(user: String, cursor: Option<String>) -> Result<exports::browse::Page, types::Error> {
        let listed = with_context(|ctx| browse::accounts(ctx, &user, cursor.as_deref()));
        page(listed, |a| Entry { account_id: a.id.clone(), id: a.id, name: a.name, kind: EntryKind::Account, parent_id: String::new(), root_folder_id: String::new() })
    }

    fn workspaces(user: String, account_id: String, cursor: Option<String>) -> Result<exports::browse::Page, types::Error> {
        let listed = with_context(|ctx| browse::workspaces(ctx, &user, &account_id, cursor.as_deref()));
        page(listed, |w| Entry { id: w.id, name: w.name, kind: EntryKind::Workspace, parent_id: w.account_id.clone(), account_id: w.account_id, root_folder_id: String::new() })
    }

    fn projects(user: String, account_id: String, workspace_id: String, cursor: Option<String>) -> Result<exports::browse::Page, types::Error> {
        let listed = with_context(|ctx| browse::projects(ctx, &user, &account_id, &workspace_id, cursor.as_deref()));
        page(listed, project_entry)
    }

    fn shared_projects(user: String, cursor: Option<String>) -> Result<exports::browse::Page, types::Error> {
        page(with_context(|ctx| browse::shared_projects(ctx, &user, cursor.as_deref())), project_entry)
    }

    fn children(user: String, account_id: String, folder_id: String, kinds: ChildKinds, cursor: Option<String>) -> Result<exports::browse::Page, types::Error> {
        let wanted: Vec<ItemKind> = [(ChildKinds::FOLDERS, ItemKind::Folder), (ChildKinds::FILES, ItemKind::File), (ChildKinds::VERSION_STACKS, ItemKind::VersionStack)]
            .into_iter()
            .filter(|(flag, _)| kinds & *flag == *flag)
            .map(|(_, kind)| kind)
            .collect();
        let listed = with_context(|ctx| browse::children(ctx, &user, &account_id, &folder_id, &wanted, cursor.as_deref()));
        page(listed, |i| Entry { kind: item_kind(&i.kind), id: i.id, name: i.name, parent_id: i.parent_id, account_id: account_id.clone(), root_folder_id: String::new() })
    }
}

fn binding(b: bindings::Binding) -> exports::bindings::Binding {
    exports::bindings::Binding {
        id: b.id,
        folder_id: b.folder_id,
        api: b.generation.name().into(),
        account_id: b.account_id,
        workspace_id: b.workspace_id,
        project_id: b.project_id,
        project_name: b.project_name,
        action_id: b.action_id,
        action_name: b.action_name,
        user: b.user,
        created_at: b.created_at,
    }
}

impl exports::bindings::Guest for Connector {
    fn bind(req: exports::bindings::BindRequest) -> Result<exports::bindings::Binding, types::Error> {
        let req = bindings::BindRequest {
            user: req.user,
            folder_id: req.folder_id,
            account_id: req.account_id,
            project_id: req.project_id,
            action_name: req.action_name,
        };
        with_context(|ctx| bindings::bind(ctx, &req)).map(binding).map_err(wit_error)
    }

    fn unbind(id: String) -> Result<(), types::Error> {
        with_context(|ctx| bindings::unbind(ctx, &id)).map_err(wit_error)
    }

    fn list_bindings() -> Result<Vec<exports::bindings::Binding>, types::Error> {
        Ok(bindings::list(&WitHost).map_err(wit_error)?.into_iter().map(binding).collect())
    }
}

impl exports::inbound::Guest for Connector {
    fn handle(req: exports::inbound::Request) -> exports::inbound::Reply {
        let req = inbound::Request {
            method: req.method,
            path: req.path,
            query: req.query,
            headers: req.headers,
            body: req.body,
            received_at: req.received_at,
        };
        let reply = inbound::handle(&WitHost, &req);
        exports::inbound::Reply {
            status: reply.status,
            headers: reply.headers,
            body: reply.body,
            enqueue: reply
                .enqueue
                .into_iter()
                .map(|j| types::JobRequest { key: j.key, kind: j.kind, payload: j.payload })
                .collect(),
        }
    }
}

fn job_requests(jobs: Vec<crate::flows::JobRequest>) -> Vec<types::JobRequest> {
    jobs.into_iter().map(|j| types::JobRequest { key: j.key, kind: j.kind, payload: j.payload }).collect()
}

impl exports::jobs::Guest for Connector {
    fn run(job: exports::jobs::Job) -> exports::jobs::Outcome {
        let job = jobs::Job { id: job.id, key: job.key, kind: job.kind, payload: job.payload, attempt: job.attempt };
        let outcome = match Context::load(&WitHost) {
            Ok(ctx) => jobs::run(&ctx, &job),
            // The store could not be read: try again later, by the same policy.
            Err(e) if e.is_transient() && !jobs::retry::exhausted(job.attempt) => {
                jobs::Outcome::Retry(jobs::retry::delay_ms(&WitHost, job.attempt, None), e.to_string())
            }
            Err(e) => jobs::Outcome::Failed(e.to_string()),
        };
        match outcome {
            jobs::Outcome::Done { summary, enqueue } => {
                exports::jobs::Outcome::Done(exports::jobs::Finished { summary, enqueue: job_requests(enqueue) })
            }
            jobs::Outcome::Next { delay_ms, payload, status, wake_on_transfer, enqueue } => {
                exports::jobs::Outcome::Next(exports::jobs::NextStep { delay_ms, payload, status, wake_on_transfer, enqueue: job_requests(enqueue) })
            }
            jobs::Outcome::Retry(delay_ms, why) => exports::jobs::Outcome::Retry((delay_ms, why)),
            jobs::Outcome::Failed(why) => exports::jobs::Outcome::Failed(why),
        }
    }

    fn schedule() -> Vec<exports::jobs::ScheduledJob> {
        jobs::schedule(&WitHost)
            .into_iter()
            .map(|s| exports::jobs::ScheduledJob { job: job_requests(vec![s.job]).remove(0), every_secs: s.every_secs })
            .collect()
    }
}

impl exports::review::Guest for Connector {
    fn capabilities() -> Result<exports::review::ReviewCapabilities, types::Error> {
        let settings = settings::load(&WitHost).map_err(wit_error)?;
        let c = review::capabilities(settings.api);
        Ok(exports::review::ReviewCapabilities {
            password: c.password,
            expiry: c.expiry,
            invites: c.invites,
            watermark: c.watermark,
            watermark_note: c.watermark_note.into(),
        })
    }

    fn send(req: exports::review::ReviewRequest) -> Result<exports::review::ReviewTicket, types::Error> {
        use exports::review::Destination;
        let request = review::ReviewRequest {
            user: req.user,
            document_id: req.document_id,
            version: req.version,
            destination: match req.destination {
                Destination::Binding(id) => review::Destination::Binding(id),
                Destination::Structure(id) => review::Destination::Structure(id),
            },
            reviewers: req.reviewers,
            description: req.description,
            expires_at: req.expires_at,
            password: req.password,
            rendition: match req.rendition {
                repository::RenditionKind::Master => host::RenditionKind::Master,
                repository::RenditionKind::Proxy => host::RenditionKind::Proxy,
            },
            allow_download: req.allow_download,
            watermark: req.watermark,
        };
        let job = with_context(|ctx| review::send(ctx, request)).map_err(wit_error)?;
        Ok(exports::review::ReviewTicket { job: job_requests(vec![job]).remove(0) })
    }
}

fn dam_comment(c: exports::dam_events::DamComment) -> outgoing::DamComment {
    outgoing::DamComment { document_id: c.document_id, comment_id: c.comment_id, parent_id: c.parent_id, user: c.user, text: c.text, frame: c.frame }
}

impl exports::dam_events::Guest for Connector {
    fn notify(event: exports::dam_events::Event) -> Result<Vec<types::JobRequest>, types::Error> {
        use exports::dam_events::Event;
        let event = match event {
            Event::CommentAdded(c) => outgoing::DamEvent::CommentAdded(dam_comment(c)),
            Event::CommentEdited(c) => outgoing::DamEvent::CommentEdited(dam_comment(c)),
            Event::CommentDeleted(c) => outgoing::DamEvent::CommentDeleted(dam_comment(c)),
            Event::StatusChanged(s) => outgoing::DamEvent::StatusChanged { document_id: s.document_id, user: s.user, status: s.status },
        };
        outgoing::notify(&WitHost, event).map(job_requests).map_err(wit_error)
    }
}

wit::export!(Connector with_types_in wit);

fn archive_progress(p: archive::Progress) -> exports::archive::ArchiveProgress {
    use exports::archive::{ArchiveCounts, ArchiveProgress, ArchiveState as Wit};
    let r = p.record;
    ArchiveProgress {
        key: r.key,
        user: r.user,
        account_id: r.account_id,
        project_id: r.project_id,
        project_name: r.project_name,
        folder_id: r.folder_id,
        state: match r.state {
            archive::ArchiveState::Queued => Wit::Queued,
            archive::ArchiveState::Running => Wit::Running,
            archive::ArchiveState::Done => Wit::Done,
            archive::ArchiveState::Failed => Wit::Failed,
        },
        ahead: p.ahead,
        counts: ArchiveCounts {
            folders: r.folders,
            documents: p.totals.documents,
            versions: p.totals.versions,
            comments: p.totals.comments,
            bytes: p.totals.bytes,
            skipped: p.totals.skipped,
            found: r.found,
        },
        queued_at: r.queued_at_ms / 1000,
        started_at: r.started_at,
        finished_at: r.finished_at,
        message: r.message,
    }
}

/// Most archives `list` returns (the WIT's bound).
const MAX_ARCHIVES_LISTED: usize = 1000;

impl exports::archive::Guest for Connector {
    fn start(req: exports::archive::ArchiveRequest) -> Result<exports::archive::ArchiveTicket, types::Error> {
        let request = archive::ArchiveRequest { user: req.user, account_id: req.account_id, project_id: req.project_id, folder_id: req.folder_id };
        let (job, progress) = with_context(|ctx| archive::start(ctx, &request)).map_err(wit_error)?;
        Ok(exports::archive::ArchiveTicket { job: job_requests(vec![job]).remove(0), progress: archive_progress(progress) })
    }

    fn archives() -> Result<Vec<exports::archive::ArchiveProgress>, types::Error> {
        let all = with_context(|ctx| archive::list(ctx, MAX_ARCHIVES_LISTED)).map_err(wit_error)?;
        Ok(all.into_iter().map(archive_progress).collect())
    }
}
