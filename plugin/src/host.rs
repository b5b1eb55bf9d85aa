//! The connector's view of its host: one trait with a method per WIT import function.
//!
//! The connector's logic is written against [`Host`], never against the generated
//! bindings, so it builds and is unit-tested natively with an in-memory host. The
//! wasm glue (`wasm.rs`) implements [`Host`] by calling the real imports. The types
//! here mirror the WIT records one to one; see `wit/connector.wit` for their meaning.

use std::fmt;

/// An HTTP header, name and value.
pub type Header = (String, String);

/// HTTP methods the connector uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

impl Method {
    /// The method as HTTP spells it.
    pub fn name(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        }
    }
}

/// An outbound HTTP request (WIT `http.request`). Its headers and body carry
/// credentials, so `Debug` shows only the method and URL.
#[derive(Clone)]
pub struct HttpRequest {
    pub method: Method,
    pub url: String,
    pub headers: Vec<Header>,
    pub body: Vec<u8>,
    pub timeout_ms: u32,
}

impl fmt::Debug for HttpRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpRequest").field("method", &self.method).field("url", &self.url).finish_non_exhaustive()
    }
}

/// An HTTP response (WIT `http.response`); header names are lowercase.
#[derive(Clone, Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<Header>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The first value of a header, by lowercase name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// A stored value and its revision (WIT `storage.entry`). Values hold tokens and
/// secrets, so `Debug` shows only their size.
#[derive(Clone)]
pub struct Entry {
    pub value: Vec<u8>,
    pub revision: u64,
}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entry").field("bytes", &self.value.len()).field("revision", &self.revision).finish()
    }
}

/// A DAM folder (WIT `repository.folder`).
#[derive(Clone, Debug)]
pub struct Folder {
    pub id: String,
    pub path: String,
    pub title: String,
}

/// A DAM document (WIT `repository.document`).
#[derive(Clone, Debug)]
pub struct Document {
    pub id: String,
    pub folder_id: String,
    pub title: String,
    pub external_key: String,
    pub url: String,
    pub version_count: u32,
}

/// A document version (WIT `repository.version`).
#[derive(Clone, Debug)]
pub struct Version {
    pub id: String,
    pub document_id: String,
    pub number: u32,
    pub blob_id: String,
    pub size: u64,
}

/// What a DAM comment says (WIT `repository.comment-body`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CommentBody {
    pub author: String,
    pub text: String,
    pub created_at: u64,
    pub updated_at: u64,
    pub frame: Option<u64>,
    pub timecode: Option<String>,
    pub duration_frames: Option<u64>,
    pub page: Option<u32>,
    pub annotation: Option<String>,
    pub completed: bool,
}

/// A DAM comment (WIT `repository.comment`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Comment {
    pub id: String,
    pub document_id: String,
    pub external_key: Option<String>,
    pub parent_id: Option<String>,
    pub body: CommentBody,
}

/// Who receives a notification (WIT `notifications.recipient`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Recipient {
    DamUser(String),
    Email(String),
}

/// A notification (WIT `notifications.message`).
#[derive(Clone, Debug)]
pub struct Message {
    pub to: Recipient,
    pub subject: String,
    pub body: String,
    pub link: Option<String>,
}

/// What to download (WIT `transfer.download-request`).
#[derive(Clone, Debug)]
pub struct DownloadRequest {
    pub key: String,
    pub url: String,
    pub expected_size: u64,
    pub expected_xxhash64: Option<String>,
}

/// One part of an upload (WIT `transfer.upload-part`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadPart {
    pub url: String,
    pub size: u64,
}

/// What to upload (WIT `transfer.upload-request`). Part URLs are presigned, so
/// `Debug` shows how many there are, not the URLs.
#[derive(Clone, PartialEq, Eq)]
pub struct UploadRequest {
    pub key: String,
    pub blob_id: String,
    pub parts: Vec<UploadPart>,
    pub headers: Vec<Header>,
}

impl fmt::Debug for UploadRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UploadRequest").field("key", &self.key).field("blob_id", &self.blob_id).field("parts", &self.parts.len()).finish()
    }
}

/// What a rendition is (WIT `repository.rendition-kind`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RenditionKind {
    #[default]
    Master,
    Proxy,
}

/// One rendition of a version (WIT `repository.rendition`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rendition {
    pub kind: RenditionKind,
    pub blob_id: String,
    pub size: u64,
    pub media_type: String,
    pub file_name: String,
}

/// A complete, verified blob (WIT `transfer.blob`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Blob {
    pub id: String,
    pub size: u64,
    pub xxhash64: String,
}

/// Why a transfer failed (WIT `transfer.transfer-error`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TransferError {
    Denied(String),
    HttpStatus(u16),
    SizeMismatch(u64),
    ChecksumMismatch(String),
    InvalidRequest(String),
    Io(String),
}

