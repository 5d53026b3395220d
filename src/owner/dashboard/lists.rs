//! The lists that answer "who": recent cancellations, saves, customers in dunning now,
//! recovered payments, new customers, at-risk customers and what customers told us. Served
//! as dashboard pages (`/dashboard/lists/<list>`), and to the owner API
//! (`GET /api/lists/<list>`) as JSON or CSV; paginated (`page`, `per_page`).

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use minijinja::context;
use serde::{Deserialize, Serialize};

use crate::clock::Clock;
use crate::owner::dashboard::error::DashboardError;
use crate::owner::dashboard::labels::{label, money, outcome_detail};
use crate::owner::dashboard::{page, require_session};
use crate::owner::views::{ListKind, ListRow, MAX_PER_PAGE, Paging};
use crate::store::{Store, StoreError};
use crate::web::auth::{Owner, OwnerToken};
use crate::web::error::ApiError;

/// Rows per page unless `per_page` says otherwise.
pub const DEFAULT_PER_PAGE: i64 = 50;

/// Query of a list.
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    page: Option<i64>,
    per_page: Option<i64>,
    format: Option<String>,
    /// "What customers told us": only this survey reason.
    reason: Option<String>,
}

/// A column of a list.
#[derive(Debug, Clone, Copy)]
enum Col {
    Customer,
    When(&'static str),
    Reason,
    Comment,
    Outcome(&'static str),
    Detail,
    Amount(&'static str),
    NextEmail,
    Day(&'static str),
    Invoice,
    Subscription,
}

impl Col {
    fn heading(self) -> &'static str {
        match self {
            Self::Customer => "Customer",
            Self::When(h) | Self::Outcome(h) | Self::Amount(h) | Self::Day(h) => h,
            Self::Reason => "Reason",
            Self::Comment => "Comment",
            Self::Detail => "What changed",
            Self::NextEmail => "Next email",
            Self::Invoice => "Invoice",
            Self::Subscription => "Subscription",
        }
    }
}

fn columns(kind: ListKind) -> &'static [Col] {
    use Col::*;
    match kind {
        ListKind::Cancellations => {
            &[Customer, When("Cancelled"), Reason, Comment, Outcome("Status"), Amount("MRR lost"), Subscription]
        }
        ListKind::Saves => &[Customer, When("Saved"), Outcome("Offer taken"), Detail, Reason, Comment],
        ListKind::Dunning => &[Customer, When("Payment failed"), Amount("Amount due"), Day("Day"), NextEmail, Invoice],
        ListKind::Recovered => &[Customer, When("Recovered"), Amount("Amount"), Day("Days to recover"), Invoice],
        ListKind::NewCustomers => &[Customer, When("Signed up"), Amount("MRR now")],
        ListKind::AtRisk => &[Customer, When("At risk since"), Outcome("Why"), Day("Activity, last 7 days")],
        ListKind::Comments => &[Customer, When("Said on"), Reason, Comment, Outcome("Outcome")],
    }
}

/// One rendered cell: its text, and the customer page it links to (customer column only).
#[derive(Debug, Clone, Serialize)]
pub struct Cell {
    pub text: String,
    pub href: Option<String>,
}

/// `/dashboard/customers/<id>`, the id percent-encoded.
pub fn customer_href(id: &str) -> String {
    let mut path = String::from("/dashboard/customers/");
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            path.push(char::from(b));
        } else {
            path.push_str(&format!("%{b:02X}"));
        }
    }
    path
}

fn date(ts: Option<i64>) -> String {
    ts.map(crate::domain::money::format_date).unwrap_or_default()
}

fn cell(col: Col, r: &ListRow) -> Cell {
    let plain = |text: String| Cell { text, href: None };
    match col {
        Col::Customer => Cell {
            text: r
                .name
                .clone()
                .filter(|n| !n.trim().is_empty())
                .or_else(|| r.email.clone())
                .unwrap_or_else(|| r.customer.clone()),
            href: Some(customer_href(&r.customer)),
        },
        Col::When(_) => plain(date(r.happened_at)),
        Col::Reason => plain(r.reason.as_deref().map(label).unwrap_or_default()),
        Col::Comment => plain(r.comment.clone().unwrap_or_default()),
        Col::Outcome(_) => plain(r.outcome.as_deref().map(label).unwrap_or_default()),
        Col::Detail => plain(r.outcome.as_deref().map(|o| outcome_detail(o, r.detail.as_deref())).unwrap_or_default()),
        Col::Amount(_) => plain(r.amount.map(|a| money(a, r.currency.as_deref())).unwrap_or_default()),
        Col::NextEmail => plain(match (&r.next_email, r.next_email_at) {
            (Some(template), Some(at)) => format!("{} on {}", label(template), date(Some(at))),
            _ => "none scheduled".into(),
        }),
        Col::Day(_) => plain(r.day.map(|d| d.to_string()).unwrap_or_default()),
        Col::Invoice => plain(r.invoice.clone().unwrap_or_default()),
        Col::Subscription => plain(r.subscription.clone().unwrap_or_default()),
    }
}

