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
//! | `acme-dev` / `sandbox` | `cpi-api` (`it-rt` / `api`) | `old-tooling` (certificate, expired 2 days ago); `legacy-basic` (client secret, 400 days old); `broken-binding` (Cloud Integration certificate key, 100 days left; its `/details` always answers 404); `flaky-key` (Destination, 90 days left; its first four `/details` requests answer 502, so its first refresh fails and the next reads it) |
//! | | `smtp-relay` (user-provided) | none |
//! | `acme-qa` / `integration`, `extensions`, `analytics` | 12 `cpi-*` instances | 36 healthy keys, 45 to 700 days left |
//!
//! Owners (metadata, for `--metadata-labels` [`DEMO_METADATA_LABELS`]): label `team=platform`
//! on org `acme-prod`; annotation `example.com/owner=integration@acme.example` on space
//! `integration`; label `team=integration` on instance `cpi-runtime`, `team=jobs` on instance
//! `jobs-xsuaa`; label `team=payments` on key `payments-x509`. So `team` is set at three
//! levels: `platform` holds for `acme-prod`'s keys unless their instance (`cpi-runtime`,
//! `jobs-xsuaa`) or the key itself (`payments-x509`) says otherwise. `acme-dev` and `acme-qa`
//! carry no metadata.
//!
//! Successors (annotation [`DEMO_SUCCESSOR_ANNOTATION`], for `--successor-annotation`):
//! `jobs-x509-fresh` names `jobs-x509-rotated` as the key it replaces, so the exporter shows
//! `jobs-x509-rotated`'s successor.
//!
//! Lead times (annotation [`DEMO_LEAD_TIME_ANNOTATION`], for `--lead-time-annotation`):
//! `60d` on key `x509-client` (60 days left: the owner's lead warns now where the default
//! would not yet), none on its siblings `app-secret` and `legacy-secret`; `60` (no unit, so
//! invalid: the default lead applies) on key `monitoring`.
//!
//! The failures of `broken-binding` and `flaky-key` are planted in the world
//! ([`World::fail_details`]), so the demo shows them with no test code.
//!
//! Besides the 7-day x509 keys and the never-expiring secrets, keys live 365 days, except the
//! filler keys with more than 335 days left, which live 730 days (as older SAP services
//! allowed), so that no key is created in the future.
//!
//! # Parameters, brokers and new keys
//! The XSUAA keys are XSUAA's own x509 keys ([`Shape::XsuaaX509Binding`]: RSA certificate and
//! private key at the top level). Each key records the parameters it was created with where
//! its broker returns them ([`crate::world::Key::parameters`]):
//!
//! | key | parameters | `/parameters` answers |
//! | --- | --- | --- |
//! | `x509-client` | `{"credential-type": "x509", "x509": {"key-length": 4096, "validity": 365, "validity-type": "DAYS"}}` (its certificate has a 4096-bit key) | them |
//! | `app-secret`, `legacy-secret` | `{}` (created without: the instance default, a client secret) | `{}` |
//! | `jobs-x509-*` | `{"credential-type": "x509", "x509": {"key-length": 2048, "validity": 7, "validity-type": "DAYS"}}`; instance `jobs-xsuaa` defaults to `x509` | them |
//! | `payments-x509` | not returned by its broker; instance `payments-xsuaa` defaults to a client secret, so a key re-created without parameters would not be x509 | `{}` |
//! | `s4-inbound`, `partner-edi`, `monitoring` | `{"key-type": "certificate", "validity": 365}` | `400`: `it-rt` is not `bindings_retrievable` |
//! | `calm-key` | `{}` | `400` |
//!
//! Offering `xsuaa` is `bindings_retrievable`, `it-rt` and `cloud-alm-api` are not. Keys can be
//! created and deleted through the API on every instance ([`crate::operations`],
//! [`crate::broker`]): `xsuaa` and `cloud-alm-api` synchronously, `it-rt` asynchronously, its
//! operations finishing [`IT_RT_OPERATION`] after they start.

use time::{Duration, OffsetDateTime};

use super::credentials::{credentials, xsuaa_x509, CredentialsError, KeyLength, Shape};
use super::world::World;

/// The secret planted in every secret-bearing field of the demo's credentials.
pub const DEMO_SECRET: &str = "demo-client-secret-never-shown";

/// The metadata keys the demo's owners are found under (`--metadata-labels`).
pub const DEMO_METADATA_LABELS: &str = "team,example.com/owner";