impl fmt::Display for TransferError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransferError::Denied(why) => write!(f, "download refused by the host: {why}"),
            TransferError::HttpStatus(code) => write!(f, "Frame.io storage answered HTTP {code}"),
            TransferError::SizeMismatch(got) => write!(f, "the file arrived with the wrong size ({got} bytes)"),
            TransferError::ChecksumMismatch(got) => {
                write!(f, "the file arrived damaged (xxHash64 {got} does not match Frame.io's)")
            }
            TransferError::InvalidRequest(why) => write!(f, "invalid download request: {why}"),
            TransferError::Io(why) => write!(f, "download failed: {why}"),
        }
    }
}

/// Where a transfer stands (WIT `transfer.transfer-status`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TransferStatus {
    Running { done: u64, total: u64 },
    Complete(Blob),
    Failed(TransferError),
}

/// A failure of a host import, with the import's own words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostError {
    /// Storage `compare-and-swap` found another revision.
    Conflict,
    /// A repository or notification target does not exist.
    NotFound(String),
    /// The host refused the call's arguments or its destination.
    Refused(String),
    /// A passing failure: timeout, connection, unavailable store.
    Unavailable(String),
}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostError::Conflict => f.write_str("the stored value changed concurrently"),
            HostError::NotFound(what) => write!(f, "not found: {what}"),
            HostError::Refused(why) => write!(f, "refused: {why}"),
            HostError::Unavailable(why) => write!(f, "unavailable: {why}"),
        }
    }
}

/// Result of a host import call.
pub type HostResult<T> = Result<T, HostError>;

/// Everything the connector needs from its host.
pub trait Host {
    // http
    fn http_send(&self, req: HttpRequest) -> HostResult<HttpResponse>;

    // storage
    fn storage_get(&self, key: &str) -> HostResult<Option<Entry>>;
    fn storage_set(&self, key: &str, value: &[u8]) -> HostResult<u64>;
    fn storage_set_expiring(&self, key: &str, value: &[u8], expires_at: u64) -> HostResult<u64>;
    fn storage_cas(&self, key: &str, expected: Option<u64>, value: &[u8]) -> HostResult<u64>;
    fn storage_delete(&self, key: &str) -> HostResult<bool>;
    fn storage_list(&self, prefix: &str) -> HostResult<Vec<String>>;

    // repository
    fn get_folder(&self, id: &str) -> HostResult<Folder>;
    fn ensure_folder(&self, parent_id: &str, external_key: &str, title: &str) -> HostResult<Folder>;
    fn set_folder_properties(&self, folder_id: &str, properties: &[(String, String)]) -> HostResult<()>;
    fn find_document(&self, folder_id: &str, external_key: &str) -> HostResult<Option<Document>>;
    fn ensure_document(&self, folder_id: &str, external_key: &str, title: &str) -> HostResult<Document>;
    fn add_version(
        &self,
        document_id: &str,
        version_key: &str,
        blob_id: &str,
        properties: &[(String, String)],
    ) -> HostResult<Version>;

    fn get_document(&self, id: &str) -> HostResult<Document>;
    fn renditions(&self, document_id: &str, number: u32) -> HostResult<Vec<Rendition>>;
    fn set_properties(&self, document_id: &str, properties: &[(String, String)]) -> HostResult<()>;
    fn put_comment(&self, document_id: &str, external_key: &str, parent_key: Option<&str>, body: &CommentBody) -> HostResult<Comment>;
    fn set_comment_key(&self, comment_id: &str, external_key: &str) -> HostResult<()>;
    fn delete_comment(&self, document_id: &str, external_key: &str) -> HostResult<bool>;
    fn list_comments(&self, document_id: &str) -> HostResult<Vec<Comment>>;

    // notifications
    fn notify(&self, message: Message) -> HostResult<()>;

    // transfer
    fn start_download(&self, req: DownloadRequest) -> Result<TransferStatus, TransferError>;
    fn start_upload(&self, req: UploadRequest) -> Result<TransferStatus, TransferError>;
    fn transfer_status(&self, key: &str) -> Result<Option<TransferStatus>, TransferError>;

    // What a wasm32-wasip2 std build gets from WASI: the clock and randomness.
    /// Seconds since the Unix epoch.
    fn now(&self) -> u64;
    /// `n` bytes from a cryptographically secure source.
    fn random_bytes(&self, n: usize) -> Vec<u8>;
    /// Waits `ms` milliseconds (WASI's monotonic clock), for example for another
    /// call's token refresh. Counts against the host's per-call deadline.
    fn sleep_ms(&self, ms: u32);
    /// The time in Unix milliseconds, for pacing calls; hosts without a finer clock
    /// than `now` may keep this default.
    fn now_ms(&self) -> u64 {
        self.now() * 1000
    }
}
