//! The `--config` TOML file, as a user writes it: every field, the defaults and overrides, and
//! the exact text of every error (file, foundation and field named). Also loads the config
//! shipped in `deploy/kubernetes/`, so the Kubernetes example never drifts from the parser.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cf_service_key_exporter::config::file::{load, parse};
use cf_service_key_exporter::config::{FoundationConfig, Grant, SecretSource};
use secrecy::ExposeSecret;

/// Where error tests pretend the file lives; `parse` never reads it.
const PATH: &str = "/etc/cfske/config.toml";

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/config")
}

/// A directory removed when the test ends, unique per test.
struct TempDir(PathBuf);

impl TempDir {
    fn new(test: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("cfske-config-{}-{test}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    fn file(&self, name: &str, content: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, content).expect("write temp file");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn parse_ok(text: &str) -> Vec<FoundationConfig> {
    parse(text, Path::new(PATH)).unwrap_or_else(|e| panic!("expected a valid config: {e}"))
}

fn parse_err(text: &str) -> String {
    match parse(text, Path::new(PATH)) {
        Ok(f) => panic!("expected an error, got {} foundations", f.len()),
        Err(e) => e.to_string(),
    }
}

fn secret(source: &SecretSource) -> String {
    source
        .read()
        .expect("secret readable")
        .expose_secret()
        .to_owned()
}

fn password_grant(f: &FoundationConfig) -> (&str, &SecretSource) {
    match &f.grant {
        Grant::Password { username, password } => (username, password),
        Grant::ClientCredentials => panic!("{}: expected the password grant", f.name),
    }
}

const MINIMAL: &str = r#"
[[foundation]]
name = "eu10"
api_url = "https://api.cf.eu10.hana.ondemand.com"
"#;

// ---------------------------------------------------------------- fields, defaults, overrides

#[test]
fn every_field_is_parsed_and_overrides_the_top_level() {
    // Read by this test only, so parallel tests cannot disturb each other.
    std::env::set_var("CFSKE_TEST_FULL_US10_PASSWORD", "us10-password");
    std::env::set_var("CFSKE_TEST_FULL_US10_CLIENT_SECRET", "us10-client-secret");
    let dir = fixtures();
    let foundations = load(&dir.join("full.toml")).expect("full.toml loads");
    let names: Vec<&str> = foundations.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["eu10", "us10", "ap10"], "file order is kept");

    let eu10 = &foundations[0];
    assert_eq!(
        eu10.api_url.as_str(),
        "https://api.cf.eu10.hana.ondemand.com/"
    );
    assert_eq!(
        eu10.uaa_url.as_ref().map(|u| u.as_str()),
        Some("https://uaa.cf.eu10.hana.ondemand.com/")
    );
    let (username, password) = password_grant(eu10);
    assert_eq!(username, "monitoring@example.com");
    assert!(
        matches!(password, SecretSource::File(p) if p == &dir.join("secrets/eu10-password")),
        "password_file is relative to the config file: {password:?}"
    );
    assert_eq!(secret(password), "eu10-secret-password");
    assert_eq!(eu10.client_id, "cf");
    let client_secret = eu10.client_secret.as_ref().expect("client secret");
    assert!(matches!(client_secret, SecretSource::File(_)));
    assert_eq!(secret(client_secret), "eu10-client-secret");
    assert_eq!(eu10.origin.as_deref(), Some("corp.ids"));
    assert_eq!(eu10.tls.ca_file, Some(dir.join("secrets/../ca.pem")));
    assert!(eu10.tls.skip_verify);
    assert_eq!(eu10.service_plans, ["standard"]);
    assert_eq!(eu10.refresh_interval, Duration::from_secs(90 * 60));
    assert_eq!(eu10.details_concurrency.get(), 32);
    assert_eq!(eu10.lead_time_annotation.as_deref(), Some("lead-time"));

    let us10 = &foundations[1];
    assert_eq!(us10.uaa_url, None);
    let (_, password) = password_grant(us10);
    assert!(matches!(password, SecretSource::Env(v) if v == "CFSKE_TEST_FULL_US10_PASSWORD"));
    assert_eq!(secret(password), "us10-password");
    let client_secret = us10.client_secret.as_ref().expect("client secret");
    assert_eq!(secret(client_secret), "us10-client-secret");
    // Everything else comes from the top level.
    assert_eq!(us10.client_id, "monitoring-client");
    assert_eq!(us10.origin.as_deref(), Some("sap.ids"));
    assert_eq!(us10.tls.ca_file, Some(dir.join("ca.pem")));
    assert!(!us10.tls.skip_verify);
    assert_eq!(
        us10.service_plans,
        ["integration-flow", "api"],
        "plans are trimmed and empty ones dropped"
    );
    assert_eq!(us10.refresh_interval, Duration::from_secs(600));
    assert_eq!(us10.details_concurrency.get(), 8);
    assert_eq!(
        us10.lead_time_annotation.as_deref(),
        Some("example.com/warning-lead-time")
    );

    let ap10 = &foundations[2];
    assert!(matches!(ap10.grant, Grant::ClientCredentials));
    assert_eq!(ap10.api_url.scheme(), "http");
    let client_secret = ap10.client_secret.as_ref().expect("client secret");
    assert!(matches!(client_secret, SecretSource::Inline(_)));
    assert_eq!(secret(client_secret), "ap10-inline-client-secret");
    assert!(
        ap10.service_plans.is_empty(),
        "an empty list overrides the top-level plans: every plan"
    );
    assert_eq!(ap10.lead_time_annotation, None, "\"\" turns it off");
}

#[test]
fn built_in_defaults_apply_when_nothing_is_set() {
    let foundations = load(&fixtures().join("minimal.toml")).expect("minimal.toml loads");
    assert_eq!(foundations.len(), 1);
    let f = &foundations[0];
    assert_eq!(f.name, "eu10");
    assert!(matches!(f.grant, Grant::ClientCredentials));
    assert_eq!(f.client_id, "cf");
    assert!(f.client_secret.is_none());
    assert_eq!(f.origin, None);
    assert_eq!(f.uaa_url, None);
    assert!(f.service_plans.is_empty());
    assert_eq!(f.refresh_interval, Duration::from_secs(300));
    assert_eq!(f.details_concurrency.get(), 16);
    assert_eq!(f.tls.ca_file, None);
    assert!(!f.tls.skip_verify);
}

#[test]
fn top_level_defaults_reach_every_foundation_unless_overridden() {
    let foundations = parse_ok(
        r#"
        refresh_interval = "2m"
        details_concurrency = 4
        origin = "sap.ids"
        skip_tls_verify = true

        [[foundation]]
        name = "a"
        api_url = "https://api.a.example.com"

        [[foundation]]
        name = "b"
        api_url = "https://api.b.example.com"
        refresh_interval = "30s"
        details_concurrency = 64
        origin = ""
        skip_tls_verify = false
        "#,
    );
    let (a, b) = (&foundations[0], &foundations[1]);
    assert_eq!(a.refresh_interval, Duration::from_secs(120));
    assert_eq!(a.details_concurrency.get(), 4);
    assert_eq!(a.origin.as_deref(), Some("sap.ids"));
    assert!(a.tls.skip_verify);
    assert_eq!(b.refresh_interval, Duration::from_secs(30));
    assert_eq!(b.details_concurrency.get(), 64);
    assert_eq!(
        b.origin, None,
        "an empty origin overrides the default with none"
    );
    assert!(!b.tls.skip_verify);
}

#[test]
fn secret_files_are_read_at_each_use_so_rotation_needs_no_reload() {
    let tmp = TempDir::new("rotation");
    let password = tmp.file("password", "first\n");
    let foundations = parse_ok(&format!(
        r#"
        [[foundation]]
        name = "eu10"
        api_url = "https://api.cf.eu10.hana.ondemand.com"
        username = "u"
        password_file = "{}"
        "#,
        password.display()
    ));
    let (_, source) = password_grant(&foundations[0]);
    assert_eq!(
        secret(source),
        "first",
        "the trailing newline is not part of it"
    );
    tmp.file("password", "second");
    assert_eq!(secret(source), "second");
}

/// Collects what a `tracing` subscriber writes, to check the inline-secret warning.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn inline_password_is_accepted_with_a_warning_that_names_the_foundation_not_the_value() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let foundations = tracing::subscriber::with_default(subscriber, || {
        parse_ok(
            r#"
            [[foundation]]
            name = "eu10"
            api_url = "https://api.cf.eu10.hana.ondemand.com"
            username = "monitoring@example.com"
            password = "hunter2-very-secret"
            "#,
        )
    });
    let (_, source) = password_grant(&foundations[0]);
    assert!(matches!(source, SecretSource::Inline(_)));
    assert_eq!(secret(source), "hunter2-very-secret");
    assert!(
        !format!("{:?}", foundations[0]).contains("hunter2"),
        "Debug must not show the password"
    );

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("WARN"), "{logs}");
    assert!(logs.contains("foundation=\"eu10\""), "{logs}");
    assert!(
        logs.contains("password is written inline in the config file"),
        "{logs}"
    );
    assert!(logs.contains(PATH), "{logs}");
    assert!(
        !logs.contains("hunter2"),
        "the warning leaked the password: {logs}"
    );
}