/// What a list request asked for, checked.
struct Asked {
    kind: ListKind,
    page: i64,
    per_page: i64,
    csv: bool,
    reason: String,
}

fn asked(kind: &str, q: &ListQuery) -> Result<Asked, (&'static str, String)> {
    let kind = ListKind::parse(kind).ok_or_else(|| {
        let names: Vec<_> = ListKind::ALL.iter().map(|k| k.as_str()).collect();
        ("unknown_list", format!("no such list; the lists are: {}", names.join(", ")))
    })?;
    let page = q.page.unwrap_or(1);
    let per_page = q.per_page.unwrap_or(DEFAULT_PER_PAGE);
    if !(1..=1_000_000).contains(&page) {
        return Err(("bad_page", "page must be 1 or more".into()));
    }
    if !(1..=MAX_PER_PAGE).contains(&per_page) {
        return Err(("bad_per_page", format!("per_page must be 1 to {MAX_PER_PAGE}")));
    }
    let csv = match q.format.as_deref() {
        None | Some("json") | Some("html") => false,
        Some("csv") => true,
        Some(_) => return Err(("bad_format", "format must be json or csv".into())),
    };
    let reason = q.reason.clone().unwrap_or_default();
    if reason.len() > 64 || !reason.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
        return Err(("bad_reason", "reason must be a reason code such as too_expensive".into()));
    }
    Ok(Asked { kind, page, per_page, csv, reason })
}

/// Rows of the page, and whether another page follows.
async fn load(store: &Store, a: &Asked, now: i64) -> Result<(Vec<ListRow>, bool), StoreError> {
    let paging = Paging { limit: a.per_page + 1, offset: (a.page - 1) * a.per_page };
    let mut rows = store.owner_list(a.kind, paging, now, &a.reason).await?;
    let more = rows.len() as i64 > a.per_page;
    rows.truncate(usize::try_from(a.per_page).unwrap_or(0));
    Ok((rows, more))
}

/// A CSV cell: a value that a spreadsheet would read as a formula (`=`, `+`, `-`, `@`, tab,
/// carriage return first) is prefixed with `'`; comments are written by customers.
pub fn csv_cell(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{s}") } else { s.to_owned() };
    if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s }
}

fn csv_body(kind: ListKind, rows: &[ListRow]) -> String {
    let cols = columns(kind);
    let mut out = String::from("customer_id,");
    out.push_str(&cols.iter().map(|c| csv_cell(c.heading())).collect::<Vec<_>>().join(","));
    out.push('\n');
    for r in rows {
        out.push_str(&csv_cell(&r.customer));
        for c in cols {
            out.push(',');
            out.push_str(&csv_cell(&cell(*c, r).text));
        }
        out.push('\n');
    }
    out
}

fn csv_response(kind: ListKind, page: i64, rows: &[ListRow]) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header(("Content-Disposition", format!("attachment; filename=\"{}-page{page}.csv\"", kind.as_str())))
        .insert_header(("Cache-Control", "no-store"))
        .body(csv_body(kind, rows))
}

/// `GET /api/lists/<list>[?page=N][&per_page=N][&format=csv][&reason=code]` (owner).
pub async fn get_list_api(
    _owner: Owner,
    store: web::Data<Store>,
    clock: web::Data<Clock>,
    kind: web::Path<String>,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let a = asked(&kind, &q).map_err(|(code, msg)| ApiError::bad_request(code, msg))?;
    let (rows, more) = load(&store, &a, clock.now()).await.map_err(ApiError::store("reading an owner list"))?;
    if a.csv {
        return Ok(csv_response(a.kind, a.page, &rows));
    }
    let items: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            let mut v = serde_json::to_value(r).unwrap_or_default();
            if let Some(o) = v.as_object_mut() {
                o.insert("reason_label".into(), r.reason.as_deref().map(label).into());
                o.insert("outcome_label".into(), r.outcome.as_deref().map(label).into());
                o.insert("customer_page".into(), customer_href(&r.customer).into());
            }
            v
        })
        .collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "list": a.kind.as_str(),
        "title": a.kind.title(),
        "page": a.page,
        "per_page": a.per_page,
        "next_page": more.then_some(a.page + 1),
        "items": items,
    })))
}

