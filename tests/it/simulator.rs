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
    use cf_service_key_exporter::expiry::{extract, ReadError};
    use cf_sim::credentials::Shape;
    use time::macros::datetime;

    const SECRET: &str = "SECRET-MARKER-sim-7f3a";

    #[test]
    fn extract_reads_the_planted_expiry_of_every_shape() {
        let at = datetime!(2031-03-14 15:09:26.535 UTC);
        for shape in Shape::ALL {
            let creds = year_key(shape, at, SECRET).expect("simulated credentials");
            let x = extract(&creds);
            assert_eq!(x.source().as_str(), shape.expected_source(), "{shape:?}");
            if shape.expected_source() != "none" {
                let found = x.earliest().expect("an expiry");
                assert_eq!(
                    found.expires_at.unix_timestamp(),
                    at.unix_timestamp(),
                    "{shape:?}"
                );
            }
            let reasons: Vec<_> = x.errors.iter().map(|e| e.reason().as_str()).collect();
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

// ---- Creating and deleting keys, their parameters, jobs and offerings ----

mod keys {
    use super::token;
    use cf_sim::operations::CREATED_KEY_SECRET;
    use cf_sim::{Accounts, RateLimit, Sim, World};
    use serde_json::{json, Value};
    use std::time::{Duration, UNIX_EPOCH};
    use x509_parser::der_parser;
    use x509_parser::prelude::{FromDer, X509Certificate};
    use x509_parser::public_key::PublicKey;

    /// A fixed instant for the simulator's manual clock: 2027-01-15T08:00:00Z.
    const T0: u64 = 1_800_000_000;

    struct Foundation {
        sim: Sim,
        token: String,
        /// An XSUAA instance with the broker's default credential type (a client secret).
        xsuaa: String,
        /// An XSUAA instance whose keys are x509 unless their parameters say otherwise.
        xsuaa_x509: String,
        /// A Cloud Integration instance; its broker (`it-rt`) works asynchronously, 30 s.
        cpi: String,
        ups: String,
    }

    async fn foundation() -> Foundation {
        let mut w = World::new();
        let org = w.org("o");
        let space = w.space(&org, "s");
        let xsuaa = w.instance(&space, "xsuaa", "application", "xsuaa-app");
        let xsuaa_x509 = w.instance(&space, "xsuaa", "application", "xsuaa-x509");
        w.instance_mut(&xsuaa_x509).unwrap().default_credential_type = Some("x509".into());
        let cpi = w.instance(&space, "it-rt", "integration-flow", "cpi");
        w.offering_mut("it-rt").unwrap().async_after = Some(time::Duration::seconds(30));
        let ups = w.user_provided(&space, "ups");
        let sim = Sim::start(w, Accounts::default()).await.unwrap();
        sim.state
            .set_clock(Some(UNIX_EPOCH + Duration::from_secs(T0)));
        let token = token(&sim).await;
        Foundation {
            sim,
            token,
            xsuaa,
            xsuaa_x509,
            cpi,
            ups,
        }
    }

    /// One answer: status, `Location` (if any) and the body as JSON (`Null` when empty).
    struct Answer {
        status: u16,
        location: Option<String>,
        body: Value,
    }

    impl Foundation {
        fn path(&self, href: &str) -> String {
            href.trim_start_matches(self.sim.api_url.as_str().trim_end_matches('/'))
                .to_owned()
        }

        async fn send(&self, method: reqwest::Method, path: &str, body: Option<&str>) -> Answer {
            let url = format!(
                "{}{}",
                self.sim.api_url.as_str().trim_end_matches('/'),
                self.path(path)
            );
            let mut request = reqwest::Client::new()
                .request(method, url)
                .header("authorization", format!("bearer {}", self.token));
            if let Some(body) = body {
                request = request
                    .header("content-type", "application/json")
                    .body(body.to_owned());
            }
            let response = request.send().await.unwrap();
            let location = response
                .headers()
                .get("location")
                .map(|l| l.to_str().unwrap().to_owned());
            let status = response.status().as_u16();
            let body = response.json().await.unwrap_or(Value::Null);
            Answer {
                status,
                location,
                body,
            }
        }

        async fn get(&self, path: &str) -> Answer {
            self.send(reqwest::Method::GET, path, None).await
        }

        async fn create(&self, body: Value) -> Answer {
            let body = body.to_string();
            self.send(
                reqwest::Method::POST,
                "/v3/service_credential_bindings",
                Some(&body),
            )
            .await
        }

        async fn delete(&self, guid: &str) -> Answer {
            self.send(
                reqwest::Method::DELETE,
                &format!("/v3/service_credential_bindings/{guid}"),
                None,
            )
            .await
        }

        /// Creates a key and returns its job (already polled once).
        async fn create_key(&self, instance: &str, name: &str, parameters: Option<Value>) -> Value {
            let mut body = json!({"type": "key", "name": name,
                "relationships": {"service_instance": {"data": {"guid": instance}}}});
            if let Some(p) = parameters {
                body["parameters"] = p;
            }
            let a = self.create(body).await;
            assert_eq!(a.status, 202, "{}", a.body);
            assert_eq!(a.body, Value::Null, "202 has no body");
            let location = a.location.expect("a Location");
            assert!(location.starts_with(self.sim.api_url.as_str().trim_end_matches('/')));
            let job = self.get(&location).await;
            assert_eq!(job.status, 200);
            job.body
        }

        async fn key_named(&self, name: &str) -> Option<Value> {
            let a = self
                .get(&format!("/v3/service_credential_bindings?names={name}"))
                .await;
            a.body["resources"].as_array().unwrap().first().cloned()
        }

        async fn details(&self, guid: &str) -> Answer {
            self.get(&format!("/v3/service_credential_bindings/{guid}/details"))
                .await
        }

        fn guid_of_job_key(job: &Value) -> String {
            let href = job["links"]["service_credential_binding"]["href"]
                .as_str()
                .expect("the job links its key");
            href.rsplit('/').next().unwrap().to_owned()
        }
    }

    fn error(a: &Answer) -> (u16, i64, &str, &str) {
        let e = &a.body["errors"][0];
        (
            a.status,
            e["code"].as_i64().unwrap_or_default(),
            e["title"].as_str().unwrap_or_default(),
            e["detail"].as_str().unwrap_or_default(),
        )
    }

    fn at(timestamp: &Value) -> i64 {
        time::OffsetDateTime::parse(
            timestamp.as_str().expect("a timestamp"),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap()
        .unix_timestamp()
    }

    /// The leaf of a PEM chain: its RSA modulus (raw DER integer), key size, notBefore and
    /// notAfter.
    fn leaf(pem: &str) -> (Vec<u8>, usize, i64, i64) {
        let der = pem_blocks(pem).remove(0);
        let (_, cert) = X509Certificate::from_der(&der).unwrap();
        let validity = cert.validity();
        let PublicKey::RSA(rsa) = cert.public_key().parsed().unwrap() else {
            panic!("not an RSA key");
        };
        (
            rsa.modulus.to_vec(),
            rsa.key_size(),
            validity.not_before.timestamp(),
            validity.not_after.timestamp(),
        )
    }

    fn pem_blocks(pem: &str) -> Vec<Vec<u8>> {
        use base64::Engine as _;
        let mut blocks = Vec::new();
        let mut current: Option<String> = None;
        for line in pem.lines() {
            if line.starts_with("-----BEGIN") {
                current = Some(String::new());
            } else if line.starts_with("-----END") {
                let b64 = current.take().unwrap();
                blocks.push(
                    base64::engine::general_purpose::STANDARD
                        .decode(b64)
                        .unwrap(),
                );
            } else if let Some(c) = current.as_mut() {
                c.push_str(line);
            }
        }
        blocks
    }

    /// The modulus of a PKCS #1 RSA private key (raw DER integer).
    fn private_modulus(pem: &str) -> Vec<u8> {
        let der = pem_blocks(pem).remove(0);
        let (_, key) = der_parser::parse_der(&der).unwrap();
        let fields = key.as_sequence().unwrap();
        fields[1].as_slice().unwrap().to_vec()
    }

    #[tokio::test]
    async fn a_synchronous_broker_creates_the_key_with_the_job_complete_at_once() {
        let f = foundation().await;
        let job = f.create_key(&f.xsuaa, "k1", None).await;
        assert_eq!(job["state"], "COMPLETE");
        assert_eq!(job["operation"], "service_keys.create");
        assert_eq!(job["errors"], json!([]));
        let guid = Foundation::guid_of_job_key(&job);
        let listed = f.key_named("k1").await.expect("listed");
        assert_eq!(listed["guid"], guid.as_str());
        assert_eq!(listed["type"], "key");
        assert_eq!(
            (
                &listed["last_operation"]["type"],
                &listed["last_operation"]["state"]
            ),
            (&json!("create"), &json!("succeeded"))
        );
        assert_eq!(
            at(&listed["created_at"]),
            T0 as i64,
            "the simulator's clock"
        );
        assert!(listed["links"]["parameters"]["href"]
            .as_str()
            .unwrap()
            .ends_with("/parameters"));
        let shown = f
            .get(&format!("/v3/service_credential_bindings/{guid}"))
            .await;
        assert_eq!(shown.body, listed);
        let details = f.details(&guid).await;
        assert_eq!(details.status, 200);
        // No parameters: the instance's default credential type, a client secret.
        let c = &details.body["credentials"];
        assert_eq!(c["credential-type"], "binding-secret");
        assert_eq!(
            c["clientsecret"],
            format!("{CREATED_KEY_SECRET}-{guid}").as_str()
        );
        assert!(c.get("certificate").is_none());
    }

    #[tokio::test]
    async fn an_asynchronous_broker_keeps_the_key_in_progress_and_its_details_hidden_until_done() {
        let f = foundation().await;
        let body = json!({"type": "key", "name": "sender-a",
            "relationships": {"service_instance": {"data": {"guid": f.cpi}}},
            "parameters": {"key-type": "certificate", "validity": 90},
            "metadata": {"labels": {"team": "integration"}, "annotations": {"note": "first"}}});
        let a = f.create(body).await;
        assert_eq!(a.status, 202);
        let location = a.location.expect("Location");
        let job = f.get(&location).await.body;
        assert_eq!(job["state"], "POLLING");
        let guid = Foundation::guid_of_job_key(&job);
        let listed = f
            .key_named("sender-a")
            .await
            .expect("listed while in progress");
        assert_eq!(
            listed["last_operation"],
            json!({"type": "create", "state": "in progress", "description": "",
                   "created_at": "2027-01-15T08:00:00Z", "updated_at": "2027-01-15T08:00:00Z"})
        );
        assert_eq!(
            listed["metadata"],
            json!({"labels": {"team": "integration"}, "annotations": {"note": "first"}})
        );
        let details = f.details(&guid).await;
        assert_eq!(
            error(&details),
            (
                404,
                10010,
                "CF-ResourceNotFound",
                "Creation of service key in progress"
            )
        );
        f.sim.state.advance_clock(Duration::from_secs(29));
        assert_eq!(f.get(&location).await.body["state"], "POLLING");
        assert_eq!(f.details(&guid).await.status, 404);

        f.sim.state.advance_clock(Duration::from_secs(1));
        let job = f.get(&location).await.body;
        assert_eq!(job["state"], "COMPLETE");
        assert_eq!(at(&job["updated_at"]), T0 as i64 + 30);
        let listed = f.key_named("sender-a").await.expect("listed");
        assert_eq!(listed["last_operation"]["state"], "succeeded");
        assert_eq!(at(&listed["created_at"]), T0 as i64);
        assert_eq!(
            at(&listed["updated_at"]),
            T0 as i64 + 30,
            "updated_at moves"
        );
        let details = f.details(&guid).await;
        assert_eq!(details.status, 200);
        assert_eq!(
            details.body["credentials"]["certificatedetails"]["validuntil"],
            "2027-04-15T08:00:00.000Z",
            "90 days from its creation"
        );
    }

    #[tokio::test]
    async fn key_names_are_unique_per_instance() {
        let f = foundation().await;
        f.create_key(&f.xsuaa, "shared-name", None).await;
        let body = |instance: &str| {
            json!({"type": "key", "name": "shared-name",
                "relationships": {"service_instance": {"data": {"guid": instance}}}})
        };
        let again = f.create(body(&f.xsuaa)).await;
        assert_eq!(
            error(&again),
            (
                422,
                10008,
                "CF-UnprocessableEntity",
                "The binding name is invalid. Key binding names must be unique. The service instance already has a key binding with name 'shared-name'."
            )
        );
        assert_eq!(again.location, None);
        let elsewhere = f.create(body(&f.xsuaa_x509)).await;
        assert_eq!(elsewhere.status, 202, "another instance may use the name");
        let all = f
            .get("/v3/service_credential_bindings?names=shared-name")
            .await;
        assert_eq!(all.body["pagination"]["total_results"], 2);
    }

    #[tokio::test]
    async fn bad_requests_get_the_cloud_controller_errors() {
        let f = foundation().await;
        let key = |instance: &str| {
            json!({"type": "key", "name": "k",
                "relationships": {"service_instance": {"data": {"guid": instance}}}})
        };
        let unknown = f.create(key("no-such-instance")).await;
        assert_eq!(
            error(&unknown),
            (
                422,
                10008,
                "CF-UnprocessableEntity",
                "The service instance could not be found: 'no-such-instance'"
            )
        );
        let mut bad_type = key(&f.xsuaa);
        bad_type["type"] = json!("certificate");
        assert_eq!(
            error(&f.create(bad_type).await).3,
            "Type must be 'app' or 'key'"
        );
        let mut nameless = key(&f.xsuaa);
        nameless.as_object_mut().unwrap().remove("name");
        assert_eq!(
            error(&f.create(nameless).await).3,
            "Name must be a string, Name can't be blank"
        );
        let mut extra = key(&f.xsuaa);
        extra["colour"] = json!("blue");
        extra["parameters"] = json!(["x509"]);
        assert_eq!(
            error(&f.create(extra).await).3,
            "Unknown field(s): 'colour', Parameters must be an object"
        );
        let no_relationship = json!({"type": "key", "name": "k", "relationships": {}});
        assert!(error(&f.create(no_relationship).await)
            .3
            .contains("must include one or more valid relationships"));
        let mut on_ups = key(&f.ups);
        on_ups["parameters"] = json!({});
        assert_eq!(
            error(&f.create(on_ups).await).3,
            "Binding parameters are not supported for user-provided service instances"
        );
        let parse = f
            .send(
                reqwest::Method::POST,
                "/v3/service_credential_bindings",
                Some("{not json"),
            )
            .await;
        assert_eq!(
            error(&parse),
            (
                400,
                1001,
                "CF-MessageParseError",
                "Request invalid due to parse error: invalid request body"
            )
        );
        let listed = f.get("/v3/service_credential_bindings").await;
        assert_eq!(
            listed.body["pagination"]["total_results"], 0,
            "nothing created"
        );
    }

    #[tokio::test]
    async fn a_broker_that_refuses_the_parameters_fails_the_job_and_the_name_can_be_used_again() {
        let f = foundation().await;
        let refused = json!({"credential-type": "x509", "x509": {"key-length": 1024}});
        let job = f.create_key(&f.xsuaa, "k", Some(refused)).await;
        assert_eq!(job["state"], "FAILED");
        assert_eq!(job["errors"][0]["code"], 10009);
        assert_eq!(job["errors"][0]["title"], "CF-UnableToPerform");
        assert!(job["errors"][0]["detail"]
            .as_str()
            .unwrap()
            .starts_with("bind could not be completed: Service broker error: x509.key-length"));
        let listed = f.key_named("k").await.expect("a failed key stays listed");
        assert_eq!(listed["last_operation"]["state"], "failed");
        let guid = listed["guid"].as_str().unwrap();
        assert_eq!(
            error(&f.details(guid).await).3,
            "Creation of service key failed"
        );
        let job = f.create_key(&f.xsuaa, "k", None).await;
        assert_eq!(job["state"], "COMPLETE", "the failed key is replaced");
        let all = f.get("/v3/service_credential_bindings?names=k").await;
        assert_eq!(all.body["pagination"]["total_results"], 1);
    }

    #[tokio::test]
    async fn deleting_a_key_takes_it_out_of_the_listing() {
        let f = foundation().await;
        let sync = Foundation::guid_of_job_key(&f.create_key(&f.xsuaa, "sync", None).await);
        let a = f.delete(&sync).await;
        assert_eq!(a.status, 202);
        let job = f.get(&a.location.expect("Location")).await.body;
        assert_eq!(
            (&job["state"], &job["operation"]),
            (&json!("COMPLETE"), &json!("service_keys.delete"))
        );
        assert!(job["links"].get("service_credential_binding").is_none());
        assert!(f.key_named("sync").await.is_none());
        assert_eq!(
            error(&f.delete(&sync).await),
            (
                404,
                10010,
                "CF-ResourceNotFound",
                "Service credential binding not found"
            )
        );

        // Asynchronous: listed as being deleted until the broker is done.
        let job = f
            .create_key(&f.cpi, "async", Some(json!({"key-type": "certificate"})))
            .await;
        let guid = Foundation::guid_of_job_key(&job);
        f.sim.state.advance_clock(Duration::from_secs(30));
        assert_eq!(f.details(&guid).await.status, 200);
        let a = f.delete(&guid).await;
        assert_eq!(a.status, 202);
        let location = a.location.expect("Location");
        let listed = f.key_named("async").await.expect("still listed");
        assert_eq!(
            (
                &listed["last_operation"]["type"],
                &listed["last_operation"]["state"]
            ),
            (&json!("delete"), &json!("in progress"))
        );
        assert_eq!(
            error(&f.details(&guid).await).3,
            "Deletion of service key in progress"
        );
        assert_eq!(
            error(&f.delete(&guid).await),
            (
                422,
                10008,
                "CF-UnprocessableEntity",
                "There is an operation in progress for the service binding."
            )
        );
        f.sim.state.advance_clock(Duration::from_secs(30));
        assert_eq!(f.get(&location).await.body["state"], "COMPLETE");
        assert!(f.key_named("async").await.is_none());
        assert_eq!(
            f.get("/v3/service_credential_bindings").await.body["pagination"]["total_results"],
            0
        );
    }

    #[tokio::test]
    async fn parameters_come_back_only_where_the_offering_has_bindings_retrievable() {
        let f = foundation().await;
        let asked = json!({"credential-type": "x509",
            "x509": {"key-length": 2048, "validity": 7, "validity-type": "DAYS"}});
        let xsuaa =
            Foundation::guid_of_job_key(&f.create_key(&f.xsuaa, "x", Some(asked.clone())).await);
        let a = f
            .get(&format!(
                "/v3/service_credential_bindings/{xsuaa}/parameters"
            ))
            .await;
        assert_eq!((a.status, &a.body), (200, &asked));
        let plain = Foundation::guid_of_job_key(&f.create_key(&f.xsuaa, "p", None).await);
        let a = f
            .get(&format!(
                "/v3/service_credential_bindings/{plain}/parameters"
            ))
            .await;
        assert_eq!((a.status, &a.body), (200, &json!({})));

        let cpi = Foundation::guid_of_job_key(
            &f.create_key(&f.cpi, "c", Some(json!({"key-type": "certificate"})))
                .await,
        );
        let path = format!("/v3/service_credential_bindings/{cpi}/parameters");
        assert_eq!(
            error(&f.get(&path).await).3,
            "Creation of service key in progress"
        );
        f.sim.state.advance_clock(Duration::from_secs(30));
        assert_eq!(
            error(&f.get(&path).await),
            (
                400,
                90007,
                "CF-ServiceFetchBindingParametersNotSupported",
                "This service does not support fetching service binding parameters."
            )
        );
        let a = f
            .get("/v3/service_credential_bindings/nope/parameters")
            .await;
        assert_eq!(error(&a).0, 404);

        // The offerings say which is which.
        let offerings = f.get("/v3/service_offerings").await.body;
        let retrievable: Vec<(String, bool)> = offerings["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| {
                (
                    o["name"].as_str().unwrap().to_owned(),
                    o["broker_catalog"]["features"]["bindings_retrievable"]
                        .as_bool()
                        .unwrap(),
                )
            })
            .collect();
        assert_eq!(
            retrievable,
            [("xsuaa".to_owned(), true), ("it-rt".to_owned(), false)]
        );
        let xsuaa_guid = offerings["resources"][0]["guid"].as_str().unwrap();
        let one = f.get(&format!("/v3/service_offerings/{xsuaa_guid}")).await;
        assert_eq!(one.body, offerings["resources"][0]);
        let named = f
            .get("/v3/service_offerings?names=it-rt&fields[service_broker]=name")
            .await
            .body;
        assert_eq!(named["pagination"]["total_results"], 1);
        assert_eq!(
            named["included"]["service_brokers"],
            json!([{"name": "it-rt-broker"}])
        );
        assert_eq!(f.get("/v3/service_offerings?colour=blue").await.status, 400);
    }

    #[tokio::test]
    async fn an_x509_key_has_the_key_length_and_validity_its_parameters_ask_for() {
        let f = foundation().await;
        for (bits, days) in [(4096u64, 30i64), (8192, 1)] {
            let name = format!("x509-{bits}");
            let parameters = json!({"credential-type": "x509",
                "x509": {"key-length": bits, "validity": days, "validity-type": "DAYS"}});
            let job = f.create_key(&f.xsuaa, &name, Some(parameters)).await;
            let guid = Foundation::guid_of_job_key(&job);
            let c = f.details(&guid).await.body["credentials"].clone();
            assert_eq!(c["credential-type"], "x509");
            let (modulus, size, not_before, not_after) = leaf(c["certificate"].as_str().unwrap());
            assert_eq!(size as u64, bits, "{name}");
            assert_eq!(not_before, T0 as i64, "{name}: valid from its creation");
            assert_eq!(not_after - not_before, days * 86_400, "{name}");
            let key = c["key"].as_str().unwrap();
            assert!(key.contains(&format!("{CREATED_KEY_SECRET}-{guid}")));
            assert_eq!(
                private_modulus(key),
                modulus,
                "{name}: the key fits the certificate"
            );
            // The chain ends with the CAs.
            assert_eq!(pem_blocks(c["certificate"].as_str().unwrap()).len(), 3);
        }
    }

    #[tokio::test]
    async fn without_parameters_a_key_gets_its_instance_default_credential_type() {
        let f = foundation().await;
        let x509 = Foundation::guid_of_job_key(&f.create_key(&f.xsuaa_x509, "d", None).await);
        let c = f.details(&x509).await.body["credentials"].clone();
        assert_eq!(c["credential-type"], "x509");
        let (_, size, not_before, not_after) = leaf(c["certificate"].as_str().unwrap());
        assert_eq!(
            (size, not_after - not_before),
            (2048, 7 * 86_400),
            "XSUAA's defaults"
        );
        // The parameters still win over the default.
        let secret = Foundation::guid_of_job_key(
            &f.create_key(
                &f.xsuaa_x509,
                "s",
                Some(json!({"credential-type": "binding-secret"})),
            )
            .await,
        );
        let c = f.details(&secret).await.body["credentials"].clone();
        assert_eq!(c["credential-type"], "binding-secret");
        // And an x509 key asked for on an instance whose default is a client secret.
        let asked = Foundation::guid_of_job_key(
            &f.create_key(&f.xsuaa, "a", Some(json!({"credential-type": "x509"})))
                .await,
        );
        let c = f.details(&asked).await.body["credentials"].clone();
        assert_eq!(c["credential-type"], "x509");
        let plain = Foundation::guid_of_job_key(&f.create_key(&f.xsuaa, "b", None).await);
        let c = f.details(&plain).await.body["credentials"].clone();
        assert_eq!(c["credential-type"], "binding-secret");
    }

    #[tokio::test]
    async fn creating_deleting_and_reading_parameters_count_against_the_rate_limit() {
        let f = foundation().await;
        let guid = Foundation::guid_of_job_key(&f.create_key(&f.xsuaa, "k", None).await);
        f.sim
            .state
            .switches
            .set_rate_limit(Some(RateLimit::new(3, Duration::from_secs(3600))));
        let parameters = format!("/v3/service_credential_bindings/{guid}/parameters");
        assert_eq!(f.get(&parameters).await.status, 200);
        let body = json!({"type": "key", "name": "k2",
            "relationships": {"service_instance": {"data": {"guid": f.xsuaa}}}});
        assert_eq!(f.create(body.clone()).await.status, 202);
        assert_eq!(f.delete(&guid).await.status, 202);
        assert_eq!(f.sim.state.switches.rate_limit_used(), Some((3, 3)));
        for a in [
            f.get(&parameters).await,
            f.create(body).await,
            f.delete(&guid).await,
        ] {
            assert_eq!(error(&a).0, 429);
            assert_eq!(a.body["errors"][0]["title"], "CF-RateLimitExceeded");
        }
        let stats = &f.sim.state.stats;
        assert_eq!(
            stats.count_method("POST", "/v3/service_credential_bindings"),
            3
        );
        assert_eq!(
            stats.count_method("DELETE", "/v3/service_credential_bindings/:guid"),
            2
        );
        assert_eq!(
            stats.count("/v3/service_credential_bindings/:guid/parameters"),
            2
        );
        // Nothing was created or deleted by the refused requests.
        f.sim.state.switches.set_rate_limit(None);
        assert!(f.key_named("k").await.is_none());
        assert!(f.key_named("k2").await.is_some());
    }

    #[tokio::test]
    async fn the_demo_answers_parameters_as_its_brokers_do() {
        let now = time::OffsetDateTime::now_utc();
        let sim = Sim::start(cf_sim::demo::world(now).unwrap(), Accounts::default())
            .await
            .unwrap();
        let t = token(&sim).await;
        let parameters = |name: &'static str| {
            let (sim, t) = (&sim, &t);
            async move {
                let (_, page) = super::get(
                    sim,
                    &format!("/v3/service_credential_bindings?names={name}"),
                    Some(t),
                )
                .await;
                let guid = page["resources"][0]["guid"].as_str().unwrap().to_owned();
                super::get(
                    sim,
                    &format!("/v3/service_credential_bindings/{guid}/parameters"),
                    Some(t),
                )
                .await
            }
        };
        let (status, body) = parameters("x509-client").await;
        assert_eq!(status, 200);
        assert_eq!(body["x509"]["key-length"], 4096);
        // An x509 key whose broker does not return its parameters.
        assert_eq!(parameters("payments-x509").await, (200, json!({})));
        let (status, body) = parameters("s4-inbound").await;
        assert_eq!(status, 400);
        assert_eq!(body["errors"][0]["code"], 90007);
    }
}