/// The annotation the demo's owners set their warning lead time with (`--lead-time-annotation`).
pub const DEMO_LEAD_TIME_ANNOTATION: &str = "example.com/warning-lead-time";

/// The annotation a demo key names the key it succeeds with (`--successor-annotation`).
pub const DEMO_SUCCESSOR_ANNOTATION: &str = "example.com/successor-of";

/// How many `/details` requests for `flaky-key` answer 502 before it reads normally.
pub const FLAKY_FAILURES: u32 = 4;

/// How long before the first thing it contains an instance, space or org is created.
const CONTAINER_LEAD: Duration = Duration::days(1);

/// How long the demo's Cloud Integration broker (`it-rt`) takes to create or delete a key.
pub const IT_RT_OPERATION: Duration = Duration::seconds(2);

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

/// Records the parameters a key was created with, as its broker returns them.
fn created_with(w: &mut World, key: &str, parameters: serde_json::Value) {
    if let Some(k) = w.key_mut(key) {
        k.parameters = Some(parameters);
    }
}

/// The parameters of an XSUAA x509 key.
fn x509_parameters(key_length: KeyLength, days: i64) -> serde_json::Value {
    serde_json::json!({
        "credential-type": "x509",
        "x509": {"key-length": key_length.bits(), "validity": days, "validity-type": "DAYS"}
    })
}

/// The lifetime of a key with `days_left`: 365 days, or 730 when 365 would date its creation
/// in the last month or the future.
fn lifetime(days_left: i64) -> Duration {
    Duration::days(if days_left <= 335 { 365 } else { 730 })
}

