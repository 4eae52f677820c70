//! Transport rules toward Cloud Foundry and what the operator is told about them: an `http://`
//! login server under an `https://` API is refused unless explicitly allowed, and the
//! configuration warnings follow SIGHUP reloads onto the landing page and reach `report`.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cf_service_key_exporter::cf::CfClient;
use cf_service_key_exporter::config::DemoTarget;
use cf_service_key_exporter::metrics::ExporterMetrics;
use cf_sim::{Accounts, Sim, World};

#[tokio::test]
async fn an_http_login_server_under_an_https_api_is_refused_unless_allowed() {
    let sim = Sim::start(World::new(), Accounts::default()).await.unwrap();
    let metrics = Arc::new(ExporterMetrics::default());
    let mut config = DemoTarget::from(&sim).foundation("mixed");
    // The simulator's UAA over plain http, named for an https API (nothing listens there).
    config.uaa_url = Some(sim.uaa_url.clone());
    config.api_url = "https://127.0.0.1:1/".parse().unwrap();
    config.http.retries = 0;
    config.http.login_retry_after = Duration::ZERO;

    let client = CfClient::new(&config, metrics.recorder("mixed")).unwrap();
    let err = client.list_keys(&[]).await.unwrap_err();
    assert_eq!(err.reason().as_str(), "login", "{err}");
    assert!(
        err.to_string().contains("plain http under an https API"),
        "{err}"
    );
    assert!(err.to_string().contains("--cf-allow-http-login"), "{err}");

    // Allowed: the login goes through, and what fails is the (unreachable) API itself.
    config.tls.allow_http_login = true;
    let client = CfClient::new(&config, metrics.recorder("mixed")).unwrap();
    let err = client.list_keys(&[]).await.unwrap_err();
    assert_ne!(err.reason().as_str(), "login", "{err}");
}

fn foundation(skip_tls_verify: bool) -> String {
    format!(
        "[[foundation]]\nname = \"a\"\napi_url = \"http://127.0.0.1:9\"\nskip_tls_verify = {skip_tls_verify}\n"
    )
}

const SKIP_WARNING: &str = "TLS certificate verification toward Cloud Foundry is OFF";

#[tokio::test]
async fn warnings_follow_a_reload_and_reach_the_report() {
    let dir = std::env::temp_dir().join(format!("cf-ske-warnings-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("config.toml");
    std::fs::write(&path, foundation(false)).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_cf-service-key-exporter"))
        .args(["--config", path.to_str().unwrap()])
        .args(["--listen-address", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let landing = || async move {
        let answer = reqwest::get(format!("http://127.0.0.1:{port}/"))
            .await
            .ok()?;
        answer.text().await.ok()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let page = loop {
        if let Some(page) = landing().await {
            break page;
        }
        assert!(Instant::now() < deadline, "the exporter did not serve /");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(!page.contains(SKIP_WARNING), "{page}");

    std::fs::write(&path, foundation(true)).unwrap();
    let hup = Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    loop {
        if landing().await.is_some_and(|p| p.contains(SKIP_WARNING)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the reload's warning never reached /"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = child.kill();
    let _ = child.wait();

    // `report` says it too, on stderr (the foundation itself cannot be read: exit 2).
    let report = Command::new(env!("CARGO_BIN_EXE_cf-service-key-exporter"))
        .args(["report", "--config", path.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&report.stderr);
    assert!(
        stderr.contains(&format!("warning: foundation a: {SKIP_WARNING}")),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
