//! The simulated Cloud Foundry answers as the Cloud Controller and UAA document it, so tests
//! and the demo exercise the exporter against realistic behaviour, not a lenient stub.

use crate::common::year_key;
use cf_sim::credentials::Shape;
use cf_sim::{Accounts, Sim, World};
use serde_json::Value;

async fn token(sim: &Sim) -> String {
    let accounts = Accounts::default();
    let answer: Value = reqwest::Client::new()
        .post(sim.uaa_url.join("/oauth/token").unwrap())
        .basic_auth("cf", Some(""))
        .form(&[
            ("grant_type", "password"),
            ("username", accounts.username.as_str()),
            ("password", accounts.password.as_str()),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    answer["access_token"].as_str().unwrap().to_owned()
}

async fn get(sim: &Sim, path_and_query: &str, token: Option<&str>) -> (u16, Value) {
    let mut request = reqwest::Client::new().get(format!(
        "{}{}",
        sim.api_url.as_str().trim_end_matches('/'),
        path_and_query
    ));
    if let Some(t) = token {
        request = request.header("authorization", format!("bearer {t}"));
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn world() -> World {
    let mut w = World::new();
    let org = w.org("o");
    let space = w.space(&org, "s");
    let plain = w.instance(&space, "it-rt", "integration-flow", "a");
    let comma = w.instance(&space, "custom", "gold,silver", "b");
    let at = time::OffsetDateTime::now_utc() + time::Duration::days(10);
    for i in 0..5 {
        w.key(
            &plain,
            &format!("k{i}"),
            year_key(Shape::Basic, at, "x").unwrap(),
        );
    }
    w.key(&comma, "c", year_key(Shape::Basic, at, "x").unwrap());
    w
}

#[tokio::test]
async fn requests_without_or_with_a_bad_token_get_the_cloud_controller_errors() {
    let sim = Sim::start(world(), Accounts::default()).await.unwrap();
    let (status, body) = get(&sim, "/v3/service_instances", None).await;
    assert_eq!(
        (status, &body["errors"][0]["title"]),
        (401, &Value::from("CF-NotAuthenticated"))
    );
    assert_eq!(body["errors"][0]["code"], 10002);
    let (status, body) = get(&sim, "/v3/service_instances", Some("forged")).await;
    assert_eq!(
        (status, &body["errors"][0]["title"]),
        (401, &Value::from("CF-InvalidAuthToken"))
    );
    assert_eq!(body["errors"][0]["code"], 1000);
    // The root document needs no token and names the login server.
    let (status, body) = get(&sim, "/", None).await;
    assert_eq!(status, 200);
    assert_eq!(
        body["links"]["login"]["href"],
        sim.uaa_url.as_str().trim_end_matches('/')
    );
}

#[tokio::test]
async fn unknown_query_parameters_and_bad_page_sizes_are_bad_query_parameters() {
    let sim = Sim::start(world(), Accounts::default()).await.unwrap();
    let t = token(&sim).await;
    // The bindings list takes no fields[...], unlike the instances list.
    let (status, body) = get(
        &sim,
        "/v3/service_credential_bindings?fields[space]=name",
        Some(&t),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["errors"][0]["code"], 10005);
    assert!(body["errors"][0]["detail"]
        .as_str()
        .unwrap()
        .contains("Unknown query parameter(s): 'fields[space]'"));
    let (status, _) = get(&sim, "/v3/service_instances?fields[space]=name", Some(&t)).await;
    assert_eq!(status, 200);
    for per_page in ["0", "5001", "x"] {
        let (status, body) = get(
            &sim,
            &format!("/v3/service_instances?per_page={per_page}"),
            Some(&t),
        )
        .await;
        assert_eq!(
            (status, body["errors"][0]["code"].as_i64()),
            (400, Some(10005)),
            "per_page={per_page}"
        );
    }
}

#[tokio::test]
async fn pages_link_absolutely_and_the_last_has_no_next() {
    let sim = Sim::start(world(), Accounts::default()).await.unwrap();
    let t = token(&sim).await;
    let (_, first) = get(
        &sim,
        "/v3/service_credential_bindings?type=key&per_page=4",
        Some(&t),
    )
    .await;
    assert_eq!(first["pagination"]["total_results"], 6);
    assert_eq!(first["pagination"]["total_pages"], 2);
    assert_eq!(first["resources"].as_array().unwrap().len(), 4);
    let next = first["pagination"]["next"]["href"].as_str().unwrap();
    assert!(
        next.starts_with(sim.api_url.as_str().trim_end_matches('/')),
        "{next}"
    );
    let (_, second) = get(
        &sim,
        &next[sim.api_url.as_str().trim_end_matches('/').len()..],
        Some(&t),
    )
    .await;
    assert_eq!(second["resources"].as_array().unwrap().len(), 2);
    assert!(second["pagination"]["next"].is_null());
}

#[tokio::test]
async fn list_filters_split_on_commas_and_decode_each_element_once_more() {
    let sim = Sim::start(world(), Accounts::default()).await.unwrap();
    let t = token(&sim).await;
    // "gold,silver" is one plan name: its comma travels as %252C.
    let (_, body) = get(
        &sim,
        "/v3/service_credential_bindings?service_plan_names=gold%252Csilver",
        Some(&t),
    )
    .await;
    assert_eq!(body["pagination"]["total_results"], 1);
    let (_, body) = get(
        &sim,
        "/v3/service_credential_bindings?service_plan_names=gold,silver",
        Some(&t),
    )
    .await;
    assert_eq!(body["pagination"]["total_results"], 0);
    let (_, body) = get(
        &sim,
        "/v3/service_instances?service_plan_names=integration-flow,gold%252Csilver",
        Some(&t),
    )
    .await;
    assert_eq!(body["pagination"]["total_results"], 2);
}

#[tokio::test]
async fn included_resources_follow_the_requested_fields() {
    let sim = Sim::start(world(), Accounts::default()).await.unwrap();
    let t = token(&sim).await;
    let (_, body) = get(
        &sim,
        "/v3/service_instances?fields[space]=guid,name&fields[service_plan]=guid,name,relationships.service_offering",
        Some(&t),
    )
    .await;
    let included = &body["included"];
    assert_eq!(included["spaces"][0]["name"], "s");
    assert!(included["spaces"][0].get("relationships").is_none());
    assert!(included.get("organizations").is_none());
    assert_eq!(included["service_plans"].as_array().unwrap().len(), 2);
    assert!(included.get("service_offerings").is_none());
}

#[tokio::test]
async fn uaa_refuses_a_wrong_password_as_current_uaa_does() {
    let sim = Sim::start(world(), Accounts::default()).await.unwrap();
    let response = reqwest::Client::new()
        .post(sim.uaa_url.join("/oauth/token").unwrap())
        .basic_auth("cf", Some(""))
        .form(&[
            ("grant_type", "password"),
            ("username", "monitoring@example.com"),
            ("password", "wrong"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client");
    assert_eq!(body["error_description"], "Bad credentials");
}

// ---- The simulated credentials read as planted (the expiry rules live in the exporter) ----

mod credentials_read_as_planted {
    use crate::common::year_key;
    use cf_service_key_exporter::expiry::{self, extract, ReadError};
    use cf_sim::credentials::Shape;
    use time::macros::datetime;

    const SECRET: &str = "SECRET-MARKER-sim-7f3a";

    #[test]
    fn extract_reads_the_planted_expiry_of_every_shape() {
        let at = datetime!(2031-03-14 15:09:26.535 UTC);
        for shape in Shape::ALL {
            let creds = year_key(shape, at, SECRET).expect("simulated credentials");
            let x = extract(&creds);
            assert_eq!(x.source(), shape.expected_source(), "{shape:?}");
            if shape.expected_source() != expiry::SOURCE_NONE {
                let found = x.earliest().expect("an expiry");
                assert_eq!(
                    found.expires_at.unix_timestamp(),
                    at.unix_timestamp(),
                    "{shape:?}"
                );
            }
            let reasons: Vec<_> = x.errors.iter().map(ReadError::reason).collect();
            assert_eq!(
                reasons,
                shape
                    .expected_error_reason()
                    .into_iter()
                    .collect::<Vec<_>>(),
                "{shape:?}"
            );
        }
    }

    #[test]
    fn certificate_shapes_report_the_leaf_and_its_path() {
        let at = datetime!(2026-01-02 03:04:05 UTC);
        let creds = year_key(Shape::XsuaaX509, at, SECRET).expect("xsuaa");
        let x = extract(&creds);
        let found = x.earliest().expect("leaf");
        assert_eq!(found.path, "uaa.certificate");
        let cert = found.certificate.as_ref().expect("certificate info");
        assert!(
            cert.subject.contains("SAP Cloud Platform Clients"),
            "{cert:?}"
        );
        assert!(cert.issuer.contains("Client CA (simulated)"), "{cert:?}");

        let api = extract(&year_key(Shape::CloudIntegrationApi, at, SECRET).expect("api"));
        assert_eq!(
            api.earliest().map(|f| f.path.as_str()),
            Some("oauth.certificate")
        );
    }

    #[test]
    fn malformed_shapes_name_the_field() {
        let at = datetime!(2026-01-02 03:04:05 UTC);
        let date = extract(&year_key(Shape::MalformedDate, at, SECRET).expect("date"));
        assert_eq!(
            date.errors,
            vec![ReadError::InvalidDate {
                path: "certificatedetails.validuntil".into()
            }]
        );
        let cert = extract(&year_key(Shape::MalformedCertificate, at, SECRET).expect("cert"));
        assert_eq!(
            cert.errors,
            vec![ReadError::InvalidCertificate {
                path: "uaa.certificate".into()
            }]
        );
    }

    #[test]
    fn already_expired_keys_are_simulated_too() {
        let at = datetime!(2019-05-01 00:00:00 UTC);
        for shape in [
            Shape::XsuaaX509,
            Shape::CloudIntegrationFlow,
            Shape::Destination,
        ] {
            let x = extract(&year_key(shape, at, SECRET).expect("creds"));
            assert_eq!(x.earliest().map(|f| f.expires_at), Some(at), "{shape:?}");
        }
    }

    #[test]
    fn the_secret_never_reaches_an_extraction() {
        let at = datetime!(2027-07-07 07:07:07 UTC);
        for shape in Shape::ALL {
            let creds = year_key(shape, at, SECRET).expect("creds");
            let text = creds.to_string();
            let carries_secret =
                shape != Shape::CloudIntegrationFlow && shape != Shape::MalformedDate;
            assert_eq!(text.contains(SECRET), carries_secret, "{shape:?}");
            let x = extract(&creds);
            assert!(!format!("{x:?}").contains(SECRET), "{shape:?}");
            assert!(!format!("{x:?}").contains("PRIVATE KEY"), "{shape:?}");
        }
    }
}