/// The owners' lead times (see the module documentation): x509-client's partner needs two
/// months to install a new certificate; monitoring's owner forgot the unit.
fn plant_lead_times(w: &mut World) {
    for (key, value) in [("x509-client", "60d"), ("monitoring", "60")] {
        if let Some(guid) = w.find_key(key).map(|k| k.guid.clone()) {
            w.set_annotation(&guid, DEMO_LEAD_TIME_ANNOTATION, value);
        }
    }
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
        let key = expiring(
            &mut w,
            &runtime,
            name,
            Shape::CloudIntegrationFlow,
            year,
            Duration::days(left),
        )?;
        let certificate = serde_json::json!({"key-type": "certificate", "validity": 365});
        created_with(&mut w, &key, certificate);
    }

    let security = w.space(&prod, "security");
    let xsuaa = w.instance(&security, "xsuaa", "application", "xsuaa-app");
    let x509_client = w.key(
        &xsuaa,
        "x509-client",
        xsuaa_x509(days(60) - year, days(60), KeyLength::Rsa4096, DEMO_SECRET)?,
    );
    if let Some(k) = w.key_mut(&x509_client) {
        (k.created_at, k.updated_at) = (days(60) - year, days(60) - year);
    }
    created_with(
        &mut w,
        &x509_client,
        x509_parameters(KeyLength::Rsa4096, 365),
    );
    for (name, age) in [("app-secret", 30), ("legacy-secret", 400)] {
        let key = secret(
            &mut w,
            &xsuaa,
            name,
            Shape::XsuaaClientSecret,
            Duration::days(age),
        )?;
        created_with(&mut w, &key, serde_json::json!({}));
    }
    let jobs = w.instance(&security, "xsuaa", "application", "jobs-xsuaa");
    w.set_label(&jobs, "team", "jobs");
    if let Some(i) = w.instance_mut(&jobs) {
        i.default_credential_type = Some("x509".into());
    }
    for (name, age) in [
        ("jobs-x509-fresh", Duration::days(1)),
        ("jobs-x509-rotated", Duration::days(4)),
        ("jobs-x509-abandoned", Duration::hours(156)),
    ] {
        let key = planted(
            &mut w,
            &jobs,
            name,
            Shape::XsuaaX509Binding,
            now - age,
            now - age + week,
        )?;
        created_with(&mut w, &key, x509_parameters(KeyLength::Rsa2048, 7));
    }
    // The automation that made jobs-x509-fresh says which key it replaces.
    if let Some(fresh) = w.find_key("jobs-x509-fresh").map(|k| k.guid.clone()) {
        w.set_annotation(&fresh, DEMO_SUCCESSOR_ANNOTATION, "jobs-x509-rotated");
    }
    // Its broker does not return the parameters of this key (left `None`).
    let payments = w.instance(&security, "xsuaa", "application", "payments-xsuaa");
    let payments_key = planted(
        &mut w,
        &payments,
        "payments-x509",
        Shape::XsuaaX509Binding,
        hours(-156),
        hours(-156) + week,
    )?;
    w.set_label(&payments_key, "team", "payments");

    let alm = w.space(&prod, "alm");
    let calm = w.instance(&alm, "cloud-alm-api", "standard", "calm-api");
    let calm_key = planted(&mut w, &calm, "calm-key", Shape::CloudAlm, now, days(365))?;
    created_with(&mut w, &calm_key, serde_json::json!({}));

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
    // A broker hiccup that outlasts one refresh: a client retries a 502 a few times (the
    // exporter three times) before it gives up, so four failures make one failed refresh, and
    // the next refresh reads the key.
    w.fail_details(&flaky, 502, Some(FLAKY_FAILURES));
    w.user_provided(&sandbox, "smtp-relay");
    plant_lead_times(&mut w);

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
    if let Some(it_rt) = w.offering_mut("it-rt") {
        it_rt.async_after = Some(IT_RT_OPERATION);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credentials::leaf_validity;
    use crate::world::{Instance, Key};
    use serde_json::Value;
    use time::format_description::well_known::Rfc3339;
    use time::macros::datetime;

    /// A `now` with a fraction of a second, which the demo drops.
    const NOW: OffsetDateTime = datetime!(2026-05-04 03:02:01.5 UTC);
    const NOW_S: OffsetDateTime = datetime!(2026-05-04 03:02:01 UTC);

    fn key<'a>(w: &'a World, name: &str) -> &'a Key {
        w.find_key(name).unwrap_or_else(|| panic!("no key {name}"))
    }

    fn instance<'a>(w: &'a World, name: &str) -> &'a Instance {
        w.instances
            .iter()
            .find(|i| i.name == name)
            .unwrap_or_else(|| panic!("no instance {name}"))
    }

    fn rfc3339(v: &Value) -> i64 {
        OffsetDateTime::parse(v.as_str().expect("a date"), &Rfc3339)
            .expect("RFC 3339")
            .unix_timestamp()
    }

    /// The start and end of validity the credentials state, in Unix seconds, read the way
    /// each shape states them.
    fn validity(c: &Value) -> (Option<i64>, Option<i64>) {
        let pem = c["uaa"]["certificate"]
            .as_str()
            .or(c["oauth"]["certificate"].as_str())
            .or(c["certificate"].as_str());
        if let Some(pem) = pem {
            let (from, until) = leaf_validity(pem);
            return (Some(from), Some(until));
        }
        let created = c["oauth"].get("createdate").map(rfc3339);
        if let Some(until) = c["certificatedetails"].get("validuntil") {
            return (created, Some(rfc3339(until)));
        }
        if let Some(until) = c.get("validUntil") {
            let ms = |v: &Value| v.as_i64().expect("millis") / 1000;
            return (c.get("validFrom").map(ms), Some(ms(until)));
        }
        if let Some(until) = c["uaa"].get("expiration_date") {
            return (None, Some(rfc3339(until)));
        }
        if let Some(until) = c.get("expires_at") {
            return (None, until.as_i64());
        }
        (created, None)
    }

    #[test]
    fn the_demo_keys_live_as_planted() {
        let w = world(NOW).expect("demo");
        let d = Duration::days;
        let h = Duration::hours;
        // name, created (= valid from) relative to now, expiry relative to now
        let planted = [
            ("s4-inbound", d(3) - d(365), Some(d(3))),
            ("partner-edi", d(20) - d(365), Some(d(20))),
            ("monitoring", d(200) - d(365), Some(d(200))),
            ("x509-client", d(60) - d(365), Some(d(60))),
            ("app-secret", -d(30), None),
            ("legacy-secret", -d(400), None),
            ("jobs-x509-fresh", -d(1), Some(d(6))),
            ("jobs-x509-rotated", -d(4), Some(d(3))),
            ("jobs-x509-abandoned", -h(156), Some(h(12))),
            ("payments-x509", -h(156), Some(h(12))),
            ("calm-key", d(0), Some(d(365))),
            ("old-tooling", -d(367), Some(-d(2))),
            ("legacy-basic", -d(400), None),
            ("broken-binding", d(100) - d(365), Some(d(100))),
            ("flaky-key", d(90) - d(365), Some(d(90))),
        ];
        for (name, created, expires) in planted {
            let k = key(&w, name);
            assert_eq!(k.created_at, NOW_S + created, "{name}: created_at");
            assert_eq!(k.updated_at, k.created_at, "{name}: updated_at");
            let (from, until) = validity(&k.credentials);
            assert_eq!(
                until,
                expires.map(|e| (NOW_S + e).unix_timestamp()),
                "{name}: expiry"
            );
            if let Some(from) = from {
                assert_eq!(from, k.created_at.unix_timestamp(), "{name}: valid from");
            }
        }
        // The shapes the names promise.
        let c = |name| &key(&w, name).credentials;
        assert_eq!(c("app-secret")["credential-type"], "binding-secret");
        assert_eq!(c("legacy-secret")["credential-type"], "binding-secret");
        for x509 in ["x509-client", "jobs-x509-fresh", "payments-x509"] {
            assert_eq!(c(x509)["credential-type"], "x509", "{x509}");
            assert!(c(x509)["key"]
                .as_str()
                .is_some_and(|k| k.contains("-----BEGIN RSA PRIVATE KEY-----")));
        }
        assert!(c("s4-inbound")["certificatedetails"]["validuntil"].is_string());
        assert!(c("old-tooling")["oauth"]["certificate"].is_string());
        assert!(c("legacy-basic")["oauth"]["clientsecret"].is_string());
        assert!(c("flaky-key")["validFrom"].is_i64());
        assert!(c("calm-key")["uaa"]["expiration_date"].is_string());
        // Certificates and createdate agree with the binding to the second.
        for k in &w.keys {
            assert!(k.created_at <= NOW_S, "{} created in the future", k.name);
            if let (Some(from), _) = validity(&k.credentials) {
                assert_eq!(from, k.created_at.unix_timestamp(), "{}", k.name);
            }
        }
    }

    #[test]
    fn the_demo_foundation_is_laid_out_with_owners_and_failures() {
        let w = world(NOW).expect("demo");
        let org = |name: &str| w.orgs.iter().find(|o| o.name == name).expect(name);
        let space = |org_name: &str, name: &str| {
            let org = org(org_name);
            w.spaces
                .iter()
                .find(|s| s.name == name && s.org_guid == org.guid)
                .expect(name)
        };
        let plan_of = |i: &Instance| {
            let plan = w
                .plans
                .iter()
                .find(|p| Some(&p.guid) == i.plan_guid.as_ref())
                .expect("a plan");
            let offering = w
                .offerings
                .iter()
                .find(|o| o.guid == plan.offering_guid)
                .expect("an offering");
            (offering.name.as_str(), plan.name.as_str())
        };
        let layout = [
            (
                "acme-prod",
                "integration",
                "cpi-runtime",
                ("it-rt", "integration-flow"),
                &["s4-inbound", "partner-edi", "monitoring"][..],
            ),
            (
                "acme-prod",
                "security",
                "xsuaa-app",
                ("xsuaa", "application"),
                &["x509-client", "app-secret", "legacy-secret"],
            ),
            (
                "acme-prod",
                "security",
                "jobs-xsuaa",
                ("xsuaa", "application"),
                &[
                    "jobs-x509-fresh",
                    "jobs-x509-rotated",
                    "jobs-x509-abandoned",
                ],
            ),
            (
                "acme-prod",
                "security",
                "payments-xsuaa",
                ("xsuaa", "application"),
                &["payments-x509"],
            ),
            (
                "acme-prod",
                "alm",
                "calm-api",
                ("cloud-alm-api", "standard"),
                &["calm-key"],
            ),
            (
                "acme-dev",
                "sandbox",
                "cpi-api",
                ("it-rt", "api"),
                &["old-tooling", "legacy-basic", "broken-binding", "flaky-key"],
            ),
        ];
        for (o, s, i, plan, keys) in layout {
            let inst = instance(&w, i);
            assert_eq!(inst.space_guid, space(o, s).guid, "{i}");
            assert_eq!(plan_of(inst), plan, "{i}");
            let names: Vec<&str> = w
                .keys
                .iter()
                .filter(|k| k.instance_guid == inst.guid)
                .map(|k| k.name.as_str())
                .collect();
            assert_eq!(names, keys, "{i}");
        }
        let smtp = instance(&w, "smtp-relay");
        assert_eq!(
            (smtp.plan_guid.as_ref(), &smtp.space_guid),
            (None, &space("acme-dev", "sandbox").guid)
        );

        // Owners at four levels; `team` at the org, instance and key levels.
        let labels = |m: &crate::world::Metadata| (m.labels.clone(), m.annotations.clone());
        let map = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<std::collections::BTreeMap<_, _>>()
        };
        assert_eq!(
            labels(&org("acme-prod").metadata),
            (map(&[("team", "platform")]), map(&[]))
        );
        assert_eq!(
            labels(&space("acme-prod", "integration").metadata),
            (
                map(&[]),
                map(&[("example.com/owner", "integration@acme.example")])
            )
        );
        assert_eq!(
            labels(&instance(&w, "cpi-runtime").metadata),
            (map(&[("team", "integration")]), map(&[]))
        );
        assert_eq!(
            labels(&instance(&w, "jobs-xsuaa").metadata),
            (map(&[("team", "jobs")]), map(&[]))
        );
        assert_eq!(
            labels(&key(&w, "payments-x509").metadata),
            (map(&[("team", "payments")]), map(&[]))
        );
        // Lead times: on two keys, one of them invalid.
        let lead = |name: &str| labels(&key(&w, name).metadata);
        assert_eq!(
            lead("x509-client"),
            (map(&[]), map(&[(DEMO_LEAD_TIME_ANNOTATION, "60d")]))
        );
        assert_eq!(
            lead("monitoring"),
            (map(&[]), map(&[(DEMO_LEAD_TIME_ANNOTATION, "60")]))
        );
        assert_eq!(
            lead("jobs-x509-fresh"),
            (
                map(&[]),
                map(&[(DEMO_SUCCESSOR_ANNOTATION, "jobs-x509-rotated")])
            )
        );
        let owned = [
            w.orgs[0].guid.as_str(),
            space("acme-prod", "integration").guid.as_str(),
            instance(&w, "cpi-runtime").guid.as_str(),
            instance(&w, "jobs-xsuaa").guid.as_str(),
            key(&w, "payments-x509").guid.as_str(),
            key(&w, "x509-client").guid.as_str(),
            key(&w, "monitoring").guid.as_str(),
            key(&w, "jobs-x509-fresh").guid.as_str(),
        ];
        let unowned = |guid: &str, m: &crate::world::Metadata| {
            owned.contains(&guid) || (m.labels.is_empty() && m.annotations.is_empty())
        };
        assert!(w.orgs.iter().all(|o| unowned(&o.guid, &o.metadata)));
        assert!(w.spaces.iter().all(|s| unowned(&s.guid, &s.metadata)));
        assert!(w.instances.iter().all(|i| unowned(&i.guid, &i.metadata)));
        assert!(w.keys.iter().all(|k| unowned(&k.guid, &k.metadata)));
        assert_eq!(DEMO_METADATA_LABELS, "team,example.com/owner");

        // Failures planted in the world, no test code needed.
        assert_eq!(
            w.details_failure(&key(&w, "broken-binding").guid),
            Some((404, None))
        );
        assert_eq!(
            w.details_failure(&key(&w, "flaky-key").guid),
            Some((502, Some(FLAKY_FAILURES)))
        );
        let failing = w
            .keys
            .iter()
            .filter(|k| w.details_failure(&k.guid).is_some())
            .count();
        assert_eq!(failing, 2);

        // The filler.
        let qa = &org("acme-qa").guid;
        let qa_keys = w
            .keys
            .iter()
            .filter(|k| {
                let i = w
                    .instances
                    .iter()
                    .find(|i| i.guid == k.instance_guid)
                    .expect("instance");
                w.spaces
                    .iter()
                    .any(|s| s.guid == i.space_guid && &s.org_guid == qa)
            })
            .count();
        assert_eq!(qa_keys, 36);
        assert_eq!(w.keys.len(), 15 + 36);
    }

    /// Whether the leaf certificate of a PEM chain is issued for this RSA key length (its DER
    /// holds that public key).
    fn leaf_has_key(pem: &str, length: KeyLength) -> bool {
        use base64::Engine as _;
        let b64: String = pem
            .lines()
            .skip(1)
            .take_while(|l| !l.starts_with("-----END"))
            .collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .expect("base64");
        let public = rcgen::PublicKeyData::der_bytes(length.public_key()).to_vec();
        der.windows(public.len()).any(|w| w == public)
    }

    #[test]
    fn the_demo_keys_carry_their_parameters_and_the_offerings_their_brokers() {
        let w = world(NOW).expect("demo");
        let parameters = |name| key(&w, name).parameters.clone();
        let x509 = |bits: u64, days: i64| {
            serde_json::json!({"credential-type": "x509",
                "x509": {"key-length": bits, "validity": days, "validity-type": "DAYS"}})
        };
        assert_eq!(parameters("x509-client"), Some(x509(4096, 365)));
        let certificate = |name| key(&w, name).credentials["certificate"].clone();
        let pem = certificate("x509-client");
        assert!(leaf_has_key(
            pem.as_str().expect("a chain"),
            KeyLength::Rsa4096
        ));
        assert!(!leaf_has_key(
            pem.as_str().expect("a chain"),
            KeyLength::Rsa2048
        ));
        for jobs in [
            "jobs-x509-fresh",
            "jobs-x509-rotated",
            "jobs-x509-abandoned",
        ] {
            assert_eq!(parameters(jobs), Some(x509(2048, 7)), "{jobs}");
            let pem = certificate(jobs);
            assert!(leaf_has_key(
                pem.as_str().expect("a chain"),
                KeyLength::Rsa2048
            ));
        }
        assert_eq!(parameters("payments-x509"), None);
        for secret in ["app-secret", "legacy-secret", "calm-key"] {
            assert_eq!(parameters(secret), Some(serde_json::json!({})), "{secret}");
        }
        assert_eq!(
            parameters("s4-inbound"),
            Some(serde_json::json!({"key-type": "certificate", "validity": 365}))
        );
        assert_eq!(parameters("old-tooling"), None);
        let default = |name| instance(&w, name).default_credential_type.clone();
        assert_eq!(default("jobs-xsuaa").as_deref(), Some("x509"));
        assert_eq!(default("payments-xsuaa"), None);
        assert_eq!(default("xsuaa-app"), None);
        let offering = |name: &str| {
            let o = w.offerings.iter().find(|o| o.name == name).expect(name);
            (o.bindings_retrievable, o.async_after)
        };
        assert_eq!(offering("xsuaa"), (true, None));
        assert_eq!(offering("it-rt"), (false, Some(IT_RT_OPERATION)));
        assert_eq!(offering("cloud-alm-api"), (false, None));
    }

    /// Every instance, space and org is created and updated before what it contains.
    fn assert_containers_before_contents(w: &World) {
        for i in &w.instances {
            let keys = w.keys.iter().filter(|k| k.instance_guid == i.guid);
            for k in keys {
                assert!(
                    i.created_at < k.created_at && i.updated_at < k.created_at,
                    "{} / {}",
                    i.name,
                    k.name
                );
            }
            let s = w
                .spaces
                .iter()
                .find(|s| s.guid == i.space_guid)
                .expect("space");
            assert!(
                s.created_at < i.created_at && s.updated_at < i.created_at,
                "{}",
                s.name
            );
            let o = w.orgs.iter().find(|o| o.guid == s.org_guid).expect("org");
            assert!(
                o.created_at < s.created_at && o.updated_at < s.created_at,
                "{}",
                o.name
            );
        }
        assert!(w.instances.iter().all(|i| i.created_at < i.updated_at));
    }

    #[test]
    fn demo_containers_are_created_before_their_contents() {
        assert_containers_before_contents(&world(NOW).expect("demo"));
    }

    #[test]
    fn the_large_foundation_has_owners_and_spread_creation_times() {
        let w = large(100, NOW).expect("large");
        assert_eq!(w.keys.len(), 100);
        assert_eq!(w.instances.len(), 10);
        assert_eq!((w.orgs.len(), w.spaces.len(), w.plans.len()), (5, 20, 3));
        for s in &w.spaces {
            let expected = s.name.replace("space-", "team-");
            assert_eq!(s.metadata.labels.get("team"), Some(&expected));
        }
        for o in &w.orgs {
            let expected = format!("owner-{}@example.com", &o.name[4..]);
            assert_eq!(
                o.metadata.annotations.get("example.com/owner"),
                Some(&expected)
            );
        }
        let mut created: Vec<_> = w.keys.iter().map(|k| k.created_at).collect();
        for k in &w.keys {
            assert!(k.created_at <= NOW_S, "{}", k.name);
            let (from, until) = validity(&k.credentials);
            assert_eq!(from, Some(k.created_at.unix_timestamp()), "{}", k.name);
            let until = until.expect("an expiry");
            assert!(until > NOW_S.unix_timestamp(), "{}", k.name);
        }
        created.sort();
        created.dedup();
        assert!(
            created.len() > 50,
            "creation times spread: {}",
            created.len()
        );
        assert!(created[0] < NOW_S - Duration::days(300));
        assert_containers_before_contents(&w);
    }
}
