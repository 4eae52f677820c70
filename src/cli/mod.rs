//! Command-line interface: every flag of the contract, each also read from its environment
//! variable. This module only describes and parses; `config` turns the result into a validated
//! [`crate::config::Config`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::LazyLock;

use clap::{Args, Parser, Subcommand, ValueEnum};

mod flags;

/// The flags' default durations, written as the help shows them and the parser reads them, from
/// the one place each is defined.
static DEFAULT_REFRESH_INTERVAL: LazyLock<String> =
    LazyLock::new(|| duration_text(crate::config::DEFAULT_REFRESH_INTERVAL));
static DEFAULT_FULL_REFRESH_INTERVAL: LazyLock<String> =
    LazyLock::new(|| duration_text(crate::config::DEFAULT_FULL_REFRESH_INTERVAL));
static DEFAULT_HEADER_TIMEOUT: LazyLock<String> =
    LazyLock::new(|| duration_text(crate::web::serve::DEFAULT_HEADER_TIMEOUT));
static DEFAULT_WRITE_TIMEOUT: LazyLock<String> =
    LazyLock::new(|| duration_text(crate::web::serve::DEFAULT_WRITE_TIMEOUT));

/// A whole number of the largest unit that divides it: `24h`, `5m`, `30s`.
fn duration_text(d: std::time::Duration) -> String {
    let s = d.as_secs();
    match s {
        _ if s > 0 && s.is_multiple_of(3600) => format!("{}h", s / 3600),
        _ if s > 0 && s.is_multiple_of(60) => format!("{}m", s / 60),
        _ => format!("{s}s"),
    }
}
pub use flags::{demo, from_args, from_source, Source};

/// Prometheus exporter for the expiry of Cloud Foundry service keys.
///
/// Polls the Cloud Foundry V3 API in the background (service instances, their keys and each
/// key's credentials), reads when every key's certificate or credentials expire, and serves the
/// result on /metrics. A scrape never calls Cloud Foundry.
#[derive(Debug, Parser)]
#[command(
    name = "cf-service-key-exporter",
    version,
    about,
    long_about,
    max_term_width = 100
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub connection: ConnectionArgs,

    /// Address the HTTP server listens on.
    #[arg(
        long,
        env = "LISTEN_ADDRESS",
        default_value = "0.0.0.0:9769",
        value_name = "ADDR"
    )]
    pub listen_address: SocketAddr,

    /// Most /metrics requests served at once; more get a 503 at once (0 = no limit).
    #[arg(
        long,
        env = "WEB_MAX_REQUESTS",
        default_value_t = crate::web::serve::DEFAULT_MAX_REQUESTS,
        value_name = "N"
    )]
    pub web_max_requests: usize,

    /// Close a connection that has not sent a whole request head within this long (at its
    /// start and between keep-alive requests).
    #[arg(long, env = "WEB_HEADER_TIMEOUT", default_value = &**DEFAULT_HEADER_TIMEOUT, value_name = "DURATION",
          value_parser = parse_positive_duration)]
    pub web_header_timeout: std::time::Duration,

    /// Close a connection whose response is not written out within this long (a client that
    /// does not read); frees its --web-max-requests slot.
    #[arg(long, env = "WEB_WRITE_TIMEOUT", default_value = &**DEFAULT_WRITE_TIMEOUT, value_name = "DURATION",
          value_parser = parse_positive_duration)]
    pub web_write_timeout: std::time::Duration,

    /// Most connections open at once; more are closed at once (0 = no limit).
    #[arg(
        long,
        env = "WEB_MAX_CONNECTIONS",
        default_value_t = crate::web::serve::DEFAULT_MAX_CONNECTIONS,
        value_name = "N"
    )]
    pub web_max_connections: usize,

    /// TLS and basic auth for the HTTP endpoints (Prometheus exporter-toolkit format).
    #[arg(long, env = "WEB_CONFIG_FILE", value_name = "PATH")]
    pub web_config_file: Option<PathBuf>,

    /// Accept a reload of --web-config-file that weakens protection (removes basic auth, lowers
    /// client_auth_type or min_version); refused by default.
    #[arg(long, env = "WEB_CONFIG_ALLOW_WEAKENING")]
    pub web_config_allow_weakening: bool,

    /// Log format; the level comes from RUST_LOG (default `info`).
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one refresh, print every key with its expiry (or, with --rotate-plan, the steps
    /// that rotate each key), and exit.
    ///
    /// Exits 1 when --expiring-within is given and a key expires within it.
    Report(ReportArgs),
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = ReportOutput::Table)]
    pub output: ReportOutput,

    /// Exit with status 1 if any key expires within this duration (e.g. `30d`) or this share of
    /// its own lifetime (e.g. `10%`: a 7-day key in its last 16.8 hours, a 1-year key in its
    /// last 36.5 days). An expired key always counts.
    #[arg(long, value_name = "DURATION|PERCENT", value_parser = ExpiringWithin::parse)]
    pub expiring_within: Option<ExpiringWithin>,

    /// Print each selected key's rotation plan instead of the table: the `cf` commands and V3
    /// requests that create its successor with the same parameters, hand it over and delete it
    /// (with --expiring-within, only the keys within it).
    #[arg(long)]
    pub rotate_plan: bool,

    /// Only keys of these foundations (their `foundation` label; comma-separated).
    #[arg(long, value_name = "NAME", value_delimiter = ',')]
    pub only_foundation: Vec<String>,

    /// Only keys whose owner is this: a --metadata-labels key and its value, e.g.
    /// `team=payments` (repeatable; every one must match).
    #[arg(long, value_name = "KEY=VALUE", value_parser = OwnerFilter::parse)]
    pub owner: Vec<OwnerFilter>,

    /// Only this key, by name or guid (repeatable).
    #[arg(long = "key", value_name = "NAME|GUID")]
    pub keys: Vec<String>,
}