/// The survey reasons the comment filter offers.
const REASONS: [&str; 7] =
    ["too_expensive", "unused", "missing_features", "switched_service", "low_quality", "technical_problems", "other"];

/// `GET /dashboard/lists/<list>[?page=N][&reason=code][&format=csv]`.
pub async fn get_list_page(
    req: HttpRequest,
    owner: web::Data<OwnerToken>,
    store: web::Data<Store>,
    clock: web::Data<Clock>,
    kind: web::Path<String>,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, DashboardError> {
    let now = clock.now();
    require_session(&req, &owner, &store, now).await?;
    let a = asked(&kind, &q).map_err(|(_, msg)| DashboardError::BadQuery(msg.into()))?;
    let (rows, more) = load(&store, &a, now).await.map_err(DashboardError::store("reading an owner list"))?;
    if a.csv {
        return Ok(csv_response(a.kind, a.page, &rows));
    }
    let cols = columns(a.kind);
    let table: Vec<Vec<Cell>> = rows.iter().map(|r| cols.iter().map(|c| cell(*c, r)).collect()).collect();
    let headings: Vec<&str> = cols.iter().map(|c| c.heading()).collect();
    let lists: Vec<_> = ListKind::ALL.iter().map(|k| context! { key => k.as_str(), title => k.title() }).collect();
    let reasons: Vec<_> = REASONS.iter().map(|r| context! { key => r, label => label(r) }).collect();
    let filter = if a.reason.is_empty() { String::new() } else { format!("&reason={}", a.reason) };
    Ok(page(
        StatusCode::OK,
        "dashboard_list.html",
        context! {
            key => a.kind.as_str(), title => a.kind.title(), headings => headings, rows => table, lists => lists,
            page => a.page, prev => (a.page > 1).then_some(a.page - 1), next => more.then_some(a.page + 1),
            comments => a.kind == ListKind::Comments, reasons => reasons, reason => a.reason, filter => filter,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_never_start_a_formula() {
        for bad in ["=HYPERLINK(\"x\")", "+1", "-2+3", "@SUM(A1)", "\tx"] {
            assert!(csv_cell(bad).trim_start_matches('"').starts_with('\''), "{bad} → {}", csv_cell(bad));
        }
        assert_eq!(csv_cell("plain"), "plain");
        assert_eq!(customer_href("cus_A1"), "/dashboard/customers/cus_A1");
        assert_eq!(customer_href("a/b c"), "/dashboard/customers/a%2Fb%20c");
        assert_eq!(csv_cell("a, b"), "\"a, b\"");
        assert_eq!(csv_cell("say \"hi\""), "\"say \"\"hi\"\"\"");
    }

    #[test]
    fn bad_list_requests_are_named() {
        let q = |page, per_page, format: Option<&str>, reason: Option<&str>| ListQuery {
            page,
            per_page,
            format: format.map(str::to_owned),
            reason: reason.map(str::to_owned),
        };
        assert_eq!(asked("nope", &q(None, None, None, None)).err().map(|e| e.0), Some("unknown_list"));
        assert_eq!(asked("saves", &q(Some(0), None, None, None)).err().map(|e| e.0), Some("bad_page"));
        assert_eq!(asked("saves", &q(None, Some(501), None, None)).err().map(|e| e.0), Some("bad_per_page"));
        assert_eq!(asked("saves", &q(None, None, Some("xml"), None)).err().map(|e| e.0), Some("bad_format"));
        assert_eq!(asked("comments", &q(None, None, None, Some("x' OR 1"))).err().map(|e| e.0), Some("bad_reason"));
        let Ok(ok) = asked("comments", &q(Some(2), Some(10), Some("csv"), Some("too_expensive"))) else { panic!("valid") };
        assert!(ok.csv && ok.page == 2 && ok.per_page == 10 && ok.reason == "too_expensive");
    }
}
