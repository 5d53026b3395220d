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
        Self {
            customers: customers.into_vec(),
            subscriptions: subscriptions.into_vec(),
            history,
            invoices: invoices.into_vec(),
            discounts: discounts.into_vec(),
        }
    }
}

/// The greatest-watermark snapshot per object id.
struct Latest<T>(HashMap<String, (T, Watermark)>);

impl<T> Default for Latest<T> {
    fn default() -> Self {
        Self(HashMap::new())
    }
}

impl<T> Latest<T> {
    fn offer(&mut self, id: String, snapshot: T, mark: Watermark) {
        match self.0.get(&id) {
            Some((_, kept)) if *kept >= mark => {}
            _ => {
                self.0.insert(id, (snapshot, mark));
            }
        }
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
