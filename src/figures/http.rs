//! `GET /api/summary` and `GET /api/metrics/monthly` (owner-only), as JSON or CSV.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError, web};
use serde::Deserialize;
use serde_json::Value;

use crate::domain::month::Month;
use crate::figures::reports::{MAX_SERIES_MONTHS, Reports};
use crate::store::StoreError;
use crate::web::auth::Owner;
use crate::web::error::json_error;

/// Why a metrics request failed.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("{0}: expected YYYY-MM (e.g. 2025-04)")]
    BadMonth(&'static str),
    #[error("`from` must not be after `to`, and a series spans at most 120 months")]
    BadRange,
    #[error("format must be json or csv")]
    BadFormat,
    #[error("currency: expected a three-letter ISO code (e.g. usd)")]
    BadCurrency,
    #[error("metrics are unavailable right now")]
    Store(#[from] StoreError),
}

impl ResponseError for MetricsError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::BadMonth(_) | Self::BadRange | Self::BadFormat | Self::BadCurrency => StatusCode::BAD_REQUEST,
            Self::Store(e) => crate::web::error::storage_status(e),
        }
    }

    fn error_response(&self) -> HttpResponse {
        let code = match self {
            Self::BadMonth(_) => "bad_month",
            Self::BadRange => "bad_range",
            Self::BadFormat => "bad_format",
            Self::BadCurrency => "bad_currency",
            Self::Store(e) => {
                tracing::error!(error = ?e, "metrics query failed");
                "metrics_unavailable"
            }
        };
        json_error(self.status_code(), code, &self.to_string())
    }
}

/// Query of `/api/summary`.
#[derive(Debug, Deserialize)]
pub struct SummaryQuery {
    month: Option<String>,
    currency: Option<String>,
    format: Option<String>,
}

/// Query of `/api/metrics/monthly`.
#[derive(Debug, Deserialize)]
pub struct SeriesQuery {
    from: Option<String>,
    to: Option<String>,
    currency: Option<String>,
    format: Option<String>,
}

fn month_param(value: Option<&str>, name: &'static str, default: Month) -> Result<Month, MetricsError> {
    value.map_or(Ok(default), |v| Month::parse(v).map_err(|_| MetricsError::BadMonth(name)))
}

/// A `currency` parameter: three ASCII letters, any case.
pub fn currency_param(value: Option<&str>) -> Result<Option<&str>, MetricsError> {
    match value {
        Some(c) if c.len() != 3 || !c.bytes().all(|b| b.is_ascii_alphabetic()) => Err(MetricsError::BadCurrency),
        other => Ok(other),
    }
}

fn wants_csv(format: Option<&str>) -> Result<bool, MetricsError> {
    match format {
        None | Some("json") => Ok(false),
        Some("csv") => Ok(true),
        Some(_) => Err(MetricsError::BadFormat),
    }
}

/// `GET /api/summary?month=YYYY-MM[&currency=usd][&format=csv]`.
pub async fn get_summary(
    _owner: Owner,
    reports: web::Data<Reports>,
    q: web::Query<SummaryQuery>,
) -> Result<HttpResponse, MetricsError> {
    let month = month_param(q.month.as_deref(), "month", reports.current_month())?;
    let csv = wants_csv(q.format.as_deref())?;
    let summary = reports.summary(month, currency_param(q.currency.as_deref())?).await?;
    if csv {
        let mut value = serde_json::to_value(&summary).unwrap_or_default();
        major_units(&mut value, &summary.currency, false);
        let mut body = String::from("field,value\n");
        for (k, v) in flatten(&value) {
            body.push_str(&format!("{},{}\n", csv_cell(&k), csv_cell(&v)));
        }
        return Ok(csv_response(body, &format!("summary-{month}.csv")));
    }
    Ok(HttpResponse::Ok().json(summary))
}

