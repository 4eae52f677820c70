//! The foundations the simulator serves: [`world`], the one `--demo` shows a newcomer, and
//! [`large`], for pagination tests and benchmarks.
//!
//! Everything is relative to the `now` given (truncated to the whole second), so the demo's
//! alerts always fire the same way. The end-to-end alerting test and the report test rely on
//! the names here. Every key's binding is created at the instant its credentials become valid
//! (certificate notBefore, `createdate`, `validFrom`), and every instance, space and org is
//! created (and last updated) before what it contains.
//!
//! # The demo foundation
//! | org / space | instance (offering / plan) | keys |
//! | --- | --- | --- |
//! | `acme-prod` / `integration` | `cpi-runtime` (`it-rt` / `integration-flow`) | `s4-inbound`, `partner-edi`, `monitoring`: Cloud Integration certificate keys of 365 days, 3, 20 and 200 days left |
//! | `acme-prod` / `security` | `xsuaa-app` (`xsuaa` / `application`) | `x509-client` (x509, 365 days, 60 left); `app-secret`, `legacy-secret`: client secrets created 30 and 400 days ago, never expiring |
//! | | `jobs-xsuaa` (`xsuaa` / `application`) | `jobs-x509-fresh`, `jobs-x509-rotated`, `jobs-x509-abandoned`: 7-day x509 keys created 1, 4 and 6.5 days ago (the last with 12 h left) |
//! | | `payments-xsuaa` (`xsuaa` / `application`) | `payments-x509`: 7-day x509, created 6.5 days ago |
//! | `acme-prod` / `alm` | `calm-api` (`cloud-alm-api` / `standard`) | `calm-key`: 365 days, created now |
//! | `acme-dev` / `sandbox` | `cpi-api` (`it-rt` / `api`) | `old-tooling` (certificate, expired 2 days ago); `legacy-basic` (client secret, 400 days old); `broken-binding` (its `/details` always answers 404); `flaky-key` (Destination, 90 days left; its first `/details` answers 502) |
//! | | `smtp-relay` (user-provided) | none |
//! | `acme-qa` / `integration`, `extensions`, `analytics` | 12 `cpi-*` instances | 36 healthy keys, 45 to 700 days left |
//!
//! Owners (metadata, for `--metadata-labels` [`DEMO_METADATA_LABELS`]): label `team=platform`
//! on org `acme-prod`; annotation `example.com/owner=integration@acme.example` on space
//! `integration`; label `team=integration` on instance `cpi-runtime`, `team=jobs` on instance
//! `jobs-xsuaa`; label `team=payments` on key `payments-x509`. So `team` is set at the org,
//! instance and key levels and `payments-x509` and `cpi-runtime`'s keys override the org's;
//! `acme-dev` and `acme-qa` carry none.
//!
//! The failures of `broken-binding` and `flaky-key` are planted in the world
//! ([`World::fail_details`]), so the demo shows them with no test code.
//!
//! Lifetimes are 365 days, except the filler keys with more than 335 days left (730 days, as
//! older SAP services allowed), so that no key is created in the future.

use time::{Duration, OffsetDateTime};

use super::credentials::{credentials, CredentialsError, Shape};
use super::world::World;

/// The secret planted in every secret-bearing field of the demo's credentials.
pub const DEMO_SECRET: &str = "demo-client-secret-never-shown";

/// The metadata keys the demo's owners are found under (`--metadata-labels`).
pub const DEMO_METADATA_LABELS: &str = "team,example.com/owner";

/// How long before the first thing it contains an instance, space or org is created.
const CONTAINER_LEAD: Duration = Duration::days(1);

/// Plants a key valid (and created) from `valid_from` until `expires_at`.
fn planted(
    w: &mut World,
    instance: &str,
    name: &str,
    shape: Shape,
    valid_from: OffsetDateTime,
    expires_at: OffsetDateTime,
) -> Result<String, CredentialsError> {
    let guid = w.key(
        instance,
        name,
        credentials(shape, valid_from, expires_at, DEMO_SECRET)?,
    );
    if let Some(k) = w.key_mut(&guid) {
        k.created_at = valid_from;
        k.updated_at = valid_from;
    }
    Ok(guid)
}

