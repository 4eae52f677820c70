//! The real binary's command line: which combinations it refuses, and how it logs. Each test
//! runs `cf-service-key-exporter` as a user would, isolated from the caller's environment.

use std::io::{BufRead, BufReader};
use std::process::{Output, Stdio};

use crate::common::exporter;
use std::time::{Duration, Instant};

fn run(args: &[&str]) -> Output {
    exporter(args).output().expect("the binary runs")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn demo_and_config_are_refused_together_naming_both() {
    // Even a well-formed file: the combination itself is the error, and it is not a silent choice.
    let file = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/config/minimal.toml"
    );
    for args in [
        vec!["--demo", "--config", file],
        vec!["report", "--demo", "--config", file],
        vec!["--demo", "--config", "/nonexistent/malformed.toml"],
    ] {
        let output = run(&args);
        let err = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains("--config") && err.contains("--demo"),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn demo_with_single_foundation_flags_is_refused() {
    let output = run(&["--demo", "--cf-api-url", "https://api.example.com"]);
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--demo") && err.contains("--cf-api-url"),
        "{err}"
    );
}

#[test]
fn demo_validates_its_flags_like_every_other_source() {
    for (flag, value) in [
        ("--refresh-interval", "0s"),
        ("--refresh-interval", "500ms"),
        ("--full-refresh-interval", "0s"),
    ] {
        let output = run(&["--demo", flag, value]);
        let err = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "{flag} {value}: {err}");
        assert!(
            err.contains(&format!("{flag}: must be at least 1s")),
            "{err}"
        );
    }
}

#[test]
fn a_bad_lead_time_annotation_is_refused_from_the_flag_and_from_the_environment() {
    for (args, env) in [
        (vec!["--demo", "--lead-time-annotation", "x/y/z"], None),
        (vec!["--demo"], Some("x/y/z")),
    ] {
        let mut command = exporter(&args);
        if let Some(value) = env {
            command.env("LEAD_TIME_ANNOTATION", value);
        }
        let output = command.output().expect("the binary runs");
        let err = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "{args:?} {env:?}: {err}");
        assert!(
            err.contains(r#"--lead-time-annotation: "x/y/z" is not a Cloud Foundry metadata key"#),
            "{err}"
        );
    }
}

/// Starts the exporter on the demo with stderr piped (not a terminal, as in a log file,
/// journald or `kubectl logs`) and returns what it logged up to its first refresh.
fn demo_log(extra_args: &[&str], env: &[(&str, &str)]) -> String {
    let mut args = vec!["--demo", "--listen-address", "127.0.0.1:0"];
    args.extend_from_slice(extra_args);
    let mut child = exporter(&args)
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let mut log = String::new();
    let mut lines = BufReader::new(child.stderr.take().expect("piped")).lines();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let Some(Ok(line)) = lines.next() else { break };
        log.push_str(&line);
        log.push('\n');
        if line.contains("refresh completed") {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        log.contains("refresh completed"),
        "no refresh logged:\n{log}"
    );
    log
}

#[test]
fn logs_to_a_pipe_carry_no_colour_escapes() {
    let text = demo_log(&[], &[]);
    assert!(
        !text.contains('\x1b'),
        "ANSI escapes in a non-terminal log:\n{text:?}"
    );
    let json = demo_log(&["--log-format", "json"], &[]);
    assert!(
        !json.contains('\x1b'),
        "ANSI escapes in JSON logs:\n{json:?}"
    );
    for line in json.lines() {
        serde_json::from_str::<serde_json::Value>(line)
            .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
    }
}
