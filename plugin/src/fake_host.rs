//! An in-memory [`Host`] for unit tests: storage with real compare-and-swap, a
//! repository with the WIT's idempotency rules, scripted HTTP and transfers.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;

use crate::host::*;

type Responder = Box<dyn Fn(&HttpRequest) -> HttpResponse>;

pub struct FakeHost {
    pub now: Cell<u64>,
    pub kv: RefCell<BTreeMap<String, Entry>>,
    /// Keys written with `storage_set_expiring`, and when they expire.
    pub expiries: RefCell<BTreeMap<String, u64>>,
    pub folders: RefCell<Vec<Folder>>,
    /// Folders made by `ensure_folder`, by parent and key.
    pub folder_keys: RefCell<BTreeMap<(String, String), String>>,
    /// Properties set on folders, by folder id.
    pub folder_properties: RefCell<BTreeMap<String, BTreeMap<String, String>>>,
    pub documents: RefCell<Vec<Document>>,
    pub versions: RefCell<Vec<(String, Version)>>,
    /// Properties set on documents, by document id.
    pub properties: RefCell<BTreeMap<String, BTreeMap<String, String>>>,
    pub comments: RefCell<Vec<Comment>>,
    /// Renditions by document: what `renditions` answers for any version.
    pub renditions: RefCell<BTreeMap<String, Vec<Rendition>>>,
    /// Uploads started, by key.
    pub uploads: RefCell<BTreeMap<String, UploadRequest>>,
    pub sent: RefCell<Vec<Message>>,
    pub requests: RefCell<Vec<HttpRequest>>,
    pub transfers: RefCell<BTreeMap<String, TransferStatus>>,
    /// Status a newly started transfer gets.
    pub next_transfer: RefCell<TransferStatus>,
    responder: RefCell<Responder>,
    counter: Cell<u8>,
    /// Storage writes that land while the next token request is in flight, as
    /// another call racing this one would make them.
    pub writes_during_token_request: RefCell<Vec<(String, Vec<u8>)>>,
    /// Storage writes that land during the next sleep, as another call would make them.
    pub writes_during_sleep: RefCell<Vec<(String, Vec<u8>)>>,
    /// Milliseconds slept in all; the clock moves on with them.
    pub slept_ms: Cell<u64>,
}

impl Default for FakeHost {
    fn default() -> Self {
        Self::new()
    }
}

impl FakeHost {
    pub fn new() -> Self {
        FakeHost {
            now: Cell::new(1_700_000_000),
            kv: RefCell::default(),
            expiries: RefCell::default(),
            folders: RefCell::new(vec![Folder { id: "f1".into(), path: "/Marketing".into(), title: "Marketing".into() }]),
            folder_keys: RefCell::default(),
            folder_properties: RefCell::default(),
            documents: RefCell::default(),
            versions: RefCell::default(),
            properties: RefCell::default(),
            comments: RefCell::default(),
            renditions: RefCell::default(),
            uploads: RefCell::default(),
            sent: RefCell::default(),
            requests: RefCell::default(),
            transfers: RefCell::default(),
            next_transfer: RefCell::new(TransferStatus::Running { done: 0, total: 10 }),
            responder: RefCell::new(Box::new(|_| json_response(404, "{}"))),
            counter: Cell::new(0),
            writes_during_token_request: RefCell::default(),
            writes_during_sleep: RefCell::default(),
            slept_ms: Cell::new(0),
        }
    }

    /// Answers outbound HTTP with `f`.
    /// Drops the keys whose expiry has come, as the host would.
    fn forget_expired(&self) {
        let now = self.now.get();
        let expired: Vec<String> = self.expiries.borrow().iter().filter(|(_, at)| **at <= now).map(|(k, _)| k.clone()).collect();
        for key in expired {
            self.expiries.borrow_mut().remove(&key);
            self.kv.borrow_mut().remove(&key);
        }
    }

    pub fn respond_with(&self, f: impl Fn(&HttpRequest) -> HttpResponse + 'static) {
        *self.responder.borrow_mut() = Box::new(f);
    }

    pub fn requests_to(&self, needle: &str) -> usize {
        self.requests.borrow().iter().filter(|r| r.url.contains(needle)).count()
    }
}

/// A JSON response.
pub fn json_response(status: u16, body: &str) -> HttpResponse {
    HttpResponse { status, headers: vec![("content-type".into(), "application/json".into())], body: body.as_bytes().to_vec() }
}

