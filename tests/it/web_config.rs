//! `--web-config-file`: the exporter behind TLS, mTLS and basic auth, as an operator would
//! configure it in the exporter-toolkit format. Each test runs the real `run` on a loopback
//! port with certificates made by the simulator's factory (`cf_sim::certs`), and scrapes it with reqwest.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cf_service_key_exporter::web::config::{ClientAuth, TlsVersion};
use cf_service_key_exporter::web::WebConfigFile;
use cf_service_key_exporter::ServeOptions;

use crate::common::{one_foundation, Served};
pub(crate) use cf_sim::certs::{Ca, Leaf};
use cf_sim::{Accounts, Sim, World};

/// reqwest's client identity: key and certificate in one PEM.
fn identity(leaf: &Leaf) -> reqwest::Identity {
    reqwest::Identity::from_pem(format!("{}{}", leaf.key, leaf.cert).as_bytes()).unwrap()
}

/// A scratch directory, removed on drop.
pub(crate) struct Dir(pub(crate) PathBuf);

impl Dir {
    pub(crate) fn new() -> Dir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "cf-ske-web-config-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).unwrap();
        Dir(path)
    }

    pub(crate) fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Writes a server certificate and key as `server.crt` / `server.key`.
    pub(crate) fn server_files(&self, leaf: &Leaf) {
        self.write("server.crt", &leaf.cert);
        self.write("server.key", &leaf.key);
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The exporter serving an empty simulated foundation, protected by `web.yml` in a [`Dir`].
struct Exporter {
    served: Served,
    _sim: Sim,
}

impl Exporter {
    async fn start(dir: &Dir, web_yml: &str) -> Exporter {
        let path = dir.write("web.yml", web_yml);
        let web = WebConfigFile::load(&path).expect("the web config loads");
        let sim = Sim::start(World::new(), Accounts::default()).await.unwrap();
        let options = ServeOptions {
            web_config: Some(Arc::new(web)),
            ..Default::default()
        };
        Exporter {
            served: Served::start(one_foundation(&sim, "test", None), options).await,
            _sim: sim,
        }
    }

    fn https(&self, path: &str) -> String {
        format!("https://{}{path}", self.served.addr)
    }

    fn http(&self, path: &str) -> String {
        format!("http://{}{path}", self.served.addr)
    }

    /// Stops the server and checks it shut down cleanly.
    async fn shutdown(self) {
        self.served.shutdown(Duration::from_secs(10)).await;
    }
}

/// A client trusting only `ca`, optionally presenting a client certificate.
pub(crate) fn client(ca: &Ca, identity: Option<&Leaf>) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca.pem().as_bytes()).unwrap())
        .timeout(Duration::from_secs(10));
    if let Some(leaf) = identity {
        builder = builder.identity(self::identity(leaf));
    }
    builder.build().unwrap()
}

fn hash(password: &str) -> String {
    // Cost 4, the least bcrypt allows: the tests check the logic, not the cost.
    bcrypt::hash(password, 4).unwrap()
}

pub(crate) const TLS: &str =
    "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n";

