//! No secret ever leaves the exporter: not in a log line (at TRACE, `log` records of reqwest,
//! hyper and rustls included), not on /metrics, not on the landing page, not in an error's
//! `Display` or `Debug`.
//!
//! Markers are planted as the password, the client secret and in every secret-bearing field of
//! every credential shape (private keys included); the access and refresh tokens the simulated
//! UAA issued are read back from it. Then every fault scenario runs, and everything the exporter
//! produced is searched for them. The real binary is checked the same way with `--demo`.

use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::logs::Logs;
use crate::common::year_key;
use crate::common::Harness;
use cf_service_key_exporter::cf::CfClient;
use cf_service_key_exporter::config::{DemoTarget, FoundationConfig, Grant, SecretSource};
use cf_service_key_exporter::metrics::ExporterMetrics;
use cf_sim::credentials::Shape;
use cf_sim::{demo, Accounts, Outage, RateLimit, Sim, World};
use secrecy::SecretString;
use time::OffsetDateTime;

const PASSWORD: &str = "pw-MARKER-5e1f0c";
const CLIENT_SECRET: &str = "cs-MARKER-a93b27";
const CREDENTIAL: &str = "cred-MARKER-77d401";
const WRONG_PASSWORD: &str = "wrongpw-MARKER-310c9e";

fn accounts() -> Accounts {
    Accounts {
        password: PASSWORD.into(),
        client_id: "exporter".into(),
        client_secret: CLIENT_SECRET.into(),
        ..Accounts::default()
    }
}

/// One key of every credential shape, each with the marker in all its secret fields.
fn world() -> World {
    let now = OffsetDateTime::now_utc();
    let mut w = World::new();
    let org = w.org("leak-org");
    let space = w.space(&org, "leak-space");
    let instance = w.instance(&space, "it-rt", "api", "leak-instance");
    for (i, shape) in Shape::ALL.into_iter().enumerate() {
        let at = now + time::Duration::days(30 + i as i64);
        w.key(
            &instance,
            &format!("key-{shape:?}"),
            year_key(shape, at, CREDENTIAL).unwrap(),
        );
    }
    w
}

fn fast(config: &mut FoundationConfig) {
    config.http.read_timeout = Duration::from_millis(300);
    config.http.request_timeout = Duration::from_secs(5);
    config.http.retries = 1;
    config.http.retry_min_delay = Duration::from_millis(10);
    config.http.login_retry_after = Duration::ZERO;
    config.details_concurrency = 4.try_into().unwrap();
}

/// Everything the exporter produced that someone other than the exporter could read.
#[derive(Default)]
struct Outputs(Vec<(String, String)>);

impl Outputs {
    fn add(&mut self, what: impl Into<String>, text: impl Into<String>) {
        self.0.push((what.into(), text.into()));
    }

    async fn add_pages(&mut self, h: &Harness, scenario: &str) {
        let metrics = h.get("/metrics").await.text().await.unwrap();
        self.add(format!("/metrics after {scenario}"), metrics);
        let landing = h.get("/").await.text().await.unwrap();
        self.add(format!("/ after {scenario}"), landing);
    }

    /// Panics naming the output and showing the line where a secret shows.
    #[track_caller]
    fn assert_free_of(&self, secrets: &[String]) {
        assert!(!self.0.is_empty());
        for (what, text) in &self.0 {
            for secret in secrets {
                if let Some(line) = text.lines().find(|l| l.contains(secret.as_str())) {
                    panic!("{secret:?} leaked into {what}: {line}");
                }
            }
        }
    }
}

fn planted() -> Vec<String> {
    vec![
        PASSWORD.into(),
        CLIENT_SECRET.into(),
        CREDENTIAL.into(),
        WRONG_PASSWORD.into(),
        // The simulated private keys: never stored, never shown.
        "PRIVATE KEY".into(),
    ]
}

/// Runs one scenario: switch the fault on, refresh, collect the pages, switch it off.
async fn scenario(h: &Harness, out: &mut Outputs, name: &str, on: impl FnOnce(&Harness)) {
    on(h);
    tracing::info!(scenario = name, "scenario starts");
    h.refresh().await;
    out.add_pages(h, name).await;
    let s = &h.sim.state.switches;
    s.set_outage(None);
    s.uaa_down.store(false, Ordering::Relaxed);
    s.refuse_tokens.store(false, Ordering::Relaxed);
    s.loop_pages.store(false, Ordering::Relaxed);
    *s.foreign_next.lock().unwrap() = None;
    *s.rate_limit.lock().unwrap() = None;
    s.throttle(0, 0);
    s.clear_details_failures();
}

