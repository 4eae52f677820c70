//! The flags (and their environment variables) turned into a validated [`Config`]: which
//! source the configuration comes from, and the single-foundation and demo configurations.

use std::path::PathBuf;

use super::ConnectionArgs;
use crate::config::file;
use crate::config::{
    check_interval, clean_plans, default_foundation_name, lead_time_annotation,
    metadata_labels, parse_url, successor_annotation, successor_name_suffix, Config, ConfigError,
    DemoTarget, FoundationConfig, FoundationDraft, LoginWording, SecretSource, TlsOptions,
};

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

/// How the flags word an incomplete login and name the CA file.
const FLAGS_LOGIN: LoginWording = LoginWording {
    no_password: (
        "--cf-password-file",
        "a password is required with --cf-username (or set CF_PASSWORD)",
    ),
    no_username: (
        Some("--cf-username"),
        "a password was given but no username; set --cf-username (or CF_USERNAME)",
    ),
    ca_file: "--cf-ca-file",
};

/// Puts the flags that tune polling into `draft`: shared by the flags and the demo, so both
/// are checked by the same rules as the config file.
fn tune(args: &ConnectionArgs, draft: &mut FoundationDraft) -> Result<(), ConfigError> {
    draft.service_plans = clean_plans(&args.service_plans);
    draft.metadata_labels = metadata_labels(
        "--metadata-labels",
        args.metadata_labels.as_deref().unwrap_or_default(),
    )?;
    draft.lead_time_annotation = lead_time_annotation(
        "--lead-time-annotation",
        args.lead_time_annotation.as_deref().unwrap_or_default(),
    )?;
    draft.successor_name_suffix = (args.successor_name_suffix.as_deref())
        .map(|text| successor_name_suffix("--successor-name-suffix", text))
        .transpose()?;
    draft.successor_annotation = successor_annotation(
        "--successor-annotation",
        args.successor_annotation.as_deref().unwrap_or_default(),
    )?;
    draft.refresh_interval = Some(check_interval("--refresh-interval", args.refresh_interval)?);
    draft.full_refresh_interval = Some(check_interval(
        "--full-refresh-interval",
        args.full_refresh_interval,
    )?);
    draft.details_concurrency = Some(args.details_concurrency);
    Ok(())
}

/// The configuration of `--demo`: one foundation named `demo` on the simulator at `target`,
/// tuned by the same flags (and checked by the same rules) as a real one.
/// The caller has found the flags' [`Source`] to be [`Source::Demo`].
pub fn demo(args: &ConnectionArgs, target: &DemoTarget) -> Result<Config, ConfigError> {
    let mut draft = target.draft("demo");
    tune(args, &mut draft)?;
    if args.metadata_labels.is_none() {
        draft.metadata_labels = metadata_labels("--metadata-labels", &target.metadata_labels)?;
    }
    if args.lead_time_annotation.is_none() {
        draft.lead_time_annotation = (target.lead_time_annotation.as_deref())
            .map(|key| lead_time_annotation("--lead-time-annotation", key))
            .transpose()?
            .flatten();
    }
    if args.successor_annotation.is_none() {
        draft.successor_annotation = (target.successor_annotation.as_deref())
            .map(|key| successor_annotation("--successor-annotation", key))
            .transpose()?
            .flatten();
    }
    Ok(Config {
        foundations: vec![draft.build()?],
        file: None,
        cache_file: args.cache_file.clone(),
    })
}

/// The configuration from the single-foundation flags or the `--config` file, for the flags'
/// `source` ([`Source::of`]); `--demo` goes through [`demo`]. Single-foundation secrets come
/// from `--cf-password-file` or the `CF_PASSWORD` value itself. `env` is injected so tests need
/// not touch the process environment.
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
    let api = args.cf_api_url.as_deref().ok_or_else(|| {
        ConfigError::invalid(
            "--cf-api-url",
            "required (or CF_API_URL); use --demo to try the exporter without a Cloud Foundry account",
        )
    })?;
    let api_url = parse_url("--cf-api-url", api)?;
    let name = (args.foundation.clone()).unwrap_or_else(|| default_foundation_name(&api_url));
    let mut draft = FoundationDraft::new(name, api_url, &FLAGS_LOGIN);
    tune(args, &mut draft)?;
    draft.uaa_url = (args.cf_uaa_url.as_deref())
        .map(|u| parse_url("--cf-uaa-url", u))
        .transpose()?;
    draft.username = args.cf_username.clone();
    draft.password = secret_flag(&args.cf_password_file, "CF_PASSWORD", &env)
        .map(|secret| ("--cf-password-file", secret));
    draft.client_id = Some(args.cf_client_id.clone());
    draft.client_secret = secret_flag(&args.cf_client_secret_file, "CF_CLIENT_SECRET", &env)
        .map(|secret| ("--cf-client-secret-file", secret));
    draft.origin = args.cf_origin.clone();
    draft.tls = TlsOptions {
        ca_file: args.cf_ca_file.clone(),
        skip_verify: args.cf_skip_tls_verify,
        allow_http_login: args.cf_allow_http_login,
    };
    draft.build()
}

/// A secret from its file flag, else from the environment variable holding the value itself.
fn secret_flag(
    file: &Option<PathBuf>,
    var: &str,
    env: impl Fn(&str) -> Option<String>,
) -> Option<SecretSource> {
    match (file, env(var)) {
        (Some(path), _) => Some(SecretSource::File(path.clone())),
        (None, Some(_)) => Some(SecretSource::Env(var.to_owned())),
        (None, None) => None,
    }
}
