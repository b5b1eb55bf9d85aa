//! The component's imports, implemented by the host's services. Only conversions
//! between the generated WIT types and the services' own types live here; the
//! behaviour (limits, validation, durability) is in `crate::imports`.

use super::HostState;
use super::wit::frameio_dam::connector::{http, notifications, repository, storage, transfer, types};
use crate::imports::http as host_http;
use crate::imports::notifications as host_notifications;
use crate::imports::repository as host_repository;
use crate::imports::storage as host_storage;
use crate::imports::transfer as host_transfer;

impl types::Host for HostState {}

impl http::Host for HostState {
    async fn send(&mut self, req: http::Request) -> Result<http::Response, http::HttpError> {
        let method = match req.method {
            http::Method::Get => "GET",
            http::Method::Head => "HEAD",
            http::Method::Post => "POST",
            http::Method::Put => "PUT",
            http::Method::Patch => "PATCH",
            http::Method::Delete => "DELETE",
        };
        let request = host_http::Request {
            method: method.to_string(),
            url: req.url,
            headers: req.headers,
            body: req.body,
            timeout_ms: req.timeout_ms,
        };
        match self.services.http.send(request).await {
            Ok(r) => Ok(http::Response { status: r.status, headers: r.headers, body: r.body }),
            Err(e) => Err(match e {
                host_http::HttpError::Denied(why) => http::HttpError::Denied(why),
                host_http::HttpError::InvalidRequest(why) => http::HttpError::InvalidRequest(why),
                host_http::HttpError::Timeout => http::HttpError::Timeout,
                host_http::HttpError::Connection(why) => http::HttpError::Connection(why),
                host_http::HttpError::TooLarge(limit) => http::HttpError::TooLarge(limit),
            }),
        }
    }
}

fn storage_error(e: host_storage::StorageError) -> storage::StorageError {
    match e {
        host_storage::StorageError::Conflict => storage::StorageError::Conflict,
        host_storage::StorageError::InvalidKey(why) => storage::StorageError::InvalidKey(why),
        host_storage::StorageError::TooLarge(limit) => storage::StorageError::TooLarge(limit),
        host_storage::StorageError::Unavailable(why) => storage::StorageError::Unavailable(why),
    }
}

impl storage::Host for HostState {
    async fn get(&mut self, key: String) -> Result<Option<storage::Entry>, storage::StorageError> {
        let entry = self.services.storage.get(&key).map_err(storage_error)?;
        Ok(entry.map(|e| storage::Entry { value: e.value, revision: e.revision }))
    }

    async fn set(&mut self, key: String, value: Vec<u8>) -> Result<u64, storage::StorageError> {
        self.services.storage.set(&key, &value).map_err(storage_error)
    }

    async fn set_expiring(&mut self, key: String, value: Vec<u8>, expires_at: u64) -> Result<u64, storage::StorageError> {
        self.services.storage.set_expiring(&key, &value, expires_at).map_err(storage_error)
    }

    async fn compare_and_swap(&mut self, key: String, expected: Option<u64>, value: Vec<u8>) -> Result<u64, storage::StorageError> {
        self.services.storage.compare_and_swap(&key, expected, &value).map_err(storage_error)
    }

    async fn delete(&mut self, key: String) -> Result<bool, storage::StorageError> {
        self.services.storage.delete(&key).map_err(storage_error)
    }

    async fn list_keys(&mut self, prefix: String) -> Result<Vec<String>, storage::StorageError> {
        self.services.storage.list_keys(&prefix).map_err(storage_error)
    }
}

fn repository_error(e: host_repository::RepositoryError) -> repository::RepositoryError {
    match e {
        host_repository::RepositoryError::NotFound(what) => repository::RepositoryError::NotFound(what),
        host_repository::RepositoryError::Invalid(why) => repository::RepositoryError::Invalid(why),
        host_repository::RepositoryError::Unavailable(why) => repository::RepositoryError::Unavailable(why),
    }
}

fn document(d: host_repository::Document) -> repository::Document {
    repository::Document {
        id: d.id,
        folder_id: d.folder_id,
        title: d.title,
        external_key: d.external_key,
        url: d.url,
        version_count: d.version_count,
    }
}

