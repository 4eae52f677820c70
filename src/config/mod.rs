//! Validated configuration: what every other module runs from.
//!
//! Parse → defaults → validate happens here and only here, so the rest of the program works
//! with typed values (`Url`, `Duration`, `NonZeroUsize`, [`SecretSource`]) and never re-checks
//! them. Errors name the flag, environment variable or config-file field that is wrong.
//! Secrets are not read into memory at start: a [`SecretSource`] is read each time a login
//! needs it, so a rotated password file works without a restart.

mod draft;
pub mod file;

pub(crate) use draft::{FoundationDraft, LoginWording};

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use url::Url;

use crate::rotation::{NameScheme, RotationConfig};

/// Everything the exporter watches.
#[derive(Debug, Clone)]
pub struct Config {
    pub foundations: Vec<FoundationConfig>,
    /// Where the config came from, for SIGHUP reloads (`None` for flags and `--demo`).
    pub file: Option<PathBuf>,
    pub cache_file: Option<PathBuf>,
}

impl Config {
    /// What the operator should know about the configuration: logged at start and at every reload,
    /// shown on `/` and printed by `report`.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        for f in &self.foundations {
            if f.tls.skip_verify {
                out.push(format!(
                    "foundation {}: TLS certificate verification toward Cloud Foundry is OFF (--cf-skip-tls-verify); anyone on the path can read the credentials",
                    f.name
                ));
            }
            for (what, url) in [
                ("API", Some(&f.api_url)),
                ("login server", f.uaa_url.as_ref()),
            ] {
                let Some(url) = url.filter(|u| u.scheme() == "http" && !is_loopback(u)) else {
                    continue;
                };
                out.push(format!(
                    "foundation {}: the {what} is reached over plain http ({url}); tokens and credentials travel unencrypted",
                    f.name
                ));
            }
            if f.tls.allow_http_login {
                out.push(format!(
                    "foundation {}: an http:// login server under an https:// API is allowed (--cf-allow-http-login); the password may travel unencrypted",
                    f.name
                ));
            }
        }
        out
    }
}

/// One Cloud Foundry foundation and how to reach it. Compared by value, secrets included (a
/// reload that only changes an inline password is a change).
#[derive(Debug, Clone, PartialEq)]
pub struct FoundationConfig {
    /// Value of the `foundation` label.
    pub name: String,
    pub api_url: Url,
    /// Overrides the UAA found from the API root document.
    pub uaa_url: Option<Url>,
    pub grant: Grant,
    pub client_id: String,
    /// `None` = empty secret (the `cf` client's).
    pub client_secret: Option<SecretSource>,
    /// Identity provider origin for the password grant.
    pub origin: Option<String>,
    /// Plan names to watch; empty = every plan.
    pub service_plans: Vec<String>,
    /// Cloud Foundry metadata keys exported as owner labels (`--metadata-labels`).
    pub metadata_labels: Vec<MetadataLabel>,
    /// The Cloud Foundry annotation holding an owner's warning lead time
    /// (`--lead-time-annotation`); `None` = off.
    pub lead_time_annotation: Option<String>,
    /// How successors are named and recognised (`--successor-name-suffix`,
    /// `--successor-annotation`).
    pub rotation: RotationConfig,
    pub refresh_interval: Duration,
    /// Every key's details are read again at least this often, even when nothing says it
    /// changed (guards against changes `updated_at` does not show).
    pub full_refresh_interval: Duration,
    pub details_concurrency: NonZeroUsize,
    pub tls: TlsOptions,
    /// Timeouts, body caps and retries of the HTTP transport (not configurable from the
    /// command line: the defaults suit every foundation; tests shorten them).
    pub http: HttpOptions,
}

/// Default of `--refresh-interval` / `refresh_interval`.
/// The cf CLI's public OAuth client: the default `client_id`.
pub const DEFAULT_CLIENT_ID: &str = "cf";
/// The default refresh interval.
pub const DEFAULT_REFRESH_INTERVAL: Duration = Duration::from_secs(300);
/// Default of `--full-refresh-interval` / `full_refresh_interval`.
pub const DEFAULT_FULL_REFRESH_INTERVAL: Duration = Duration::from_secs(24 * 3600);
/// Default of `--details-concurrency` / `details_concurrency`.
pub const DEFAULT_DETAILS_CONCURRENCY: NonZeroUsize = NonZeroUsize::new(16).unwrap();

