//! The customer's choice, carried out in Stripe: one subscription update per choice, with an
//! idempotency key, through async-stripe.
//!
//! - pause, where Stripe can pause the subscription (flexible billing mode): `POST
//!   /v1/subscription_schedules` with `from_subscription` and one pause schedule, paused now
//!   and resumed by Stripe N months later
//! - pause otherwise: `pause_collection[behavior]=void`, `pause_collection[resumes_at]` = an
//!   hour before the renewal N months after the paid period ends (see
//!   `cancel::rules::pause_plan`)
//! - downgrade: `items[0][id]`, `items[0][price]` = the mapped cheaper price, and
//!   `proration_behavior` as configured (default `none`: the cheaper price applies from the
//!   next renewal, no credit or extra invoice now)
//! - discount: `discounts[i][discount]` = each discount already in force (the parameter
//!   replaces the whole list), then `discounts[n][coupon]` = the interval's coupon
//! - cancel: `cancel_at_period_end=true`, `cancellation_details[feedback]` and `[comment]`
//! - keep (undo a scheduled cancellation): `cancel_at_period_end=false` and `cancel_at=` (empty:
//!   cleared)

use std::str::FromStr;

use serde_json::{Value, json};
use stripe::{IdempotencyKey, RequestStrategy, StripeRequest};
use stripe_billing::subscription::{
    DiscountsDataParam, UpdateSubscription, UpdateSubscriptionCancellationDetails, UpdateSubscriptionCancellationDetailsFeedback,
    UpdateSubscriptionItems, UpdateSubscriptionPauseCollection, UpdateSubscriptionPauseCollectionBehavior,
    UpdateSubscriptionProrationBehavior,
};
use stripe_client_core::{RequestBuilder, StripeMethod};

use crate::cancel::rules::{Choice, Outcome, PauseMethod, PausePlan, Reason};
use crate::stripe_api::{IntendedCall, StripeApi};

/// Everything one Stripe call needs, decided before it is made.
#[derive(Debug, Clone)]
pub struct Action {
    pub subscription: String,
    pub choice: Choice,
    /// For a downgrade: the item to change and its new price.
    pub item_id: Option<String>,
    pub from_price: Option<String>,
    pub downgrade_to: Option<String>,
    pub proration: String,
    /// For a pause: the plan for the chosen length (none when that length doesn't fit).
    pub pause: Option<PausePlan>,
    /// For a discount: the interval's coupon, and the discounts in force to keep.
    pub coupon: Option<String>,
    pub keep_discounts: Vec<String>,
    pub reason: Reason,
    pub comment: Option<String>,
    /// The end of the paid period (a cancellation's end date), or the scheduled end undone.
    pub period_end: Option<i64>,
    pub now: i64,
    /// `holdfast-cancel-<session>-<choice>-<attempt>`: a retried request (network, double
    /// submit within an attempt) is applied once by Stripe.
    pub idempotency_key: String,
}

/// What happened, for the session record.
#[derive(Debug, Clone)]
pub struct Done {
    pub outcome: Outcome,
    pub detail: Value,
    pub paused_until: Option<i64>,
    /// The request as Stripe received it, for the owner's record of changes.
    pub sent: Sent,
}

/// One request Holdfast sent Stripe: method, path and the form parameters exactly as sent
/// (`pause_collection[behavior]` → `void`), kept so the owner sees what was changed.
#[derive(Debug, Clone, PartialEq)]
pub struct Sent {
    pub method: &'static str,
    pub path: String,
    pub params: Value,
}

impl Sent {
    fn post(path: String, params: Value) -> Self {
        Self { method: "POST", path, params }
    }
}

/// Why the call did not happen or failed. Messages never carry the API key.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    #[error("this choice is not available for the subscription")]
    NotApplicable,
    #[error("invalid idempotency key")]
    Key,
    /// Observe-only mode: the call was recorded for the owner, not made.
    #[error("observe-only mode: the change was recorded, not made")]
    Observed,
    #[error("stripe refused or failed: {0}")]
    Stripe(#[from] stripe::StripeError),
}

