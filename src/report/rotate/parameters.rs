//! A successor's creation parameters: the ones its predecessor was created with.
//!
//! Where the offering is `bindings_retrievable`, `/parameters` says what the key was created
//! with; elsewhere (and where the broker returns nothing) they are **derived** from the key's
//! [`Shape`] and lifetime:
//!
//! | shape | derived parameters |
//! | --- | --- |
//! | `credential-type: x509`, RSA *n* bits, valid *d* days | `{"credential-type": "x509", "x509": {"key-length": n, "validity": d, "validity-type": "DAYS"}}` |
//! | `credential-type: binding-secret` / `instance-secret` | `{"credential-type": "..."}` (never the instance's default) |
//! | Cloud Integration certificate key, valid *d* days | `{"key-type": "certificate", "validity": d}` (at most 365) |
//! | a client id and secret without a credential type | `{}` (the broker's default) |
//! | a credential type inside a nested object, or nothing recognisable | none: the key is listed with the reason |
//!
//! Fetched parameters are checked against the shape: a broker that returns `{}` for an x509 key
//! (or parameters that would give another credential type, key length or validity) would make
//! the successor a different kind of key, silently. Then the shape wins: the fetched parameters
//! keep what the shape does not decide, and the result is marked derived, saying why. Pure.

use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::rotation::shape::{CredentialType, Shape};

/// Cloud Integration's longest certificate validity, in days.
pub const MAX_INTEGRATION_DAYS: i64 = 365;

/// The parameters the shape decides; fetched values of these give way to derived ones.
const SHAPE_FIELDS: [&str; 4] = ["credential-type", "x509", "key-type", "validity"];

/// What asking `/parameters` gave.
#[derive(Debug, Clone, PartialEq)]
pub enum Fetched {
    /// The broker's answer.
    Returned(Value),
    /// Not asked: the offering is not `bindings_retrievable` (or unknown).
    NotRetrievable,
    /// Asked, and it failed (or was not asked for this reason): why.
    Failed(String),
}

/// Where the parameters came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// `/parameters`, and they agree with the credentials.
    Fetched,
    /// From the credentials (in part or whole).
    Derived,
}

/// The successor's parameters, where they came from and what they rest on.
#[derive(Debug, Clone, PartialEq)]
pub struct Parameters {
    pub value: Map<String, Value>,
    pub source: Source,
    /// For people: what they rest on (never a credential value).
    pub basis: String,
}

/// What is known of the key being replaced.
#[derive(Debug, Clone, Copy)]
pub struct Known {
    /// From its credentials; `None` when they were never read.
    pub shape: Option<Shape>,
    /// Its lifetime in whole days (expiry − valid from), when it has one.
    pub days: Option<i64>,
}

/// The lifetime in whole days (rounded) of a key valid from `from` until `until`.
pub fn days(from: i64, until: i64) -> Option<i64> {
    let seconds = until.checked_sub(from)?;
    (seconds > 0).then(|| (seconds + 43_200) / 86_400)
}

/// The successor's parameters, or why there are none.
pub fn decide(fetched: Fetched, known: Known) -> Result<Parameters, String> {
    let map = match fetched {
        Fetched::Returned(Value::Object(map)) if !map.is_empty() => map,
        Fetched::Returned(Value::Object(_)) => {
            return derived(known, "the broker returned no parameters")
        }
        Fetched::Returned(_) => return derived(known, "the broker's answer is not an object"),
        Fetched::NotRetrievable => {
            return derived(
                known,
                "the offering's broker does not return key parameters",
            )
        }
        Fetched::Failed(why) => return derived(known, &format!("/parameters failed: {why}")),
    };
    let Some(shape) = known.shape else {
        return Ok(Parameters {
            value: map,
            source: Source::Fetched,
            basis: "from /parameters; not checked against the credentials (not read)".into(),
        });
    };
    match disagreement(&map, shape, known.days) {
        None => Ok(Parameters {
            value: map,
            source: Source::Fetched,
            basis: format!(
                "from /parameters; they agree with the credentials ({})",
                shape.describe()
            ),
        }),
        Some(why) => {
            let mut out = derived(known, &format!("the broker's parameters {why}"))?;
            let mut merged: Map<String, Value> = map
                .into_iter()
                .filter(|(k, _)| !SHAPE_FIELDS.contains(&k.as_str()))
                .collect();
            merged.extend(out.value);
            out.value = merged;
            Ok(out)
        }
    }
}

