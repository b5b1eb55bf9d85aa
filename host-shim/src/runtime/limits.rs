//! Per-call resource limits, and the linear-memory high-water mark across calls.
//!
//! A fresh Store per call gets a `CallLimits`: memory may grow to the configured cap
//! and no further (the guest sees a failed `memory.grow`, which Rust turns into an
//! allocation failure and a trap). Every grant is recorded, so the host can report
//! the most memory any call used: the figure that shows bytes stay out of the guest.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use wasmtime::ResourceLimiter;

/// Most table elements a call may have; the connector needs a few hundred.
const MAX_TABLE_ELEMENTS: usize = 100_000;

/// The limits of one call.
pub struct CallLimits {
    max_memory_bytes: usize,
    peak: Arc<AtomicUsize>,
}

impl CallLimits {
    /// Limits capping memory at `max_memory_bytes`, recording growth in `peak`.
    pub fn new(max_memory_bytes: usize, peak: Arc<AtomicUsize>) -> CallLimits {
        CallLimits { max_memory_bytes, peak }
    }
}

impl ResourceLimiter for CallLimits {
    fn memory_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.max_memory_bytes {
            // The trap that usually follows (Rust aborts on a failed allocation) does
            // not say why; this does.
            tracing::warn!(current, desired, limit = self.max_memory_bytes, "the component hit its memory limit; growth refused");
            return Ok(false);
        }
        self.peak.fetch_max(desired, Ordering::Relaxed);
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growth_past_the_cap_is_refused_and_not_recorded() {
        let peak = Arc::new(AtomicUsize::new(0));
        let mut limits = CallLimits::new(1 << 20, peak.clone());
        assert!(limits.memory_growing(0, 65536, None).unwrap());
        assert!(limits.memory_growing(65536, 1 << 20, None).unwrap());
        assert!(!limits.memory_growing(1 << 20, (1 << 20) + 65536, None).unwrap());
        assert_eq!(peak.load(Ordering::Relaxed), 1 << 20);
    }
}
