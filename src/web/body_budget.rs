//! One budget of bytes for every webhook body being buffered at once. A body must be read in
//! full before its signature can be checked, so without a shared bound anyone could make the
//! process hold `connections × max body` bytes by starting uploads and never finishing them.
//!
//! A body reserves its declared length (or its size so far, growing, when chunked) before a
//! byte is buffered; what does not fit is refused (503 with `Retry-After`) before anything is
//! allocated for it. Stalled uploads must not keep a genuine webhook out, so:
//! - large bodies (over `SMALL_BODY_BYTES`; Stripe's events are a few KB) may fill only
//!   three quarters of the budget, and are refused beyond it;
//! - a small body that does not fit evicts the oldest bodies still being read (their
//!   requests answer 503): genuine bodies are read in milliseconds, so the oldest reader is
//!   the likeliest staller.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

/// Bodies up to this size may use the whole budget and evict stalled readers.
pub const SMALL_BODY_BYTES: usize = 64 * 1024;

/// The shared budget (one per process).
#[derive(Debug)]
pub struct BodyBudget {
    cap: usize,
    state: Mutex<State>,
    refused: AtomicU64,
    evicted: AtomicU64,
}

#[derive(Debug, Default)]
struct State {
    used: usize,
    next_id: u64,
    /// Reservations by age (ids only grow).
    entries: BTreeMap<u64, Entry>,
}

#[derive(Debug)]
struct Entry {
    bytes: usize,
    /// Still receiving its body (only those can be evicted: a body read in full is being
    /// verified and stored, which takes milliseconds).
    reading: bool,
    evict: Arc<Notify>,
}

/// The budget could not make room for a body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many webhook bodies are being read at once")]
pub struct BudgetFull;

impl BodyBudget {
    pub fn new(cap: usize) -> Self {
        Self { cap, state: Mutex::new(State::default()), refused: AtomicU64::new(0), evicted: AtomicU64::new(0) }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while the lock is held; a poisoned lock still holds valid counts.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The budget, in bytes.
    pub fn cap(&self) -> usize {
        self.cap
    }

    /// Bytes reserved right now.
    pub fn used(&self) -> usize {
        self.lock().used
    }

    /// Bodies refused for want of room (all time).
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Bodies evicted to make room for newer ones (all time).
    pub fn evicted(&self) -> u64 {
        self.evicted.load(Ordering::Relaxed)
    }

    /// Reserve `bytes` for a new body, evicting older readers if needed.
    pub fn reserve(self: &Arc<Self>, bytes: usize) -> Result<Reservation, BudgetFull> {
        let mut state = self.lock();
        if !self.admit(&mut state, bytes, bytes, None) {
            self.refused.fetch_add(1, Ordering::Relaxed);
            return Err(BudgetFull);
        }
        let id = state.next_id;
        state.next_id += 1;
        state.used += bytes;
        let evict = Arc::new(Notify::new());
        state.entries.insert(id, Entry { bytes, reading: true, evict: evict.clone() });
        Ok(Reservation { budget: self.clone(), id, bytes, evict })
    }

    /// Whether `bytes` more fit for a body that would then hold `total`: large bodies within
    /// three quarters of the budget, small ones anywhere (evicting readers if they must).
    fn admit(&self, state: &mut State, bytes: usize, total: usize, except: Option<u64>) -> bool {
        if total > SMALL_BODY_BYTES {
            let large_cap = self.cap - self.cap / 4;
            return state.used.saturating_add(bytes) <= large_cap;
        }
        self.make_room(state, bytes, except)
    }

    /// Whether `bytes` more fit, evicting the oldest readers other than `except` until they do.
    /// Victims are chosen only if, together, they free enough; otherwise nobody is evicted.
    fn make_room(&self, state: &mut State, bytes: usize, except: Option<u64>) -> bool {
        let free = self.cap.saturating_sub(state.used);
        if bytes <= free {
            return true;
        }
        let mut needed = bytes - free;
        let mut victims = Vec::new();
        for (id, entry) in &state.entries {
            if needed == 0 {
                break;
            }
            if entry.reading && Some(*id) != except {
                victims.push(*id);
                needed = needed.saturating_sub(entry.bytes);
            }
        }
        if needed > 0 {
            return false;
        }
        for id in victims {
            if let Some(entry) = state.entries.remove(&id) {
                state.used -= entry.bytes;
                // A stored permit: the reader sees it at its next poll even if not waiting yet.
                entry.evict.notify_one();
                self.evicted.fetch_add(1, Ordering::Relaxed);
            }
        }
        true
    }
}

/// Bytes held for one body; released when dropped.
#[derive(Debug)]
pub struct Reservation {
    budget: Arc<BodyBudget>,
    id: u64,
    bytes: usize,
    evict: Arc<Notify>,
}

impl Reservation {
    /// Bytes reserved.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Signalled when this body was evicted to make room for a newer one.
    pub fn eviction(&self) -> Arc<Notify> {
        self.evict.clone()
    }

