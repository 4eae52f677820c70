//! Several foundations from one exporter process (`--config`): each refreshes on its own, a
//! failing or slow one never blanks or delays another, and SIGHUP reloads the file (a bad file
//! is refused and the running configuration kept). Runs the real binary against simulators
//! served by the test.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::year_key;
use crate::common::Scrape;
use cf_sim::credentials::Shape;
use cf_sim::{demo, Accounts, Outage, Sim};
use time::OffsetDateTime;

struct Exporter {
    child: Child,
    addr: String,
    stderr: Arc<Mutex<String>>,
}

impl Exporter {
    fn start(config: &std::path::Path) -> Exporter {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let mut child = Command::new(env!("CARGO_BIN_EXE_cf-service-key-exporter"))
            .args([
                "--config",
                config.to_str().unwrap(),
                "--listen-address",
                &addr,
            ])
            .env("SIM_PASSWORD", Accounts::default().password)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the exporter starts");
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = stderr.clone();
        let pipe = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        Exporter {
            child,
            addr,
            stderr,
        }
    }

    async fn scrape(&self) -> Option<Scrape> {
        // Not `crate::common::scrape`: before the server listens, a refused connection means "not yet".
        let response = reqwest::Client::new()
            .get(format!("http://{}/metrics", self.addr))
            .header("accept", crate::common::OPENMETRICS_ACCEPT)
            .send()
            .await
            .ok()?;
        Some(Scrape::parse(response.text().await.ok()?))
    }