impl Host for FakeHost {
    fn http_send(&self, req: HttpRequest) -> HostResult<HttpResponse> {
        if req.url.ends_with("/oauth2/token") {
            for (key, value) in self.writes_during_token_request.take() {
                self.storage_set(&key, &value)?;
            }
        }
        let resp = (self.responder.borrow())(&req);
        self.requests.borrow_mut().push(req);
        Ok(resp)
    }

    fn storage_get(&self, key: &str) -> HostResult<Option<Entry>> {
        self.forget_expired();
        Ok(self.kv.borrow().get(key).cloned())
    }

    fn storage_set(&self, key: &str, value: &[u8]) -> HostResult<u64> {
        self.expiries.borrow_mut().remove(key);
        let mut kv = self.kv.borrow_mut();
        let revision = kv.get(key).map_or(1, |e| e.revision + 1);
        kv.insert(key.to_string(), Entry { value: value.to_vec(), revision });
        Ok(revision)
    }

    fn storage_set_expiring(&self, key: &str, value: &[u8], expires_at: u64) -> HostResult<u64> {
        let revision = self.storage_set(key, value)?;
        self.expiries.borrow_mut().insert(key.to_string(), expires_at);
        Ok(revision)
    }

    fn storage_cas(&self, key: &str, expected: Option<u64>, value: &[u8]) -> HostResult<u64> {
        self.forget_expired();
        let current = self.kv.borrow().get(key).map(|e| e.revision);
        if current != expected {
            return Err(HostError::Conflict);
        }
        self.storage_set(key, value)
    }

    fn storage_delete(&self, key: &str) -> HostResult<bool> {
        self.forget_expired();
        Ok(self.kv.borrow_mut().remove(key).is_some())
    }

    /// At most 1000 keys, in byte order, as the storage contract says a host answers.
    fn storage_list(&self, prefix: &str) -> HostResult<Vec<String>> {
        self.forget_expired();
        Ok(self.kv.borrow().keys().filter(|k| k.starts_with(prefix)).take(1000).cloned().collect())
    }

    fn get_folder(&self, id: &str) -> HostResult<Folder> {
        self.folders.borrow().iter().find(|f| f.id == id).cloned().ok_or(HostError::NotFound(id.into()))
    }

    fn ensure_folder(&self, parent_id: &str, external_key: &str, title: &str) -> HostResult<Folder> {
        let parent = self.get_folder(parent_id)?;
        let key = (parent_id.to_string(), external_key.to_string());
        if let Some(id) = self.folder_keys.borrow().get(&key) {
            return self.get_folder(id);
        }
        let id = format!("f{}", self.folders.borrow().len() + 1);
        let folder = Folder { id: id.clone(), path: format!("{}/{title}", parent.path), title: title.into() };
        self.folders.borrow_mut().push(folder.clone());
        self.folder_keys.borrow_mut().insert(key, id);
        Ok(folder)
    }

    fn set_folder_properties(&self, folder_id: &str, properties: &[(String, String)]) -> HostResult<()> {
        self.get_folder(folder_id)?;
        self.folder_properties.borrow_mut().entry(folder_id.into()).or_default().extend(properties.iter().cloned());
        Ok(())
    }

    fn find_document(&self, folder_id: &str, external_key: &str) -> HostResult<Option<Document>> {
        Ok(self.documents.borrow().iter().find(|d| d.folder_id == folder_id && d.external_key == external_key).cloned())
    }

    fn ensure_document(&self, folder_id: &str, external_key: &str, title: &str) -> HostResult<Document> {
        if let Some(doc) = self.find_document(folder_id, external_key)? {
            return Ok(doc);
        }
        let id = format!("doc{}", self.documents.borrow().len() + 1);
        let doc = Document {
            id: id.clone(),
            folder_id: folder_id.into(),
            title: title.into(),
            external_key: external_key.into(),
            url: format!("http://dam/documents/{id}"),
            version_count: 0,
        };
        self.documents.borrow_mut().push(doc.clone());
        Ok(doc)
    }