/// `GET /api/metrics/monthly?from=YYYY-MM&to=YYYY-MM[&currency=usd][&format=csv]`.
pub async fn get_monthly(
    _owner: Owner,
    reports: web::Data<Reports>,
    q: web::Query<SeriesQuery>,
) -> Result<HttpResponse, MetricsError> {
    let to = month_param(q.to.as_deref(), "to", reports.current_month())?;
    let from = month_param(q.from.as_deref(), "from", to.plus(-11))?;
    if from > to || to.since(from) >= MAX_SERIES_MONTHS {
        return Err(MetricsError::BadRange);
    }
    let csv = wants_csv(q.format.as_deref())?;
    let rows = reports.monthly(from, to, currency_param(q.currency.as_deref())?).await?;
    if csv {
        let values: Vec<Vec<(String, String)>> = rows
            .iter()
            .map(|r| {
                let mut value = serde_json::to_value(r).unwrap_or_default();
                major_units(&mut value, &r.currency, false);
                flatten(&value)
            })
            .collect();
        let mut body = String::new();
        if let Some(first) = values.first() {
            body.push_str(&first.iter().map(|(k, _)| csv_cell(k)).collect::<Vec<_>>().join(","));
            body.push('\n');
        }
        for row in &values {
            body.push_str(&row.iter().map(|(_, v)| csv_cell(v)).collect::<Vec<_>>().join(","));
            body.push('\n');
        }
        return Ok(csv_response(body, &format!("metrics-{from}-{to}.csv")));
    }
    let currency = rows.first().map(|r| r.currency.clone()).unwrap_or_default();
    Ok(HttpResponse::Ok()
        .json(serde_json::json!({"from": from.to_string(), "to": to.to_string(), "currency": currency, "months": rows})))
}

fn csv_response(body: String, filename: &str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header(("Content-Disposition", format!("attachment; filename=\"{filename}\"")))
        .body(body)
}

/// Money fields of the summary's JSON (minor units there), by name; every field of
/// `mrr_movements` is money too.
const MONEY_FIELDS: [&str; 9] = [
    "mrr_start",
    "mrr_end",
    "arpu",
    "ltv",
    "mrr_end_of_cohort_month",
    "recovered_amount",
    "lost_amount",
    "refunded_amount",
    "disputed_amount",
];

/// Rewrite money in `v` (minor units) as whole units with each currency's own decimals
/// (`12.50`, `1200` for JPY, `1.250` for KWD), as a spreadsheet reads them. An object naming
/// its own `currency` (a row of `currencies`) is in that currency.
pub fn major_units(v: &mut Value, currency: &str, money: bool) {
    match v {
        Value::Object(map) => {
            let currency = map.get("currency").and_then(Value::as_str).unwrap_or(currency).to_owned();
            for (k, child) in map.iter_mut() {
                let is_money = money || MONEY_FIELDS.contains(&k.as_str());
                match child {
                    Value::Number(n) if is_money => {
                        *child = Value::String(crate::domain::money::number(n.as_f64().unwrap_or(0.0), &currency));
                    }
                    _ => major_units(child, &currency, k == "mrr_movements"),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| major_units(i, currency, false)),
        _ => {}
    }
}

/// Dotted paths to scalar values (`mrr_movements.new`), in the JSON's key order; null is empty.
pub fn flatten(v: &Value) -> Vec<(String, String)> {
    fn walk(prefix: &str, v: &Value, out: &mut Vec<(String, String)>) {
        let key = |k: &str| if prefix.is_empty() { k.to_owned() } else { format!("{prefix}.{k}") };
        match v {
            Value::Object(map) => map.iter().for_each(|(k, v)| walk(&key(k), v, out)),
            Value::Array(items) => items.iter().enumerate().for_each(|(i, v)| {
                let label =
                    v.get("cohort").or_else(|| v.get("currency")).and_then(Value::as_str).map_or(i.to_string(), str::to_owned);
                walk(&key(&label), v, out)
            }),
            Value::Null => out.push((prefix.to_owned(), String::new())),
            Value::String(s) => out.push((prefix.to_owned(), s.clone())),
            other => out.push((prefix.to_owned(), other.to_string())),
        }
    }
    let mut out = Vec::new();
    walk("", v, &mut out);
    out
}

/// Quote a CSV cell when it needs it; a leading formula character is neutralised so a
/// spreadsheet never evaluates a value.
fn csv_cell(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '@']) || (s.starts_with('-') && s.parse::<f64>().is_err()) {
        format!("'{s}")
    } else {
        s.to_owned()
    };
    if s.contains([',', '"', '\n']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s }
}