/// Undo a scheduled cancellation. async-stripe's typed update can set `cancel_at` but not
/// clear it, and Stripe clears a field sent empty, so this one request is written by hand.
async fn keep(api: &StripeApi, action: &Action) -> Result<Done, ActionError> {
    let key = IdempotencyKey::new(&action.idempotency_key).map_err(|_| ActionError::Key)?;
    #[derive(serde::Serialize)]
    struct Keep {
        cancel_at_period_end: bool,
        cancel_at: &'static str,
    }
    let form = Keep { cancel_at_period_end: false, cancel_at: "" };
    RequestBuilder::new(StripeMethod::Post, format!("/subscriptions/{}", action.subscription))
        .form(&form)
        .customize::<miniserde::json::Value>()
        .request_strategy(RequestStrategy::Idempotent(key))
        .send(api.client())
        .await?;
    Ok(Done {
        outcome: Outcome::Resumed,
        detail: json!({"was_ending_at": action.period_end}),
        paused_until: None,
        sent: Sent::post(
            format!("/v1/subscriptions/{}", action.subscription),
            json!({"cancel_at_period_end": "false", "cancel_at": ""}),
        ),
    })
}

/// Pause through a subscription schedule: Stripe pauses the subscription now (no invoices,
/// no new periods; the unused part of the period is credited) and resumes it at
/// `plan.resumes_at` by itself, attempting payment then. Written by hand like `keep`: the
/// crate's schedule requests are not compiled in.
async fn pause_schedule(api: &StripeApi, action: &Action, plan: PausePlan) -> Result<Done, ActionError> {
    #[derive(serde::Serialize)]
    struct At {
        #[serde(rename = "type")]
        type_: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        timestamp: Option<i64>,
    }
    #[derive(serde::Serialize)]
    struct Pause {
        pause_at: At,
    }
    #[derive(serde::Serialize)]
    struct Resume {
        resume_at: At,
    }
    #[derive(serde::Serialize)]
    struct PauseSchedule {
        pause: Pause,
        resume: Resume,
    }
    #[derive(serde::Serialize)]
    struct Form<'a> {
        from_subscription: &'a str,
        pause_schedules: Vec<PauseSchedule>,
    }
    let form = Form {
        from_subscription: &action.subscription,
        pause_schedules: vec![PauseSchedule {
            pause: Pause { pause_at: At { type_: "now", timestamp: None } },
            resume: Resume { resume_at: At { type_: "timestamp", timestamp: Some(plan.resumes_at) } },
        }],
    };
    let key = IdempotencyKey::new(&action.idempotency_key).map_err(|_| ActionError::Key)?;
    RequestBuilder::new(StripeMethod::Post, "/subscription_schedules")
        .form(&form)
        .customize::<miniserde::json::Value>()
        .request_strategy(RequestStrategy::Idempotent(key))
        .send(api.client())
        .await?;
    Ok(Done {
        outcome: Outcome::Paused,
        detail: json!({"months": plan.months, "resumes_at": plan.resumes_at, "resumes_on": plan.resumes_on,
                       "method": "pause_schedule"}),
        paused_until: Some(plan.resumes_on),
        sent: Sent::post(
            "/v1/subscription_schedules".into(),
            json!({
                "from_subscription": action.subscription,
                "pause_schedules[0][pause][pause_at][type]": "now",
                "pause_schedules[0][resume][resume_at][type]": "timestamp",
                "pause_schedules[0][resume][resume_at][timestamp]": plan.resumes_at.to_string(),
            }),
        ),
    })
}

/// Call Stripe for `action`.
pub async fn carry_out(api: &StripeApi, action: &Action) -> Result<Done, ActionError> {
    let update = UpdateSubscription::new(action.subscription.as_str());
    let path = format!("/v1/subscriptions/{}", action.subscription);
    let (update, done) = match action.choice {
        Choice::Pause { months } => {
            let Some(plan) = action.pause.filter(|p| p.months == months) else { return Err(ActionError::NotApplicable) };
            if plan.method == PauseMethod::Schedule {
                return pause_schedule(api, action, plan).await;
            }
            pause_collection(update, &path, plan)
        }
        Choice::Downgrade => downgrade(update, &path, action)?,
        Choice::Discount => discount(update, &path, action)?,
        Choice::Cancel => cancel(update, &path, action),
        Choice::Keep => return keep(api, action).await,
    };
    send_update(api, action, update, path, done).await
}

/// A pause by `pause_collection`: invoices voided until `resumes_at`.
fn pause_collection(update: UpdateSubscription, path: &str, plan: PausePlan) -> (UpdateSubscription, Done) {
    let mut pause = UpdateSubscriptionPauseCollection::new(UpdateSubscriptionPauseCollectionBehavior::Void);
    pause.resumes_at = Some(plan.resumes_at);
    let done = Done {
        outcome: Outcome::Paused,
        detail: json!({"months": plan.months, "resumes_at": plan.resumes_at, "resumes_on": plan.resumes_on,
                       "method": "pause_collection"}),
        paused_until: Some(plan.resumes_on),
        sent: Sent::post(
            path.to_owned(),
            json!({"pause_collection[behavior]": "void", "pause_collection[resumes_at]": plan.resumes_at.to_string()}),
        ),
    };
    (update.pause_collection(pause), done)
}

