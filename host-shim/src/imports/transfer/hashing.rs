//! Hashing a transfer's file while it downloads.
//!
//! The blob's hashes are sequential, and ranges land in parallel and out of order,
//! so only the file's written prefix can be hashed. A thread follows that prefix as
//! writes extend it, instead of one pass over the whole file once the last range has
//! landed: by then only the tail is left to hash.
//!
//! Direct writes leave nothing in the page cache to read back cheaply, so every write
//! hands the hasher a copy of its bytes, which it keeps until the prefix reaches them,
//! up to a budget. Bytes past the budget (a range that stalls while the others run
//! ahead) are read back from the file when the prefix gets there, and so is the prefix
//! a resumed transfer wrote before a restart. Either way the hash covers exactly the
//! bytes written at each offset, whatever order, retries and resumed ranges the writes
//! went through.

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use crate::blobs::{ContentHash, HASH_BUFFER};

/// Bytes of written pieces a transfer's hasher keeps in memory. With the default 4
/// ranges of 4 MiB in flight, the three behind the prefix run up to about 12 MiB
/// ahead of it; the budget bounds memory when one range stalls while the others go
/// on, and what does not fit is read back from the file.
pub const HELD_BYTES: usize = 16 << 20;

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
    /// Most bytes `State::held` may hold.
    max_held: usize,
}

#[derive(Default)]
struct State {
    written: Extents,
    /// Copies of written pieces not hashed yet, by offset.
    held: BTreeMap<u64, Vec<u8>>,
    /// Bytes in `held`, and in copies being made for it.
    held_bytes: usize,
    /// Emptied copies, reused for the next pieces: at most what the budget can hold.
    spares: Vec<Vec<u8>>,
    /// No more writes will be reported: hash to the end, or fail if it is not written.
    finished: bool,
    /// The transfer failed: stop now.
    abandoned: bool,
}

/// What the hashing thread does next.
enum Step {
    /// Hash these bytes, which come next.
    Held(Vec<u8>),
    /// Read the file up to here and hash it.
    ReadTo(u64),
}

impl PrefixHasher {
    /// Starts hashing `file`, of `total` bytes, as its bytes are reported written,
    /// keeping copies of at most `max_held` bytes.
    pub fn start(file: Arc<File>, total: u64, max_held: usize) -> io::Result<PrefixHasher> {
        let shared = Arc::new(Shared { state: Mutex::default(), changed: Condvar::new(), max_held });
        let thread = std::thread::Builder::new().name("transfer-hash".into()).spawn({
            let shared = shared.clone();
            move || hash_prefix(&shared, &file, total)
        })?;
        Ok(PrefixHasher { shared, thread: Some(thread) })
    }

    /// Where writers report what they wrote: cheap to clone and to move to the thread
    /// that does the writing, so the copy is made there.
    pub fn feed(&self) -> HashFeed {
        HashFeed(self.shared.clone())
    }

    /// Waits until the whole file is hashed (blocking), once every byte is reported
    /// written; fails if some never was.
    pub fn finish(mut self) -> io::Result<ContentHash> {
        self.shared.end(|state| state.finished = true);
        let thread = self.thread.take().expect("finish runs once");
        thread.join().map_err(|_| io::Error::other("the hashing thread panicked"))?
    }
}

/// Reports writes to a [`PrefixHasher`].
#[derive(Clone)]
pub struct HashFeed(Arc<Shared>);

impl HashFeed {
    /// Records that `bytes` are written at offset `start` of the file (and readable
    /// there), keeping a copy if the budget allows. Every byte is written once.
    pub fn written(&self, start: u64, bytes: &[u8]) {
        let copy = self.copy_within_budget(bytes);
        let mut state = self.0.lock();
        let before = state.written.prefix();
        state.written.add(start, start + bytes.len() as u64);
        if let Some(copy) = copy {
            state.held.insert(start, copy);
        }
        if state.written.prefix() > before {
            self.0.changed.notify_one();
        }
    }

    /// Records that the file's first `len` bytes were written before this hasher
    /// started (by an interrupted run of the transfer): they are read back from it.
    pub fn written_before(&self, len: u64) {
        self.0.lock().written.add(0, len);
        self.0.changed.notify_one();
    }

    /// How many bytes from the start of the file are written, with no gap.
    pub fn prefix(&self) -> u64 {
        self.0.lock().written.prefix()
    }

