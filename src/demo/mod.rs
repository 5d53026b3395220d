//! `holdfast demo`: see Holdfast work in a minute, offline. A separate local database (in
//! its own directory, rebuilt at every start) is filled with a simulated business (`holdfast_sim`:
//! a year of customers, trials, plan changes, failed payments recovered or lost,
//! cancellations), a few customers go through the real cancel flow over HTTP (saves and
//! cancellations), and two named customers give a cancel link and an update-payment link
//! to try. Stripe's API is answered by an in-process stand-in and mail is written to the
//! demo's mail folder, whatever keys the environment holds: the demo builds its settings
//! from its own values only.

pub mod samples;
pub mod standin;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use secrecy::SecretString;

use crate::cancel::links;
use crate::cancel::links::random_token;
use crate::clock::Clock;
use crate::domain::event::Event;
use crate::mail::links::{LINK_TTL_SECS, LinkSigner};
use crate::settings::Settings;
use crate::startup::Application;
use crate::store::Store;
use holdfast_sim::{Business, Params, events};

use self::standin::StandIn;

/// The webhook secret of the demo (and of `send-event`) when `STRIPE_WEBHOOK_SECRET` is
/// unset. It guards nothing real: the demo's data is simulated.
pub const DEMO_WEBHOOK_SECRET: &str = "whsec_holdfast_demo_local";
/// The Stripe key the demo configures: only its stand-in ever sees it.
const DEMO_STRIPE_KEY: &str = "sk_test_holdfast_demo_stand_in";
/// The customer whose card was just declined (update-payment link).
pub const DEMO_DUNNING_CUSTOMER: &str = "cus_demo_ada";
/// The customer who can try the cancel flow.
pub const DEMO_CANCEL_CUSTOMER: &str = "cus_demo_grace";
const DAY: i64 = 86_400;

/// `holdfast demo` options.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// The demo's directory: `holdfast.db` and `mail/` (both replaced at every start).
    pub dir: PathBuf,
    /// Where to listen (`127.0.0.1:8080` by default; port 0 picks a free one).
    pub bind: String,
    /// Simulated customers.
    pub customers: usize,
    /// The simulation's seed.
    pub seed: u64,
    /// Customers who go through the cancel flow at start.
    pub cancel_flows: usize,
}

/// What the demo set up, as printed.
#[derive(Debug)]
pub struct Ready {
    pub base: String,
    pub owner_token: String,
    pub cancel_link: String,
    pub update_payment_link: String,
    pub customers: usize,
    pub events: usize,
    pub saves: usize,
    pub cancellations: usize,
}