    /// Reserve `more` bytes for this body (a chunked body growing).
    pub fn grow(&mut self, more: usize) -> Result<(), BudgetFull> {
        let mut state = self.budget.lock();
        let total = self.bytes + more;
        if !state.entries.contains_key(&self.id) || !self.budget.admit(&mut state, more, total, Some(self.id)) {
            self.budget.refused.fetch_add(1, Ordering::Relaxed);
            return Err(BudgetFull);
        }
        state.used += more;
        if let Some(entry) = state.entries.get_mut(&self.id) {
            entry.bytes += more;
        }
        self.bytes += more;
        Ok(())
    }

    /// The body is read in full: it can no longer be evicted.
    pub fn finish_reading(&self) {
        if let Some(entry) = self.budget.lock().entries.get_mut(&self.id) {
            entry.reading = false;
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut state = self.budget.lock();
        // An evicted reservation was already taken out of the count.
        if let Some(entry) = state.entries.remove(&self.id) {
            state.used -= entry.bytes;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_are_returned_when_dropped() {
        let budget = Arc::new(BodyBudget::new(100));
        let a = budget.reserve(60).expect("fits");
        assert_eq!(budget.used(), 60);
        drop(a);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn a_small_body_evicts_the_oldest_readers_and_never_passes_the_cap() {
        let budget = Arc::new(BodyBudget::new(100));
        let oldest = budget.reserve(40).expect("fits");
        let middle = budget.reserve(40).expect("fits");
        let newest = budget.reserve(50).expect("evicts the oldest");
        assert_eq!(budget.used(), 90);
        assert_eq!(budget.evicted(), 1);
        // The evicted reader's signal is stored until it looks.
        let evicted = oldest.eviction();
        assert!(futures::FutureExt::now_or_never(evicted.notified()).is_some());
        drop(oldest);
        assert_eq!(budget.used(), 90, "an evicted reservation is not released twice");
        middle.finish_reading();
        newest.finish_reading();
        assert_eq!(budget.reserve(20).err(), Some(BudgetFull), "bodies read in full are not evicted");
        assert_eq!(budget.refused(), 1);
        assert_eq!(budget.reserve(101).err(), Some(BudgetFull));
    }

    #[test]
    fn large_bodies_leave_a_quarter_for_small_ones_and_evict_nobody() {
        const MIB: usize = 1024 * 1024;
        let budget = Arc::new(BodyBudget::new(4 * MIB));
        let held: Vec<Reservation> = (0..3).map(|_| budget.reserve(MIB).expect("within three quarters")).collect();
        assert_eq!(budget.reserve(MIB).err(), Some(BudgetFull), "the last quarter is not for large bodies");
        assert_eq!(budget.evicted(), 0);
        let small = budget.reserve(SMALL_BODY_BYTES).expect("a small body still fits");
        assert_eq!(budget.used(), 3 * MIB + SMALL_BODY_BYTES);
        drop((held, small));
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn a_growing_body_never_evicts_itself() {
        let budget = Arc::new(BodyBudget::new(100));
        let mut only = budget.reserve(60).expect("fits");
        assert_eq!(only.grow(50), Err(BudgetFull));
        only.grow(40).expect("fits exactly");
        assert_eq!((only.bytes(), budget.used()), (100, 100));
    }
}
