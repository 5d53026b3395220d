//! Finalized invoices' subscription-item lines: what a metered or tax-inclusive item was
//! actually billed, read from either of Stripe's invoice line shapes.

use serde_json::Value;

use crate::domain::fields::{id_of, int_at, list, path, str_at};

/// One non-proration line of a finalized subscription invoice, for one subscription item.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemLine {
    pub invoice: String,
    pub line: String,
    pub subscription: Option<String>,
    pub item: String,
    pub price: Option<String>,
    /// When the invoice was finalized (`status_transitions.finalized_at`, else the event).
    pub finalized_at: i64,
    /// The line's amount (including any inclusive tax, before discounts).
    pub amount: i64,
    /// The inclusive taxes in `amount`.
    pub inclusive_tax: i64,
}

impl ItemLine {
    /// `amount` net of inclusive tax.
    pub fn net(&self) -> i64 {
        self.amount - self.inclusive_tax
    }
}

/// The subscription-item lines of a finalized invoice (`open`, `paid` or `uncollectible`;
/// drafts may still change and a void invoice billed nothing), read from either shape: before
/// 2025-03-31.basil `subscription_item`, `price`, `proration` and `tax_amounts[].inclusive`
/// on the line; since, `parent.subscription_item_details` and `taxes[].tax_behavior`.
pub fn item_lines(invoice: &Value, event_created: i64) -> Vec<ItemLine> {
    let Some(id) = str_at(invoice, "id") else { return Vec::new() };
    if !matches!(str_at(invoice, "status").as_deref(), Some("open" | "paid" | "uncollectible")) {
        return Vec::new();
    }
    let finalized_at = path(invoice, &["status_transitions", "finalized_at"]).and_then(Value::as_i64).unwrap_or(event_created);
    let invoice_sub = str_at(invoice, "subscription")
        .or_else(|| path(invoice, &["parent", "subscription_details", "subscription"]).and_then(id_of));
    let mut out = Vec::new();
    for l in list(path(invoice, &["lines", "data"])) {
        let details = path(l, &["parent", "subscription_item_details"]).filter(|d| d.is_object());
        let item = l
            .get("subscription_item")
            .and_then(id_of)
            .or_else(|| details.and_then(|d| d.get("subscription_item")).and_then(id_of));
        let (Some(item), Some(line)) = (item, str_at(l, "id")) else { continue };
        let proration = l
            .get("proration")
            .and_then(Value::as_bool)
            .or_else(|| details.and_then(|d| d.get("proration")).and_then(Value::as_bool));
        if proration == Some(true) {
            continue;
        }
        let price = l.get("price").and_then(id_of).or_else(|| path(l, &["pricing", "price_details", "price"]).and_then(id_of));
        let old_taxes = list(l.get("tax_amounts")).iter().filter(|t| t.get("inclusive").and_then(Value::as_bool) == Some(true));
        let new_taxes = list(l.get("taxes")).iter().filter(|t| str_at(t, "tax_behavior").as_deref() == Some("inclusive"));
        let inclusive_tax = old_taxes.chain(new_taxes).filter_map(|t| int_at(t, "amount")).sum();
        out.push(ItemLine {
            invoice: id.clone(),
            line,
            subscription: l
                .get("subscription")
                .and_then(id_of)
                .or_else(|| details.and_then(|d| d.get("subscription")).and_then(id_of))
                .or_else(|| invoice_sub.clone()),
            item,
            price,
            finalized_at,
            amount: int_at(l, "amount").unwrap_or(0),
            inclusive_tax,
        });
    }
    out
}

/// A finalized invoice line of a subscription item, as the metrics read it.
#[derive(Debug, Clone, PartialEq)]
pub struct LineAmount {
    pub at: i64,
    pub invoice: String,
    pub amount: i64,
    pub net: i64,
}

/// The lines of the latest invoice finalized strictly before `t` (`lines` sorted by
/// `(at, invoice)`), summed: `(amount, net)`.
pub fn latest_lines(lines: &[LineAmount], t: i64) -> Option<(i64, i64)> {
    let last = lines.iter().rev().find(|l| l.at < t)?;
    let same = lines.iter().filter(|l| l.at == last.at && l.invoice == last.invoice);
    Some(same.fold((0, 0), |(a, n), l| (a + l.amount, n + l.net)))
}