/// Loads a config shipped in deploy/kubernetes with its Secret mount pointed at temp files
/// named like the Secret's keys, each holding its own name. The files live as long as the
/// returned directory.
fn load_shipped(relative: &str, test: &str) -> (TempDir, Vec<FoundationConfig>) {
    const MOUNT: &str = "/etc/cf-service-key-exporter/secrets/";
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
    let text = std::fs::read_to_string(&shipped).unwrap_or_else(|e| panic!("{relative}: {e}"));
    assert!(
        text.contains(MOUNT),
        "{relative} reads its secrets from the Secret mounted at {MOUNT}"
    );
    let tmp = TempDir::new(test);
    for line in text.lines().filter(|l| l.contains(MOUNT)) {
        let key = line
            .split(MOUNT)
            .nth(1)
            .and_then(|rest| rest.split('"').next());
        let key = key.unwrap_or_else(|| panic!("{relative}: cannot read the secret in {line}"));
        tmp.file(key, &format!("{key}\n"));
    }
    let text = text.replace(MOUNT, &format!("{}/", tmp.0.display()));
    let foundations =
        parse(&text, &shipped).unwrap_or_else(|e| panic!("{relative} does not load: {e}"));
    (tmp, foundations)
}

#[test]
fn the_kubernetes_example_config_loads() {
    let (_secrets, foundations) = load_shipped("deploy/kubernetes/config.toml", "deploy");
    let names: Vec<&str> = foundations.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["eu10", "us10"]);
    for f in &foundations {
        let (username, password) = password_grant(f);
        assert_eq!(username, "monitoring@example.com");
        assert_eq!(secret(password), format!("{}-password", f.name));
        assert_eq!(f.service_plans, ["integration-flow"]);
        assert_eq!(f.origin.as_deref(), Some("sap.ids"));
    }
    assert_eq!(foundations[0].refresh_interval, Duration::from_secs(300));
    assert_eq!(foundations[1].refresh_interval, Duration::from_secs(600));
}