/// The only item moved to the cheaper price, prorated as configured.
fn downgrade(update: UpdateSubscription, path: &str, action: &Action) -> Result<(UpdateSubscription, Done), ActionError> {
    let (Some(item), Some(to)) = (&action.item_id, &action.downgrade_to) else { return Err(ActionError::NotApplicable) };
    let mut change = UpdateSubscriptionItems::new();
    change.id = Some(item.clone());
    change.price = Some(to.clone());
    let proration =
        UpdateSubscriptionProrationBehavior::from_str(&action.proration).unwrap_or(UpdateSubscriptionProrationBehavior::None);
    let proration_sent = proration.as_str().to_owned();
    let done = Done {
        outcome: Outcome::Downgraded,
        detail: json!({"item": item, "from_price": action.from_price, "to_price": to, "proration_behavior": action.proration}),
        paused_until: None,
        sent: Sent::post(
            path.to_owned(),
            json!({"items[0][id]": item, "items[0][price]": to, "proration_behavior": proration_sent}),
        ),
    };
    Ok((update.items(vec![change]).proration_behavior(proration), done))
}

/// The interval's coupon added after the discounts in force (the list replaces Stripe's).
fn discount(update: UpdateSubscription, path: &str, action: &Action) -> Result<(UpdateSubscription, Done), ActionError> {
    let Some(coupon) = &action.coupon else { return Err(ActionError::NotApplicable) };
    let mut discounts: Vec<DiscountsDataParam> = action
        .keep_discounts
        .iter()
        .map(|id| {
            let mut kept = DiscountsDataParam::new();
            kept.discount = Some(id.clone());
            kept
        })
        .collect();
    let mut discount = DiscountsDataParam::new();
    discount.coupon = Some(coupon.clone());
    discounts.push(discount);
    let mut params = serde_json::Map::new();
    for (i, kept) in action.keep_discounts.iter().enumerate() {
        params.insert(format!("discounts[{i}][discount]"), json!(kept));
    }
    params.insert(format!("discounts[{}][coupon]", action.keep_discounts.len()), json!(coupon));
    let done = Done {
        outcome: Outcome::Discounted,
        detail: json!({"coupon": coupon, "kept": action.keep_discounts}),
        paused_until: None,
        sent: Sent::post(path.to_owned(), Value::Object(params)),
    };
    Ok((update.discounts(discounts), done))
}

/// Cancellation at the period's end, with the survey's answer as Stripe's feedback.
fn cancel(update: UpdateSubscription, path: &str, action: &Action) -> (UpdateSubscription, Done) {
    let mut details = UpdateSubscriptionCancellationDetails::new();
    details.feedback = UpdateSubscriptionCancellationDetailsFeedback::from_str(action.reason.stripe_feedback()).ok();
    details.comment = action.reason.stripe_comment(action.comment.as_deref());
    let mut params = serde_json::Map::new();
    params.insert("cancel_at_period_end".into(), json!("true"));
    if let Some(feedback) = &details.feedback {
        params.insert("cancellation_details[feedback]".into(), json!(feedback.as_str()));
    }
    if let Some(comment) = &details.comment {
        params.insert("cancellation_details[comment]".into(), json!(comment));
    }
    let done = Done {
        outcome: Outcome::Canceled,
        detail: json!({"at_period_end": true, "ends_at": action.period_end}),
        paused_until: None,
        sent: Sent::post(path.to_owned(), Value::Object(params)),
    };
    (update.cancel_at_period_end(true).cancellation_details(details), done)
}

/// Send the subscription update (or, observing, record it instead) under the action's
/// idempotency key.
async fn send_update(
    api: &StripeApi,
    action: &Action,
    update: UpdateSubscription,
    path: String,
    done: Done,
) -> Result<Done, ActionError> {
    let intended = IntendedCall {
        method: "POST",
        path,
        params: json!({"choice": action.choice.key(), "change": done.detail}),
        purpose: "cancel_flow",
        customer: None,
    };
    if api.recorded_instead(intended).await {
        return Err(ActionError::Observed);
    }
    let key = IdempotencyKey::new(&action.idempotency_key).map_err(|_| ActionError::Key)?;
    // Success is Stripe's 2xx. The answer is read as plain JSON, not as async-stripe's
    // `Subscription`: a field the typed model doesn't expect must not turn a change Stripe
    // made into a reported failure.
    update
        .build()
        .customize::<miniserde::json::Value>()
        .request_strategy(RequestStrategy::Idempotent(key))
        .send(api.client())
        .await?;
    Ok(done)
}
