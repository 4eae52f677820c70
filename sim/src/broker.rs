//! The simulated service brokers: how an offering's broker turns the parameters of a new key
//! into its credentials, and which parameters it refuses (the broker's `400`, which the Cloud
//! Controller reports as a failed job).
//!
//! - [`Broker::Xsuaa`]: a key gets the credential type its parameters name
//!   (`"credential-type"`), else its instance's default (`xs-security.json`), else
//!   `binding-secret` (a client secret that never expires). `x509` takes
//!   `"x509": {"key-length": 2048|4096|8192, "validity": N, "validity-type": "DAYS"|"MONTHS"|"YEARS"}`,
//!   by default 2048 bits and 7 DAYS (the current SAP documentation allows 1 to 30 DAYS, older
//!   versions months and years; the simulator takes any positive validity), and gives an RSA
//!   certificate of that length valid from the key's creation for that long.
//! - [`Broker::CloudIntegration`]: `"key-type": "certificate"` with `"validity"` in days (1 to
//!   365, default 365) gives an `integration-flow` certificate key
//!   (`certificatedetails.validuntil`); no `key-type` a client-id/secret key.
//! - [`Broker::Fixed`]: one shape whatever the parameters, valid for a year.
//!
//! Pure: no clock (the caller says `now`) and no I/O. Unknown parameters are ignored.

use serde_json::{Map, Value};
use time::{Duration, Month, OffsetDateTime};

use crate::credentials::{credentials, xsuaa_x509, CredentialsError, KeyLength, Shape};

/// The broker behind an offering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Broker {
    /// SAP Authorization and Trust Management (`xsuaa`).
    Xsuaa,
    /// SAP Cloud Integration runtime (`it-rt`).
    CloudIntegration,
    /// A broker whose keys always look like this shape.
    Fixed(Shape),
}

/// The broker refused the parameters (its `400` description), or the credentials could not be
/// built.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error("{0}")]
    Rejected(String),
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
}

/// What a broker is asked to bind.
#[derive(Debug, Clone, Copy)]
pub struct BindRequest<'a> {
    /// The `parameters` object of the request (`{}` when it had none).
    pub parameters: &'a Map<String, Value>,
    /// The instance's default credential type, if it sets one.
    pub default_credential_type: Option<&'a str>,
    /// The key's creation: the start of its validity.
    pub now: OffsetDateTime,
    /// Written into every secret-bearing field.
    pub secret: &'a str,
}

impl Broker {
    /// The broker of an offering, by the offering's name: `xsuaa`, `it-rt`, and fixed shapes
    /// for `cloud-alm-api`, `destination`, `connectivity` and anything else (client id and
    /// secret).
    pub fn for_offering(name: &str) -> Broker {
        match name {
            "xsuaa" => Broker::Xsuaa,
            "it-rt" => Broker::CloudIntegration,
            "cloud-alm-api" => Broker::Fixed(Shape::CloudAlm),
            "destination" => Broker::Fixed(Shape::Destination),
            "connectivity" => Broker::Fixed(Shape::ConnectivityExpiresAt),
            _ => Broker::Fixed(Shape::Basic),
        }
    }

    /// Whether the broker's catalog says `bindings_retrievable` (the simulator's choice: XSUAA
    /// does, the others do not).
    pub fn bindings_retrievable(self) -> bool {
        self == Broker::Xsuaa
    }

    /// The credentials of a new key, or the broker's refusal.
    pub fn bind(self, request: BindRequest<'_>) -> Result<Value, BindError> {
        match self {
            Broker::Xsuaa => xsuaa(request),
            Broker::CloudIntegration => cloud_integration(request),
            Broker::Fixed(shape) => Ok(credentials(
                shape,
                request.now,
                request.now + Duration::days(365),
                request.secret,
            )?),
        }
    }
}

fn rejected<T>(description: impl Into<String>) -> Result<T, BindError> {
    Err(BindError::Rejected(description.into()))
}

fn xsuaa(request: BindRequest<'_>) -> Result<Value, BindError> {
    let p = request.parameters;
    let credential_type = match p.get("credential-type") {
        None => request.default_credential_type.unwrap_or("binding-secret"),
        Some(Value::String(t)) => t.as_str(),
        Some(_) => return rejected("credential-type must be a string"),
    };
    let (now, secret) = (request.now, request.secret);
    match credential_type {
        "binding-secret" | "instance-secret" => {
            let year = now + Duration::days(365);
            let mut c = credentials(Shape::XsuaaClientSecret, now, year, secret)?;
            c["credential-type"] = credential_type.into();
            Ok(c)
        }
        "x509" => {
            let (key_length, expires_at) = x509(p.get("x509"), now)?;
            Ok(xsuaa_x509(now, expires_at, key_length, secret)?)
        }
        other => rejected(format!(
            "Unsupported credential-type '{other}': use binding-secret, instance-secret or x509"
        )),
    }
}

