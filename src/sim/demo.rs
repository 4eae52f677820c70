//! The foundation `--demo` serves: a few orgs and spaces with Cloud Integration, XSUAA and
//! Cloud ALM keys, some expired, some expiring within days, some within months, one without
//! any expiry. Expiries are relative to the moment the demo starts, so its alerts always fire
//! the same way. The end-to-end alerting test relies on the keys named here.

use serde_json::json;
use time::{Duration, OffsetDateTime};

use super::world::{validuntil_credentials, World};

/// The secret planted in every secret-bearing field of the demo's credentials.
pub const DEMO_SECRET: &str = "demo-client-secret-never-shown";

/// Builds the demo world with expiries counted from `now`.
pub fn world(now: OffsetDateTime) -> World {
    let mut w = World::new();
    let days = |d: i64| now + Duration::days(d);
    let cpi = |at| validuntil_credentials(at, DEMO_SECRET);

    let prod = w.org("acme-prod");
    let integration = w.space(&prod, "integration");
    let runtime = w.instance(&integration, "it-rt", "integration-flow", "cpi-runtime");
    w.key(&runtime, "s4-inbound", cpi(days(3)));
    w.key(&runtime, "partner-edi", cpi(days(20)));
    w.key(&runtime, "monitoring", cpi(days(200)));

    let security = w.space(&prod, "security");
    let xsuaa = w.instance(&security, "xsuaa", "application", "xsuaa-app");
    w.key(&xsuaa, "x509-client", cpi(days(60)));

    let alm = w.space(&prod, "alm");
    let calm = w.instance(&alm, "cloud-alm-api", "standard", "calm-api");
    w.key(&calm, "calm-key", cpi(days(365)));

    let dev = w.org("acme-dev");
    let sandbox = w.space(&dev, "sandbox");
    let api = w.instance(&sandbox, "it-rt", "api", "cpi-api");
    w.key(&api, "old-tooling", cpi(days(-2)));
    w.key(
        &api,
        "legacy-basic",
        json!({"clientid": "sb-legacy", "clientsecret": DEMO_SECRET, "url": "https://legacy.example.com"}),
    );
    w.user_provided(&sandbox, "smtp-relay");

    // Filler: a realistic spread of healthy keys beyond the warning window.
    let qa = w.org("acme-qa");
    for (s, space) in ["integration", "extensions", "analytics"]
        .iter()
        .enumerate()
    {
        let space = w.space(&qa, space);
        for i in 0..4 {
            let inst = w.instance(
                &space,
                "it-rt",
                "integration-flow",
                &format!("cpi-{space_idx}-{i}", space_idx = s),
            );
            for k in 0..3 {
                let spread = 45 + ((s * 131 + i * 37 + k * 53) % 650) as i64;
                w.key(&inst, &format!("partner-{i}-{k}"), cpi(days(spread)));
            }
        }
    }
    w
}