/// The lifetime of a key with `days_left`: 365 days, or 730 when 365 would date its creation
/// in the last month or the future.
fn lifetime(days_left: i64) -> Duration {
    Duration::days(if days_left <= 335 { 365 } else { 730 })
}

/// Builds the demo world (see the module documentation) with times counted from `now`.
pub fn world(now: OffsetDateTime) -> Result<World, CredentialsError> {
    let now = now.replace_nanosecond(0).unwrap_or(now);
    let mut w = World::new();
    let days = |d: i64| now + Duration::days(d);
    let hours = |h: i64| now + Duration::hours(h);
    let year = Duration::days(365);
    let week = Duration::days(7);
    // A key with `left` until it expires after `lifetime`.
    let expiring =
        |w: &mut World, instance: &str, name: &str, shape, lifetime: Duration, left: Duration| {
            let expires_at = now + left;
            planted(w, instance, name, shape, expires_at - lifetime, expires_at)
        };
    // A key that never expires, created `age` ago.
    let secret = |w: &mut World, instance: &str, name: &str, shape, age: Duration| {
        planted(w, instance, name, shape, now - age, now - age + year)
    };

    let prod = w.org("acme-prod");
    w.set_label(&prod, "team", "platform");
    let integration = w.space(&prod, "integration");
    w.set_annotation(
        &integration,
        "example.com/owner",
        "integration@acme.example",
    );
    let runtime = w.instance(&integration, "it-rt", "integration-flow", "cpi-runtime");
    w.set_label(&runtime, "team", "integration");
    for (name, left) in [("s4-inbound", 3), ("partner-edi", 20), ("monitoring", 200)] {
        expiring(
            &mut w,
            &runtime,
            name,
            Shape::CloudIntegrationFlow,
            year,
            Duration::days(left),
        )?;
    }

    let security = w.space(&prod, "security");
    let xsuaa = w.instance(&security, "xsuaa", "application", "xsuaa-app");
    expiring(
        &mut w,
        &xsuaa,
        "x509-client",
        Shape::XsuaaX509,
        year,
        Duration::days(60),
    )?;
    secret(
        &mut w,
        &xsuaa,
        "app-secret",
        Shape::XsuaaClientSecret,
        Duration::days(30),
    )?;
    secret(
        &mut w,
        &xsuaa,
        "legacy-secret",
        Shape::XsuaaClientSecret,
        Duration::days(400),
    )?;
    let jobs = w.instance(&security, "xsuaa", "application", "jobs-xsuaa");
    w.set_label(&jobs, "team", "jobs");
    for (name, age) in [
        ("jobs-x509-fresh", Duration::days(1)),
        ("jobs-x509-rotated", Duration::days(4)),
        ("jobs-x509-abandoned", Duration::hours(156)),
    ] {
        planted(
            &mut w,
            &jobs,
            name,
            Shape::XsuaaX509,
            now - age,
            now - age + week,
        )?;
    }
    let payments = w.instance(&security, "xsuaa", "application", "payments-xsuaa");
    let payments_key = planted(
        &mut w,
        &payments,
        "payments-x509",
        Shape::XsuaaX509,
        hours(-156),
        hours(-156) + week,
    )?;
    w.set_label(&payments_key, "team", "payments");

    let alm = w.space(&prod, "alm");
    let calm = w.instance(&alm, "cloud-alm-api", "standard", "calm-api");
    planted(&mut w, &calm, "calm-key", Shape::CloudAlm, now, days(365))?;

    let dev = w.org("acme-dev");
    let sandbox = w.space(&dev, "sandbox");
    let api = w.instance(&sandbox, "it-rt", "api", "cpi-api");
    expiring(
        &mut w,
        &api,
        "old-tooling",
        Shape::CloudIntegrationApi,
        year,
        Duration::days(-2),
    )?;
    secret(
        &mut w,
        &api,
        "legacy-basic",
        Shape::Basic,
        Duration::days(400),
    )?;
    let broken = expiring(
        &mut w,
        &api,
        "broken-binding",
        Shape::CloudIntegrationFlow,
        year,
        Duration::days(100),
    )?;
    w.fail_details(&broken, 404, None);
    let flaky = expiring(
        &mut w,
        &api,
        "flaky-key",
        Shape::Destination,
        year,
        Duration::days(90),
    )?;
    w.fail_details(&flaky, 502, Some(1));
    w.user_provided(&sandbox, "smtp-relay");

    // Filler: a realistic spread of healthy keys beyond the warning window, in every shape
    // that carries an expiry.
    let shapes = [
        Shape::CloudIntegrationFlow,
        Shape::Destination,
        Shape::ConnectivityExpiresAt,
        Shape::CloudAlm,
    ];
    let qa = w.org("acme-qa");
    for (s, space_name) in ["integration", "extensions", "analytics"]
        .iter()
        .enumerate()
    {
        let space = w.space(&qa, space_name);
        for i in 0..4 {
            let inst = w.instance(
                &space,
                "it-rt",
                "integration-flow",
                &format!("cpi-{space_name}-{i}"),
            );
            for k in 0..3 {
                let left = 45 + ((s * 131 + i * 37 + k * 53) % 650) as i64;
                let shape = shapes[(s + i + k) % shapes.len()];
                expiring(
                    &mut w,
                    &inst,
                    &format!("partner-{i}-{k}"),
                    shape,
                    lifetime(left),
                    Duration::days(left),
                )?;
            }
        }
    }
    w.date_containers(CONTAINER_LEAD, now);
    Ok(w)
}