/// The key length and the end of validity an `x509` parameter object asks for.
fn x509(
    x509: Option<&Value>,
    now: OffsetDateTime,
) -> Result<(KeyLength, OffsetDateTime), BindError> {
    let empty = Map::new();
    let x509 = match x509 {
        None => &empty,
        Some(Value::Object(o)) => o,
        Some(_) => return rejected("x509 must be an object"),
    };
    let key_length = match x509.get("key-length") {
        None => KeyLength::default(),
        Some(v) => match v.as_u64().and_then(KeyLength::from_bits) {
            Some(l) => l,
            None => return rejected("x509.key-length must be 2048, 4096 or 8192"),
        },
    };
    let validity = match x509.get("validity") {
        None => 7,
        Some(v) => match v
            .as_u64()
            .filter(|n| *n >= 1)
            .and_then(|n| i32::try_from(n).ok())
        {
            Some(n) => n,
            None => return rejected("x509.validity must be a positive whole number"),
        },
    };
    let expires_at = match x509.get("validity-type").map(Value::as_str) {
        None | Some(Some("DAYS")) => now.checked_add(Duration::days(validity.into())),
        Some(Some("MONTHS")) => add_months(now, validity),
        Some(Some("YEARS")) => validity.checked_mul(12).and_then(|m| add_months(now, m)),
        Some(_) => return rejected("x509.validity-type must be DAYS, MONTHS or YEARS"),
    };
    match expires_at.filter(|e| e.year() <= 9999) {
        Some(e) => Ok((key_length, e)),
        None => rejected("x509.validity is too long"),
    }
}

/// `at` moved `months` calendar months on, the day clamped to the last of a shorter month.
fn add_months(at: OffsetDateTime, months: i32) -> Option<OffsetDateTime> {
    let index = at.year().checked_mul(12)? + i32::from(u8::from(at.month())) - 1 + months;
    let (year, month) = (index.div_euclid(12), index.rem_euclid(12) + 1);
    let month = Month::try_from(u8::try_from(month).ok()?).ok()?;
    let day = at.day().min(time::util::days_in_month(month, year));
    let date = time::Date::from_calendar_date(year, month, day).ok()?;
    Some(at.replace_date(date))
}

