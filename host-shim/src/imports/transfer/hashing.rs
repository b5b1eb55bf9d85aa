//! Hashing a transfer's file while it downloads.
//!
//! The blob's hashes are sequential, and ranges land in parallel and out of order,
//! so only the file's written prefix can be hashed. A thread follows that prefix as
//! writes extend it and reads the bytes back from the file, while they are still in
//! the page cache, instead of one pass over the whole file once the last range has
//! landed: by then only the tail is left to hash. Reading back what was written,
//! rather than hashing buffers in flight, makes the hash exactly the file's, whatever
//! order, retries and resumed ranges the writes went through.

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use crate::blobs::{ContentHash, HASH_BUFFER};

/// Hashes a file's bytes in order as they are reported written. Dropping it before
/// [`PrefixHasher::finish`] stops the thread.
pub struct PrefixHasher {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<io::Result<ContentHash>>>,
}

struct Shared {
    state: Mutex<State>,
    /// Signalled when the prefix grows or the state ends.
    changed: Condvar,
}

#[derive(Default)]
struct State {
    written: Extents,
    /// No more writes will be reported: hash to the end, or fail if it is not written.
    finished: bool,
    /// The transfer failed: stop now.
    abandoned: bool,
}

impl PrefixHasher {
    /// Starts hashing `file`, of `total` bytes, as its bytes are reported written.
    pub fn start(file: Arc<File>, total: u64) -> io::Result<PrefixHasher> {
        let shared = Arc::new(Shared { state: Mutex::default(), changed: Condvar::new() });
        let thread = std::thread::Builder::new().name("transfer-hash".into()).spawn({
            let shared = shared.clone();
            move || hash_prefix(&shared, &file, total)
        })?;
        Ok(PrefixHasher { shared, thread: Some(thread) })
    }

    /// Records that bytes `start..end` of the file are written (and readable).
    /// Every byte is written once.
    pub fn written(&self, start: u64, end: u64) {
        let mut state = self.shared.lock();
        let before = state.written.prefix();
        state.written.add(start, end);
        if state.written.prefix() > before {
            self.shared.changed.notify_one();
        }
    }

    /// Waits until the whole file is hashed (blocking), once every byte is reported
    /// written; fails if some never was.
    pub fn finish(mut self) -> io::Result<ContentHash> {
        self.shared.end(|state| state.finished = true);
        let thread = self.thread.take().expect("finish runs once");
        thread.join().map_err(|_| io::Error::other("the hashing thread panicked"))?
    }
}

impl Drop for PrefixHasher {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.shared.end(|state| state.abandoned = true);
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn end(&self, how: impl FnOnce(&mut State)) {
        how(&mut self.lock());
        self.changed.notify_one();
    }

    /// Waits until bytes past `hashed` are written and returns where the next read
    /// should stop (at most one buffer on); `None` if hashing is to stop. Reading a
    /// buffer at a time keeps an abandoned transfer from hashing on.
    fn next_end(&self, hashed: u64) -> Option<u64> {
        let mut state = self.lock();
        loop {
            let prefix = state.written.prefix();
            if state.abandoned {
                return None;
            }
            if prefix > hashed {
                return Some(prefix.min(hashed + HASH_BUFFER as u64));
            }
            if state.finished {
                return None;
            }
            state = self.changed.wait(state).unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }
}

/// The hashing thread: hashes the written prefix until it covers `total` bytes.
fn hash_prefix(shared: &Shared, file: &File, total: u64) -> io::Result<ContentHash> {
    let mut hash = ContentHash::new();
    let mut buf = vec![0; HASH_BUFFER];
    while hash.size() < total {
        let Some(end) = shared.next_end(hash.size()) else {
            return Err(io::Error::other(format!("hashing stopped at byte {} of {total}: the rest was not written", hash.size())));
        };
        hash.read_from(file, end, &mut buf)?;
    }
    Ok(hash)
}

/// Which bytes of a file are written: disjoint extents, `start -> end` (exclusive),
/// merged when they touch. Each range in flight extends one extent, so there are at
/// most as many as ranges in flight, plus one.
#[derive(Default)]
struct Extents(BTreeMap<u64, u64>);

impl Extents {
    fn add(&mut self, mut start: u64, mut end: u64) {
        if start == end {
            return;
        }
        if let Some((&before, &before_end)) = self.0.range(..=start).next_back() {
            debug_assert!(before_end <= start, "bytes {start}..{end} were written twice");
            if before_end == start {
                self.0.remove(&before);
                start = before;
            }
        }
        if let Some(after_end) = self.0.remove(&end) {
            end = after_end;
        }
        debug_assert!(self.0.range(start..end).next().is_none(), "bytes {start}..{end} were written twice");
        self.0.insert(start, end);
    }

    /// Bytes `0..prefix` are all written.
    fn prefix(&self) -> u64 {
        self.0.get(&0).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use xxhash_rust::xxh64::xxh64;

    use super::*;

    #[test]
    fn extents_merge_into_the_prefix_in_any_order() {
        let mut e = Extents::default();
        e.add(20, 30);
        e.add(10, 15);
        assert_eq!(e.prefix(), 0);
        e.add(0, 5);
        assert_eq!(e.prefix(), 5);
        e.add(5, 10);
        assert_eq!(e.prefix(), 15, "merges with the extent after it");
        e.add(15, 20);
        assert_eq!(e.prefix(), 30);
        assert_eq!(e.0.len(), 1);
        e.add(30, 30);
        assert_eq!(e.prefix(), 30);
    }

    fn staged(content: &[u8]) -> (tempfile::NamedTempFile, Arc<File>) {
        let mut tmp = tempfile::NamedTempFile::new().unwrap();
        tmp.write_all(content).unwrap();
        let file = Arc::new(tmp.reopen().unwrap());
        (tmp, file)
    }

    fn content(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 % 251) as u8).collect()
    }

    #[test]
    fn writes_reported_out_of_order_hash_the_whole_file() {
        let body = content(5 * HASH_BUFFER + 17);
        let (_tmp, file) = staged(&body);
        let hasher = PrefixHasher::start(file, body.len() as u64).unwrap();
        // Pieces of four "ranges", the later ones first.
        let cuts = [0, 1000, HASH_BUFFER, 3 * HASH_BUFFER + 5, 4 * HASH_BUFFER, body.len()];
        for pair in cuts.windows(2).rev() {
            hasher.written(pair[0] as u64, pair[1] as u64);
        }
        let info = hasher.finish().unwrap().info();
        assert_eq!(info.size, body.len() as u64);
        assert_eq!(info.id, blake3::hash(&body).to_hex().as_str());
        assert_eq!(info.xxhash64, format!("{:016x}", xxh64(&body, 0)));
    }

    #[test]
    fn finishing_with_bytes_never_written_fails() {
        let body = content(1000);
        let (_tmp, file) = staged(&body);
        let hasher = PrefixHasher::start(file, 1000).unwrap();
        hasher.written(0, 400);
        hasher.written(500, 1000);
        let err = hasher.finish().err().expect("a gap cannot be hashed");
        assert!(err.to_string().contains("stopped at byte 400 of 1000"), "{err}");
    }

    #[test]
    fn dropping_stops_the_thread() {
        let (_tmp, file) = staged(&content(10));
        let hasher = PrefixHasher::start(file, 10).unwrap();
        let shared = hasher.shared.clone();
        drop(hasher);
        // The thread held the other reference; it lets go once it has stopped.
        for _ in 0..500 {
            if Arc::strong_count(&shared) == 1 {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("the hashing thread did not stop");
    }
}