/// Parameters from the shape alone; `why` says why they were not fetched.
fn derived(known: Known, why: &str) -> Result<Parameters, String> {
    let Some(shape) = known.shape else {
        return Err(format!(
            "{why}, and the key's credentials were never read, so nothing can be derived"
        ));
    };
    let (value, note) = derive(shape, known.days).map_err(|e| format!("{why}, and {e}"))?;
    let mut basis = format!("derived from the credentials ({}", shape.describe());
    if let Some(d) = known.days {
        basis.push_str(&format!(", valid {d} days"));
    }
    basis.push_str(&format!("), because {why}"));
    if let Some(note) = note {
        basis.push_str(&format!("; {note}"));
    }
    Ok(Parameters {
        value,
        source: Source::Derived,
        basis,
    })
}

fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// The parameters a shape stands for, with a note; or why it stands for none.
fn derive(shape: Shape, days: Option<i64>) -> Result<(Map<String, Value>, Option<String>), String> {
    match shape {
        Shape::Typed(CredentialType::X509 { rsa_bits }) => {
            let bits = rsa_bits.ok_or("the certificate's RSA key length could not be read")?;
            let days = days.ok_or("the certificate's validity is unknown")?;
            Ok((
                object(json!({
                    "credential-type": "x509",
                    "x509": {"key-length": bits, "validity": days, "validity-type": "DAYS"}
                })),
                None,
            ))
        }
        Shape::Typed(t) => Ok((object(json!({"credential-type": t.name()})), None)),
        Shape::IntegrationCertificate => {
            let days = days.ok_or("the certificate's validity is unknown")?;
            let capped = days.clamp(1, MAX_INTEGRATION_DAYS);
            let note = (capped != days).then(|| {
                format!("Cloud Integration allows at most {MAX_INTEGRATION_DAYS} days, so the successor gets {capped} instead of {days}")
            });
            Ok((object(json!({"key-type": "certificate", "validity": capped})), note))
        }
        Shape::ClientSecret => Ok((
            Map::new(),
            Some("no parameters: the broker's default gives a client id and secret".into()),
        )),
        Shape::NestedType => Err("the credential-type sits inside a nested object: the key belongs to a service built on XSUAA, whose own parameters (not shown in the credentials) say how it was created".into()),
        Shape::Unknown => Err("the credentials show no credential-type, certificate or client secret to derive them from".into()),
    }
}

/// Why fetched parameters would not recreate a key of this shape; `None` when they would.
fn disagreement(map: &Map<String, Value>, shape: Shape, days: Option<i64>) -> Option<String> {
    let text = |k: &str| map.get(k).and_then(Value::as_str);
    match shape {
        Shape::Typed(t) => {
            let asked = text("credential-type");
            if asked != Some(t.name()) {
                return Some(format!(
                    "ask for credential-type {} but the key is {}",
                    asked.unwrap_or("(the instance's default)"),
                    t.name()
                ));
            }
            let CredentialType::X509 { rsa_bits } = t else {
                return None;
            };
            let x509 = map.get("x509").and_then(Value::as_object);
            let field = |k: &str| x509.and_then(|o| o.get(k));
            let length = field("key-length").map_or(Some(2048), Value::as_u64);
            if let Some(bits) = rsa_bits {
                if length != Some(u64::from(bits)) {
                    return Some(format!(
                        "ask for another key length than the certificate's {bits} bits"
                    ));
                }
            }
            let validity = field("validity").map_or(Some(7), Value::as_i64);
            let unit = field("validity-type").map_or(Some("DAYS"), Value::as_str);
            match (validity, days) {
                (Some(n), Some(d)) if close(n, unit, d) => None,
                (_, None) => None,
                _ => Some(format!(
                    "ask for another validity than the certificate's {} days",
                    days.unwrap_or(0)
                )),
            }
        }
        Shape::IntegrationCertificate => {
            if text("key-type") != Some("certificate") {
                return Some(
                    "do not ask for key-type certificate, but the key has a certificate".into(),
                );
            }
            let validity = map.get("validity").map_or(Some(365), Value::as_i64);
            match (validity, days) {
                (Some(n), Some(d)) if close(n, Some("DAYS"), d.min(MAX_INTEGRATION_DAYS)) => None,
                (_, None) => None,
                _ => Some("ask for another validity than the certificate's".into()),
            }
        }
        Shape::ClientSecret => {
            let asks_other = text("credential-type").is_some_and(|t| t == "x509")
                || text("key-type") == Some("certificate");
            asks_other
                .then(|| "ask for a certificate, but the key is a client id and secret".into())
        }
        Shape::NestedType | Shape::Unknown => None,
    }
}

/// A validity of `n` `unit`s is a lifetime of `days` (a day of rounding; months and years on
/// the calendar, so a few days either way).
fn close(n: i64, unit: Option<&str>, days: i64) -> bool {
    let (expected, slack) = match unit {
        Some("DAYS") => (n as f64, 1.0),
        Some("MONTHS") => (n as f64 * 30.44, 3.0),
        Some("YEARS") => (n as f64 * 365.25, 3.0),
        _ => return false,
    };
    (days as f64 - expected).abs() <= slack
}