/// How the exporter logs in to UAA.
#[derive(Debug, Clone, PartialEq)]
pub enum Grant {
    Password {
        username: String,
        password: SecretSource,
    },
    ClientCredentials,
}

/// TLS settings toward CF and UAA.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    pub ca_file: Option<PathBuf>,
    pub skip_verify: bool,
    /// Log in to an `http://` login server named by an `https://` API (`--cf-allow-http-login`).
    pub allow_http_login: bool,
}

/// Limits of every request to CF and UAA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpOptions {
    /// Establishing a TCP + TLS connection.
    pub connect_timeout: Duration,
    /// Longest silence while reading an answer (a body that stalls mid-way).
    pub read_timeout: Duration,
    /// One whole request, body included.
    pub request_timeout: Duration,
    /// Largest body read from a list page of 5000 resources with `included` (its size:
    /// docs/performance.md, "Figures the code refers to").
    pub list_body_limit: usize,
    /// Largest body read from a key's `/details`, the API root or a token answer.
    pub small_body_limit: usize,
    /// Further tries of a transient failure (no answer, 429, 502, 503, 504).
    pub retries: usize,
    /// First backoff delay between tries (doubled each time, jittered, at most 10 s).
    pub retry_min_delay: Duration,
    /// After UAA refused a login (or could not be reached), no new login is tried for this
    /// long: the requests waiting for a token get the same error. Without it every pending
    /// `/details` request would try its own login, and a wrong password would lock the account
    /// (UAA locks a user after 5 failures by default).
    pub login_retry_after: Duration,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(60),
            list_body_limit: 64 * 1024 * 1024,
            small_body_limit: 4 * 1024 * 1024,
            retries: 3,
            retry_min_delay: Duration::from_millis(200),
            login_retry_after: Duration::from_secs(30),
        }
    }
}

/// A Cloud Foundry metadata key (label or annotation) exported as an owner label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataLabel {
    /// As in Cloud Foundry: `team`, `example.com/owner`.
    pub key: String,
    /// The Prometheus label: `label_` + the key with every character outside `[a-zA-Z0-9_]`
    /// replaced by `_` (`label_example_com_owner`).
    pub label: String,
}

impl MetadataLabel {
    pub fn sanitise(key: &str) -> String {
        let mut label = String::with_capacity(6 + key.len());
        label.push_str("label_");
        label.extend(key.chars().map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        }));
        label
    }
}

/// A key must look like a Cloud Foundry metadata key: `name` or `prefix/name`, no spaces.
fn check_metadata_key(field: &str, key: &str) -> Result<(), ConfigError> {
    let name = key.rsplit_once('/').map_or(key, |(_, name)| name);
    if name.is_empty()
        || key.matches('/').count() > 1
        || key.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(ConfigError::invalid(
            field,
            format!("\"{key}\" is not a Cloud Foundry metadata key (`name` or `prefix/name`)"),
        ));
    }
    Ok(())
}

/// Checks `--lead-time-annotation` / `lead_time_annotation`: blank is off (`None`), anything
/// else must look like a Cloud Foundry metadata key, as for `--metadata-labels`.
pub(crate) fn lead_time_annotation(field: &str, key: &str) -> Result<Option<String>, ConfigError> {
    let key = key.trim();
    if key.is_empty() {
        return Ok(None);
    }
    check_metadata_key(field, key)?;
    Ok(Some(key.to_owned()))
}

/// Checks `--successor-annotation` / `successor_annotation` as `--lead-time-annotation`:
/// blank is off, anything else must look like a Cloud Foundry metadata key.
pub(crate) fn successor_annotation(field: &str, key: &str) -> Result<Option<String>, ConfigError> {
    lead_time_annotation(field, key)
}

/// Checks `--successor-name-suffix` / `successor_name_suffix`: a fixed-width date format
/// ([`NameScheme::parse`]).
pub(crate) fn successor_name_suffix(field: &str, text: &str) -> Result<NameScheme, ConfigError> {
    NameScheme::parse(text.trim()).map_err(|message| ConfigError::invalid(field, message))
}