/// A large foundation for pagination tests and benchmarks: `keys` service keys, ten per
/// instance, spread over 5 orgs × 4 spaces and three plans, expiring between 1 and 700 days
/// from `now`. Most carry SAP Cloud Integration's `certificatedetails.validuntil`; one in ten
/// carries an X.509 chain, as XSUAA keys do. Each key is created when it becomes valid, 365
/// days before its expiry (730 for those with more than 335 days left), so creation times
/// spread over the last year. Every space carries the label `team=team-<o>-<s>`, every org
/// the annotation `example.com/owner=owner-<o>@example.com`, so owner resolution has work at
/// every key.
pub fn large(keys: usize, now: OffsetDateTime) -> Result<World, CredentialsError> {
    let now = now.replace_nanosecond(0).unwrap_or(now);
    let mut w = World::new();
    let mut spaces = Vec::new();
    for o in 0..5 {
        let org = w.org(&format!("org-{o}"));
        w.set_annotation(&org, "example.com/owner", &format!("owner-{o}@example.com"));
        for s in 0..4 {
            let space = w.space(&org, &format!("space-{o}-{s}"));
            w.set_label(&space, "team", &format!("team-{o}-{s}"));
            spaces.push(space);
        }
    }
    let plans = [
        ("it-rt", "integration-flow"),
        ("it-rt", "api"),
        ("xsuaa", "application"),
    ];
    let mut instance = String::new();
    for k in 0..keys {
        if k % 10 == 0 {
            let i = k / 10;
            let (offering, plan) = plans[i % plans.len()];
            instance = w.instance(
                &spaces[i % spaces.len()],
                offering,
                plan,
                &format!("instance-{i}"),
            );
        }
        let days = 1 + (k * 7919 % 700) as i64;
        let shape = if k % 10 == 9 {
            Shape::XsuaaX509
        } else {
            Shape::CloudIntegrationFlow
        };
        let expires_at = now + Duration::days(days);
        planted(
            &mut w,
            &instance,
            &format!("key-{k}"),
            shape,
            expires_at - lifetime(days),
            expires_at,
        )?;
    }
    w.date_containers(CONTAINER_LEAD, now);
    Ok(w)
}
