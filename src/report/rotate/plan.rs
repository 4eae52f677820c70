//! One key's rotation plan: the steps, each a `cf` CLI command and the equivalent V3 request.
//!
//! 1. **target** the key's org and space (`cf target`; the V3 requests name the instance by
//!    guid, so this step has none);
//! 2. **create** the successor under its scheme name with the predecessor's parameters
//!    (`cf create-service-key`; `POST /v3/service_credential_bindings`, which with a
//!    successor annotation configured also annotates the new key with the old key's name);
//! 3. **hand over**: Cloud Foundry records no consumers for service keys (only app bindings
//!    name an app), so the plan says so and names the owners; `cf service-key` shows the new
//!    credentials to give them (the plan itself never holds one);
//! 4. **delete** the old key once its consumers have moved (`cf delete-service-key`;
//!    `DELETE /v3/service_credential_bindings/:guid`).
//!
//! A key that already has a successor skips step 2 and hands over to that successor. A key
//! whose parameters can be neither fetched nor derived, or whose successor name is taken, has
//! no steps at all, only the reason: deleting a key without a successor is never planned. Pure.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{json, Map, Value};
use time::Date;

use super::parameters::{Parameters, Source};
use crate::report::rfc3339;
use crate::rotation::RotationConfig;
use crate::snapshot::KeyRecord;

/// What the plan makes of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Create a successor, hand it over, delete the old key.
    Rotate,
    /// A successor exists: hand it over, delete the old key.
    SuccessorExists,
    /// No steps: see the reason.
    CannotPlan,
}

/// A V3 request, relative to the API's root.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Request {
    pub method: &'static str,
    /// Path and query, percent-encoded.
    pub path: String,
    pub body: Option<Value>,
}

/// One step.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    /// `target`, `create`, `handover` or `delete`.
    pub step: &'static str,
    pub title: String,
    pub note: Option<String>,
    /// The `cf` CLI command, shell-quoted.
    pub cf: String,
    /// The V3 request; `None` where the step has none (target).
    pub request: Option<Request>,
}

/// The successor a plan hands over to.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SuccessorRef {
    pub name: String,
    /// `None` until it is created.
    pub guid: Option<String>,
    pub created_at: Option<String>,
    pub expires_at: Option<String>,
}

/// One key's plan; the JSON fields are part of the interface.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeyPlan {
    pub foundation: String,
    pub org: String,
    pub space: String,
    pub service_offering: String,
    pub service_plan: String,
    pub service_instance: String,
    pub service_instance_guid: String,
    pub service_key: String,
    pub service_key_guid: String,
    /// RFC 3339; `None` without expiry.
    pub expires_at: Option<String>,
    pub seconds_left: Option<i64>,
    /// Metadata key → value, for the owners found.
    pub owners: BTreeMap<String, String>,
    pub status: Status,
    pub reason: Option<String>,
    pub successor: Option<SuccessorRef>,
    pub parameters: Option<Map<String, Value>>,
    pub parameters_source: Option<Source>,
    pub parameters_basis: Option<String>,
    pub steps: Vec<Step>,
}

/// Everything the plan of one key rests on.
#[derive(Debug)]
pub struct Target<'a> {
    pub foundation: &'a str,
    pub key: &'a KeyRecord,
    /// Metadata key (`team`) → value.
    pub owners: BTreeMap<String, String>,
    /// Its successor, when one exists.
    pub successor: Option<&'a KeyRecord>,
    /// The names of the other keys of its instance.
    pub siblings: Vec<&'a str>,
    /// The successor's parameters (`None` when a successor exists: none are needed).
    pub parameters: Option<Result<Parameters, String>>,
}

/// The plan's day and clock, and the foundation's naming.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    pub rotation: &'a RotationConfig,
    /// The day in successor names (UTC).
    pub today: Date,
    /// Unix seconds.
    pub now: i64,
}

/// The plan's description of the key itself, with no steps yet.
fn header(target: &Target<'_>, now: i64) -> KeyPlan {
    let k = target.key;
    let l = &k.labels;
    KeyPlan {
        foundation: target.foundation.to_owned(),
        org: l.org.to_string(),
        space: l.space.to_string(),
        service_offering: l.service_offering.to_string(),
        service_plan: l.service_plan.to_string(),
        service_instance: l.service_instance.to_string(),
        service_instance_guid: k.facts.instance_guid.to_string(),
        service_key: l.service_key.to_string(),
        service_key_guid: l.service_key_guid.to_string(),
        expires_at: k.expiry().map(|e| rfc3339(e.expires_at)),
        seconds_left: k.expiry().map(|e| e.expires_at - now),
        owners: target.owners.clone(),
        status: Status::CannotPlan,
        reason: None,
        successor: None,
        parameters: None,
        parameters_source: None,
        parameters_basis: None,
        steps: Vec::new(),
    }
}

