//! Comments on documents: the ones DAM users write (the admin API stands in for the
//! DAM's UI), and the ones the connector keeps in sync with Frame.io, found by its
//! external key. Also the properties set without a version (the review status).

use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};
use serde::Serialize;

use super::{Repository, RepositoryError, Result, check_properties};
use crate::db::{new_id, unix_secs};

/// Longest comment text.
const MAX_COMMENT_BYTES: usize = 64 * 1024;
/// Longest annotation (Frame.io's drawing JSON).
const MAX_ANNOTATION_BYTES: usize = 256 * 1024;
/// Longest external key.
const MAX_KEY_BYTES: usize = 512;
/// Most comments listed for one document.
const MAX_LISTED: usize = 10_000;

const COLUMNS: &str = "id, document_id, external_key, parent_id, author, text, created_at, updated_at, \
                       frame, timecode, duration_frames, page, annotation, completed";

/// What a comment says, where it points, and its state (WIT `repository.comment-body`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
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

/// A comment on a document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Comment {
    pub id: String,
    pub document_id: String,
    pub external_key: Option<String>,
    pub parent_id: Option<String>,
    #[serde(flatten)]
    pub body: CommentBody,
}

fn comment_from_row(row: &Row) -> rusqlite::Result<Comment> {
    let as_u64 = |v: Option<i64>| v.map(|n| n.max(0) as u64);
    Ok(Comment {
        id: row.get(0)?,
        document_id: row.get(1)?,
        external_key: row.get(2)?,
        parent_id: row.get(3)?,
        body: CommentBody {
            author: row.get(4)?,
            text: row.get(5)?,
            created_at: row.get::<_, i64>(6)?.max(0) as u64,
            updated_at: row.get::<_, i64>(7)?.max(0) as u64,
            frame: as_u64(row.get(8)?),
            timecode: row.get(9)?,
            duration_frames: as_u64(row.get(10)?),
            page: row.get(11)?,
            annotation: row.get(12)?,
            completed: row.get(13)?,
        },
    })
}

fn check_body(body: &CommentBody) -> Result<()> {
    if body.text.len() > MAX_COMMENT_BYTES {
        return Err(RepositoryError::Invalid(format!("the comment is longer than {MAX_COMMENT_BYTES} bytes")));
    }
    if body.annotation.as_ref().is_some_and(|a| a.len() > MAX_ANNOTATION_BYTES) {
        return Err(RepositoryError::Invalid(format!("the annotation is longer than {MAX_ANNOTATION_BYTES} bytes")));
    }
    if body.author.len() > 1024 || body.timecode.as_ref().is_some_and(|t| t.len() > 32) {
        return Err(RepositoryError::Invalid("the author or timecode is too long".into()));
    }
    Ok(())
}

fn check_key(key: &str) -> Result<()> {
    if key.is_empty() || key.len() > MAX_KEY_BYTES || key.chars().any(char::is_control) {
        return Err(RepositoryError::Invalid(format!("a comment key is 1 to {MAX_KEY_BYTES} bytes without control characters")));
    }
    Ok(())
}

fn to_i64(v: Option<u64>) -> Option<i64> {
    v.map(|n| i64::try_from(n).unwrap_or(i64::MAX))
}

fn find_by_key(c: &Connection, document_id: &str, key: &str) -> rusqlite::Result<Option<Comment>> {
    c.query_row(&format!("SELECT {COLUMNS} FROM comments WHERE document_id = ?1 AND external_key = ?2"), params![document_id, key], comment_from_row)
        .optional()
}

fn get(c: &Connection, id: &str) -> Result<Comment> {
    c.query_row(&format!("SELECT {COLUMNS} FROM comments WHERE id = ?1"), [id], comment_from_row)
        .optional()?
        .ok_or_else(|| RepositoryError::NotFound(format!("comment {id}")))
}

fn write_body(c: &Connection, id: &str, parent_id: Option<&str>, body: &CommentBody) -> rusqlite::Result<()> {
    c.execute(
        "UPDATE comments SET parent_id = ?2, author = ?3, text = ?4, created_at = ?5, updated_at = ?6, frame = ?7,
                timecode = ?8, duration_frames = ?9, page = ?10, annotation = ?11, completed = ?12 WHERE id = ?1",
        params![
            id,
            parent_id,
            body.author,
            body.text,
            to_i64(Some(body.created_at)),
            to_i64(Some(body.updated_at)),
            to_i64(body.frame),
            body.timecode,
            to_i64(body.duration_frames),
            body.page,
            body.annotation,
            body.completed
        ],
    )?;
    Ok(())
}

