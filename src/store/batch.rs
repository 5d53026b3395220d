//! Turns a batch of new events into the writes it asks for. Each object keeps only its
//! greatest-watermark snapshot from the batch (the store applies the same max against what
//! is stored), so one statement can upsert the whole batch; history keeps every snapshot.

use std::collections::HashMap;

use crate::domain::event::Event;
use crate::domain::projection::project;
use crate::domain::snapshots::{CustomerSnapshot, DiscountSnapshot, InvoiceSnapshot, SubscriptionSnapshot};
use crate::domain::watermark::Watermark;

/// Writes for one committed batch.
#[derive(Debug, Default)]
pub struct Writes {
    pub customers: Vec<(CustomerSnapshot, Watermark)>,
    pub subscriptions: Vec<(SubscriptionSnapshot, Watermark)>,
    /// Every subscription snapshot, for `subscription_history`.
    pub history: Vec<(SubscriptionSnapshot, Watermark)>,
    pub invoices: Vec<(InvoiceSnapshot, Watermark)>,
    pub discounts: Vec<(DiscountSnapshot, Watermark)>,
    /// Subscriptions and invoices whose kept snapshot shares its second with a different
    /// snapshot of the batch: the tie rule chose between them.
    pub ties: Vec<Tie>,
}

/// An object whose newest snapshots differ within one second (`created`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tie {
    /// `subscription` or `invoice`.
    pub object_type: &'static str,
    pub id: String,
    pub created: i64,
}

/// Whether two snapshots of one object are of the same second and differ (the tie key reads
/// the object's content as its last part, so equal keys mean equal objects).
pub fn is_tie(a: &Watermark, b: &Watermark) -> bool {
    a.created == b.created && (a.rank, &a.tie) != (b.rank, &b.tie)
}

impl Writes {
    /// Project `events` (already known to be new) into reduced writes.
    pub fn from_events<'a>(events: impl IntoIterator<Item = &'a Event>) -> Self {
        let mut customers = Latest::default();
        let mut subscriptions = Latest::default();
        let mut invoices = Latest::default();
        let mut discounts = Latest::default();
        let mut history = Vec::new();
        for event in events {
            let p = project(event);
            p.customers.into_iter().for_each(|(c, w)| customers.offer(c.id.clone(), c, w));
            for (s, w) in p.subscriptions {
                history.push((s.clone(), w.clone()));
                subscriptions.offer(s.id.clone(), s, w);
            }
            p.invoices.into_iter().for_each(|(i, w)| invoices.offer(i.id.clone(), i, w));
            p.discounts.into_iter().for_each(|(d, w)| discounts.offer(d.id.clone(), d, w));
        }
        let mut ties = subscriptions.ties("subscription");
        ties.extend(invoices.ties("invoice"));
        Self {
            ties,
            customers: customers.into_vec(),
            subscriptions: subscriptions.into_vec(),
            history,
            invoices: invoices.into_vec(),
            discounts: discounts.into_vec(),
        }
    }
}

/// The greatest-watermark snapshot per object id, and the seconds in which two differing
/// snapshots of an object met.
struct Latest<T>(HashMap<String, (T, Watermark)>, HashMap<String, i64>);

impl<T> Default for Latest<T> {
    fn default() -> Self {
        Self(HashMap::new(), HashMap::new())
    }
}

impl<T> Latest<T> {
    fn offer(&mut self, id: String, snapshot: T, mark: Watermark) {
        match self.0.get(&id) {
            Some((_, kept)) if is_tie(kept, &mark) => {
                self.1.insert(id.clone(), mark.created);
                if mark > *kept {
                    self.0.insert(id, (snapshot, mark));
                }
            }
            Some((_, kept)) if *kept >= mark => {}
            _ => {
                self.0.insert(id, (snapshot, mark));
            }
        }
    }

    /// The objects whose kept snapshot is of a second in which differing snapshots met.
    fn ties(&self, object_type: &'static str) -> Vec<Tie> {
        let mut ties: Vec<Tie> = self
            .1
            .iter()
            .filter(|(id, created)| self.0.get(*id).is_some_and(|(_, kept)| kept.created == **created))
            .map(|(id, created)| Tie { object_type, id: id.clone(), created: *created })
            .collect();
        ties.sort_by(|a, b| a.id.cmp(&b.id));
        ties
    }

    fn into_vec(self) -> Vec<(T, Watermark)> {
        let mut v: Vec<_> = self.0.into_iter().collect();
        // Rows in id order: concurrent batches (several replicas) lock them in the same order.
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v.into_iter().map(|(_, kept)| kept).collect()
    }
}

/// Split a batch into first occurrences (to insert) and the indexes of in-batch repeats.
pub fn first_occurrences(events: &[&Event]) -> (Vec<usize>, Vec<usize>) {
    let mut seen = std::collections::HashSet::new();
    let (mut firsts, mut repeats) = (Vec::new(), Vec::new());
    for (i, e) in events.iter().enumerate() {
        if seen.insert(e.id.as_str()) {
            firsts.push(i);
        } else {
            repeats.push(i);
        }
    }
    (firsts, repeats)
}