impl repository::Host for HostState {
    async fn get_folder(&mut self, id: String) -> Result<repository::Folder, repository::RepositoryError> {
        let f = self.services.repository.get_folder(&id).map_err(repository_error)?;
        Ok(repository::Folder { id: f.id, path: f.path, title: f.title })
    }

    async fn ensure_folder(&mut self, parent_id: String, key: String, title: String) -> Result<repository::Folder, repository::RepositoryError> {
        let f = self.services.repository.ensure_folder(&parent_id, &key, &title).map_err(repository_error)?;
        Ok(repository::Folder { id: f.id, path: f.path, title: f.title })
    }

    async fn set_folder_properties(&mut self, folder_id: String, properties: Vec<types::Property>) -> Result<(), repository::RepositoryError> {
        let properties: Vec<(String, String)> = properties.into_iter().map(|p| (p.name, p.value)).collect();
        self.services.repository.set_folder_properties(&folder_id, &properties).map_err(repository_error)
    }

    async fn find_document(&mut self, folder_id: String, key: String) -> Result<Option<repository::Document>, repository::RepositoryError> {
        let found = self.services.repository.find_document(&folder_id, &key).map_err(repository_error)?;
        Ok(found.map(document))
    }

    async fn ensure_document(&mut self, folder_id: String, key: String, title: String) -> Result<repository::Document, repository::RepositoryError> {
        self.services.repository.ensure_document(&folder_id, &key, &title).map(document).map_err(repository_error)
    }

    async fn add_version(
        &mut self,
        document_id: String,
        version_key: String,
        blob_id: String,
        properties: Vec<types::Property>,
    ) -> Result<repository::Version, repository::RepositoryError> {
        let properties: Vec<(String, String)> = properties.into_iter().map(|p| (p.name, p.value)).collect();
        let v = self
            .services
            .repository
            .add_version(&document_id, &version_key, &blob_id, &properties)
            .map_err(repository_error)?;
        Ok(repository::Version { id: v.id, document_id: v.document_id, number: v.number, blob_id: v.blob_id, size: v.size })
    }

    async fn set_properties(&mut self, document_id: String, properties: Vec<types::Property>) -> Result<(), repository::RepositoryError> {
        let properties: Vec<(String, String)> = properties.into_iter().map(|p| (p.name, p.value)).collect();
        self.services.repository.set_document_properties(&document_id, &properties).map_err(repository_error)
    }

    async fn put_comment(
        &mut self,
        document_id: String,
        key: String,
        parent_key: Option<String>,
        body: repository::CommentBody,
    ) -> Result<repository::Comment, repository::RepositoryError> {
        let body = host_repository::CommentBody {
            author: body.author,
            text: body.text,
            created_at: body.created_at,
            updated_at: body.updated_at,
            frame: body.frame,
            timecode: body.timecode,
            duration_frames: body.duration_frames,
            page: body.page,
            annotation: body.annotation,
            completed: body.completed,
        };
        let stored = self.services.repository.put_comment(&document_id, &key, parent_key.as_deref(), &body).map_err(repository_error)?;
        Ok(comment(stored))
    }

    async fn set_comment_key(&mut self, comment_id: String, key: String) -> Result<(), repository::RepositoryError> {
        self.services.repository.set_comment_key(&comment_id, &key).map_err(repository_error)
    }

    async fn delete_comment(&mut self, document_id: String, key: String) -> Result<bool, repository::RepositoryError> {
        self.services.repository.delete_comment(&document_id, &key).map_err(repository_error)
    }

    async fn get_document(&mut self, id: String) -> Result<repository::Document, repository::RepositoryError> {
        self.services.repository.get_document(&id).map(document).map_err(repository_error)
    }

    async fn renditions(&mut self, document_id: String, number: u32) -> Result<Vec<repository::Rendition>, repository::RepositoryError> {
        let renditions = self.services.repository.renditions(&document_id, number).map_err(repository_error)?;
        Ok(renditions
            .into_iter()
            .map(|r| repository::Rendition {
                kind: match r.kind {
                    host_repository::RenditionKind::Master => repository::RenditionKind::Master,
                    host_repository::RenditionKind::Proxy => repository::RenditionKind::Proxy,
                },
                blob_id: r.blob_id,
                size: r.size,
                media_type: r.media_type,
                file_name: r.file_name,
            })
            .collect())
    }