/// Run the demo until SIGINT/SIGTERM.
pub async fn run(opts: DemoOptions) -> anyhow::Result<()> {
    let mail_dir = opts.dir.join("mail");
    reset(&opts.dir, &mail_dir)?;
    let standin = StandIn::start(mail_dir.clone())?;
    let bind = concrete_bind(&opts.bind)?;
    let base = format!("http://{}", bind.replace("0.0.0.0", "127.0.0.1"));
    let owner_token = random_token();
    let link_secret = random_token();
    let webhook_secret = std::env::var("STRIPE_WEBHOOK_SECRET").ok().filter(|s| !s.trim().is_empty());
    let config_file = opts.dir.join("holdfast.toml");
    std::fs::write(&config_file, DEMO_CONFIG).context("writing the demo's holdfast.toml")?;

    let mut vars: HashMap<&str, String> = HashMap::new();
    vars.insert("DATABASE_URL", format!("sqlite://{}", opts.dir.join("holdfast.db").display()));
    vars.insert("HOLDFAST_BIND", bind.clone());
    vars.insert("HOLDFAST_PUBLIC_URL", base.clone());
    vars.insert("STRIPE_WEBHOOK_SECRET", webhook_secret.unwrap_or_else(|| DEMO_WEBHOOK_SECRET.into()));
    vars.insert("HOLDFAST_OWNER_TOKEN", owner_token.clone());
    vars.insert("HOLDFAST_LINK_SECRET", link_secret.clone());
    vars.insert("STRIPE_SECRET_KEY", DEMO_STRIPE_KEY.into());
    vars.insert("STRIPE_API_BASE", standin.url.clone());
    vars.insert("HOLDFAST_MAIL_DIR", mail_dir.display().to_string());
    vars.insert("HOLDFAST_CONFIG_FILE", config_file.display().to_string());
    vars.insert("HOLDFAST_BRAND_NAME", "Acme Demo".into());
    vars.insert("HOLDFAST_CANCEL_RATE_LIMIT", "10000".into());
    let settings = Settings::from_source(&vars).context("the demo's settings")?;
    let clock = Clock::system();
    let app = Application::build_with_clock(settings, clock.clone()).await?;
    let store = app.store();

    let now = clock.now();
    let (customers, n_events) = fill(&store, &opts, now).await?;
    named_customers(&store, now).await?;
    let server = tokio::spawn(app.run_until_stopped());

    let (saves, cancellations) = cancel_flows(&store, &base, &link_secret, &opts).await?;
    let signer = LinkSigner::from_stripe_key(&SecretString::from(DEMO_STRIPE_KEY));
    let token = signer.sign(DEMO_DUNNING_CUSTOMER, Some("in_demo_ada_declined"), now + LINK_TTL_SECS);
    let sig = links::sign(DEMO_CANCEL_CUSTOMER, &SecretString::from(link_secret));
    let ready = Ready {
        cancel_link: format!("{base}/cancel?customer={DEMO_CANCEL_CUSTOMER}&sig={sig}"),
        update_payment_link: format!("{base}/billing/update?token={token}"),
        base,
        owner_token,
        customers,
        events: n_events,
        saves,
        cancellations,
    };
    let emails = wait_for_mail(&mail_dir).await;
    print_ready(&ready, &opts.dir, &mail_dir, emails, &standin);
    let served = server.await.context("the demo server")?;
    standin.stop().await;
    served
}

/// The demo's own configuration file: offers for the simulated plans.
const DEMO_CONFIG: &str = r#"# Written by `holdfast demo` (replaced at every start).
[brand]
name = "Acme Demo"

[cancel_flow]
offers = ["pause", "downgrade", "discount"]
coupon = "demo_25_off_3_months"
discount_text = "25 % off your next three months."

[cancel_flow.downgrade]
price_business_m = "price_team_m"
price_team_m = "price_starter_m"
"#;

/// A fresh start: the previous demo database and mail are removed.
fn reset(dir: &Path, mail_dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for name in ["holdfast.db", "holdfast.db-wal", "holdfast.db-shm"] {
        let path = dir.join(name);
        if path.exists() {
            std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
        }
    }
    if mail_dir.exists() {
        std::fs::remove_dir_all(mail_dir).with_context(|| format!("removing {}", mail_dir.display()))?;
    }
    std::fs::create_dir_all(mail_dir).with_context(|| format!("creating {}", mail_dir.display()))?;
    Ok(())
}

/// Links in emails need the real port: port 0 is resolved to a free one here.
fn concrete_bind(bind: &str) -> anyhow::Result<String> {
    let Some(host) = bind.strip_suffix(":0") else { return Ok(bind.to_owned()) };
    let listener = std::net::TcpListener::bind(bind).with_context(|| format!("binding {bind}"))?;
    Ok(format!("{host}:{}", listener.local_addr()?.port()))
}

/// 00:00 UTC on the 1st of the month `months` before the month of `t`.
fn month_start_before(t: i64, months: i64) -> i64 {
    use chrono::{Datelike, TimeZone, Utc};
    let d = Utc.timestamp_opt(t, 0).single().unwrap_or_default();
    let index = i64::from(d.year()) * 12 + i64::from(d.month0()) - months;
    let (year, month0) = (index.div_euclid(12), index.rem_euclid(12));
    Utc.with_ymd_and_hms(year as i32, month0 as u32 + 1, 1, 0, 0, 0).single().map_or(t, |d| d.timestamp())
}