#[tokio::test]
async fn a_tls_scrape_with_the_test_ca_succeeds() {
    let dir = Dir::new();
    let ca = Ca::new("test CA");
    dir.server_files(&ca.server());
    let exporter = Exporter::start(&dir, TLS).await;

    let trusting = client(&ca, None);
    let metrics = trusting
        .get(exporter.https("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status(), 200);
    assert_eq!(metrics.version(), reqwest::Version::HTTP_11);
    let body = metrics.text().await.unwrap();
    assert!(
        body.contains("cf_service_key_exporter_build_info"),
        "{body}"
    );
    let health = trusting
        .get(exporter.https("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);

    // A client that does not trust the CA does not get through the handshake.
    let stranger = client(&Ca::new("another CA"), None);
    assert!(stranger
        .get(exporter.https("/metrics"))
        .send()
        .await
        .is_err());
    exporter.shutdown().await;
}

#[tokio::test]
async fn plain_http_to_the_tls_port_is_refused() {
    let dir = Dir::new();
    let ca = Ca::new("test CA");
    dir.server_files(&ca.server());
    let exporter = Exporter::start(&dir, TLS).await;

    let plain = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    for path in ["/metrics", "/healthz"] {
        match plain.get(exporter.http(path)).send().await {
            // Usually a 400 that says what went wrong, as Go's servers answer...
            Ok(response) => {
                assert_eq!(response.status(), 400);
                let body = response.text().await.unwrap_or_default();
                assert!(body.contains("HTTPS"), "{body}");
                assert!(!body.contains("cf_service_key"), "{body}");
            }
            // ...or a closed connection; never the endpoint.
            Err(e) => assert!(!e.is_status(), "{e}"),
        }
    }
    // The server still serves TLS afterwards.
    let response = client(&ca, None)
        .get(exporter.https("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    exporter.shutdown().await;
}

#[tokio::test]
async fn basic_auth_guards_every_endpoint_but_healthz() {
    let dir = Dir::new();
    let ca = Ca::new("test CA");
    dir.server_files(&ca.server());
    let exporter = Exporter::start(
        &dir,
        &format!(
            "{TLS}http_server_config:\n  headers:\n    X-Frame-Options: deny\nbasic_auth_users:\n  prometheus: '{}'\n",
            hash("s3cret")
        ),
    )
    .await;
    let client = client(&ca, None);

    for path in ["/metrics", "/readyz", "/"] {
        let missing = client.get(exporter.https(path)).send().await.unwrap();
        assert_eq!(missing.status(), 401, "{path} without credentials");
        let challenge = missing.headers()["www-authenticate"].to_str().unwrap();
        assert!(challenge.starts_with("Basic"), "{challenge}");

        let wrong = client
            .get(exporter.https(path))
            .basic_auth("prometheus", Some("wrong"))
            .send()
            .await
            .unwrap();
        assert_eq!(wrong.status(), 401, "{path} with a wrong password");

        let unknown = client
            .get(exporter.https(path))
            .basic_auth("grafana", Some("s3cret"))
            .send()
            .await
            .unwrap();
        assert_eq!(unknown.status(), 401, "{path} as an unknown user");
    }

    let right = client
        .get(exporter.https("/metrics"))
        .basic_auth("prometheus", Some("s3cret"))
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), 200);
    assert_eq!(right.headers()["x-frame-options"], "deny");
    assert!(right
        .text()
        .await
        .unwrap()
        .contains("cf_service_key_exporter_build_info"));
    // Served again from the cache of successful checks.
    let again = client
        .get(exporter.https("/"))
        .basic_auth("prometheus", Some("s3cret"))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 200);

    let health = client.get(exporter.https("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(health.headers()["x-frame-options"], "deny");
    exporter.shutdown().await;
}

#[tokio::test]
async fn mtls_refuses_a_client_without_a_certificate_from_the_client_ca() {
    let dir = Dir::new();
    let ca = Ca::new("server CA");
    let client_ca = Ca::new("client CA");
    dir.server_files(&ca.server());
    dir.write("client-ca.pem", client_ca.pem());
    let exporter = Exporter::start(
        &dir,
        &format!(
            "{TLS}  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: client-ca.pem\n"
        ),
    )
    .await;

    let anonymous = client(&ca, None);
    assert!(
        anonymous
            .get(exporter.https("/metrics"))
            .send()
            .await
            .is_err(),
        "no client certificate"
    );
    let impostor = client(&ca, Some(&Ca::new("rogue CA").client("prometheus")));
    assert!(
        impostor
            .get(exporter.https("/metrics"))
            .send()
            .await
            .is_err(),
        "a client certificate from another CA"
    );

    let trusted = client(&ca, Some(&client_ca.client("prometheus")));
    let response = trusted
        .get(exporter.https("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    exporter.shutdown().await;
}

#[tokio::test]
async fn a_new_user_in_the_file_is_picked_up_without_a_restart() {
    let dir = Dir::new();
    let ca = Ca::new("test CA");
    dir.server_files(&ca.server());
    let users = |list: &[(&str, &str)]| {
        let mut text = format!("{TLS}basic_auth_users:\n");
        for (user, password) in list {
            text.push_str(&format!("  {user}: '{}'\n", hash(password)));
        }
        text
    };
    let exporter = Exporter::start(&dir, &users(&[("alice", "a-pass")])).await;
    let client = client(&ca, None);
    let get_as = |user: &'static str, password: &'static str| {
        client
            .get(exporter.https("/metrics"))
            .basic_auth(user, Some(password))
            .send()
    };
    assert_eq!(get_as("bob", "b-pass").await.unwrap().status(), 401);

    dir.write("web.yml", &users(&[("alice", "a-pass"), ("bob", "b-pass")]));
    assert_eq!(get_as("bob", "b-pass").await.unwrap().status(), 200);
    assert_eq!(get_as("alice", "a-pass").await.unwrap().status(), 200);

    // A broken edit keeps the last good config: nobody is locked out, nobody let in.
    dir.write("web.yml", "basic_auth_users: [oops\n");
    assert_eq!(get_as("bob", "b-pass").await.unwrap().status(), 200);
    assert_eq!(get_as("bob", "wrong").await.unwrap().status(), 401);

    // Removing a user takes effect too.
    dir.write("web.yml", &users(&[("alice", "a-pass")]));
    assert_eq!(get_as("bob", "b-pass").await.unwrap().status(), 401);
    exporter.shutdown().await;
}

#[tokio::test]
async fn a_rotated_certificate_is_served_to_new_connections_without_a_restart() {
    let dir = Dir::new();
    let old_ca = Ca::new("old CA");
    dir.server_files(&old_ca.server());
    let exporter = Exporter::start(&dir, TLS).await;
    let before = client(&old_ca, None)
        .get(exporter.https("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(before.status(), 200);

    let new_ca = Ca::new("new CA");
    dir.server_files(&new_ca.server());
    let after = client(&new_ca, None)
        .get(exporter.https("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), 200);
    assert!(client(&old_ca, None)
        .get(exporter.https("/metrics"))
        .send()
        .await
        .is_err());
    exporter.shutdown().await;
}

/// Runs the binary with `args`; returns its exit code and stderr. Kills it after 60 s (it would
/// be serving, which is the failure).
fn run_binary(args: &[&str]) -> (Option<i32>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_cf-service-key-exporter"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output().unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn a_malformed_web_config_file_is_a_clear_startup_error() {
    let dir = Dir::new();
    let cases: [(&str, &str, &str); 4] = [
        (
            "missing-key.yml",
            "tls_server_config:\n  cert_file: server.crt\n",
            "tls_server_config.key_file: missing",
        ),
        (
            "typo.yml",
            "tls_server_config:\n  cert_file: a\n  keyfile: b\n",
            "tls_server_config: unknown field `keyfile`",
        ),
        (
            "no-such-cert.yml",
            "tls_server_config:\n  cert_file: nowhere.crt\n  key_file: nowhere.key\n",
            "tls_server_config.cert_file:",
        ),
        (
            "plain-password.yml",
            "basic_auth_users:\n  prometheus: hunter2\n",
            "basic_auth_users.prometheus: not a bcrypt hash",
        ),
    ];
    for (name, text, field) in cases {
        let path = dir.write(name, text);
        let path = path.to_str().unwrap();
        let (code, stderr) = run_binary(&[
            "--demo",
            "--listen-address",
            "127.0.0.1:0",
            "--web-config-file",
            path,
        ]);
        assert_eq!(code, Some(2), "{name}: {stderr}");
        assert!(
            stderr.contains(&format!("error: web config {path}: {field}")),
            "{name}: {stderr}"
        );
        assert!(!stderr.contains("hunter2"), "{stderr}");
    }
    let (code, stderr) = run_binary(&[
        "--demo",
        "--web-config-file",
        dir.0.join("absent.yml").to_str().unwrap(),
    ]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("cannot read the file"), "{stderr}");
}

#[test]
fn the_example_web_config_is_valid_once_its_files_exist() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/web-config.example.yml");
    let text = std::fs::read_to_string(&example).unwrap();
    let dir = Dir::new();
    let ca = Ca::new("test CA");
    // The example names its files by absolute path; put them where it says.
    let config = cf_service_key_exporter::web::config::parse(&text, &dir.0).unwrap();
    let tls = config.tls.expect("the example serves TLS");
    assert!(!config.users.is_empty());
    let server = ca.server();
    let rewritten = text
        .replace(tls.cert_file.to_str().unwrap(), "server.crt")
        .replace(tls.key_file.to_str().unwrap(), "server.key")
        .replace(
            tls.client_ca_file.as_ref().unwrap().to_str().unwrap(),
            "client-ca.pem",
        );
    dir.server_files(&server);
    dir.write("client-ca.pem", ca.pem());
    let path = dir.write("web.yml", &rewritten);
    WebConfigFile::load(&path).expect("the example loads");
}

/// A watched web config file with a reload-failure counter, for the reload rules.
struct Watched {
    dir: Dir,
    path: PathBuf,
    web: WebConfigFile,
    failures: prometheus_client::metrics::counter::Counter,
}

impl Watched {
    fn new(text: &str, allow_weakening: bool) -> Watched {
        let dir = Dir::new();
        let ca = Ca::new("reload CA");
        dir.server_files(&ca.server());
        dir.write("client-ca.crt", ca.pem());
        let path = dir.write("web.yml", text);
        let web = WebConfigFile::load(&path)
            .unwrap()
            .allow_weakening(allow_weakening);
        let failures = prometheus_client::metrics::counter::Counter::default();
        web.count_failures_in(failures.clone());
        Watched {
            dir,
            path,
            web,
            failures,
        }
    }

    /// Rewrites the file (a new inode, as Kubernetes does) and lets the next request see it.
    fn rewrite(&self, text: &str) -> Arc<cf_service_key_exporter::web::Active> {
        let next = self.dir.write("web.yml.new", text);
        std::fs::rename(next, &self.path).unwrap();
        self.web.current()
    }
}

const MTLS13: &str = "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: client-ca.crt\n  min_version: TLS13\n";

#[test]
fn a_weakening_reload_is_refused_counted_and_the_old_config_kept() {
    let (logs, _guard) = crate::common::logs::Logs::capture();
    let users = format!("basic_auth_users:\n  prometheus: '{}'\n", hash("s3cret"));
    let start = format!("{MTLS13}{users}");
    let w = Watched::new(&start, false);
    let cases = [
        (
            "basic auth removed",
            format!("{MTLS13}http_server_config:\n  headers:\n    X-Frame-Options: deny\n"),
            "it removes basic auth",
        ),
        (
            "client certificates no longer required",
            format!(
                "{}{users}",
                MTLS13.replace("RequireAndVerifyClientCert", "VerifyClientCertIfGiven")
            ),
            "it lowers client-certificate checking",
        ),
        (
            "client_auth_type dropped",
            format!(
                "{}{users}",
                MTLS13
                    .replace("  client_auth_type: RequireAndVerifyClientCert\n", "")
                    .replace("  client_ca_file: client-ca.crt\n", "")
            ),
            "it lowers client-certificate checking",
        ),
        (
            "TLS minimum lowered",
            format!("{}{users}", MTLS13.replace("TLS13", "TLS12")),
            "it lowers the TLS minimum version",
        ),
    ];
    for (n, (what, text, why)) in cases.iter().enumerate() {
        let active = w.rewrite(text);
        let tls = active.config.tls.as_ref().unwrap();
        assert!(active.config.users.contains_key("prometheus"), "{what}");
        assert_eq!(
            tls.client_auth,
            ClientAuth::RequireAndVerifyClientCert,
            "{what}"
        );
        assert_eq!(tls.min_version, TlsVersion::Tls13, "{what}");
        assert_eq!(w.failures.get(), n as u64 + 1, "{what}: not counted");
        logs.assert_line(&["ERROR", "web config reload refused", why]);
    }
    // A change that weakens nothing is still taken.
    let active = w.rewrite(&format!(
        "{start}http_server_config:\n  headers:\n    X-Frame-Options: deny\n"
    ));
    assert_eq!(active.config.headers.len(), 1);
    assert_eq!(w.failures.get(), cases.len() as u64);
}

#[test]
fn an_empty_file_on_reload_is_refused() {
    let (logs, _guard) = crate::common::logs::Logs::capture();
    let w = Watched::new(
        &format!("basic_auth_users:\n  prometheus: '{}'\n", hash("s3cret")),
        true,
    );
    // Empty, even with weakening allowed: a file being rewritten must not open the endpoints.
    for empty in ["", "# being rewritten\n\n"] {
        let active = w.rewrite(empty);
        assert!(active.config.users.contains_key("prometheus"), "{empty:?}");
    }
    assert_eq!(w.failures.get(), 2);
    logs.assert_line(&["ERROR", "web config reload refused", "empty on reload"]);
}

#[test]
fn weakening_is_accepted_when_allowed() {
    let (logs, _guard) = crate::common::logs::Logs::capture();
    let users = format!("basic_auth_users:\n  prometheus: '{}'\n", hash("s3cret"));
    let w = Watched::new(&format!("{MTLS13}{users}"), true);
    let active = w.rewrite(&MTLS13.replace("TLS13", "TLS12"));
    assert!(active.config.users.is_empty());
    assert_eq!(
        active.config.tls.as_ref().unwrap().min_version,
        TlsVersion::Tls12
    );
    assert_eq!(w.failures.get(), 0);
    logs.assert_line(&["WARN", "weakens protection", "it removes basic auth"]);
}
