//! The foundation `--demo` serves: a few orgs and spaces with Cloud Integration, XSUAA and
//! Cloud ALM keys, some expired, some expiring within days, some within months, one without
//! any expiry. Expiries are relative to the moment the demo starts, so its alerts always fire
//! the same way. The end-to-end alerting test relies on the keys named here.

use time::{Duration, OffsetDateTime};

use super::credentials::{credentials, CredentialsError, Shape};
use super::world::World;

/// The secret planted in every secret-bearing field of the demo's credentials.
pub const DEMO_SECRET: &str = "demo-client-secret-never-shown";

/// Builds the demo world with expiries counted from `now`.
pub fn world(now: OffsetDateTime) -> Result<World, CredentialsError> {
    let mut w = World::new();
    let days = |d: i64| now + Duration::days(d);
    let creds = |shape, d| credentials(shape, days(d), DEMO_SECRET);

    let prod = w.org("acme-prod");
    let integration = w.space(&prod, "integration");
    let runtime = w.instance(&integration, "it-rt", "integration-flow", "cpi-runtime");
    w.key(
        &runtime,
        "s4-inbound",
        creds(Shape::CloudIntegrationFlow, 3)?,
    );
    w.key(
        &runtime,
        "partner-edi",
        creds(Shape::CloudIntegrationFlow, 20)?,
    );
    w.key(
        &runtime,
        "monitoring",
        creds(Shape::CloudIntegrationFlow, 200)?,
    );

    let security = w.space(&prod, "security");
    let xsuaa = w.instance(&security, "xsuaa", "application", "xsuaa-app");
    w.key(&xsuaa, "x509-client", creds(Shape::XsuaaX509, 60)?);

    let alm = w.space(&prod, "alm");
    let calm = w.instance(&alm, "cloud-alm-api", "standard", "calm-api");
    w.key(&calm, "calm-key", creds(Shape::CloudAlm, 365)?);

    let dev = w.org("acme-dev");
    let sandbox = w.space(&dev, "sandbox");
    let api = w.instance(&sandbox, "it-rt", "api", "cpi-api");
    w.key(&api, "old-tooling", creds(Shape::CloudIntegrationApi, -2)?);
    w.key(&api, "legacy-basic", creds(Shape::Basic, 0)?);
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
                let spread = 45 + ((s * 131 + i * 37 + k * 53) % 650) as i64;
                let shape = shapes[(s + i + k) % shapes.len()];
                w.key(&inst, &format!("partner-{i}-{k}"), creds(shape, spread)?);
            }
        }
    }
    Ok(w)
}

/// A large foundation for pagination tests and benchmarks: `keys` service keys, ten per
/// instance, spread over 5 orgs × 4 spaces and three plans, expiring between 1 and 700 days
/// from `now`. Most carry SAP Cloud Integration's `certificatedetails.validuntil`; one in ten
/// carries an X.509 chain, as XSUAA keys do.
pub fn large(keys: usize, now: OffsetDateTime) -> Result<World, CredentialsError> {
    let mut w = World::new();
    let mut spaces = Vec::new();
    for o in 0..5 {
        let org = w.org(&format!("org-{o}"));
        for s in 0..4 {
            spaces.push(w.space(&org, &format!("space-{o}-{s}")));
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
        w.key(
            &instance,
            &format!("key-{k}"),
            credentials(shape, now + Duration::days(days), DEMO_SECRET)?,
        );
    }
    Ok(w)
}