#[cfg(test)]
mod tests {
    use super::*;

    const X509_2048: Shape = Shape::Typed(CredentialType::X509 {
        rsa_bits: Some(2048),
    });

    fn known(shape: Shape, days: i64) -> Known {
        Known {
            shape: Some(shape),
            days: Some(days),
        }
    }

    #[test]
    fn an_x509_key_whose_broker_returns_nothing_gets_x509_parameters_of_its_certificate() {
        let p = decide(Fetched::Returned(json!({})), known(X509_2048, 7)).unwrap();
        assert_eq!(p.source, Source::Derived);
        assert_eq!(
            Value::Object(p.value),
            json!({"credential-type": "x509", "x509": {"key-length": 2048, "validity": 7, "validity-type": "DAYS"}})
        );
        assert!(
            p.basis.contains("the broker returned no parameters"),
            "{}",
            p.basis
        );
        assert!(p.basis.contains("RSA 2048-bit"), "{}", p.basis);
    }

    #[test]
    fn fetched_parameters_that_agree_are_used_as_they_are() {
        let asked = json!({"credential-type": "x509", "x509": {"key-length": 4096, "validity": 365, "validity-type": "DAYS"}, "extra": 1});
        let shape = Shape::Typed(CredentialType::X509 {
            rsa_bits: Some(4096),
        });
        let p = decide(Fetched::Returned(asked.clone()), known(shape, 365)).unwrap();
        assert_eq!((p.source, Value::Object(p.value)), (Source::Fetched, asked));
        // Defaults count: no x509 block means 2048 bits and 7 days.
        let p = decide(
            Fetched::Returned(json!({"credential-type": "x509"})),
            known(X509_2048, 7),
        )
        .unwrap();
        assert_eq!(p.source, Source::Fetched);
    }

    #[test]
    fn fetched_parameters_that_would_change_the_key_give_way_to_the_credentials() {
        let asked = json!({"credential-type": "x509", "x509": {"key-length": 2048, "validity": 30}, "xsappname": "keep"});
        let p = decide(Fetched::Returned(asked), known(X509_2048, 7)).unwrap();
        assert_eq!(p.source, Source::Derived);
        assert_eq!(p.value["x509"]["validity"], 7);
        assert_eq!(p.value["xsappname"], "keep");
        assert!(p.basis.contains("another validity"), "{}", p.basis);
        let secret = Shape::Typed(CredentialType::BindingSecret);
        let p = decide(Fetched::Returned(json!({"foo": 1})), known(secret, 365)).unwrap();
        assert_eq!(
            Value::Object(p.value),
            json!({"foo": 1, "credential-type": "binding-secret"})
        );
    }

    #[test]
    fn each_shape_derives_its_parameters_or_says_why_not() {
        let cases = [
            (
                Shape::Typed(CredentialType::InstanceSecret),
                Some(json!({"credential-type": "instance-secret"})),
            ),
            (
                Shape::IntegrationCertificate,
                Some(json!({"key-type": "certificate", "validity": 365})),
            ),
            (Shape::ClientSecret, Some(json!({}))),
            (Shape::NestedType, None),
            (Shape::Unknown, None),
            (Shape::Typed(CredentialType::X509 { rsa_bits: None }), None),
        ];
        for (shape, expected) in cases {
            let got = decide(Fetched::NotRetrievable, known(shape, 365));
            match expected {
                Some(e) => assert_eq!(Value::Object(got.unwrap().value), e, "{shape:?}"),
                None => {
                    let why = got.unwrap_err();
                    assert!(
                        why.starts_with("the offering's broker does not return"),
                        "{why}"
                    );
                }
            }
        }
        let long = decide(
            Fetched::NotRetrievable,
            known(Shape::IntegrationCertificate, 730),
        )
        .unwrap();
        assert_eq!(long.value["validity"], 365);
        assert!(long.basis.contains("at most 365"), "{}", long.basis);
        let unread = decide(
            Fetched::Failed("HTTP 502".into()),
            Known {
                shape: None,
                days: None,
            },
        );
        assert!(unread.unwrap_err().contains("never read"));
    }

    #[test]
    fn lifetimes_round_to_whole_days() {
        assert_eq!(days(0, 7 * 86_400), Some(7));
        assert_eq!(days(0, 7 * 86_400 - 600), Some(7));
        assert_eq!(days(0, 0), None);
        assert!(close(1, Some("YEARS"), 365));
        assert!(close(12, Some("MONTHS"), 365));
        assert!(!close(7, Some("DAYS"), 30));
    }
}