    fn add_version(&self, document_id: &str, version_key: &str, blob_id: &str, _props: &[(String, String)]) -> HostResult<Version> {
        if let Some((_, v)) = self.versions.borrow().iter().find(|(k, v)| k == version_key && v.document_id == document_id) {
            return Ok(v.clone());
        }
        let mut documents = self.documents.borrow_mut();
        let doc = documents.iter_mut().find(|d| d.id == document_id).ok_or(HostError::NotFound(document_id.into()))?;
        doc.version_count += 1;
        let version = Version {
            id: format!("{document_id}-v{}", doc.version_count),
            document_id: document_id.into(),
            number: doc.version_count,
            blob_id: blob_id.into(),
            size: 10,
        };
        self.versions.borrow_mut().push((version_key.into(), version.clone()));
        Ok(version)
    }

    fn get_document(&self, id: &str) -> HostResult<Document> {
        self.documents.borrow().iter().find(|d| d.id == id).cloned().ok_or(HostError::NotFound(id.into()))
    }

    fn renditions(&self, document_id: &str, _number: u32) -> HostResult<Vec<Rendition>> {
        self.renditions.borrow().get(document_id).cloned().ok_or(HostError::NotFound(document_id.into()))
    }

    fn set_properties(&self, document_id: &str, properties: &[(String, String)]) -> HostResult<()> {
        if !self.documents.borrow().iter().any(|d| d.id == document_id) {
            return Err(HostError::NotFound(document_id.into()));
        }
        let mut all = self.properties.borrow_mut();
        all.entry(document_id.into()).or_default().extend(properties.iter().cloned());
        Ok(())
    }

    fn put_comment(&self, document_id: &str, external_key: &str, parent_key: Option<&str>, body: &CommentBody) -> HostResult<Comment> {
        let mut comments = self.comments.borrow_mut();
        let by_key = |c: &Comment, key: &str| c.document_id == document_id && c.external_key.as_deref() == Some(key);
        let parent_id = match parent_key {
            Some(key) => Some(comments.iter().find(|c| by_key(c, key)).map(|c| c.id.clone()).ok_or(HostError::NotFound(key.into()))?),
            None => None,
        };
        if let Some(existing) = comments.iter_mut().find(|c| by_key(c, external_key)) {
            existing.body = body.clone();
            existing.parent_id = parent_id;
            return Ok(existing.clone());
        }
        let comment = Comment {
            id: format!("c{}", comments.len() + 1),
            document_id: document_id.into(),
            external_key: Some(external_key.into()),
            parent_id,
            body: body.clone(),
        };
        comments.push(comment.clone());
        Ok(comment)
    }

    fn set_comment_key(&self, comment_id: &str, external_key: &str) -> HostResult<()> {
        let mut comments = self.comments.borrow_mut();
        let comment = comments.iter_mut().find(|c| c.id == comment_id).ok_or(HostError::NotFound(comment_id.into()))?;
        comment.external_key = Some(external_key.into());
        Ok(())
    }

    fn delete_comment(&self, document_id: &str, external_key: &str) -> HostResult<bool> {
        let mut comments = self.comments.borrow_mut();
        let Some(id) = comments.iter().find(|c| c.document_id == document_id && c.external_key.as_deref() == Some(external_key)).map(|c| c.id.clone()) else {
            return Ok(false);
        };
        comments.retain(|c| c.id != id && c.parent_id.as_deref() != Some(id.as_str()));
        Ok(true)
    }

    fn list_comments(&self, document_id: &str) -> HostResult<Vec<Comment>> {
        Ok(self.comments.borrow().iter().filter(|c| c.document_id == document_id).cloned().collect())
    }

    fn notify(&self, message: Message) -> HostResult<()> {
        self.sent.borrow_mut().push(message);
        Ok(())
    }

    fn start_download(&self, req: DownloadRequest) -> Result<TransferStatus, TransferError> {
        let mut transfers = self.transfers.borrow_mut();
        let status = transfers.entry(req.key).or_insert_with(|| self.next_transfer.borrow().clone());
        Ok(status.clone())
    }

    fn start_upload(&self, req: UploadRequest) -> Result<TransferStatus, TransferError> {
        let mut transfers = self.transfers.borrow_mut();
        let status = transfers.entry(req.key.clone()).or_insert_with(|| self.next_transfer.borrow().clone()).clone();
        self.uploads.borrow_mut().entry(req.key.clone()).or_insert(req);
        Ok(status)
    }

    fn transfer_status(&self, key: &str) -> Result<Option<TransferStatus>, TransferError> {
        Ok(self.transfers.borrow().get(key).cloned())
    }

    fn now(&self) -> u64 {
        self.now.get()
    }

