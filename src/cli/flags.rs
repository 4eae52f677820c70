//! The flags (and their environment variables) turned into a validated [`Config`]: which
//! source the configuration comes from, and the single-foundation and demo configurations.

use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Duration;

use super::ConnectionArgs;
use crate::config::file;
use crate::config::{
    check_interval, check_readable, check_secret, clean_plans, default_foundation_name,
    lead_time_annotation, metadata_labels, parse_url, successor_annotation, successor_name_suffix,
    Config, ConfigError, DemoTarget, FoundationConfig, Grant, HttpOptions, MetadataLabel,
    SecretSource, TlsOptions, DEFAULT_DETAILS_CONCURRENCY, DEFAULT_FULL_REFRESH_INTERVAL,
    DEFAULT_REFRESH_INTERVAL,
};
use crate::rotation::{NameScheme, RotationConfig};

/// The flags that name one foundation and how to log in to it: exclusive with `--config` and
/// with `--demo`, which bring their own.
fn connection_flags(args: &ConnectionArgs) -> [(&'static str, bool); 7] {
    [
        ("--cf-api-url", args.cf_api_url.is_some()),
        ("--cf-username", args.cf_username.is_some()),
        ("--cf-password-file", args.cf_password_file.is_some()),
        (
            "--cf-client-secret-file",
            args.cf_client_secret_file.is_some(),
        ),
        ("--foundation", args.foundation.is_some()),
        ("--cf-uaa-url", args.cf_uaa_url.is_some()),
        ("--cf-origin", args.cf_origin.is_some()),
    ]
}

/// Where the configuration comes from: the single-foundation flags, a `--config` file, or the
/// built-in demo foundation. Exactly one; combining them is an error naming both, never a
/// silent choice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Flags,
    File(PathBuf),
    Demo,
}

impl Source {
    pub fn of(args: &ConnectionArgs) -> Result<Source, ConfigError> {
        let flag = connection_flags(args)
            .into_iter()
            .find(|(_, set)| *set)
            .map(|(flag, _)| flag);
        match (&args.config, args.demo, flag) {
            (Some(_), true, _) => Err(ConfigError::invalid(
                "--config",
                "cannot be combined with --demo: the demo serves its own simulated foundation; \
                 drop one of them",
            )),
            (Some(_), false, Some(flag)) => Err(ConfigError::invalid(
                "--config",
                format!("cannot be combined with {flag}: put that foundation in the file"),
            )),
            (Some(path), false, None) => Ok(Source::File(path.clone())),
            (None, true, Some(flag)) => Err(ConfigError::invalid(
                "--demo",
                format!(
                    "cannot be combined with {flag}: the demo serves its own simulated foundation"
                ),
            )),
            (None, true, None) => Ok(Source::Demo),
            (None, false, _) => Ok(Source::Flags),
        }
    }
}

/// How often and how hard to poll, from the flags: shared by the flags and the demo, so both
/// are checked by the same rules as the config file.
#[derive(Debug, Clone)]
struct Tuning {
    service_plans: Vec<String>,
    metadata_labels: Vec<MetadataLabel>,
    lead_time_annotation: Option<String>,
    rotation: RotationConfig,
    refresh_interval: Duration,
    full_refresh_interval: Duration,
    details_concurrency: NonZeroUsize,
}

impl Tuning {
    fn from_args(args: &ConnectionArgs) -> Result<Tuning, ConfigError> {
        Ok(Tuning {
            service_plans: clean_plans(&args.service_plans),
            metadata_labels: metadata_labels(
                "--metadata-labels",
                args.metadata_labels.as_deref().unwrap_or_default(),
            )?,
            lead_time_annotation: lead_time_annotation(
                "--lead-time-annotation",
                args.lead_time_annotation.as_deref().unwrap_or_default(),
            )?,
            rotation: RotationConfig {
                names: match &args.successor_name_suffix {
                    Some(text) => successor_name_suffix("--successor-name-suffix", text)?,
                    None => NameScheme::default(),
                },
                successor_annotation: successor_annotation(
                    "--successor-annotation",
                    args.successor_annotation.as_deref().unwrap_or_default(),
                )?,
            },
            refresh_interval: check_interval("--refresh-interval", args.refresh_interval)?,
            full_refresh_interval: check_interval(
                "--full-refresh-interval",
                args.full_refresh_interval,
            )?,
            details_concurrency: args.details_concurrency,
        })
    }

    fn apply(self, foundation: &mut FoundationConfig) {
        foundation.service_plans = self.service_plans;
        foundation.metadata_labels = self.metadata_labels;
        foundation.lead_time_annotation = self.lead_time_annotation;
        foundation.rotation = self.rotation;
        foundation.refresh_interval = self.refresh_interval;
        foundation.full_refresh_interval = self.full_refresh_interval;
        foundation.details_concurrency = self.details_concurrency;
    }
}