/// Checks `--metadata-labels` / `metadata_labels`: blank entries are dropped, a key must look
/// like a Cloud Foundry metadata key (`name` or `prefix/name`, no spaces), and two keys that
/// become the same label (or one key listed twice) are an error naming both.
pub fn metadata_labels(field: &str, keys: &[String]) -> Result<Vec<MetadataLabel>, ConfigError> {
    let mut out: Vec<MetadataLabel> = Vec::new();
    for key in keys.iter().map(|k| k.trim()).filter(|k| !k.is_empty()) {
        check_metadata_key(field, key)?;
        let label = MetadataLabel::sanitise(key);
        if let Some(other) = out.iter().find(|m| m.label == label) {
            return Err(ConfigError::invalid(
                field,
                format!(
                    "\"{}\" and \"{key}\" would both be exported as the label {label}; keep one of them",
                    other.key
                ),
            ));
        }
        out.push(MetadataLabel {
            key: key.to_owned(),
            label,
        });
    }
    Ok(out)
}

/// Where a secret lives. Read on use; never printed (the inline value is a `SecretString`).
#[derive(Debug, Clone)]
pub enum SecretSource {
    File(PathBuf),
    Env(String),
    Inline(SecretString),
}

impl PartialEq for SecretSource {
    /// By value: two inline secrets are equal when their texts are (compared, never printed).
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (SecretSource::File(a), SecretSource::File(b)) => a == b,
            (SecretSource::Env(a), SecretSource::Env(b)) => a == b,
            (SecretSource::Inline(a), SecretSource::Inline(b)) => {
                a.expose_secret() == b.expose_secret()
            }
            _ => false,
        }
    }
}

impl SecretSource {
    /// Reads the secret now. A trailing newline (as `echo` writes) is not part of it.
    pub fn read(&self) -> Result<SecretString, ConfigError> {
        match self {
            SecretSource::File(path) => read_secret_file(path)
                .map(|s| SecretString::from(s.trim_end_matches(['\r', '\n']).to_owned()))
                .map_err(|source| ConfigError::SecretFile {
                    path: path.clone(),
                    source,
                }),
            SecretSource::Env(var) => std::env::var(var)
                .map(SecretString::from)
                .map_err(|_| ConfigError::SecretEnv { var: var.clone() }),
            SecretSource::Inline(s) => Ok(s.clone()),
        }
    }
}

/// Longest secret file read: a password or client secret is short; a path naming a device or a
/// huge file by mistake must not hang or exhaust memory.
const MAX_SECRET_FILE_BYTES: u64 = 64 * 1024;

fn read_secret_file(path: &Path) -> std::io::Result<secrecy::zeroize::Zeroizing<String>> {
    use std::io::Read as _;
    let mut text = secrecy::zeroize::Zeroizing::new(String::new());
    std::fs::File::open(path)?
        .take(MAX_SECRET_FILE_BYTES + 1)
        .read_to_string(&mut text)?;
    if text.len() as u64 > MAX_SECRET_FILE_BYTES {
        return Err(std::io::Error::other(format!(
            "more than {MAX_SECRET_FILE_BYTES} bytes; not a secret file"
        )));
    }
    Ok(text)
}

/// A configuration that cannot be used, naming what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    #[error("cannot read secret file {}: {source}", path.display())]
    SecretFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("environment variable {var} is not set (or not UTF-8)")]
    SecretEnv { var: String },
    #[error("{}: {message}", path.display())]
    File { path: PathBuf, message: String },
}