    fn random_bytes(&self, n: usize) -> Vec<u8> {
        // Distinct per call, so generated ids and states differ.
        self.counter.set(self.counter.get().wrapping_add(1));
        vec![self.counter.get(); n]
    }

    fn sleep_ms(&self, ms: u32) {
        let before = self.slept_ms.get();
        let after = before + u64::from(ms);
        self.slept_ms.set(after);
        self.now.set(self.now.get() + after / 1000 - before / 1000);
        for (key, value) in self.writes_during_sleep.take() {
            self.storage_set(&key, &value).unwrap();
        }
    }
}

/// Settings pointing at the scripted Frame.io below.
pub fn configure(host: &FakeHost) {
    let form = [("client-id", "cid"), ("client-secret", "csecret"), ("public-url", "https://dam.example.com/frameio")];
    let form: Vec<(String, String)> = form.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    crate::settings::configure(host, &form).unwrap();
}

/// Stores a connection for `user` whose token expires at `expires_at`.
pub fn connect(host: &FakeHost, user: &str, expires_at: u64) {
    let conn = serde_json::json!({
        "user": user, "frameio_user": "Ada <ada@example.com>", "access_token": "tok-1",
        "refresh_token": "ref-1", "expires_at": expires_at, "reconnect_reason": null
    });
    host.storage_set(&format!("{}{user}", crate::store::CONNECTION), conn.to_string().as_bytes()).unwrap();
}

/// A scripted Frame.io v2: a project `p1` in team `t1`, assets `a1` (file),
/// `fold` (folder), `up` (still uploading), `v2` (in version stack `vs`).
pub fn serve_frameio(host: &FakeHost) {
    host.respond_with(|req| {
        let path = req.url.split_once("/v2").map(|x| x.1).unwrap_or("").split('?').next().unwrap_or("");
        let file = |id: &str, parent: &str, uploaded: bool| {
            serde_json::json!({
                "id": id, "name": format!("{id}.mov"), "type": "file", "parent_id": parent, "project_id": "p1",
                "team_id": "t1", "filesize": 10, "filetype": "video/quicktime", "fps": 24.0, "duration": 2.5,
                "frames": 60, "label": "approved", "checksums": {"xx_hash": "00112233445566AA"},
                "original": if uploaded { Some(format!("https://s3.example/{id}")) } else { None },
                "upload_completed_at": if uploaded { Some("2024-01-01T00:00:00Z") } else { None },
                "creator": {"id": "u9", "name": "Uma", "email": "uma@example.com"},
                "project": {"id": "p1", "name": "Spring", "root_asset_id": "root"}
            })
            .to_string()
        };
        if req.url.ends_with("/oauth2/token") {
            return json_response(200, r#"{"access_token":"tok-2","refresh_token":"ref-2","expires_in":3600}"#);
        }
        match (req.method, path) {
            (Method::Get, "/me") => json_response(200, r#"{"id":"u1","name":"Ada","email":"ada@example.com"}"#),
            (Method::Get, "/projects/p1") => json_response(200, r#"{"id":"p1","name":"Spring","team_id":"t1","root_asset_id":"root"}"#),
            (Method::Get, "/teams/t1/actions") => json_response(200, r#"[{"id":"x1","name":"Send to Archive"}]"#),
            (Method::Post, "/teams/t1/actions") => json_response(200, r#"{"id":"act1","name":"n","webhook":{"secret":"whsec"}}"#),
            (Method::Delete, "/actions/act1") => json_response(204, ""),
            (Method::Get, "/teams/t1/members") => {
                json_response(200, r#"[{"user_id":"u7","user":{"id":"u7","name":"Pat","email":"pat@example.com"}}]"#)
            }
            (Method::Get, "/assets/a1") => json_response(200, &file("a1", "root", true)),
            (Method::Get, "/assets/up") => json_response(200, &file("up", "root", false)),
            (Method::Get, "/assets/v2") => json_response(200, &file("v2", "vs", true)),
            (Method::Get, "/assets/vs") => json_response(200, r#"{"id":"vs","name":"clip","type":"version_stack"}"#),
            (Method::Get, "/assets/root") => json_response(200, r#"{"id":"root","name":"root","type":"folder"}"#),
            (Method::Get, "/assets/fold") => json_response(200, r#"{"id":"fold","name":"Dailies","type":"folder","parent_id":"root"}"#),
            _ => json_response(404, r#"{"code":404,"message":"Not Found","errors":[{"detail":"no such thing"}]}"#),
        }
    });
}