fn cloud_integration(request: BindRequest<'_>) -> Result<Value, BindError> {
    let p = request.parameters;
    let (now, secret) = (request.now, request.secret);
    match p.get("key-type").map(Value::as_str) {
        None => Ok(credentials(
            Shape::Basic,
            now,
            now + Duration::days(365),
            secret,
        )?),
        Some(Some("certificate")) => {
            let days = match p.get("validity") {
                None => 365,
                Some(v) => match v.as_i64().filter(|d| (1..=365).contains(d)) {
                    Some(d) => d,
                    None => return rejected("validity must be between 1 and 365 days"),
                },
            };
            let until = now + Duration::days(days);
            Ok(credentials(
                Shape::CloudIntegrationFlow,
                now,
                until,
                secret,
            )?)
        }
        Some(_) => rejected("key-type must be certificate, or absent for a client id and secret"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credentials::leaf_validity;
    use serde_json::json;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-01-31 10:00:00 UTC);

    fn bind(broker: Broker, parameters: Value, default: Option<&str>) -> Result<Value, BindError> {
        let parameters = parameters.as_object().cloned().unwrap_or_default();
        broker.bind(BindRequest {
            parameters: &parameters,
            default_credential_type: default,
            now: NOW,
            secret: "S",
        })
    }

    fn refusal(result: Result<Value, BindError>) -> String {
        match result {
            Err(BindError::Rejected(d)) => d,
            other => panic!("not refused: {other:?}"),
        }
    }

    #[test]
    fn xsuaa_gives_the_instance_default_unless_the_parameters_say_x509() {
        let secret = bind(Broker::Xsuaa, json!({}), None).expect("binds");
        assert_eq!(secret["credential-type"], "binding-secret");
        assert_eq!(secret["clientsecret"], "S");
        let x509 = bind(Broker::Xsuaa, json!({}), Some("x509")).expect("binds");
        assert_eq!(x509["credential-type"], "x509");
        let (from, until) = leaf_validity(x509["certificate"].as_str().expect("a chain"));
        assert_eq!(until - from, 7 * 86_400, "7 days by default");
        let asked = bind(
            Broker::Xsuaa,
            json!({"credential-type": "x509", "x509": {"validity": 3}}),
            Some("binding-secret"),
        )
        .expect("binds");
        let (from, until) = leaf_validity(asked["certificate"].as_str().expect("a chain"));
        assert_eq!((from, until - from), (NOW.unix_timestamp(), 3 * 86_400));
        let instance = bind(
            Broker::Xsuaa,
            json!({"credential-type": "instance-secret"}),
            Some("x509"),
        )
        .expect("binds");
        assert_eq!(instance["credential-type"], "instance-secret");
    }

    #[test]
    fn xsuaa_counts_months_and_years_on_the_calendar() {
        let months = |n: i32| add_months(NOW, n).expect("in range");
        assert_eq!(months(1), datetime!(2026-02-28 10:00:00 UTC));
        assert_eq!(months(13), datetime!(2027-02-28 10:00:00 UTC));
        assert_eq!(months(-1), datetime!(2025-12-31 10:00:00 UTC));
        let c = bind(
            Broker::Xsuaa,
            json!({"credential-type": "x509", "x509": {"validity": 1, "validity-type": "YEARS"}}),
            None,
        )
        .expect("binds");
        let (_, until) = leaf_validity(c["certificate"].as_str().expect("a chain"));
        assert_eq!(until, datetime!(2027-01-31 10:00:00 UTC).unix_timestamp());
    }

    #[test]
    fn xsuaa_refuses_what_it_cannot_issue() {
        for (parameters, says) in [
            (json!({"credential-type": "password"}), "credential-type"),
            (json!({"credential-type": 1}), "credential-type"),
            (
                json!({"credential-type": "x509", "x509": "long"}),
                "x509 must",
            ),
            (
                json!({"credential-type": "x509", "x509": {"key-length": 1024}}),
                "key-length",
            ),
            (
                json!({"credential-type": "x509", "x509": {"validity": 0}}),
                "validity",
            ),
            (
                json!({"credential-type": "x509", "x509": {"validity": "7"}}),
                "validity",
            ),
            (
                json!({"credential-type": "x509", "x509": {"validity-type": "WEEKS"}}),
                "validity-type",
            ),
            (
                json!({"credential-type": "x509", "x509": {"validity": 100_000, "validity-type": "YEARS"}}),
                "too long",
            ),
        ] {
            let d = refusal(bind(Broker::Xsuaa, parameters.clone(), None));
            assert!(d.contains(says), "{parameters}: {d}");
        }
    }

    #[test]
    fn cloud_integration_issues_certificate_keys_up_to_a_year() {
        let c = bind(
            Broker::CloudIntegration,
            json!({"key-type": "certificate", "validity": 90}),
            None,
        )
        .expect("binds");
        assert_eq!(
            c["certificatedetails"]["validuntil"],
            "2026-05-01T10:00:00.000Z"
        );
        let year = bind(
            Broker::CloudIntegration,
            json!({"key-type": "certificate"}),
            None,
        )
        .expect("binds");
        assert_eq!(
            year["certificatedetails"]["validuntil"],
            "2027-01-31T10:00:00.000Z"
        );
        let basic = bind(Broker::CloudIntegration, json!({}), None).expect("binds");
        assert_eq!(basic["oauth"]["clientsecret"], "S");
        for parameters in [
            json!({"key-type": "certificate", "validity": 366}),
            json!({"key-type": "certificate", "validity": 0}),
            json!({"key-type": "password"}),
        ] {
            refusal(bind(Broker::CloudIntegration, parameters, None));
        }
    }

    #[test]
    fn brokers_are_found_by_offering_name() {
        assert_eq!(Broker::for_offering("xsuaa"), Broker::Xsuaa);
        assert_eq!(Broker::for_offering("it-rt"), Broker::CloudIntegration);
        assert_eq!(
            Broker::for_offering("cloud-alm-api"),
            Broker::Fixed(Shape::CloudAlm)
        );
        assert_eq!(Broker::for_offering("custom"), Broker::Fixed(Shape::Basic));
        assert!(Broker::Xsuaa.bindings_retrievable());
        assert!(!Broker::CloudIntegration.bindings_retrievable());
        let alm = bind(Broker::Fixed(Shape::CloudAlm), json!({"x": 1}), None).expect("binds");
        assert_eq!(alm["uaa"]["expiration_date"], "2027-01-31T12:00:00+02:00");
    }
}