impl ConfigError {
    pub(crate) fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Parses and checks a CF API or UAA URL. `http://` is accepted (tests, in-cluster proxies)
/// but the caller warns about it.
pub(crate) fn parse_url(field: &str, value: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(value.trim())
        .map_err(|e| ConfigError::invalid(field, format!("`{value}` is not a URL ({e})")))?;
    match url.scheme() {
        "https" | "http" => {}
        other => {
            return Err(ConfigError::invalid(
                field,
                format!("`{value}`: scheme must be https or http, not {other}"),
            ))
        }
    }
    if url.host_str().is_none() {
        return Err(ConfigError::invalid(
            field,
            format!("`{value}` has no host"),
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(ConfigError::invalid(
            field,
            "credentials in the URL are not allowed; use the username and password settings",
        ));
    }
    Ok(url)
}

/// The default `foundation` label: the API URL's host.
pub(crate) fn default_foundation_name(api_url: &Url) -> String {
    api_url.host_str().unwrap_or("cf").to_owned()
}

/// Checks that a secret source can be read now, so a typo fails at start, not at first login.
pub(crate) fn check_secret(field: &str, source: &SecretSource) -> Result<(), ConfigError> {
    source
        .read()
        .map(|_| ())
        .map_err(|e| ConfigError::invalid(field, e.to_string()))
}

pub(crate) fn check_readable(field: &str, path: &Path) -> Result<(), ConfigError> {
    std::fs::File::open(path)
        .map(|_| ())
        .map_err(|e| ConfigError::invalid(field, format!("cannot read {}: {e}", path.display())))
}

/// Where a simulated foundation listens and who may log in to it: what `--demo` (and the tests
/// and benchmarks) learn from the simulator they started. Its `Debug` shows no secret.
#[derive(Clone)]
pub struct DemoTarget {
    pub api_url: Url,
    pub username: String,
    pub password: SecretString,
    pub client_id: String,
    pub client_secret: SecretString,
    pub origin: Option<String>,
    /// The metadata keys the simulated world carries owners under: `--demo` exports them as
    /// owner labels unless `--metadata-labels` says otherwise.
    pub metadata_labels: Vec<String>,
    /// The annotation the simulated world carries lead times under: `--demo` reads it unless
    /// `--lead-time-annotation` says otherwise.
    pub lead_time_annotation: Option<String>,
    /// The annotation the simulated world names predecessors under: `--demo` reads it unless
    /// `--successor-annotation` says otherwise.
    pub successor_annotation: Option<String>,
}

impl DemoTarget {
    /// A foundation that logs in to the simulator, with the default tuning.
    #[cfg(any(test, feature = "testing"))]
    pub fn foundation(&self, name: &str) -> FoundationConfig {
        self.draft(name)
            .build()
            .expect("a simulator's login is complete and its secrets are inline")
    }

    /// [`DemoTarget::foundation`] before defaults, for `--demo` to tune.
    pub(crate) fn draft(&self, name: &str) -> FoundationDraft {
        let mut draft = FoundationDraft::new(name.to_owned(), self.api_url.clone(), &DEMO_LOGIN);
        draft.username = Some(self.username.clone());
        draft.password = Some(("--demo", SecretSource::Inline(self.password.clone())));
        draft.client_id = Some(self.client_id.clone());
        draft.client_secret = (!self.client_secret.expose_secret().is_empty())
            .then(|| ("--demo", SecretSource::Inline(self.client_secret.clone())));
        draft.origin = self.origin.clone();
        draft
    }
}

/// The demo always has both a username and a password.
const DEMO_LOGIN: LoginWording = LoginWording {
    no_password: ("--demo", "the simulator has no password"),
    no_username: (None, "the simulator has no username"),
    ca_file: "--cf-ca-file",
};

impl std::fmt::Debug for DemoTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DemoTarget")
            .field("api_url", &self.api_url)
            .field("username", &self.username)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "demo")]
impl DemoTarget {
    /// A simulator at `api_url` (possibly in another process) with these accounts.
    pub fn new(api_url: &Url, accounts: &cf_sim::Accounts) -> Self {
        DemoTarget {
            api_url: api_url.clone(),
            username: accounts.username.clone(),
            password: SecretString::from(accounts.password.clone()),
            client_id: accounts.client_id.clone(),
            client_secret: SecretString::from(accounts.client_secret.clone()),
            origin: accounts.origin.clone(),
            metadata_labels: Vec::new(),
            lead_time_annotation: None,
            successor_annotation: None,
        }
    }
}

#[cfg(feature = "demo")]
impl From<&cf_sim::Sim> for DemoTarget {
    fn from(sim: &cf_sim::Sim) -> Self {
        DemoTarget::new(&sim.api_url, &sim.state.accounts)
    }
}

/// Trims plan names and drops empty ones (`CF_SERVICE_PLANS=""` means every plan).
pub(crate) fn clean_plans(plans: &[String]) -> Vec<String> {
    plans
        .iter()
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty())
        .collect()
}

/// A refresh interval below one second would hammer Cloud Foundry; refuse it.
pub(crate) fn check_interval(field: &str, interval: Duration) -> Result<Duration, ConfigError> {
    if interval < Duration::from_secs(1) {
        return Err(ConfigError::invalid(field, "must be at least 1s"));
    }
    Ok(interval)
}

/// The URL points at this machine (tests, the demo, a local proxy): plain http is no risk there.
pub(crate) fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => false,
    }
}