#[test]
fn every_kubernetes_shard_example_config_loads() {
    let shards = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes/shards");
    let mut loaded = 0;
    for entry in std::fs::read_dir(&shards).expect("deploy/kubernetes/shards") {
        let dir = entry.expect("shard directory").path();
        let shard = dir.file_name().unwrap().to_string_lossy().into_owned();
        let relative = format!("deploy/kubernetes/shards/{shard}/config.toml");
        let (_secrets, foundations) = load_shipped(&relative, &format!("shard-{shard}"));
        for f in &foundations {
            let (_, password) = password_grant(f);
            assert_eq!(
                secret(password),
                format!("{}-password", f.name),
                "{relative}"
            );
        }
        loaded += 1;
    }
    assert!(loaded > 0, "no shard example under {}", shards.display());
}

// ---------------------------------------------------------------------------------- errors

#[test]
fn unreadable_config_file_is_named() {
    let missing = fixtures().join("does-not-exist.toml");
    let err = load(&missing).unwrap_err().to_string();
    assert!(
        err.starts_with(&format!(
            "{}: cannot read the config file: ",
            missing.display()
        )),
        "{err}"
    );
}

#[test]
fn toml_syntax_error_gives_line_and_column() {
    let err = parse_err("refresh_interval = 5m\n");
    assert!(
        err.starts_with(&format!(
            "{PATH}: line 1, column 20: invalid value: text needs quotes"
        )),
        "{err}"
    );
}