/// `report --owner KEY=VALUE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerFilter {
    /// The metadata key, as in Cloud Foundry (`team`, `example.com/owner`).
    pub key: String,
    pub value: String,
}

impl OwnerFilter {
    pub fn parse(s: &str) -> Result<OwnerFilter, String> {
        match s.split_once('=') {
            Some((key, value)) if !key.trim().is_empty() => Ok(OwnerFilter {
                key: key.trim().to_owned(),
                value: value.to_owned(),
            }),
            _ => Err(format!("`{s}` is not KEY=VALUE (e.g. team=payments)")),
        }
    }
}

/// The window of `report --expiring-within`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ExpiringWithin {
    /// Time left up to this long.
    Duration(std::time::Duration),
    /// Time left up to this share of the key's lifetime (expiry − valid from), 0..=1.
    Fraction(f64),
}

impl ExpiringWithin {
    pub fn parse(s: &str) -> Result<ExpiringWithin, String> {
        let s = s.trim();
        match s.strip_suffix('%') {
            Some(number) => match number.trim().parse::<f64>() {
                Ok(p) if (0.0..=100.0).contains(&p) => Ok(ExpiringWithin::Fraction(p / 100.0)),
                _ => Err(format!(
                    "`{s}` is not a percentage from 0% to 100% (e.g. 10%)"
                )),
            },
            None => parse_duration(s).map(ExpiringWithin::Duration),
        }
    }
}