/// The plan of one key.
pub fn build(target: Target<'_>, ctx: Context<'_>) -> KeyPlan {
    let mut plan = header(&target, ctx.now);
    let (k, l) = (target.key, &target.key.labels);
    if k.facts.instance_guid.is_empty() {
        plan.reason = Some(
            "the key's service instance guid is not known (the key was not listed by this refresh)"
                .into(),
        );
        return plan;
    }
    if let Some(next) = target.successor {
        plan.status = Status::SuccessorExists;
        plan.successor = Some(SuccessorRef {
            name: next.labels.service_key.to_string(),
            guid: Some(next.labels.service_key_guid.to_string()),
            created_at: next.created_at.map(rfc3339),
            expires_at: next.expiry().map(|e| rfc3339(e.expires_at)),
        });
        plan.steps = vec![target_step(&plan)];
        plan.steps
            .extend(handover_and_delete(&plan, &next.labels.service_key));
        return plan;
    }
    let name = ctx.rotation.names.successor_name(&l.service_key, ctx.today);
    if name == *l.service_key || target.siblings.contains(&name.as_str()) {
        plan.reason = Some(format!(
            "the successor's name {name} is taken on the instance (by {}); delete or rename that key, or plan on another day or with another --successor-name-suffix",
            if name == *l.service_key { "this key itself" } else { "another key that is not its successor" }
        ));
        return plan;
    }
    let parameters = match target.parameters {
        Some(Ok(p)) => p,
        Some(Err(why)) => {
            plan.reason = Some(format!(
                "its parameters can be neither fetched nor derived: {why}"
            ));
            return plan;
        }
        None => {
            plan.reason = Some("its parameters were not looked up".into());
            return plan;
        }
    };
    plan.status = Status::Rotate;
    plan.successor = Some(SuccessorRef {
        name: name.clone(),
        guid: None,
        created_at: None,
        expires_at: None,
    });
    plan.parameters_source = Some(parameters.source);
    plan.parameters_basis = Some(parameters.basis.clone());
    plan.steps = vec![
        target_step(&plan),
        create_step(&plan, &name, &parameters.value, ctx),
    ];
    plan.steps.extend(handover_and_delete(&plan, &name));
    plan.parameters = Some(parameters.value);
    plan
}

fn target_step(plan: &KeyPlan) -> Step {
    Step {
        step: "target",
        title: format!("target org {} and space {}", plan.org, plan.space),
        note: Some("the V3 requests name the service instance by guid: no target needed".into()),
        cf: command(&["cf", "target", "-o", &plan.org, "-s", &plan.space]),
        request: None,
    }
}

fn create_step(
    plan: &KeyPlan,
    name: &str,
    parameters: &Map<String, Value>,
    ctx: Context<'_>,
) -> Step {
    let compact = Value::Object(parameters.clone()).to_string();
    let mut cf = vec!["cf", "create-service-key", &plan.service_instance, name];
    if !parameters.is_empty() {
        cf.extend(["-c", &compact]);
    }
    let mut body = json!({
        "type": "key",
        "name": name,
        "relationships": {"service_instance": {"data": {"guid": plan.service_instance_guid}}},
        "parameters": parameters,
    });
    let mut note = String::from(
        "Cloud Foundry answers 202 with a job in Location: wait until GET on it says COMPLETE (an asynchronous broker takes a while)",
    );
    if let Some(annotation) = &ctx.rotation.successor_annotation {
        body["metadata"] = json!({"annotations": {annotation: plan.service_key}});
        note.push_str(&format!(
            "; the request also annotates the new key with {annotation}={} (cf create-service-key cannot)",
            plan.service_key
        ));
    }
    Step {
        step: "create",
        title: format!("create the successor {name} with the old key's parameters"),
        note: Some(note),
        cf: command(&cf),
        request: Some(Request {
            method: "POST",
            path: "/v3/service_credential_bindings".into(),
            body: Some(body),
        }),
    }
}