fn touch_every_key(h: &Harness) {
    h.sim.state.with_world(|w| {
        for k in &mut w.keys {
            k.updated_at += time::Duration::minutes(1);
        }
    });
}

#[tokio::test]
async fn no_secret_or_token_in_logs_metrics_landing_page_or_errors_under_every_fault() {
    let (logs, _guard) = Logs::capture();
    let h = Harness::with(world(), accounts(), |c| {
        fast(c);
        c.http.list_body_limit = 256 * 1024;
    })
    .await;
    h.sim.state.switches.set_page_cap(3);
    let mut out = Outputs::default();

    let stats = h.refresh().await;
    assert_eq!(stats.keys, Shape::ALL.len(), "{stats:?}");
    out.add_pages(&h, "the first refresh").await;

    scenario(&h, &mut out, "every key re-read", touch_every_key).await;
    for status in [500, 502, 503] {
        scenario(&h, &mut out, &format!("HTML {status}"), |h| {
            h.sim.state.switches.set_outage(Some(Outage::Html(status)))
        })
        .await;
    }
    scenario(&h, &mut out, "invalid JSON", |h| {
        h.sim.state.switches.set_outage(Some(Outage::InvalidJson))
    })
    .await;
    scenario(&h, &mut out, "a huge body", |h| {
        h.sim
            .state
            .switches
            .set_outage(Some(Outage::HugeBody(2 * 1024 * 1024)))
    })
    .await;
    scenario(&h, &mut out, "a stalled body", |h| {
        h.sim.state.switches.set_outage(Some(Outage::StallBody))
    })
    .await;
    scenario(&h, &mut out, "a foreign next link", |h| {
        *h.sim.state.switches.foreign_next.lock().unwrap() = Some("http://127.0.0.1:9".into())
    })
    .await;
    scenario(&h, &mut out, "a pagination loop", |h| {
        h.sim
            .state
            .switches
            .loop_pages
            .store(true, Ordering::Relaxed)
    })
    .await;
    scenario(&h, &mut out, "failing details", |h| {
        touch_every_key(h);
        let guids: Vec<String> = h
            .sim
            .state
            .with_world(|w| w.keys.iter().map(|k| k.guid.clone()).collect());
        for (guid, status) in guids.iter().zip([403, 404, 500, 502, 503, 504, 401, 400]) {
            h.sim.state.switches.fail_details(guid, status);
        }
    })
    .await;
    scenario(&h, &mut out, "an expired token", |h| {
        h.sim.state.expire_tokens()
    })
    .await;
    scenario(&h, &mut out, "an expired token, UAA down", |h| {
        h.sim.state.switches.uaa_down.store(true, Ordering::Relaxed);
        h.sim.state.expire_tokens();
    })
    .await;
    scenario(&h, &mut out, "every token refused", |h| {
        h.sim
            .state
            .switches
            .refuse_tokens
            .store(true, Ordering::Relaxed)
    })
    .await;
    scenario(&h, &mut out, "a 429", |h| {
        touch_every_key(h);
        h.sim.state.switches.throttle(2, 1);
    })
    .await;
    scenario(&h, &mut out, "a spent rate limit", |h| {
        *h.sim.state.switches.rate_limit.lock().unwrap() =
            Some(RateLimit::new(100, Duration::from_secs(1)).with_used(95));
    })
    .await;
    scenario(&h, &mut out, "recovery", touch_every_key).await;
    assert_eq!(
        h.scrape()
            .await
            .value("cf_service_key_exporter_refresh_success", &[]),
        1.0
    );

    // A wrong password, and the foundation gone: a client of its own, whose errors are kept.
    let errors = error_texts(&h.sim).await;
    for (i, e) in errors.iter().enumerate() {
        out.add(format!("error {i}"), e.clone());
    }
    out.add("the log", logs.text());

    let mut secrets = planted();
    let tokens = h.sim.state.issued_tokens();
    assert!(tokens.len() >= 4, "{tokens:?}");
    secrets.extend(tokens);
    out.assert_free_of(&secrets);
    // The captured log really holds the HTTP stack's TRACE lines (`log` records routed into
    // `tracing`), or this proves little.
    let text = logs.text();
    assert!(
        text.contains("TRACE hyper_util"),
        "no TRACE line of the HTTP client captured"
    );
    assert!(
        text.contains("TRACE reqwest"),
        "no TRACE line of reqwest captured"
    );
}