    /// A copy of `bytes` in a reused buffer, if the budget has room for it. The copy
    /// is made without holding the lock.
    fn copy_within_budget(&self, bytes: &[u8]) -> Option<Vec<u8>> {
        let spare = {
            let mut state = self.0.lock();
            if bytes.is_empty() || state.held_bytes + bytes.len() > self.0.max_held {
                return None;
            }
            state.held_bytes += bytes.len();
            state.spares.pop()
        };
        let mut copy = spare.unwrap_or_default();
        copy.clear();
        copy.extend_from_slice(bytes);
        Some(copy)
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
    /// Returns a hashed copy's room to the budget, and the buffer for reuse.
    fn release(&self, copy: Vec<u8>) {
        let mut state = self.lock();
        state.held_bytes -= copy.len();
        if state.spares.iter().map(Vec::capacity).sum::<usize>() + copy.capacity() <= self.max_held {
            state.spares.push(copy);
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn end(&self, how: impl FnOnce(&mut State)) {
        how(&mut self.lock());
        self.changed.notify_one();
    }

    /// Waits until bytes past `hashed` are written and says how to hash the next of
    /// them: the copy held for that offset, or else a read of the file up to the next
    /// held copy (at most one buffer on); `None` if hashing is to stop. A piece at a
    /// time keeps an abandoned transfer from hashing on.
    fn next_step(&self, hashed: u64) -> Option<Step> {
        let mut state = self.lock();
        loop {
            if state.abandoned {
                return None;
            }
            let prefix = state.written.prefix();
            if prefix > hashed {
                if let Some(bytes) = state.held.remove(&hashed) {
                    return Some(Step::Held(bytes));
                }
                // No piece starts inside bytes already written, so a read that stops
                // at the next held piece skips none.
                let next_held = state.held.range(hashed..).next().map_or(u64::MAX, |(&offset, _)| offset);
                return Some(Step::ReadTo(prefix.min(next_held).min(hashed + HASH_BUFFER as u64)));
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
    // Allocated on the first read back: with every piece held, never.
    let mut buf = Vec::new();
    while hash.size() < total {
        match shared.next_step(hash.size()) {
            Some(Step::Held(bytes)) => {
                hash.update(&bytes);
                shared.release(bytes);
            }
            Some(Step::ReadTo(end)) => {
                buf.resize(HASH_BUFFER, 0);
                hash.read_from(file, end, &mut buf)?;
            }
            None => {
                let at = hash.size();
                return Err(io::Error::other(format!("hashing stopped at byte {at} of {total}: the rest was not written")));
            }
        }
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
        let hasher = PrefixHasher::start(file, body.len() as u64, HELD_BYTES).unwrap();
        // Pieces of four "ranges", the later ones first.
        let cuts = [0, 1000, HASH_BUFFER, 3 * HASH_BUFFER + 5, 4 * HASH_BUFFER, body.len()];
        for pair in cuts.windows(2).rev() {
            hasher.feed().written(pair[0] as u64, &body[pair[0]..pair[1]]);
        }
        let info = hasher.finish().unwrap().info();
        assert_eq!(info.size, body.len() as u64);
        assert_eq!(info.id, blake3::hash(&body).to_hex().as_str());
        assert_eq!(info.xxhash64, format!("{:016x}", xxh64(&body, 0)));
    }

    #[test]
    fn held_copies_are_hashed_and_the_rest_read_back() {
        // The file holds `body`; the pieces reported carry other bytes, so the hash
        // shows where each piece was hashed from.
        let body = content(5000);
        let reported: Vec<u8> = body.iter().map(|b| !b).collect();
        let (_tmp, file) = staged(&body);
        // Room for two pieces of 1000 bytes. Nothing is hashed before the piece at 0
        // arrives last, so the two reported first are the two held.
        let hasher = PrefixHasher::start(file, 5000, 2000).unwrap();
        for start in [4000, 3000, 2000, 1000, 0] {
            hasher.feed().written(start as u64, &reported[start..start + 1000]);
        }
        let expected = [&body[..3000], &reported[3000..]].concat();
        let info = hasher.finish().unwrap().info();
        assert_eq!(info.id, blake3::hash(&expected).to_hex().as_str());
        assert_eq!(info.xxhash64, format!("{:016x}", xxh64(&expected, 0)));
    }

    #[test]
    fn finishing_with_bytes_never_written_fails() {
        let body = content(1000);
        let (_tmp, file) = staged(&body);
        let hasher = PrefixHasher::start(file, 1000, HELD_BYTES).unwrap();
        hasher.feed().written(0, &body[..400]);
        hasher.feed().written(500, &body[500..]);
        let err = hasher.finish().err().expect("a gap cannot be hashed");
        assert!(err.to_string().contains("stopped at byte 400 of 1000"), "{err}");
    }

    #[test]
    fn dropping_stops_the_thread() {
        let (_tmp, file) = staged(&content(10));
        let hasher = PrefixHasher::start(file, 10, HELD_BYTES).unwrap();
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