fn handover_and_delete(plan: &KeyPlan, successor: &str) -> [Step; 2] {
    let owners = if plan.owners.is_empty() {
        "no owner is recorded on the key, its instance, space or org: find its consumers".to_owned()
    } else {
        let list: Vec<String> = plan
            .owners
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        format!("ask its owners ({})", list.join(", "))
    };
    let mut lookup =
        url::Url::parse("http://api.invalid/v3/service_credential_bindings").expect("a fixed URL");
    lookup.query_pairs_mut().append_pair("type", "key");
    crate::cf::append_list(&mut lookup, "names", &[successor.to_owned()]);
    crate::cf::append_list(
        &mut lookup,
        "service_instance_guids",
        std::slice::from_ref(&plan.service_instance_guid),
    );
    let path = format!("{}?{}", lookup.path(), lookup.query().unwrap_or_default());
    let left = match plan.seconds_left {
        Some(s) if s > 0 => format!(
            "it keeps working until {} ({} left)",
            plan.expires_at.as_deref().unwrap_or("?"),
            crate::report::time_left(s)
        ),
        Some(_) => "it has expired already".to_owned(),
        None => "it does not expire".to_owned(),
    };
    [
        Step {
            step: "handover",
            title: format!("hand {successor} over to the consumers of {}", plan.service_key),
            note: Some(format!(
                "Cloud Foundry records no consumers for service keys (only app bindings name an app), so it cannot say who uses {}; {owners}. Give them the successor's credentials (the command shows them; this plan never does; the request finds its guid, whose /details holds them)",
                plan.service_key
            )),
            cf: command(&["cf", "service-key", &plan.service_instance, successor]),
            request: Some(Request {
                method: "GET",
                path,
                body: None,
            }),
        },
        Step {
            step: "delete",
            title: format!("delete {} once every consumer uses {successor}", plan.service_key),
            note: Some(format!(
                "{left}; the answer is 202 with a job, as for the creation"
            )),
            cf: command(&["cf", "delete-service-key", &plan.service_instance, &plan.service_key, "-f"]),
            request: Some(Request {
                method: "DELETE",
                path: format!("/v3/service_credential_bindings/{}", plan.service_key_guid),
                body: None,
            }),
        },
    ]
}

/// A command line whose words are quoted for a POSIX shell: plain words as they are, others in
/// single quotes, and words with control characters in `$'...'` with escapes (so a name with a
/// line break can neither break the line nor hide part of the command).
pub fn command(words: &[&str]) -> String {
    words
        .iter()
        .map(|w| shell_word(w))
        .collect::<Vec<_>>()
        .join(" ")
}