#[test]
fn unknown_key_in_a_foundation_names_foundation_and_key() {
    let err = parse_err(&format!("{MINIMAL}pasword = \"x\"\n"));
    assert_eq!(
        err,
        format!(r#"{PATH}: foundation "eu10": unknown key "pasword" (did you mean "password"?)"#)
    );
}

#[test]
fn unknown_key_without_a_close_match_gets_no_suggestion() {
    let err = parse_err(&format!("{MINIMAL}colour = \"blue\"\n"));
    assert_eq!(
        err,
        format!(r#"{PATH}: foundation "eu10": unknown key "colour""#)
    );
}

#[test]
fn unknown_key_in_an_unnamed_foundation_names_it_by_position() {
    let err = parse_err(&format!(
        "{MINIMAL}\n[[foundation]]\napi_url = \"https://api.example.com\"\nsecret = 1\n"
    ));
    assert_eq!(
        err,
        format!(r#"{PATH}: foundation #2: unknown key "secret""#)
    );
}

#[test]
fn nested_table_in_a_foundation_is_an_unknown_key() {
    let err = parse_err(&format!("{MINIMAL}[foundation.tls]\nca = \"x\"\n"));
    assert_eq!(
        err,
        format!(r#"{PATH}: foundation "eu10": unknown key "tls""#)
    );
}

#[test]
fn unknown_top_level_key_is_named() {
    let err = parse_err(&format!("refresh_intervall = \"5m\"\n{MINIMAL}"));
    assert_eq!(
        err,
        format!(
            r#"{PATH}: unknown key "refresh_intervall" at the top level (did you mean "refresh_interval"?)"#
        )
    );
}

#[test]
fn foundation_only_key_at_the_top_level_says_where_it_belongs() {
    let err = parse_err(&format!("username = \"u\"\n{MINIMAL}"));
    assert_eq!(
        err,
        format!(
            r#"{PATH}: unknown key "username" at the top level: it belongs in a [[foundation]] table"#
        )
    );
}

#[test]
fn wrong_value_type_names_the_field() {
    let err = parse_err(&format!("{MINIMAL}refresh_interval = 300\n"));
    assert_eq!(
        err,
        format!(
            r#"{PATH}: foundation "eu10": refresh_interval: invalid type: integer `300`, expected a string"#
        )
    );
    let err = parse_err(&format!("service_plans = \"integration-flow\"\n{MINIMAL}"));
    assert_eq!(
        err,
        format!(
            r#"{PATH}: service_plans: invalid type: string "integration-flow", expected a sequence"#
        )
    );
    let err = parse_err(&format!("{MINIMAL}skip_tls_verify = \"yes\"\n"));
    assert_eq!(
        err,
        format!(
            r#"{PATH}: foundation "eu10": skip_tls_verify: invalid type: string "yes", expected a boolean"#
        )
    );
}

#[test]
fn no_foundations_is_an_error() {
    let expected = format!(
        "{PATH}: no foundations: add at least one [[foundation]] table with name and api_url"
    );
    assert_eq!(parse_err(""), expected);
    assert_eq!(parse_err("refresh_interval = \"5m\"\n"), expected);
}

#[test]
fn foundation_written_as_a_single_table_is_an_error() {
    let err = parse_err("[foundation]\nname = \"eu10\"\n");
    assert_eq!(
        err,
        format!(
            "{PATH}: foundation: must be an array of tables: write each foundation as [[foundation]]"
        )
    );
}

#[test]
fn missing_name_is_an_error_that_suggests_one() {
    let err = parse_err("[[foundation]]\napi_url = \"https://api.cf.us10.hana.ondemand.com\"\n");
    assert_eq!(
        err,
        format!(
            r#"{PATH}: foundation #1: name: required: the value of the `foundation` label, e.g. name = "api.cf.us10.hana.ondemand.com""#
        )
    );
}

#[test]
fn empty_name_is_an_error() {
    let err = parse_err("[[foundation]]\nname = \" \"\napi_url = \"https://api.example.com\"\n");
    assert_eq!(
        err,
        format!("{PATH}: foundation #1: name: must not be empty")
    );
}

#[test]
fn missing_api_url_is_an_error() {
    let err = parse_err("[[foundation]]\nname = \"eu10\"\n");
    assert_eq!(
        err,
        format!(
            r#"{PATH}: foundation "eu10": api_url: required: the Cloud Foundry API endpoint, e.g. "https://api.cf.eu10.hana.ondemand.com""#
        )
    );
}

#[test]
fn duplicate_foundation_names_are_an_error() {
    let err = parse_err(&format!(
        "{MINIMAL}\n[[foundation]]\nname = \"us10\"\napi_url = \"https://api.us10.example.com\"\n{MINIMAL}"
    ));
    assert_eq!(
        err,
        format!(
            r#"{PATH}: foundation "eu10" (#3): name: "eu10" is already used by foundation #1; every foundation needs its own name (it is the `foundation` label)"#
        )
    );
}

#[test]
fn bad_urls_are_errors_naming_the_field() {
    let foundation = |field: &str, url: &str| {
        parse_err(&format!(
            "[[foundation]]\nname = \"eu10\"\napi_url = \"https://api.example.com\"\n{field} = \"{url}\"\n"
        ))
    };
    let err = parse_err("[[foundation]]\nname = \"eu10\"\napi_url = \"api.example.com\"\n");
    assert_eq!(
        err,
        format!(
            "{PATH}: foundation \"eu10\": api_url: `api.example.com` is not a URL (relative URL without a base)"
        )
    );
    assert_eq!(
        foundation("uaa_url", "ftp://uaa.example.com"),
        format!(
            "{PATH}: foundation \"eu10\": uaa_url: `ftp://uaa.example.com`: scheme must be https or http, not ftp"
        )
    );
    let err = parse_err(
        "[[foundation]]\nname = \"eu10\"\napi_url = \"https://user:pw@api.example.com\"\n",
    );
    assert_eq!(
        err,
        format!(
            "{PATH}: foundation \"eu10\": api_url: credentials in the URL are not allowed; use the username and password settings"
        )
    );
}

#[test]
fn bad_durations_are_errors() {
    let err = parse_err(&format!(
        "{MINIMAL}refresh_interval = \"5 minutes please\"\n"
    ));
    assert!(
        err.starts_with(&format!(
            r#"{PATH}: foundation "eu10": refresh_interval: "5 minutes please" is not a duration ("#
        )),
        "{err}"
    );
    assert!(err.ends_with(r#"); write e.g. "5m" or "1h30m""#), "{err}");

    let err = parse_err(&format!("refresh_interval = \"soon\"\n{MINIMAL}"));
    assert!(
        err.starts_with(&format!(
            r#"{PATH}: refresh_interval: "soon" is not a duration ("#
        )),
        "{err}"
    );

    let err = parse_err(&format!("{MINIMAL}refresh_interval = \"500ms\"\n"));
    assert_eq!(
        err,
        format!(r#"{PATH}: foundation "eu10": refresh_interval: must be at least 1s"#)
    );
}

#[test]
fn the_lead_time_annotation_is_a_top_level_default_a_foundation_may_override_or_turn_off() {
    let foundations = parse_ok(
        r#"
        lead_time_annotation = " example.com/warning-lead-time "

        [[foundation]]
        name = "a"
        api_url = "https://api.a.example.com"

        [[foundation]]
        name = "b"
        api_url = "https://api.b.example.com"
        lead_time_annotation = "lead-time"

        [[foundation]]
        name = "c"
        api_url = "https://api.c.example.com"
        lead_time_annotation = ""
        "#,
    );
    let leads: Vec<Option<&str>> = foundations
        .iter()
        .map(|f| f.lead_time_annotation.as_deref())
        .collect();
    assert_eq!(
        leads,
        [
            Some("example.com/warning-lead-time"),
            Some("lead-time"),
            None
        ]
    );
    // Off unless set.
    assert_eq!(parse_ok(MINIMAL)[0].lead_time_annotation, None);
    // Checked as a metadata key, like metadata_labels, naming the field.
    let err = parse_err(&format!("{MINIMAL}lead_time_annotation = \"a/b/c\"\n"));
    assert_eq!(
        err,
        format!(
            r#"{PATH}: foundation "eu10": lead_time_annotation: "a/b/c" is not a Cloud Foundry metadata key (`name` or `prefix/name`)"#
        )
    );
    let err = parse_err(&format!("lead_time_annotation = [\"x\"]\n{MINIMAL}"));
    assert!(
        err.starts_with(&format!("{PATH}: lead_time_annotation: ")),
        "{err}"
    );
}

#[test]
fn the_lead_time_annotation_flag_and_the_demo_default() {
    use cf_service_key_exporter::cli::Cli;
    use cf_service_key_exporter::cli::{demo, from_args};
    use cf_service_key_exporter::config::DemoTarget;
    use clap::Parser;
    let args = |extra: &[&str]| {
        let base = [
            "cf-service-key-exporter",
            "--cf-api-url",
            "https://api.example.com",
        ];
        Cli::try_parse_from(base.iter().chain(extra))
            .unwrap()
            .connection
    };
    let lead = |extra: &[&str]| {
        from_args(&args(extra), |_| None).map(|c| c.foundations[0].lead_time_annotation.clone())
    };
    assert_eq!(lead(&[]).unwrap(), None);
    assert_eq!(
        lead(&["--lead-time-annotation", "example.com/lead"]).unwrap(),
        Some("example.com/lead".to_owned())
    );
    assert_eq!(lead(&["--lead-time-annotation", " "]).unwrap(), None);
    let err = lead(&["--lead-time-annotation", "a b"]).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"--lead-time-annotation: "a b" is not a Cloud Foundry metadata key (`name` or `prefix/name`)"#
    );

    // --demo reads the simulated world's annotation unless the flag says otherwise.
    let demo_args = |extra: &[&str]| {
        let base = ["cf-service-key-exporter", "--demo"];
        Cli::try_parse_from(base.iter().chain(extra))
            .unwrap()
            .connection
    };
    let mut target = DemoTarget {
        api_url: "http://127.0.0.1:9/".parse().unwrap(),
        username: "u".into(),
        password: secrecy::SecretString::from("p"),
        client_id: "cf".into(),
        client_secret: secrecy::SecretString::from(""),
        origin: None,
        metadata_labels: Vec::new(),
        lead_time_annotation: Some("example.com/warning-lead-time".into()),
        successor_annotation: None,
    };
    let demo_lead = |extra: &[&str], target: &DemoTarget| {
        demo(&demo_args(extra), target).map(|c| c.foundations[0].lead_time_annotation.clone())
    };
    assert_eq!(
        demo_lead(&[], &target).unwrap().as_deref(),
        Some("example.com/warning-lead-time")
    );
    assert_eq!(
        demo_lead(&["--lead-time-annotation", ""], &target).unwrap(),
        None
    );
    assert_eq!(
        demo_lead(&["--lead-time-annotation", "mine"], &target)
            .unwrap()
            .as_deref(),
        Some("mine")
    );
    target.lead_time_annotation = None;
    assert_eq!(demo_lead(&[], &target).unwrap(), None);
}

#[test]
fn zero_or_negative_concurrency_is_an_error() {
    let err = parse_err(&format!("{MINIMAL}details_concurrency = 0\n"));
    assert_eq!(
        err,
        format!(r#"{PATH}: foundation "eu10": details_concurrency: must be at least 1, not 0"#)
    );
    let err = parse_err(&format!("details_concurrency = -3\n{MINIMAL}"));
    assert_eq!(
        err,
        format!("{PATH}: details_concurrency: must be at least 1, not -3")
    );
}

#[test]
fn two_password_sources_are_an_error() {
    let err = parse_err(&format!(
        "{MINIMAL}username = \"u\"\npassword_file = \"/p\"\npassword_env = \"P\"\n"
    ));
    assert_eq!(
        err,
        format!(
            r#"{PATH}: foundation "eu10": password_env: cannot be combined with password_file; give the password one way only (password_file, password_env or password)"#
        )
    );
    let err = parse_err(&format!(
        "{MINIMAL}username = \"u\"\npassword_env = \"P\"\npassword = \"x\"\n"
    ));
    assert_eq!(
        err,
        format!(
            r#"{PATH}: foundation "eu10": password: cannot be combined with password_env; give the password one way only (password_file, password_env or password)"#
        )
    );
}

#[test]
fn two_client_secret_sources_are_an_error() {
    let err = parse_err(&format!(
        "{MINIMAL}client_secret_file = \"/s\"\nclient_secret = \"x\"\n"
    ));
    assert_eq!(
        err,
        format!(
            r#"{PATH}: foundation "eu10": client_secret: cannot be combined with client_secret_file; give the client secret one way only (client_secret_file, client_secret_env or client_secret)"#
        )
    );
}

#[test]
fn username_without_password_is_an_error() {
    let err = parse_err(&format!("{MINIMAL}username = \"monitoring@example.com\"\n"));
    assert_eq!(
        err,
        format!(
            r#"{PATH}: foundation "eu10": username: set without a password; add password_file, password_env or password (or remove username for the client-credentials grant)"#
        )
    );
}

#[test]
fn password_without_username_is_an_error() {
    let err = parse_err(&format!("{MINIMAL}password_env = \"EU10_PASSWORD\"\n"));
    assert_eq!(
        err,
        format!(
            r#"{PATH}: foundation "eu10": password_env: a password was given without a username; add username (or remove the password for the client-credentials grant)"#
        )
    );
}

#[test]
fn empty_inline_password_is_an_error() {
    let err = parse_err(&format!("{MINIMAL}username = \"u\"\npassword = \"\"\n"));
    assert_eq!(
        err,
        format!(r#"{PATH}: foundation "eu10": password: must not be empty"#)
    );
}

#[test]
fn unreadable_password_file_is_an_error_at_load() {
    let err = parse_err(&format!(
        "{MINIMAL}username = \"u\"\npassword_file = \"/nonexistent/eu10-password\"\n"
    ));
    assert!(
        err.starts_with(&format!(
            r#"{PATH}: foundation "eu10": password_file: cannot read secret file /nonexistent/eu10-password: "#
        )),
        "{err}"
    );
}

#[test]
fn relative_secret_paths_are_resolved_against_the_config_directory() {
    let err = parse_err(&format!(
        "{MINIMAL}client_secret_file = \"secrets/client-secret\"\n"
    ));
    assert!(
        err.starts_with(&format!(
            r#"{PATH}: foundation "eu10": client_secret_file: cannot read secret file /etc/cfske/secrets/client-secret: "#
        )),
        "{err}"
    );
}

#[test]
fn unset_password_env_is_an_error_at_load() {
    let err = parse_err(&format!(
        "{MINIMAL}username = \"u\"\npassword_env = \"CFSKE_TEST_SURELY_UNSET\"\n"
    ));
    assert_eq!(
        err,
        format!(
            r#"{PATH}: foundation "eu10": password_env: environment variable CFSKE_TEST_SURELY_UNSET is not set (or not UTF-8)"#
        )
    );
    let err = parse_err(&format!(
        "{MINIMAL}client_secret_env = \"CFSKE_TEST_SURELY_UNSET_TOO\"\n"
    ));
    assert_eq!(
        err,
        format!(
            r#"{PATH}: foundation "eu10": client_secret_env: environment variable CFSKE_TEST_SURELY_UNSET_TOO is not set (or not UTF-8)"#
        )
    );
}

#[test]
fn unreadable_ca_file_is_an_error_at_top_level_and_in_a_foundation() {
    let err = parse_err(&format!("ca_file = \"/nonexistent/ca.pem\"\n{MINIMAL}"));
    assert!(
        err.starts_with(&format!(
            "{PATH}: ca_file: cannot read /nonexistent/ca.pem: "
        )),
        "{err}"
    );
    let err = parse_err(&format!("{MINIMAL}ca_file = \"/nonexistent/ca.pem\"\n"));
    assert!(
        err.starts_with(&format!(
            r#"{PATH}: foundation "eu10": ca_file: cannot read /nonexistent/ca.pem: "#
        )),
        "{err}"
    );
}

#[test]
fn empty_client_id_is_an_error() {
    let err = parse_err(&format!("client_id = \"\"\n{MINIMAL}"));
    assert_eq!(err, format!("{PATH}: client_id: must not be empty"));
}

#[test]
fn the_successor_settings_come_from_the_file_with_top_level_defaults_and_from_the_flags() {
    let foundations = parse_ok(
        r#"
        successor_annotation = "example.com/successor-of"
        successor_name_suffix = "_v[year]-[month]-[day]"

        [[foundation]]
        name = "a"
        api_url = "https://api.a.example.com"

        [[foundation]]
        name = "b"
        api_url = "https://api.b.example.com"
        successor_annotation = ""
        successor_name_suffix = "-[year][month][day]"
        "#,
    );
    let day = time::macros::date!(2026 - 12 - 04);
    let settings: Vec<(Option<&str>, String)> = foundations
        .iter()
        .map(|f| {
            (
                f.rotation.successor_annotation.as_deref(),
                f.rotation.names.successor_name("k", day),
            )
        })
        .collect();
    assert_eq!(
        settings,
        [
            (Some("example.com/successor-of"), "k_v2026-12-04".to_owned()),
            (None, "k-20261204".to_owned())
        ]
    );
    // The default scheme, and no annotation, unless set.
    let minimal = &parse_ok(MINIMAL)[0].rotation;
    assert_eq!(minimal.successor_annotation, None);
    assert_eq!(minimal.names.successor_name("k", day), "k-20261204");
    // A suffix that names no day, naming the field.
    let err = parse_err(&format!("{MINIMAL}successor_name_suffix = \"-[year]\"\n"));
    assert!(
        err.starts_with(&format!(
            r#"{PATH}: foundation "eu10": successor_name_suffix: `-[year]` must name the year, month and day"#
        )),
        "{err}"
    );

    use cf_service_key_exporter::cli::from_args;
    use cf_service_key_exporter::cli::Cli;
    use clap::Parser;
    let flags = |extra: &[&str]| {
        let base = [
            "cf-service-key-exporter",
            "--cf-api-url",
            "https://api.example.com",
        ];
        let args = Cli::try_parse_from(base.iter().chain(extra))
            .unwrap()
            .connection;
        from_args(&args, |_| None).map(|c| c.foundations[0].rotation.clone())
    };
    let set = flags(&[
        "--successor-annotation",
        "example.com/successor-of",
        "--successor-name-suffix",
        "-[year]-[month]-[day]",
    ])
    .unwrap();
    assert_eq!(
        set.successor_annotation.as_deref(),
        Some("example.com/successor-of")
    );
    assert_eq!(set.names.successor_name("k", day), "k-2026-12-04");
    let err = flags(&["--successor-name-suffix", "[month repr:long]"]).unwrap_err();
    assert!(
        err.to_string().starts_with("--successor-name-suffix: "),
        "{err}"
    );
}