impl std::fmt::Display for ExpiringWithin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExpiringWithin::Duration(d) => write!(f, "{}", humantime::format_duration(*d)),
            ExpiringWithin::Fraction(p) => write!(f, "{}% of their lifetime", p * 100.0),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportOutput {
    Table,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Flags that say which foundation(s) to watch and how; shared by the server and `report`.
#[derive(Debug, Clone, Args)]
pub struct ConnectionArgs {
    /// Cloud Foundry API endpoint, e.g. https://api.cf.eu10.hana.ondemand.com
    #[arg(long, env = "CF_API_URL", value_name = "URL", global = true)]
    pub cf_api_url: Option<String>,

    /// User for the OAuth password grant; without it the client-credentials grant is used.
    #[arg(long, env = "CF_USERNAME", value_name = "NAME", global = true)]
    pub cf_username: Option<String>,

    /// File holding the password (or set CF_PASSWORD to the value itself).
    #[arg(long, value_name = "PATH", global = true)]
    pub cf_password_file: Option<PathBuf>,

    /// OAuth client id.
    #[arg(
        long,
        env = "CF_CLIENT_ID",
        default_value = crate::config::DEFAULT_CLIENT_ID,
        value_name = "ID",
        global = true
    )]
    pub cf_client_id: String,

    /// File holding the OAuth client secret (or set CF_CLIENT_SECRET); default empty.
    #[arg(long, value_name = "PATH", global = true)]
    pub cf_client_secret_file: Option<PathBuf>,

    /// Identity provider origin for the password grant (as `cf login --origin`).
    #[arg(long, env = "CF_ORIGIN", value_name = "NAME", global = true)]
    pub cf_origin: Option<String>,

    /// Comma-separated service plan names to watch, e.g. integration-flow; empty = every plan.
    #[arg(
        long,
        env = "CF_SERVICE_PLANS",
        value_name = "LIST",
        value_delimiter = ',',
        global = true
    )]
    pub service_plans: Vec<String>,

    /// Comma-separated Cloud Foundry metadata keys (labels or annotations) exported as owner
    /// labels, e.g. team,example.com/owner; empty = none. With --demo: team,example.com/owner.
    #[arg(
        long,
        env = "METADATA_LABELS",
        value_name = "LIST",
        value_delimiter = ',',
        global = true
    )]
    pub metadata_labels: Option<Vec<String>>,

    /// Cloud Foundry annotation holding an owner's warning lead time (a duration from 1h to 2y,
    /// e.g. 60d) on a key, its instance, its space or its org (the nearest wins); empty = off.
    /// With --demo: example.com/warning-lead-time.
    #[arg(long, env = "LEAD_TIME_ANNOTATION", value_name = "NAME", global = true)]
    pub lead_time_annotation: Option<String>,

    /// Date suffix of successor key names, a fixed-width `time` format description: a
    /// successor of `it-sender-20260101` made on 2026-12-04 is `it-sender-20261204` (default
    /// `-[year][month][day]`).
    #[arg(
        long,
        env = "SUCCESSOR_NAME_SUFFIX",
        value_name = "FORMAT",
        global = true,
        // The usual suffix starts with `-`: it is a value, not a flag.
        allow_hyphen_values = true
    )]
    pub successor_name_suffix: Option<String>,

    /// Cloud Foundry annotation on a new key naming the key it succeeds (by name or guid), so a
    /// successor is recognised whatever its name; empty = off. With --demo:
    /// example.com/successor-of.
    #[arg(long, env = "SUCCESSOR_ANNOTATION", value_name = "NAME", global = true)]
    pub successor_annotation: Option<String>,

    /// Value of the `foundation` label; default: the API URL's host.
    #[arg(long, env = "CF_FOUNDATION", value_name = "NAME", global = true)]
    pub foundation: Option<String>,

    /// How often to refresh (humantime: 30s, 5m, 1h).
    #[arg(long, env = "REFRESH_INTERVAL", default_value = &**DEFAULT_REFRESH_INTERVAL, value_name = "DURATION",
          value_parser = parse_duration, global = true)]
    pub refresh_interval: std::time::Duration,

    /// Re-read every key's details at least this often, even when nothing says it changed.
    #[arg(long, env = "FULL_REFRESH_INTERVAL", default_value = &**DEFAULT_FULL_REFRESH_INTERVAL, value_name = "DURATION",
          value_parser = parse_duration, global = true)]
    pub full_refresh_interval: std::time::Duration,

    /// A TOML file describing several foundations (exclusive with the single-foundation flags).
    #[arg(long, env = "CONFIG_FILE", value_name = "PATH", global = true)]
    pub config: Option<PathBuf>,

    /// Serve a built-in simulated foundation: real metrics with no CF account.
    #[arg(long, global = true)]
    pub demo: bool,

    /// Override the UAA/login server found from the API root document.
    #[arg(long, env = "CF_UAA_URL", value_name = "URL", global = true)]
    pub cf_uaa_url: Option<String>,

    /// Extra CA certificates (PEM) to trust toward CF and UAA.
    #[arg(long, env = "CF_CA_FILE", value_name = "PATH", global = true)]
    pub cf_ca_file: Option<PathBuf>,

    /// Skip certificate verification toward CF and UAA (dangerous; logs a warning).
    #[arg(long, env = "CF_SKIP_TLS_VERIFY", global = true)]
    pub cf_skip_tls_verify: bool,

    /// Log in to an http:// login server that an https:// API names (the password travels in
    /// clear); refused by default.
    #[arg(long, env = "CF_ALLOW_HTTP_LOGIN", global = true)]
    pub cf_allow_http_login: bool,

    /// Most /details requests in flight at once.
    #[arg(
        long,
        env = "DETAILS_CONCURRENCY",
        default_value_t = crate::config::DEFAULT_DETAILS_CONCURRENCY,
        value_name = "N",
        global = true
    )]
    pub details_concurrency: std::num::NonZeroUsize,

    /// Optional no-secret expiry cache kept across restarts.
    #[arg(long, env = "CACHE_FILE", value_name = "PATH", global = true)]
    pub cache_file: Option<PathBuf>,
}

/// A duration above zero (a zero timeout would close every connection).
pub fn parse_positive_duration(s: &str) -> Result<std::time::Duration, String> {
    match parse_duration(s)? {
        d if d.is_zero() => Err(format!("`{s}` must be above zero")),
        d => Ok(d),
    }
}

/// Parses a humantime duration (`30s`, `5m`, `1h 30m`, `30d`).
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("`{s}` is not a duration ({e}); use e.g. 30s, 5m, 1h"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The help shows each default as the flag would be written, and it reads back as the
    /// default itself.
    #[test]
    fn default_durations_are_written_as_flags_and_read_back() {
        let d = std::time::Duration::from_secs;
        assert_eq!(duration_text(d(300)), "5m");
        assert_eq!(duration_text(d(86_400)), "24h");
        assert_eq!(duration_text(d(90)), "90s");
        for (text, value) in [
            (
                &*DEFAULT_REFRESH_INTERVAL,
                crate::config::DEFAULT_REFRESH_INTERVAL,
            ),
            (
                &*DEFAULT_FULL_REFRESH_INTERVAL,
                crate::config::DEFAULT_FULL_REFRESH_INTERVAL,
            ),
            (
                &*DEFAULT_HEADER_TIMEOUT,
                crate::web::serve::DEFAULT_HEADER_TIMEOUT,
            ),
            (
                &*DEFAULT_WRITE_TIMEOUT,
                crate::web::serve::DEFAULT_WRITE_TIMEOUT,
            ),
        ] {
            assert_eq!(parse_duration(text), Ok(value), "{text}");
        }
    }
}