fn shell_word(word: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "_-./:@%+=,".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        return word.to_owned();
    }
    let unsafe_char = crate::report::is_unsafe;
    if !word.chars().any(unsafe_char) {
        return format!("'{}'", word.replace('\'', r"'\''"));
    }
    let mut out = String::from("$'");
    for c in word.chars() {
        match c {
            '\'' => out.push_str(r"\'"),
            '\\' => out.push_str(r"\\"),
            '\n' => out.push_str(r"\n"),
            '\t' => out.push_str(r"\t"),
            c if unsafe_char(c) => {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    out.push_str(&format!("\\x{b:02x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

#[cfg(test)]
mod tests {
    use super::super::parameters::{decide, Fetched, Known};
    use super::*;
    use crate::rotation::shape::{CredentialType, Shape};
    use crate::snapshot::{test_record, KeyExpiry, Reading};
    use time::macros::date;

    const NOW: i64 = 1_800_000_000;

    fn key(name: &str) -> KeyRecord {
        let mut k = test_record(&format!("guid-{name}"));
        k.labels.service_key = name.into();
        k.facts.instance_guid = "instance-guid".into();
        k.reading = Some(Reading {
            read_at: NOW,
            expiry: Some(KeyExpiry {
                expires_at: NOW + 43_200,
                valid_from: Some(NOW - 6 * 86_400 - 43_200),
                source: crate::vocab::ExpirySource::Certificate,
                certificate: None,
            }),
            shape: Some(Shape::Typed(CredentialType::X509 {
                rsa_bits: Some(2048),
            })),
        });
        k
    }

    fn ctx(rotation: &RotationConfig) -> Context<'_> {
        Context {
            rotation,
            today: date!(2027 - 01 - 15),
            now: NOW,
        }
    }

    fn params() -> Option<Result<Parameters, String>> {
        Some(decide(
            Fetched::Returned(json!({})),
            Known {
                shape: Some(Shape::Typed(CredentialType::X509 {
                    rsa_bits: Some(2048),
                })),
                days: Some(7),
            },
        ))
    }

    fn target<'a>(k: &'a KeyRecord) -> Target<'a> {
        Target {
            foundation: "demo",
            key: k,
            owners: BTreeMap::from([("team".to_owned(), "payments".to_owned())]),
            successor: None,
            siblings: vec![],
            parameters: params(),
        }
    }

    #[test]
    fn a_key_is_planned_in_four_steps_each_a_command_and_a_request() {
        let rotation = RotationConfig {
            successor_annotation: Some("example.com/successor-of".into()),
            ..RotationConfig::default()
        };
        let k = key("payments-x509");
        let plan = build(target(&k), ctx(&rotation));
        assert_eq!(plan.status, Status::Rotate);
        let steps: Vec<&str> = plan.steps.iter().map(|s| s.step).collect();
        assert_eq!(steps, ["target", "create", "handover", "delete"]);
        assert_eq!(plan.steps[0].cf, "cf target -o o -s s");
        assert_eq!(
            plan.steps[1].cf,
            r#"cf create-service-key i payments-x509-20270115 -c '{"credential-type":"x509","x509":{"key-length":2048,"validity":7,"validity-type":"DAYS"}}'"#
        );
        let create = plan.steps[1].request.as_ref().unwrap();
        assert_eq!(
            (create.method, create.path.as_str()),
            ("POST", "/v3/service_credential_bindings")
        );
        let body = create.body.as_ref().unwrap();
        assert_eq!(body["name"], "payments-x509-20270115");
        assert_eq!(
            body["relationships"]["service_instance"]["data"]["guid"],
            "instance-guid"
        );
        assert_eq!(body["parameters"]["x509"]["key-length"], 2048);
        assert_eq!(
            body["metadata"]["annotations"]["example.com/successor-of"],
            "payments-x509"
        );
        let handover = &plan.steps[2];
        assert!(handover
            .note
            .as_ref()
            .unwrap()
            .contains("records no consumers"));
        assert!(handover.note.as_ref().unwrap().contains("team=payments"));
        assert_eq!(
            handover.request.as_ref().unwrap().path,
            "/v3/service_credential_bindings?type=key&names=payments-x509-20270115&service_instance_guids=instance-guid"
        );
        let delete = plan.steps[3].request.as_ref().unwrap();
        assert_eq!(
            (delete.method, delete.path.as_str()),
            (
                "DELETE",
                "/v3/service_credential_bindings/guid-payments-x509"
            )
        );
        assert_eq!(plan.steps[3].cf, "cf delete-service-key i payments-x509 -f");
        assert_eq!(plan.parameters_source, Some(Source::Derived));
    }

    #[test]
    fn a_key_with_a_successor_is_handed_over_and_deleted_without_a_creation() {
        let rotation = RotationConfig::default();
        let (old, new) = (key("k"), key("k-20270110"));
        let mut t = target(&old);
        t.successor = Some(&new);
        t.parameters = None;
        let plan = build(t, ctx(&rotation));
        assert_eq!(plan.status, Status::SuccessorExists);
        let steps: Vec<&str> = plan.steps.iter().map(|s| s.step).collect();
        assert_eq!(steps, ["target", "handover", "delete"]);
        assert_eq!(
            plan.successor.unwrap().guid.as_deref(),
            Some("guid-k-20270110")
        );
    }

    #[test]
    fn without_parameters_or_with_a_taken_name_there_are_no_steps_only_a_reason() {
        let rotation = RotationConfig::default();
        let k = key("k");
        let mut t = target(&k);
        t.parameters = Some(Err("the credentials show nothing".into()));
        let plan = build(t, ctx(&rotation));
        assert_eq!((plan.status, plan.steps.len()), (Status::CannotPlan, 0));
        assert!(plan.reason.unwrap().contains("neither fetched nor derived"));
        let mut t = target(&k);
        t.siblings = vec!["k-20270115"];
        let plan = build(t, ctx(&rotation));
        assert_eq!((plan.status, plan.steps.len()), (Status::CannotPlan, 0));
        assert!(plan.reason.unwrap().contains("is taken"));
        let today = key("k-20270115");
        let plan = build(target(&today), ctx(&rotation));
        assert!(plan.reason.unwrap().contains("this key itself"));
    }

    #[test]
    fn commands_quote_what_a_shell_would_split_or_misread() {
        assert_eq!(
            command(&["cf", "a b", "it's", "x"]),
            r"cf 'a b' 'it'\''s' x"
        );
        assert_eq!(
            command(&["bad\nname", "\x1b[31m"]),
            r"$'bad\nname' $'\x1b[31m'"
        );
        assert_eq!(command(&["a\u{202e}b"]), r"$'a\xe2\x80\xaeb'");
        assert_eq!(command(&[""]), "''");
    }
}