    async fn list_comments(&mut self, document_id: String) -> Result<Vec<repository::Comment>, repository::RepositoryError> {
        Ok(self.services.repository.list_comments(&document_id).map_err(repository_error)?.into_iter().map(comment).collect())
    }
}

fn comment(c: host_repository::Comment) -> repository::Comment {
    let b = c.body;
    repository::Comment {
        id: c.id,
        document_id: c.document_id,
        external_key: c.external_key,
        parent_id: c.parent_id,
        body: repository::CommentBody {
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

impl notifications::Host for HostState {
    async fn send(&mut self, msg: notifications::Message) -> Result<(), notifications::NotifyError> {
        let to = match msg.to {
            notifications::Recipient::DamUser(user) => host_notifications::Recipient::DamUser(user),
            notifications::Recipient::Email(address) => host_notifications::Recipient::Email(address),
        };
        let message = host_notifications::Message { to, subject: msg.subject, body: msg.body, link: msg.link };
        match self.services.notifier.send(message).await {
            Ok(_) => Ok(()),
            Err(host_notifications::NotifyError::UnknownRecipient(who)) => Err(notifications::NotifyError::UnknownRecipient(who)),
            Err(host_notifications::NotifyError::Invalid(why)) => Err(notifications::NotifyError::InvalidMessage(why)),
            Err(host_notifications::NotifyError::Unavailable(why)) => Err(notifications::NotifyError::Unavailable(why)),
        }
    }
}

fn transfer_error(e: host_transfer::TransferError) -> transfer::TransferError {
    match e {
        host_transfer::TransferError::Denied(why) => transfer::TransferError::Denied(why),
        host_transfer::TransferError::HttpStatus(code) => transfer::TransferError::HttpStatus(code),
        host_transfer::TransferError::SizeMismatch(size) => transfer::TransferError::SizeMismatch(size),
        host_transfer::TransferError::ChecksumMismatch(hash) => transfer::TransferError::ChecksumMismatch(hash),
        host_transfer::TransferError::InvalidRequest(why) => transfer::TransferError::InvalidRequest(why),
        host_transfer::TransferError::Io(why) => transfer::TransferError::Io(why),
    }
}

fn transfer_status(s: host_transfer::TransferStatus) -> transfer::TransferStatus {
    match s {
        host_transfer::TransferStatus::Running { done, total } => transfer::TransferStatus::Running(transfer::Progress { done, total }),
        host_transfer::TransferStatus::Complete(b) => {
            transfer::TransferStatus::Complete(transfer::Blob { id: b.id, size: b.size, xxhash64: b.xxhash64 })
        }
        host_transfer::TransferStatus::Failed(e) => transfer::TransferStatus::Failed(transfer_error(e)),
    }
}

impl transfer::Host for HostState {
    async fn start_download(&mut self, req: transfer::DownloadRequest) -> Result<transfer::TransferStatus, transfer::TransferError> {
        let request = host_transfer::DownloadRequest {
            key: req.key,
            url: req.url,
            headers: req.headers,
            expected_size: req.expected_size,
            expected_xxhash64: req.expected_xxhash64,
        };
        self.services.transfers.start_download(request).await.map(transfer_status).map_err(transfer_error)
    }

    async fn start_upload(&mut self, req: transfer::UploadRequest) -> Result<transfer::TransferStatus, transfer::TransferError> {
        let request = host_transfer::UploadRequest {
            key: req.key,
            blob_id: req.blob_id,
            parts: req.parts.into_iter().map(|p| host_transfer::UploadPart { url: p.url, size: p.size }).collect(),
            headers: req.headers,
        };
        self.services.transfers.start_upload(request).await.map(transfer_status).map_err(transfer_error)
    }

    async fn status(&mut self, key: String) -> Result<Option<transfer::TransferStatus>, transfer::TransferError> {
        self.services.transfers.status(&key).map(|s| s.map(transfer_status)).map_err(transfer_error)
    }
}