/// `Display` and `Debug` of the errors a client returns: a wrong password, a closed port.
async fn error_texts(sim: &Sim) -> Vec<String> {
    let metrics = Arc::new(ExporterMetrics::default());
    let mut texts = Vec::new();
    let mut config = DemoTarget::from(sim).foundation("errors");
    fast(&mut config);
    if let Grant::Password { password, .. } = &mut config.grant {
        *password = SecretSource::Inline(SecretString::from(WRONG_PASSWORD.to_owned()));
    }
    texts.push(format!("{config:?}"));
    let client = CfClient::new(&config, metrics.recorder("errors")).unwrap();
    texts.push(format!("{client:?}"));
    let err = client.list_keys(&[]).await.unwrap_err();
    assert_eq!(err.reason().as_str(), "login");
    texts.push(format!("{err} / {err:?}"));

    let mut config = DemoTarget::from(sim).foundation("errors");
    fast(&mut config);
    let guid = sim
        .state
        .with_world(|w| w.find_key("key-CloudIntegrationApi").unwrap().guid.clone());
    let client = CfClient::new(&config, metrics.recorder("errors")).unwrap();
    for status in [401, 403, 404, 500, 502] {
        sim.state.switches.fail_details(&guid, status);
        let err = client.key_details(&guid).await.unwrap_err();
        texts.push(format!("{err} / {err:?}"));
    }
    sim.state.switches.clear_details_failures();
    // Read fine: the value holds secrets, but it is not an error and is not printed here.
    let details = client.key_details(&guid).await.unwrap();
    assert!(details.to_string().contains(CREDENTIAL));
    sim.state.switches.set_outage(Some(Outage::InvalidJson));
    let err = client.key_details(&guid).await.unwrap_err();
    texts.push(format!("{err} / {err:?}"));
    sim.state.switches.set_outage(None);
    sim.stop();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let err = client.key_details(&guid).await.unwrap_err();
    texts.push(format!("{err} / {err:?}"));
    texts
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn the_demo_binary_at_trace_shows_no_secret_or_token() {
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("cf-ske-secrets-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let stderr_path = dir.join("stderr.log");
    let stderr = std::fs::File::create(&stderr_path).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_cf-service-key-exporter"))
        .args(["--demo", "--listen-address", &format!("127.0.0.1:{port}")])
        .env("RUST_LOG", "trace")
        .env_remove("LOG_FORMAT")
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ready = client.get(format!("{base}/readyz")).send().await;
        if ready.is_ok_and(|r| r.status() == 200) {
            break;
        }
        assert!(Instant::now() < deadline, "the demo did not get ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let metrics = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let landing = client
        .get(format!("{base}/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let mut log = String::new();
    std::fs::File::open(&stderr_path)
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);

    assert!(metrics.contains("cf_service_key_info"), "{metrics}");
    assert!(log.contains("TRACE"), "RUST_LOG=trace had no effect");
    assert!(log.contains("refresh completed"), "{log}");
    let mut out = Outputs::default();
    out.add("the demo's stderr", log);
    out.add("the demo's /metrics", metrics);
    out.add("the demo's /", landing);
    out.assert_free_of(&[
        demo::DEMO_SECRET.to_owned(),
        Accounts::default().password,
        "sim-access-".to_owned(),
        "sim-refresh-".to_owned(),
        "PRIVATE KEY".to_owned(),
    ]);
}

/// The inline secret of the broken config files below; the bare-number case uses the digits.
const CONFIG_SECRET: &str = "cfgpw-MARKER-4c2d";
const CONFIG_NUMBER: &str = "90817263545";

/// Config files broken around an inline secret: (what, text, the fixed message expected).
fn broken_configs() -> Vec<(&'static str, String, &'static str)> {
    let head = "[[foundation]]\nname = \"a\"\napi_url = \"http://127.0.0.1:9\"\nusername = \"u\"\n";
    vec![
        (
            "a backslash in the password",
            format!("{head}password = \"{CONFIG_SECRET}\\q\"\n"),
            "line 5, column ",
        ),
        (
            "a bare-number password",
            format!("{head}password = {CONFIG_NUMBER}\n"),
            "line 5, column 12: foundation #1: password: must be a string in quotes",
        ),
        (
            "a duplicated password",
            format!("{head}password = \"{CONFIG_SECRET}\"\npassword = \"{CONFIG_SECRET}\"\n"),
            "line 6, column 1: a key is set twice",
        ),
        (
            "an unterminated password",
            format!("{head}password = \"{CONFIG_SECRET}\nrefresh_interval = \"5m\"\n"),
            "line 5, column ",
        ),
    ]
}

fn config_dir(test: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("cf-ske-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn a_broken_config_file_at_start_names_the_place_never_the_secret() {
    let dir = config_dir("broken-start");
    let path = dir.join("config.toml");
    for (what, text, expected) in broken_configs() {
        std::fs::write(&path, &text).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_cf-service-key-exporter"))
            .args([
                "--config",
                path.to_str().unwrap(),
                "--listen-address",
                "127.0.0.1:0",
            ])
            .env("RUST_LOG", "trace")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(2), "{what}: {stderr}");
        assert!(
            stderr.contains(&format!("{}: {expected}", path.display())),
            "{what}: {stderr}"
        );
        for secret in [CONFIG_SECRET, CONFIG_NUMBER] {
            assert!(
                !stderr.contains(secret),
                "{what}: stderr has the secret: {stderr}"
            );
            assert!(
                !stdout.contains(secret),
                "{what}: stdout has the secret: {stdout}"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_broken_config_file_on_sighup_is_refused_counted_and_never_logs_the_secret() {
    let dir = config_dir("broken-reload");
    let path = dir.join("config.toml");
    std::fs::write(
        &path,
        "[[foundation]]\nname = \"a\"\napi_url = \"http://127.0.0.1:9\"\nusername = \"u\"\npassword_env = \"CFG_PW\"\n",
    )
    .unwrap();
    let port = free_port();
    let log_path = dir.join("stderr.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_cf-service-key-exporter"))
        .args(["--config", path.to_str().unwrap()])
        .args(["--listen-address", &format!("127.0.0.1:{port}")])
        .env("CFG_PW", "from-the-environment")
        .env("RUST_LOG", "trace")
        .env_remove("LOG_FORMAT")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let metrics_url = format!("http://127.0.0.1:{port}/metrics");
    let failures = |text: &str| {
        text.lines()
            .find(|l| {
                l.starts_with(
                    "cf_service_key_exporter_config_reload_failures_total{config=\"file\"}",
                )
            })
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
    };
    let client = reqwest::Client::new();
    let scrape = || async {
        match client.get(&metrics_url).send().await {
            Ok(r) => r.text().await.ok(),
            Err(_) => None,
        }
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while scrape().await.as_deref().and_then(failures) != Some(0.0) {
        assert!(
            Instant::now() < deadline,
            "the exporter did not serve the failure counter"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let cases = broken_configs();
    for (n, (what, text, expected)) in cases.iter().enumerate() {
        std::fs::write(&path, text).unwrap();
        let status = Command::new("kill")
            .args(["-HUP", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        while scrape().await.as_deref().and_then(failures) != Some((n + 1) as f64) {
            assert!(
                Instant::now() < deadline,
                "{what}: the reload was not counted as refused"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let log = std::fs::read_to_string(&log_path).unwrap();
        assert_eq!(
            log.matches("reload refused").count(),
            n + 1,
            "{what}: {log}"
        );
        assert!(log.contains(expected), "{what}: {log}");
    }
    let _ = child.kill();
    let _ = child.wait();
    let log = std::fs::read_to_string(&log_path).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let mut out = Outputs::default();
    out.add("stderr across the refused reloads", log);
    out.assert_free_of(&[CONFIG_SECRET.to_owned(), CONFIG_NUMBER.to_owned()]);
}

#[test]
fn debug_of_an_answer_a_details_body_and_the_demo_target_shows_no_secret() {
    use cf_service_key_exporter::cf::http::Answer;
    let answer = Answer {
        status: reqwest::StatusCode::OK,
        headers: Default::default(),
        body: bytes::Bytes::from(format!("{{\"access_token\":\"{CREDENTIAL}\"}}")),
    };
    let target = DemoTarget {
        api_url: "http://127.0.0.1:1".parse().unwrap(),
        username: "u".into(),
        password: SecretString::from(PASSWORD),
        client_id: "c".into(),
        client_secret: SecretString::from(CLIENT_SECRET),
        origin: None,
        metadata_labels: Vec::new(),
        lead_time_annotation: None,
        successor_annotation: None,
    };
    let details: cf_service_key_exporter::cf::model::Details = serde_json::from_str(&format!(
        "{{\"credentials\":{{\"password\":\"{CREDENTIAL}\"}}}}"
    ))
    .unwrap();
    let mut out = Outputs::default();
    out.add("Debug of Details", format!("{details:?}"));
    out.add("Debug of an Answer", format!("{answer:?}"));
    out.add("Debug of a DemoTarget", format!("{target:?}"));
    out.assert_free_of(&[CREDENTIAL.into(), PASSWORD.into(), CLIENT_SECRET.into()]);
}