    fn hangup(&self) {
        let status = Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    fn log(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Scrapes until `check` holds, or fails after `timeout` with the last scrape and the log.
    async fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        check: impl Fn(&Scrape) -> bool,
    ) -> Scrape {
        let deadline = Instant::now() + timeout;
        let mut last = None;
        while Instant::now() < deadline {
            if let Some(scrape) = self.scrape().await {
                if check(&scrape) {
                    return scrape;
                }
                last = Some(scrape);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!(
            "timed out waiting for {what}\nlast scrape: {:?}\nlog:\n{}",
            last.map(|s| s.text),
            self.log()
        );
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn foundation_toml(name: &str, sim: &Sim) -> String {
    format!(
        "[[foundation]]\nname = \"{name}\"\napi_url = \"{}\"\nusername = \"{}\"\npassword_env = \"SIM_PASSWORD\"\n\n",
        sim.api_url,
        Accounts::default().username
    )
}

fn write_config(path: &std::path::Path, foundations: &[(&str, &Sim)]) {
    let mut text = String::from("refresh_interval = \"1s\"\n\n");
    for (name, sim) in foundations {
        text.push_str(&foundation_toml(name, sim));
    }
    std::fs::write(path, text).unwrap();
}

fn value(scrape: &Scrape, metric: &str, foundation: &str) -> Option<f64> {
    scrape
        .find(metric, &[("foundation", foundation)])
        .first()
        .map(|s| s.value)
}

fn key_expiry(scrape: &Scrape, foundation: &str, key: &str) -> Option<f64> {
    scrape
        .find(
            "cf_service_key_expiry_timestamp_seconds",
            &[("foundation", foundation), ("service_key", key)],
        )
        .first()
        .map(|s| s.value)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foundations_refresh_independently_and_sighup_reloads_the_file() {
    let now =
        OffsetDateTime::from_unix_timestamp(OffsetDateTime::now_utc().unix_timestamp()).unwrap();
    let healthy = Sim::start(demo::world(now).unwrap(), Accounts::default())
        .await
        .unwrap();
    let flaky = Sim::start(demo::world(now).unwrap(), Accounts::default())
        .await
        .unwrap();
    let dir = tempdir();
    let config = dir.join("config.toml");
    write_config(&config, &[("eu10", &healthy), ("us10", &flaky)]);
    let exporter = Exporter::start(&config);

    let first = exporter
        .wait_for("both foundations refreshed", Duration::from_secs(30), |s| {
            value(s, "cf_service_key_exporter_refresh_success", "eu10") == Some(1.0)
                && value(s, "cf_service_key_exporter_refresh_success", "us10") == Some(1.0)
        })
        .await;
    let us10_keys = value(&first, "cf_service_key_exporter_service_keys", "us10").unwrap();
    let us10_s4 = key_expiry(&first, "us10", "s4-inbound").unwrap();
    assert!(us10_keys > 0.0);

    // us10 goes down; eu10 rotates a key meanwhile and must show it.
    flaky.state.switches.set_outage(Some(Outage::Html(503)));
    let rotated_at = now + time::Duration::days(500);
    healthy.state.with_world(|w| {
        let guid = w.find_key("s4-inbound").unwrap().guid.clone();
        w.rotate_key(
            &guid,
            year_key(Shape::CloudIntegrationFlow, rotated_at, "s").unwrap(),
        )
    });
    let during = exporter
        .wait_for(
            "eu10 fresh while us10 fails",
            Duration::from_secs(30),
            |s| {
                key_expiry(s, "eu10", "s4-inbound") == Some(rotated_at.unix_timestamp() as f64)
                    && value(s, "cf_service_key_exporter_refresh_success", "us10") == Some(0.0)
            },
        )
        .await;
    assert_eq!(
        value(&during, "cf_service_key_exporter_refresh_success", "eu10"),
        Some(1.0)
    );
    assert_eq!(
        value(&during, "cf_service_key_exporter_service_keys", "us10"),
        Some(us10_keys)
    );
    assert_eq!(key_expiry(&during, "us10", "s4-inbound"), Some(us10_s4));

    // us10 turns slow instead: eu10 keeps refreshing every second regardless.
    flaky.state.switches.set_outage(None);
    flaky.state.switches.set_latency(Duration::from_secs(4));
    let before = value(
        &during,
        "cf_service_key_exporter_last_refresh_success_timestamp_seconds",
        "eu10",
    )
    .unwrap();
    exporter
        .wait_for(
            "eu10 refreshing while us10 is slow",
            Duration::from_secs(20),
            |s| {
                value(
                    s,
                    "cf_service_key_exporter_last_refresh_success_timestamp_seconds",
                    "eu10",
                )
                .is_some_and(|t| t >= before + 3.0)
            },
        )
        .await;
    flaky.state.switches.set_latency(Duration::ZERO);

    // SIGHUP with a third foundation added.
    let third = Sim::start(demo::world(now).unwrap(), Accounts::default())
        .await
        .unwrap();
    write_config(
        &config,
        &[("eu10", &healthy), ("us10", &flaky), ("ap10", &third)],
    );
    exporter.hangup();
    exporter
        .wait_for("ap10 added by SIGHUP", Duration::from_secs(30), |s| {
            value(s, "cf_service_key_exporter_refresh_success", "ap10") == Some(1.0)
                && key_expiry(s, "ap10", "s4-inbound").is_some()
        })
        .await;

    // A bad file is refused: the running configuration stays, and the log says why.
    std::fs::write(
        &config,
        "refresh_interval = \"1s\"\n[[foundation]]\nname = \"eu10\"\npasword = \"x\"\n",
    )
    .unwrap();
    exporter.hangup();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !exporter.log().contains("reload refused") && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log = exporter.log();
    assert!(log.contains("reload refused"), "{log}");
    assert!(
        log.contains("pasword"),
        "the error names the bad key: {log}"
    );
    let after = exporter.scrape().await.unwrap();
    for f in ["eu10", "us10", "ap10"] {
        assert!(
            value(&after, "cf_service_key_exporter_service_keys", f).unwrap() > 0.0,
            "{f}"
        );
    }
    drop(exporter);
    let _ = std::fs::remove_dir_all(&dir);
}

fn tempdir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "cfske-multi-{}-{}",
        std::process::id(),
        rand_suffix()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}