/// The simulated year, through the store's ingest path (the webhook's, without HTTP).
async fn fill(store: &Store, opts: &DemoOptions, now: i64) -> anyhow::Result<(usize, usize)> {
    let start = month_start_before(now, 12);
    let params = Params { seed: opts.seed, customers: opts.customers, start, end: now - 60, signup_until: now - 5 * DAY };
    let business = Business::simulate(params);
    let rendered = events::render(&business, &samples::object);
    let mut all: Vec<Event> =
        rendered.iter().filter_map(|e| samples::to_event(&samples::event(&e.id, e.kind, e.created, e.object.clone()))).collect();
    // In time order, as Stripe would have delivered them.
    all.sort_by_key(|e| e.created);
    for part in all.chunks(2_000) {
        let refs: Vec<&Event> = part.iter().collect();
        store.ingest(&refs, now).await.context("loading the simulated business")?;
    }
    Ok((business.customers.len(), all.len()))
}

/// Ada, whose card was declined today, and Grace, on the Business plan, for the links.
async fn named_customers(store: &Store, now: i64) -> anyhow::Result<()> {
    let ada = DEMO_DUNNING_CUSTOMER;
    let grace = DEMO_CANCEL_CUSTOMER;
    let list = [
        samples::event(
            "evt_demo_ada_1",
            "customer.created",
            now - 240 * DAY,
            samples::customer(ada, "ada@example.com", "Ada Lovelace", now - 240 * DAY),
        ),
        samples::event(
            "evt_demo_ada_2",
            "customer.subscription.created",
            now - 240 * DAY,
            samples::subscription("sub_demo_ada", ada, "price_team_m", 4900, "active", now - 240 * DAY),
        ),
        samples::event(
            "evt_demo_ada_3",
            "invoice.payment_failed",
            now - 600,
            samples::invoice("in_demo_ada_declined", ada, "sub_demo_ada", "open", 4900, now - 600),
        ),
        samples::event(
            "evt_demo_grace_1",
            "customer.created",
            now - 150 * DAY,
            samples::customer(grace, "grace@example.com", "Grace Hopper", now - 150 * DAY),
        ),
        samples::event(
            "evt_demo_grace_2",
            "customer.subscription.created",
            now - 150 * DAY,
            samples::subscription("sub_demo_grace", grace, "price_business_m", 9900, "active", now - 150 * DAY),
        ),
    ];
    let parsed: Vec<Event> = list.iter().filter_map(samples::to_event).collect();
    anyhow::ensure!(parsed.len() == list.len(), "the demo's sample events parse");
    let refs: Vec<&Event> = parsed.iter().collect();
    store.ingest(&refs, now).await.context("adding the demo customers")?;
    Ok(())
}

/// Some live customers go through the cancel flow's pages (survey, offer, choice): the
/// stand-in answers the Stripe calls, the outcomes are recorded as for real customers.
async fn cancel_flows(store: &Store, base: &str, link_secret: &str, opts: &DemoOptions) -> anyhow::Result<(usize, usize)> {
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build()?;
    let secret = SecretString::from(link_secret.to_owned());
    let (mut saves, mut cancellations) = (0, 0);
    for i in 0..opts.customers {
        if saves + cancellations >= opts.cancel_flows {
            break;
        }
        let customer = format!("cus_{}_{i:05}", opts.seed);
        if store.live_subscription_of(&customer, None).await?.is_none() {
            continue;
        }
        let sig = links::sign(&customer, &secret);
        let n = saves + cancellations;
        match one_flow(&client, base, &customer, &sig, n).await {
            Ok(true) => saves += 1,
            Ok(false) => cancellations += 1,
            Err(e) => tracing::warn!(error = %e, customer, "demo cancel flow did not complete"),
        }
    }
    Ok((saves, cancellations))
}

fn location(response: &reqwest::Response) -> anyhow::Result<String> {
    let loc = response.headers().get("location").and_then(|v| v.to_str().ok()).context("a redirect")?;
    Ok(loc.to_owned())
}