fn insert(c: &Connection, document_id: &str, key: Option<&str>, parent_id: Option<&str>, body: &CommentBody) -> rusqlite::Result<String> {
    let id = new_id("cmt-");
    c.execute(
        "INSERT INTO comments (id, document_id, external_key, author, text, created_at, updated_at) VALUES (?1, ?2, ?3, '', '', 0, 0)",
        params![id, document_id, key],
    )?;
    write_body(c, &id, parent_id, body)?;
    Ok(id)
}

/// Deletes a comment and, first, its replies (all the way down).
fn delete_thread(c: &Connection, id: &str) -> rusqlite::Result<()> {
    c.execute(
        "WITH RECURSIVE thread(id, depth) AS (SELECT ?1, 0 UNION ALL SELECT comments.id, depth + 1 FROM comments JOIN thread ON comments.parent_id = thread.id)
         DELETE FROM comments WHERE id IN (SELECT id FROM thread)",
        [id],
    )?;
    Ok(())
}

impl Repository {
    /// Creates or replaces the comment with `key` on a document (WIT `put-comment`).
    pub fn put_comment(&self, document_id: &str, key: &str, parent_key: Option<&str>, body: &CommentBody) -> Result<Comment> {
        check_key(key)?;
        check_body(body)?;
        self.db.with(|c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            self.get_document_in(&tx, document_id)?;
            let parent_id = match parent_key {
                Some(parent) => Some(find_by_key(&tx, document_id, parent)?.ok_or_else(|| RepositoryError::NotFound(format!("comment {parent}")))?.id),
                None => None,
            };
            let id = match find_by_key(&tx, document_id, key)? {
                Some(existing) => {
                    write_body(&tx, &existing.id, parent_id.as_deref(), body)?;
                    existing.id
                }
                None => insert(&tx, document_id, Some(key), parent_id.as_deref(), body)?,
            };
            let comment = get(&tx, &id)?;
            tx.commit()?;
            Ok(comment)
        })
    }

    /// Gives a comment its external key (WIT `set-comment-key`); `invalid` if another
    /// comment of the document has it.
    pub fn set_comment_key(&self, comment_id: &str, key: &str) -> Result<()> {
        check_key(key)?;
        self.db.with(|c| {
            let comment = get(c, comment_id)?;
            if comment.external_key.as_deref() == Some(key) {
                return Ok(());
            }
            if find_by_key(c, &comment.document_id, key)?.is_some() {
                return Err(RepositoryError::Invalid(format!("another comment of the document has the key {key}")));
            }
            c.execute("UPDATE comments SET external_key = ?2 WHERE id = ?1", params![comment_id, key])?;
            Ok(())
        })
    }

    /// Deletes the comment with `key` and its replies (WIT `delete-comment`).
    pub fn delete_comment(&self, document_id: &str, key: &str) -> Result<bool> {
        self.db.with(|c| {
            let Some(comment) = find_by_key(c, document_id, key)? else { return Ok(false) };
            delete_thread(c, &comment.id)?;
            Ok(true)
        })
    }

    /// A document's comments, oldest first (WIT `list-comments`).
    pub fn list_comments(&self, document_id: &str) -> Result<Vec<Comment>> {
        self.db.with(|c| {
            self.get_document_in(c, document_id)?;
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM comments WHERE document_id = ?1 ORDER BY created_at, rowid LIMIT {MAX_LISTED}"
            ))?;
            let rows = stmt.query_map([document_id], comment_from_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }

    /// Sets properties on a document without a new version (WIT `set-properties`).
    pub fn set_document_properties(&self, document_id: &str, properties: &[(String, String)]) -> Result<()> {
        check_properties(properties)?;
        self.db.with(|c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            self.get_document_in(&tx, document_id)?;
            for (name, value) in properties {
                tx.execute(
                    "INSERT INTO document_properties (document_id, name, value) VALUES (?1, ?2, ?3)
                     ON CONFLICT (document_id, name) DO UPDATE SET value = excluded.value",
                    params![document_id, name, value],
                )?;
            }
            tx.commit()?;
            Ok(())
        })
    }

    /// A DAM user writes a comment (or a reply to `parent_id`). `record` runs in the
    /// same transaction, with the new comment (the host writes there the event the
    /// connector is to be told of, so that the comment and its event are stored
    /// together or not at all).
    pub fn add_user_comment<T>(
        &self,
        document_id: &str,
        parent_id: Option<&str>,
        user: &str,
        text: &str,
        frame: Option<u64>,
        record: impl FnOnce(&Connection, &Comment) -> rusqlite::Result<T>,
    ) -> Result<(Comment, T)> {
        let now = unix_secs().max(0) as u64;
        let body = CommentBody { author: user.to_string(), text: text.to_string(), created_at: now, updated_at: now, frame, ..CommentBody::default() };
        check_user_text(text)?;
        check_body(&body)?;
        self.db.with(|c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            self.get_document_in(&tx, document_id)?;
            if let Some(parent) = parent_id
                && get(&tx, parent)?.document_id != document_id
            {
                return Err(RepositoryError::Invalid("the parent comment is on another document".into()));
            }
            let id = insert(&tx, document_id, None, parent_id, &body)?;
            let comment = get(&tx, &id)?;
            let recorded = record(&tx, &comment)?;
            tx.commit()?;
            Ok((comment, recorded))
        })
    }

    /// A DAM user edits their comment's text (and frame); `record` runs in the same
    /// transaction, with the edited comment.
    pub fn edit_user_comment<T>(
        &self,
        comment_id: &str,
        text: &str,
        frame: Option<u64>,
        record: impl FnOnce(&Connection, &Comment) -> rusqlite::Result<T>,
    ) -> Result<(Comment, T)> {
        check_user_text(text)?;
        self.db.with(|c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut comment = get(&tx, comment_id)?;
            comment.body.text = text.to_string();
            comment.body.frame = frame;
            comment.body.updated_at = unix_secs().max(0) as u64;
            check_body(&comment.body)?;
            write_body(&tx, comment_id, comment.parent_id.as_deref(), &comment.body)?;
            let comment = get(&tx, comment_id)?;
            let recorded = record(&tx, &comment)?;
            tx.commit()?;
            Ok((comment, recorded))
        })
    }

    /// A DAM user deletes a comment and its replies; returns what was deleted,
    /// replies first. `record` runs in the same transaction, with those.
    pub fn remove_user_comment<T>(
        &self,
        comment_id: &str,
        record: impl FnOnce(&Connection, &[Comment]) -> rusqlite::Result<T>,
    ) -> Result<(Vec<Comment>, T)> {
        self.db.with(|c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            get(&tx, comment_id)?;
            let thread = {
                let mut stmt = tx.prepare_cached(&format!(
                    "WITH RECURSIVE thread(id, depth) AS (SELECT ?1, 0 UNION ALL SELECT comments.id, depth + 1 FROM comments JOIN thread ON comments.parent_id = thread.id)
                     SELECT {COLUMNS} FROM comments JOIN thread USING (id) ORDER BY depth DESC"
                ))?;
                stmt.query_map([comment_id], comment_from_row)?.collect::<rusqlite::Result<Vec<_>>>()?
            };
            delete_thread(&tx, comment_id)?;
            let recorded = record(&tx, &thread)?;
            tx.commit()?;
            Ok((thread, recorded))
        })
    }

    /// One comment.
    pub fn comment(&self, comment_id: &str) -> Result<Comment> {
        self.db.with(|c| get(c, comment_id))
    }
}

