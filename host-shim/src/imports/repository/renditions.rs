//! The renditions of a version, for sending to Frame.io: its master (the version's
//! own blob) and, where the DAM made one, a proxy.

use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use super::{Repository, RepositoryError, Result};

/// A rendition's kind, as the WIT spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RenditionKind {
    Master,
    Proxy,
}

impl RenditionKind {
    fn name(self) -> &'static str {
        match self {
            RenditionKind::Master => "master",
            RenditionKind::Proxy => "proxy",
        }
    }
}

/// One rendition of a version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Rendition {
    pub kind: RenditionKind,
    pub blob_id: String,
    pub size: u64,
    pub media_type: String,
    pub file_name: String,
}

/// A media type for a file name, from its extension; empty when unknown.
fn media_type_of(name: &str) -> &'static str {
    let extension = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
    match extension.as_str() {
        "mp4" | "m4v" => "video/mp4",
        "mov" => "video/quicktime",
        "mxf" => "application/mxf",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "pdf" => "application/pdf",
        "wav" => "audio/wav",
        _ => "",
    }
}

impl Repository {
    /// The renditions of version `number` of a document (0: the newest).
    pub fn renditions(&self, document_id: &str, number: u32) -> Result<Vec<Rendition>> {
        let document = self.get_document(document_id)?;
        let versions = self.list_versions(document_id)?;
        let version = match number {
            0 => versions.last(),
            n => versions.iter().find(|v| v.number == n),
        }
        .ok_or_else(|| RepositoryError::NotFound(format!("version {number} of document {document_id}")))?;
        let recorded_type = self
            .version_properties(&version.id)?
            .into_iter()
            .find(|(name, _)| name == "frameio.filetype")
            .map(|(_, value)| value);
        let master_type = recorded_type.unwrap_or_else(|| media_type_of(&document.title).to_string());
        let mut renditions =
            vec![Rendition { kind: RenditionKind::Master, blob_id: version.blob_id.clone(), size: version.size, media_type: master_type, file_name: document.title.clone() }];
        let proxy = self.db.with(|c| {
            c.query_row(
                "SELECT renditions.blob_id, blobs.size, renditions.media_type FROM renditions JOIN blobs ON blobs.id = renditions.blob_id
                 WHERE version_id = ?1 AND kind = 'proxy'",
                [&version.id],
                |row| Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?, row.get::<_, String>(2)?)),
            )
            .optional()
        })?;
        if let Some((blob_id, size, media_type)) = proxy {
            renditions.push(Rendition { kind: RenditionKind::Proxy, blob_id, size: size.max(0) as u64, media_type, file_name: document.title });
        }
        Ok(renditions)
    }

    /// Records a rendition the DAM made of a version (the admin API and tests stand
    /// in for the DAM's transcoder). The blob must be complete.
    pub fn add_rendition(&self, version_id: &str, kind: RenditionKind, blob_id: &str, media_type: &str) -> Result<()> {
        if kind == RenditionKind::Master {
            return Err(RepositoryError::Invalid("a version's master is its own content".into()));
        }
        self.db.with(|c| {
            let known: Option<i64> = c.query_row("SELECT size FROM blobs WHERE id = ?1", [blob_id], |r| r.get(0)).optional()?;
            if known.is_none() {
                return Err(RepositoryError::Invalid(format!("unknown blob {blob_id}")));
            }
            c.execute(
                "INSERT INTO renditions (version_id, kind, blob_id, media_type) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (version_id, kind) DO UPDATE SET blob_id = excluded.blob_id, media_type = excluded.media_type",
                params![version_id, kind.name(), blob_id, media_type],
            )?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::fixture;
    use super::*;

    #[test]
    fn a_version_has_its_master_and_a_proxy_where_one_was_made() {
        let f = fixture();
        let doc = f.document();
        let master = f.blob(b"the master");
        f.repo.add_version(&doc.id, "k1", &master.id, &[("frameio.filetype".into(), "video/quicktime".into())]).unwrap();
        let renditions = f.repo.renditions(&doc.id, 0).unwrap();
        assert_eq!(renditions.len(), 1);
        assert_eq!((renditions[0].kind, renditions[0].size, renditions[0].media_type.as_str()), (RenditionKind::Master, 10, "video/quicktime"));
        let version = f.repo.list_versions(&doc.id).unwrap()[0].clone();
        let proxy = f.blob(b"small");
        f.repo.add_rendition(&version.id, RenditionKind::Proxy, &proxy.id, "video/mp4").unwrap();
        let renditions = f.repo.renditions(&doc.id, 1).unwrap();
        assert_eq!(renditions[1].kind, RenditionKind::Proxy);
        assert_eq!(renditions[1].size, 5);
        assert!(matches!(f.repo.renditions(&doc.id, 7), Err(RepositoryError::NotFound(_))));
        assert!(f.repo.add_rendition(&version.id, RenditionKind::Proxy, "blob-unknown", "video/mp4").is_err());
    }
}