/// The values of `name="…" value="…"` attributes of `name` in a page.
fn values(html: &str, name: &str) -> Vec<String> {
    let needle = format!("name=\"{name}\" value=\"");
    html.match_indices(&needle).filter_map(|(at, m)| html[at + m.len()..].split('"').next().map(str::to_owned)).collect()
}

/// One customer's way through the pages; `true` when they were saved.
async fn one_flow(client: &reqwest::Client, base: &str, customer: &str, sig: &str, n: usize) -> anyhow::Result<bool> {
    let entered = client.get(format!("{base}/cancel")).query(&[("customer", customer), ("sig", sig)]).send().await?;
    let session = format!("{base}{}", location(&entered)?);
    let survey = client.get(&session).send().await?.text().await?;
    let csrf = values(&survey, "csrf").into_iter().next().context("a CSRF token on the survey")?;
    let reasons = values(&survey, "reason");
    anyhow::ensure!(!reasons.is_empty(), "reasons on the survey");
    let reason = reasons[(n * 7 + 3) % reasons.len()].clone();
    let answered = client
        .post(format!("{session}/reason"))
        .form(&[("csrf", csrf.as_str()), ("reason", reason.as_str()), ("comment", "")])
        .send()
        .await?;
    let offer_url = format!("{base}{}", location(&answered)?);
    let offer = client.get(&offer_url).send().await?.text().await?;
    let choices = values(&offer, "choice");
    // Roughly what a retention flow sees: about half stay for a pause, a discount or a
    // cheaper plan (whichever is offered to them); the others cancel.
    let choice = if n.is_multiple_of(2) {
        let offered: Vec<&String> = choices.iter().filter(|c| c.as_str() != "cancel").collect();
        offered.get(n / 2 % offered.len().max(1)).map_or_else(|| "cancel".to_owned(), |c| (*c).clone())
    } else {
        "cancel".to_owned()
    };
    let chosen =
        client.post(format!("{session}/choose")).form(&[("csrf", csrf.as_str()), ("choice", choice.as_str())]).send().await?;
    anyhow::ensure!(chosen.status().is_redirection(), "the choice was accepted ({})", chosen.status());
    Ok(choice != "cancel")
}

/// The outbox worker writes the dunning email within moments; wait (bounded) for it.
async fn wait_for_mail(dir: &Path) -> usize {
    let count = || std::fs::read_dir(dir).map(|d| d.flatten().count()).unwrap_or(0);
    for _ in 0..100 {
        if count() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    count()
}

fn print_ready(r: &Ready, dir: &Path, mail_dir: &Path, emails: usize, standin: &StandIn) {
    let calls = standin.calls().len();
    println!(
        "\nHoldfast demo: a simulated business of {} customers over the last 12 months ({} events), \
         {} cancel-flow saves and {} cancellations, in {}.\n\
         Nothing leaves this machine: Stripe's API is answered by a local stand-in, email goes to a folder.\n",
        r.customers,
        r.events,
        r.saves,
        r.cancellations,
        dir.display()
    );
    println!("  home:           {}/", r.base);
    println!("  dashboard:      {}/dashboard", r.base);
    println!("  owner token:    {}   (paste it on the dashboard's sign-in page)", r.owner_token);
    println!("  cancel link:    {}", r.cancel_link);
    println!("                  (Grace Hopper, on the Business plan: try the survey and the offers)");
    println!("  update payment: {}", r.update_payment_link);
    println!("                  (Ada Lovelace, whose card was declined a few minutes ago)");
    println!("  emails:         {} ({emails} so far, .eml files)", mail_dir.display());
    println!("  Stripe calls:   {}/   (the stand-in: {calls} calls so far, what would have been sent)", standin.url);
    println!("  send an event:  holdfast send-event invoice.payment_failed   (signed, posted to this server)");
    println!("\nStop with Ctrl-C. The next `holdfast demo` starts a fresh demo.");
    use std::io::Write;
    let _ = std::io::stdout().flush();
}