/// The configuration of `--demo`: one foundation named `demo` on the simulator at `target`,
/// tuned by the same flags (and checked by the same rules) as a real one.
/// The caller has found the flags' [`Source`] to be [`Source::Demo`].
pub fn demo(args: &ConnectionArgs, target: &DemoTarget) -> Result<Config, ConfigError> {
    let mut foundation = target.foundation("demo");
    let mut tuning = Tuning::from_args(args)?;
    if args.metadata_labels.is_none() {
        tuning.metadata_labels = metadata_labels("--metadata-labels", &target.metadata_labels)?;
    }
    if args.lead_time_annotation.is_none() {
        tuning.lead_time_annotation = (target.lead_time_annotation.as_deref())
            .map(|key| lead_time_annotation("--lead-time-annotation", key))
            .transpose()?
            .flatten();
    }
    if args.successor_annotation.is_none() {
        tuning.rotation.successor_annotation = (target.successor_annotation.as_deref())
            .map(|key| successor_annotation("--successor-annotation", key))
            .transpose()?
            .flatten();
    }
    tuning.apply(&mut foundation);
    Ok(Config {
        foundations: vec![foundation],
        file: None,
        cache_file: args.cache_file.clone(),
    })
}

/// The configuration from the single-foundation flags or the `--config` file (see
/// [`Source`]); `--demo` goes through [`demo`]. Single-foundation secrets come from
/// `--cf-password-file` or the `CF_PASSWORD` value itself. `env` is injected so tests need not
/// touch the process environment.
pub fn from_args(
    args: &ConnectionArgs,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    from_source(args, Source::of(args)?, env)
}

/// [`from_args`], for the flags' `source` found already.
pub fn from_source(
    args: &ConnectionArgs,
    source: Source,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    match source {
        Source::File(path) => {
            let foundations = file::load(&path)?;
            return Ok(Config {
                foundations,
                file: Some(path),
                cache_file: args.cache_file.clone(),
            });
        }
        Source::Demo => {
            return Err(ConfigError::invalid(
                "--demo",
                "needs its simulator running first (see cli::demo)",
            ))
        }
        Source::Flags => {}
    }
    Ok(Config {
        foundations: vec![flags_foundation(args, env)?],
        file: None,
        cache_file: args.cache_file.clone(),
    })
}

/// The one foundation the single-foundation flags describe.
fn flags_foundation(
    args: &ConnectionArgs,
    env: impl Fn(&str) -> Option<String>,
) -> Result<FoundationConfig, ConfigError> {
    let tuning = Tuning::from_args(args)?;

    let api = args.cf_api_url.as_deref().ok_or_else(|| {
        ConfigError::invalid(
            "--cf-api-url",
            "required (or CF_API_URL); use --demo to try the exporter without a Cloud Foundry account",
        )
    })?;
    let api_url = parse_url("--cf-api-url", api)?;
    let uaa_url = args
        .cf_uaa_url
        .as_deref()
        .map(|u| parse_url("--cf-uaa-url", u))
        .transpose()?;

    let password = match (&args.cf_password_file, env("CF_PASSWORD")) {
        (Some(path), _) => Some(SecretSource::File(path.clone())),
        (None, Some(_)) => Some(SecretSource::Env("CF_PASSWORD".to_owned())),
        (None, None) => None,
    };
    let grant = match (&args.cf_username, password) {
        (Some(username), Some(password)) => {
            check_secret("--cf-password-file", &password)?;
            Grant::Password {
                username: username.clone(),
                password,
            }
        }
        (Some(_), None) => {
            return Err(ConfigError::invalid(
                "--cf-password-file",
                "a password is required with --cf-username (or set CF_PASSWORD)",
            ))
        }
        (None, Some(_)) => {
            return Err(ConfigError::invalid(
                "--cf-username",
                "a password was given but no username; set --cf-username (or CF_USERNAME)",
            ))
        }
        (None, None) => Grant::ClientCredentials,
    };
    let client_secret = match (&args.cf_client_secret_file, env("CF_CLIENT_SECRET")) {
        (Some(path), _) => Some(SecretSource::File(path.clone())),
        (None, Some(_)) => Some(SecretSource::Env("CF_CLIENT_SECRET".to_owned())),
        (None, None) => None,
    };
    if let Some(secret) = &client_secret {
        check_secret("--cf-client-secret-file", secret)?;
    }
    if let Some(ca) = &args.cf_ca_file {
        check_readable("--cf-ca-file", ca)?;
    }
    let mut foundation = FoundationConfig {
        name: args
            .foundation
            .clone()
            .unwrap_or_else(|| default_foundation_name(&api_url)),
        api_url,
        uaa_url,
        grant,
        client_id: args.cf_client_id.clone(),
        client_secret,
        origin: args.cf_origin.clone().filter(|o| !o.is_empty()),
        service_plans: Vec::new(),
        metadata_labels: Vec::new(),
        lead_time_annotation: None,
        rotation: RotationConfig::default(),
        refresh_interval: DEFAULT_REFRESH_INTERVAL,
        full_refresh_interval: DEFAULT_FULL_REFRESH_INTERVAL,
        details_concurrency: DEFAULT_DETAILS_CONCURRENCY,
        tls: TlsOptions {
            ca_file: args.cf_ca_file.clone(),
            skip_verify: args.cf_skip_tls_verify,
            allow_http_login: args.cf_allow_http_login,
        },
        http: HttpOptions::default(),
    };
    tuning.apply(&mut foundation);
    Ok(foundation)
}