fn check_user_text(text: &str) -> Result<()> {
    if text.trim().is_empty() {
        return Err(RepositoryError::Invalid("the comment is empty".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::tests::fixture;
    use super::*;

    /// Records nothing beside a DAM user's change.
    fn untold<C: ?Sized>(_: &Connection, _: &C) -> rusqlite::Result<()> {
        Ok(())
    }

    fn body(text: &str) -> CommentBody {
        CommentBody { author: "Noor".into(), text: text.into(), created_at: 10, updated_at: 10, frame: Some(24), ..CommentBody::default() }
    }

    #[test]
    fn put_is_idempotent_on_the_key_and_replies_hang_under_their_parent() {
        let f = fixture();
        let doc = f.document();
        let first = f.repo.put_comment(&doc.id, "frameio:1", None, &body("Tighten")).unwrap();
        let again = f.repo.put_comment(&doc.id, "frameio:1", None, &body("Tighten the cut")).unwrap();
        assert_eq!(first.id, again.id);
        let reply = f.repo.put_comment(&doc.id, "frameio:2", Some("frameio:1"), &body("Done")).unwrap();
        assert_eq!(reply.parent_id.as_deref(), Some(first.id.as_str()));
        let listed = f.repo.list_comments(&doc.id).unwrap();
        assert_eq!(listed.len(), 2);
        assert_eq!(listed[0].body.text, "Tighten the cut");
        assert!(matches!(f.repo.put_comment(&doc.id, "frameio:3", Some("frameio:9"), &body("x")), Err(RepositoryError::NotFound(_))));
    }

    #[test]
    fn deleting_a_comment_takes_its_replies_and_a_users_comment_can_take_a_key_once() {
        let f = fixture();
        let doc = f.document();
        let mine = f.repo.add_user_comment(&doc.id, None, "dana", "Looks good", Some(12), untold).unwrap().0;
        f.repo.set_comment_key(&mine.id, "frameio:7").unwrap();
        f.repo.set_comment_key(&mine.id, "frameio:7").unwrap();
        let other = f.repo.add_user_comment(&doc.id, None, "dana", "Second", None, untold).unwrap().0;
        assert!(matches!(f.repo.set_comment_key(&other.id, "frameio:7"), Err(RepositoryError::Invalid(_))));
        f.repo.put_comment(&doc.id, "frameio:8", Some("frameio:7"), &body("reply")).unwrap();
        assert!(f.repo.delete_comment(&doc.id, "frameio:7").unwrap());
        assert!(!f.repo.delete_comment(&doc.id, "frameio:7").unwrap());
        let left: Vec<String> = f.repo.list_comments(&doc.id).unwrap().into_iter().map(|c| c.body.text).collect();
        assert_eq!(left, ["Second"]);
    }

    #[test]
    fn a_users_change_and_what_is_recorded_with_it_are_stored_together_or_not_at_all() {
        let f = fixture();
        let doc = f.document();
        let refused = |_: &Connection, _: &Comment| Err::<(), _>(rusqlite::Error::InvalidQuery);
        assert!(f.repo.add_user_comment(&doc.id, None, "dana", "Lost", None, refused).is_err());
        assert!(f.repo.list_comments(&doc.id).unwrap().is_empty(), "no comment without its record");
        let (mine, seen) = f.repo.add_user_comment(&doc.id, None, "dana", "Kept", None, |_, c| Ok(c.id.clone())).unwrap();
        assert_eq!(seen, mine.id);
        assert!(f.repo.edit_user_comment(&mine.id, "Changed", None, refused).is_err());
        assert!(f.repo.remove_user_comment(&mine.id, |_, _| Err::<(), _>(rusqlite::Error::InvalidQuery)).is_err());
        let left = f.repo.list_comments(&doc.id).unwrap();
        assert_eq!((left.len(), left[0].body.text.as_str()), (1, "Kept"));
        let reply = f.repo.add_user_comment(&doc.id, Some(&mine.id), "dana", "Reply", None, untold).unwrap().0;
        let (gone, ids) = f.repo.remove_user_comment(&mine.id, |_, thread| Ok(thread.iter().map(|c| c.id.clone()).collect::<Vec<_>>())).unwrap();
        assert_eq!(ids, [reply.id.clone(), mine.id.clone()], "replies first");
        assert_eq!(gone.len(), 2);
        assert!(f.repo.list_comments(&doc.id).unwrap().is_empty());
    }

    #[test]
    fn properties_without_a_version_and_bad_input_is_refused() {
        let f = fixture();
        let doc = f.document();
        f.repo.set_document_properties(&doc.id, &[("frameio.status".into(), "approved".into())]).unwrap();
        assert!(f.repo.document_properties(&doc.id).unwrap().contains(&("frameio.status".into(), "approved".into())));
        assert!(f.repo.set_document_properties(&doc.id, &[("Bad Name".into(), "x".into())]).is_err());
        assert!(f.repo.add_user_comment(&doc.id, None, "dana", "  ", None, untold).is_err());
        let huge = "x".repeat(MAX_COMMENT_BYTES + 1);
        assert!(f.repo.put_comment(&doc.id, "k", None, &body(&huge)).is_err());
        assert!(matches!(f.repo.list_comments("doc-unknown"), Err(RepositoryError::NotFound(_))));
    }
}
