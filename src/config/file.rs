//! The `--config` TOML file: several foundations in one process.
//!
//! Owns reading, defaulting and validating the file; it returns the same [`FoundationConfig`]s
//! the single-foundation flags produce, so nothing downstream knows where a foundation came
//! from. Top-level keys (`refresh_interval`, `full_refresh_interval`, `service_plans`,
//! `metadata_labels`, `lead_time_annotation`, `successor_name_suffix`, `successor_annotation`,
//! `details_concurrency`, `client_id`, `origin`, `ca_file`, `skip_tls_verify`,
//! `allow_http_login`) are defaults that each `[[foundation]]`
//! may override; credentials, `api_url`, `uaa_url` and `name` belong to a foundation only.
//!
//! Every error is a [`ConfigError::File`] whose message names the foundation (by `name`, or by
//! its 1-based position when it has none) and the field, e.g.
//! `/etc/x.toml: foundation "eu10": unknown key "pasword" (did you mean "password"?)`.
//! The file is checked whole before anything is returned, so a SIGHUP reload of a bad file can
//! keep the running configuration. Secrets are checked for readability now but kept as
//! [`SecretSource`]s and read again at each login, so rotating a password file needs no restart.
//! Relative paths (`password_file`, `client_secret_file`, `ca_file`) are taken relative to the
//! directory of the config file, not the working directory. Pure apart from reading the file and
//! the secrets; no global state.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_aux::serde_introspection::serde_introspect;

use super::{
    check_interval, check_readable, default_foundation_name, lead_time_annotation, metadata_labels,
    parse_url, successor_annotation, successor_name_suffix, ConfigError, FoundationConfig,
    FoundationDraft, LoginWording, MetadataLabel, SecretSource, TlsOptions,
};

/// Settings a foundation may set itself or take from the top level, checked as they are read
/// (a wrong value is an error naming its key). What is not set is `None`: then the top level's
/// value, then the built-in default applies. Unknown keys are refused by [`check_keys`] before
/// serde sees the table.
#[derive(Debug, Default, Clone, Deserialize)]
struct Shared {
    #[serde(default, deserialize_with = "checked::interval")]
    refresh_interval: Option<Duration>,
    #[serde(default, deserialize_with = "checked::interval")]
    full_refresh_interval: Option<Duration>,
    #[serde(default, deserialize_with = "checked::plans")]
    service_plans: Option<Vec<String>>,
    #[serde(default, deserialize_with = "checked::metadata_labels")]
    metadata_labels: Option<Vec<MetadataLabel>>,
    /// `Some("")`: explicitly off (a foundation's empty value overrides the top level's).
    #[serde(default, deserialize_with = "checked::lead_time_annotation")]
    lead_time_annotation: Option<String>,
    #[serde(default, deserialize_with = "checked::name_suffix")]
    successor_name_suffix: Option<crate::rotation::NameScheme>,
    /// `Some("")`: explicitly off, as `lead_time_annotation`.
    #[serde(default, deserialize_with = "checked::successor_annotation")]
    successor_annotation: Option<String>,
    #[serde(default, deserialize_with = "checked::concurrency")]
    details_concurrency: Option<NonZeroUsize>,
    #[serde(default, deserialize_with = "checked::non_empty")]
    client_id: Option<String>,
    origin: Option<String>,
    /// Relative to the config file's directory; checked for readability by [`Shared::resolve`].
    ca_file: Option<PathBuf>,
    skip_tls_verify: Option<bool>,
    allow_http_login: Option<bool>,
}

impl Shared {
    /// Anchors `ca_file` at the config file's directory ([`FoundationDraft::build`] checks
    /// that it can be read).
    fn resolve(mut self, base: &Path) -> Self {
        self.ca_file = self.ca_file.take().map(|ca| base.join(ca));
        self
    }

    /// These settings, with `defaults` where they say nothing.
    fn or(self, defaults: &Shared) -> Shared {
        let d = defaults.clone();
        Shared {
            refresh_interval: self.refresh_interval.or(d.refresh_interval),
            full_refresh_interval: self.full_refresh_interval.or(d.full_refresh_interval),
            service_plans: self.service_plans.or(d.service_plans),
            metadata_labels: self.metadata_labels.or(d.metadata_labels),
            lead_time_annotation: self.lead_time_annotation.or(d.lead_time_annotation),
            successor_name_suffix: self.successor_name_suffix.or(d.successor_name_suffix),
            successor_annotation: self.successor_annotation.or(d.successor_annotation),
            details_concurrency: self.details_concurrency.or(d.details_concurrency),
            client_id: self.client_id.or(d.client_id),
            origin: self.origin.or(d.origin),
            ca_file: self.ca_file.or(d.ca_file),
            skip_tls_verify: self.skip_tls_verify.or(d.skip_tls_verify),
            allow_http_login: self.allow_http_login.or(d.allow_http_login),
        }
    }
}

/// Deserializers that check a value as it is read; their messages get the key in front.
mod checked {
    use std::num::NonZeroUsize;
    use std::time::Duration;

    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer};

    use super::super::{clean_plans, ConfigError, MetadataLabel};

    fn message(e: ConfigError) -> String {
        match e {
            ConfigError::Invalid { message, .. } => message,
            other => other.to_string(),
        }
    }

    pub(super) fn interval<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|v| super::parse_interval("", &v).map_err(|e| D::Error::custom(message(e))))
            .transpose()
    }

    pub(super) fn plans<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
        Ok(Option::<Vec<String>>::deserialize(d)?.map(|p| clean_plans(&p)))
    }

    pub(super) fn metadata_labels<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Vec<MetadataLabel>>, D::Error> {
        Option::<Vec<String>>::deserialize(d)?
            .map(|keys| super::metadata_labels("", &keys).map_err(|e| D::Error::custom(message(e))))
            .transpose()
    }

    pub(super) fn lead_time_annotation<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<String>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|key| {
                super::lead_time_annotation("", &key)
                    .map(Option::unwrap_or_default)
                    .map_err(|e| D::Error::custom(message(e)))
            })
            .transpose()
    }

    pub(super) fn name_suffix<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<crate::rotation::NameScheme>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|text| {
                super::successor_name_suffix("", &text).map_err(|e| D::Error::custom(message(e)))
            })
            .transpose()
    }

    pub(super) fn successor_annotation<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<String>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|key| {
                super::successor_annotation("", &key)
                    .map(Option::unwrap_or_default)
                    .map_err(|e| D::Error::custom(message(e)))
            })
            .transpose()
    }

    pub(super) fn concurrency<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<NonZeroUsize>, D::Error> {
        Option::<i64>::deserialize(d)?
            .map(|n| super::parse_concurrency("", n).map_err(|e| D::Error::custom(message(e))))
            .transpose()
    }

    pub(super) fn non_empty<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|v| super::non_empty("", v).map_err(|e| D::Error::custom(message(e))))
            .transpose()
    }
}

/// One `[[foundation]]` table as written in the file: its own keys and the [`Shared`] ones.
#[derive(Debug, Default, Deserialize)]
struct RawFoundation {
    #[serde(flatten)]
    own: OwnKeys,
    #[serde(flatten)]
    shared: Shared,
}

/// The keys only a `[[foundation]]` table has. A struct of their own, not fields of
/// [`RawFoundation`], so that [`foundation_keys`] can read their names (serde does not list
/// the fields of a struct that flattens another).
#[derive(Debug, Default, Deserialize)]
struct OwnKeys {
    name: Option<String>,
    api_url: Option<String>,
    uaa_url: Option<String>,
    username: Option<String>,
    password_file: Option<PathBuf>,
    password_env: Option<String>,
    password: Option<SecretString>,
    client_secret_file: Option<PathBuf>,
    client_secret_env: Option<String>,
    client_secret: Option<SecretString>,
}

/// Keys allowed at the top level, besides `foundation`: [`Shared`]'s fields, in their order.
fn top_keys() -> &'static [&'static str] {
    serde_introspect::<Shared>()
}

/// Keys only a `[[foundation]]` table has, besides the [`Shared`] ones: [`OwnKeys`]'s fields.
fn foundation_keys() -> &'static [&'static str] {
    serde_introspect::<OwnKeys>()
}

/// Reads and validates a config file.
pub fn load(path: &Path) -> Result<Vec<FoundationConfig>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
        path: path.to_owned(),
        message: format!("cannot read the config file: {e}"),
    })?;
    parse(&text, path)
}

/// Validates config-file text; `path` names the file in errors and anchors relative paths.
/// Secret files, environment variables and `ca_file` are checked for readability.
pub fn parse(text: &str, path: &Path) -> Result<Vec<FoundationConfig>, ConfigError> {
    let in_file = |message: String| ConfigError::File {
        path: path.to_owned(),
        message,
    };
    let base = path.parent().unwrap_or_else(|| Path::new(""));

    let mut top: toml::Table = toml::from_str(text).map_err(|e| in_file(syntax_error(text, &e)))?;
    check_secret_types(text).map_err(in_file)?;
    let tables = take_foundation_tables(&mut top).map_err(|e| in_file(e.to_string()))?;

    check_keys(&top, top_keys(), true).map_err(in_file)?;
    let defaults: Shared = deserialize_table(top).map_err(in_file)?;
    let defaults = defaults.resolve(base);
    // Checked here too, so that its error names no foundation.
    if let Some(ca) = &defaults.ca_file {
        check_readable("ca_file", ca).map_err(|e| in_file(e.to_string()))?;
    }

    if tables.is_empty() {
        return Err(in_file(
            "no foundations: add at least one [[foundation]] table with name and api_url".into(),
        ));
    }

    let mut foundations: Vec<FoundationConfig> = Vec::with_capacity(tables.len());
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (index, table) in tables.into_iter().enumerate() {
        let number = index + 1;
        let label = foundation_label(&table, number);
        let in_foundation = |message: String| in_file(format!("foundation {label}: {message}"));

        let allowed: Vec<&str> = foundation_keys().iter().chain(top_keys()).copied().collect();
        check_keys(&table, &allowed, false).map_err(in_foundation)?;
        let raw: RawFoundation = deserialize_table(table).map_err(in_foundation)?;
        let foundation = build_foundation(raw, &defaults, base, path)
            .map_err(|e| in_foundation(e.to_string()))?;
        if let Some(first) = seen.insert(foundation.name.clone(), number) {
            return Err(in_file(format!(
                "foundation {label} (#{number}): name: \"{}\" is already used by foundation #{first}; \
                 every foundation needs its own name (it is the `foundation` label)",
                foundation.name
            )));
        }
        foundations.push(foundation);
    }
    Ok(foundations)
}

/// One foundation's draft, with the file's defaults where it says nothing, built by
/// [`FoundationDraft::build`]. Errors are [`ConfigError::Invalid`] naming the field; the caller
/// adds the file and the foundation.
fn build_foundation(
    raw: RawFoundation,
    defaults: &Shared,
    base: &Path,
    file: &Path,
) -> Result<FoundationConfig, ConfigError> {
    let RawFoundation { own, shared } = raw;
    let api_url = match own.api_url.as_deref() {
        Some(url) => parse_url("api_url", url)?,
        None => {
            return Err(ConfigError::invalid(
                "api_url",
                "required: the Cloud Foundry API endpoint, e.g. \"https://api.cf.eu10.hana.ondemand.com\"",
            ))
        }
    };
    let name = foundation_name(own.name, &api_url)?;
    let uaa_url = own
        .uaa_url
        .as_deref()
        .map(|u| parse_url("uaa_url", u))
        .transpose()?;

    let mut draft = FoundationDraft::new(name, api_url, &FILE_LOGIN);
    draft.uaa_url = uaa_url;
    draft.password = secret_source(
        "password",
        own.password_file.map(|p| base.join(p)),
        own.password_env,
        own.password,
        &draft.name,
        file,
    )?;
    draft.username = (own.username)
        .map(|username| non_empty("username", username))
        .transpose()?;
    draft.client_secret = secret_source(
        "client_secret",
        own.client_secret_file.map(|p| base.join(p)),
        own.client_secret_env,
        own.client_secret,
        &draft.name,
        file,
    )?;

    let settings = shared.resolve(base).or(defaults);
    draft.client_id = settings.client_id;
    draft.origin = settings.origin;
    draft.service_plans = settings.service_plans.unwrap_or_default();
    draft.metadata_labels = settings.metadata_labels.unwrap_or_default();
    draft.lead_time_annotation = settings.lead_time_annotation;
    draft.successor_name_suffix = settings.successor_name_suffix;
    draft.successor_annotation = settings.successor_annotation;
    draft.refresh_interval = settings.refresh_interval;
    draft.full_refresh_interval = settings.full_refresh_interval;
    draft.details_concurrency = settings.details_concurrency;
    draft.tls = TlsOptions {
        ca_file: settings.ca_file,
        skip_verify: settings.skip_tls_verify.unwrap_or_default(),
        allow_http_login: settings.allow_http_login.unwrap_or_default(),
    };
    draft.build()
}

/// How the file words an incomplete login and names the CA file.
const FILE_LOGIN: LoginWording = LoginWording {
    no_password: (
        "username",
        "set without a password; add password_file, password_env or password \
         (or remove username for the client-credentials grant)",
    ),
    no_username: (
        None,
        "a password was given without a username; add username \
         (or remove the password for the client-credentials grant)",
    ),
    ca_file: "ca_file",
};

/// A foundation's `name`: required, not empty.
fn foundation_name(name: Option<String>, api_url: &url::Url) -> Result<String, ConfigError> {
    match name {
        Some(name) if !name.trim().is_empty() => Ok(name.trim().to_owned()),
        Some(_) => Err(ConfigError::invalid("name", "must not be empty")),
        None => Err(ConfigError::invalid(
            "name",
            format!(
                "required: the value of the `foundation` label, e.g. name = \"{}\"",
                default_foundation_name(api_url)
            ),
        )),
    }
}

/// Picks the one source of a secret among `<what>_file`, `<what>_env` and inline `<what>`,
/// returning it with the name of the field it came from. An inline value is accepted with a
/// warning that names the foundation, never the value.
fn secret_source(
    what: &'static str,
    file: Option<PathBuf>,
    env: Option<String>,
    inline: Option<SecretString>,
    foundation: &str,
    config_file: &Path,
) -> Result<Option<(&'static str, SecretSource)>, ConfigError> {
    let (file_key, env_key) = match what {
        "password" => ("password_file", "password_env"),
        _ => ("client_secret_file", "client_secret_env"),
    };
    let given: Vec<&str> = [
        (file_key, file.is_some()),
        (env_key, env.is_some()),
        (what, inline.is_some()),
    ]
    .iter()
    .filter(|(_, set)| *set)
    .map(|(key, _)| *key)
    .collect();
    if given.len() > 1 {
        return Err(ConfigError::invalid(
            given[1],
            format!(
                "cannot be combined with {}; give the {} one way only ({file_key}, {env_key} or {what})",
                given[0],
                what.replace('_', " ")
            ),
        ));
    }
    if let Some(path) = file {
        return Ok(Some((file_key, SecretSource::File(path))));
    }
    if let Some(var) = env {
        return Ok(Some((env_key, SecretSource::Env(var))));
    }
    if let Some(value) = inline {
        if value.expose_secret().is_empty() && what == "password" {
            return Err(ConfigError::invalid(what, "must not be empty"));
        }
        tracing::warn!(
            foundation,
            file = %config_file.display(),
            "{what} is written inline in the config file; prefer {file_key} or {env_key} \
             so the secret stays out of the file"
        );
        return Ok(Some((what, SecretSource::Inline(value))));
    }
    Ok(None)
}

/// Removes the `foundation` array from the top-level table and returns its tables.
fn take_foundation_tables(top: &mut toml::Table) -> Result<Vec<toml::Table>, ConfigError> {
    let Some(value) = top.remove("foundation") else {
        return Ok(Vec::new());
    };
    let not_tables = || {
        ConfigError::invalid(
            "foundation",
            "must be an array of tables: write each foundation as [[foundation]]",
        )
    };
    match value {
        toml::Value::Array(items) => items
            .into_iter()
            .map(|item| match item {
                toml::Value::Table(t) => Ok(t),
                _ => Err(not_tables()),
            })
            .collect(),
        _ => Err(not_tables()),
    }
}

/// Refuses keys that are not in `allowed`, suggesting the closest known key. At the top level a
/// foundation-only key (`api_url`, `username`, ...) gets a hint to move it.
fn check_keys(table: &toml::Table, allowed: &[&str], top_level: bool) -> Result<(), String> {
    let Some(key) = table.keys().find(|k| !allowed.contains(&k.as_str())) else {
        return Ok(());
    };
    let mut message = format!("unknown key \"{key}\"");
    if top_level {
        message.push_str(" at the top level");
    }
    if top_level && foundation_keys().contains(&key.as_str()) {
        message.push_str(": it belongs in a [[foundation]] table");
    } else if let Some(close) = closest(key, allowed) {
        message.push_str(&format!(" (did you mean \"{close}\"?)"));
    }
    Err(message)
}

/// Deserializes a table whose keys are all known, naming the field whose value has the wrong
/// type. Each key is tried alone first (every field is optional) so the error can name it.
fn deserialize_table<T: DeserializeOwned>(table: toml::Table) -> Result<T, String> {
    for (key, value) in &table {
        let mut single = toml::Table::new();
        single.insert(key.clone(), value.clone());
        if let Err(e) = T::deserialize(toml::Value::Table(single)) {
            return Err(format!("{key}: {}", e.message()));
        }
    }
    T::deserialize(toml::Value::Table(table)).map_err(|e| e.message().to_owned())
}

/// How a foundation is named in errors: `"eu10"` if it has a name, else `#2`.
fn foundation_label(table: &toml::Table, number: usize) -> String {
    match table.get("name").and_then(|v| v.as_str()) {
        Some(name) if !name.trim().is_empty() => format!("\"{}\"", name.trim()),
        _ => format!("#{number}"),
    }
}

fn parse_interval(field: &str, value: &str) -> Result<Duration, ConfigError> {
    let interval = humantime::parse_duration(value.trim()).map_err(|e| {
        ConfigError::invalid(
            field,
            format!("\"{value}\" is not a duration ({e}); write e.g. \"5m\" or \"1h30m\""),
        )
    })?;
    check_interval(field, interval)
}

fn parse_concurrency(field: &str, value: i64) -> Result<NonZeroUsize, ConfigError> {
    usize::try_from(value)
        .ok()
        .and_then(NonZeroUsize::new)
        .ok_or_else(|| ConfigError::invalid(field, format!("must be at least 1, not {value}")))
}

fn non_empty(field: &str, value: String) -> Result<String, ConfigError> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(ConfigError::invalid(field, "must not be empty"));
    }
    Ok(trimmed.to_owned())
}

/// A syntax error as `line L, column C: <fixed message>`. Never toml's own rendering: it quotes
/// the offending line, which may hold an inline secret (`password = "s3cr3t\q"`).
fn syntax_error(text: &str, e: &toml::de::Error) -> String {
    let what = e.message();
    let message = if what.contains("duplicate key") {
        "a key is set twice in the same table; keep one"
    } else if what.contains("escape") {
        "invalid escape sequence in a \"...\" string; write text with backslashes in '...' quotes"
    } else if what.contains("string") || what.contains("quote") {
        "invalid value: text needs quotes (\"...\" or '...'), closed on the same line"
    } else {
        "not valid TOML here"
    };
    match e.span() {
        Some(span) => {
            let (line, column) = line_column(text, span.start);
            format!("line {line}, column {column}: {message}")
        }
        None => message.to_owned(),
    }
}

/// 1-based line and column (in characters) of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[start..].chars().count() + 1)
}

/// The secret fields of one `[[foundation]]`, with where their values are written.
#[derive(Deserialize)]
struct SecretSpans {
    password: Option<toml::Spanned<toml::Value>>,
    client_secret: Option<toml::Spanned<toml::Value>>,
}

#[derive(Deserialize)]
struct SecretSpansFile {
    #[serde(default)]
    foundation: Vec<SecretSpans>,
}

/// An inline secret must be a string. Checked with positions before anything else reads the
/// values, because serde's type error would quote the value (``invalid type: integer
/// `12345678` ``). A file whose shape is wrong otherwise is left to the checks that follow.
fn check_secret_types(text: &str) -> Result<(), String> {
    let Ok(file) = toml::from_str::<SecretSpansFile>(text) else {
        return Ok(());
    };
    for (index, foundation) in file.foundation.iter().enumerate() {
        for (field, value) in [
            ("password", &foundation.password),
            ("client_secret", &foundation.client_secret),
        ] {
            let Some(value) = value.as_ref().filter(|v| !v.get_ref().is_str()) else {
                continue;
            };
            let (line, column) = line_column(text, value.span().start);
            return Err(format!(
                "line {line}, column {column}: foundation #{}: {field}: must be a string in quotes; \
                 prefer {field}_file or {field}_env",
                index + 1
            ));
        }
    }
    Ok(())
}

/// The allowed key nearest to a misspelt one, if it is plausibly a typo.
fn closest<'a>(key: &str, allowed: &[&'a str]) -> Option<&'a str> {
    allowed
        .iter()
        .map(|candidate| (edit_distance(key, candidate), *candidate))
        .filter(|(distance, _)| *distance <= 2)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

/// Levenshtein distance, small strings only.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_counts_single_edits() {
        assert_eq!(edit_distance("pasword", "password"), 1);
        assert_eq!(edit_distance("api_ulr", "api_url"), 2);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(
            closest("refresh_intervall", top_keys()),
            Some("refresh_interval")
        );
        assert_eq!(closest("colour", top_keys()), None);
    }

    #[test]
    fn allowed_keys_are_the_fields_of_the_structs() {
        // serde lists no fields for a struct that flattens another: were `Shared` or `OwnKeys`
        // to flatten one, their lists would be empty and every key refused.
        let (top, own) = (top_keys(), foundation_keys());
        assert_eq!(
            (top.first(), top.last()),
            (Some(&"refresh_interval"), Some(&"allow_http_login"))
        );
        assert_eq!(
            (own.first(), own.last()),
            (Some(&"name"), Some(&"client_secret"))
        );
        assert!(top.iter().all(|key| !own.contains(key)), "{top:?} {own:?}");
    }

    const A: &str = "[[foundation]]\nname = \"a\"\napi_url = \"https://api.a.example\"\n";

    #[test]
    fn full_refresh_interval_defaults_to_a_day_and_is_overridable() {
        let path = Path::new("/etc/x.toml");
        let f = parse(A, path).unwrap();
        assert_eq!(f[0].full_refresh_interval, Duration::from_secs(24 * 3600));

        let text = format!(
            "full_refresh_interval = \"6h\"\n{A}{}",
            A.replace("\"a\"", "\"b\"").replace("api.a", "api.b")
                + "full_refresh_interval = \"30m\"\n"
        );
        let f = parse(&text, path).unwrap();
        assert_eq!(f[0].full_refresh_interval, Duration::from_secs(6 * 3600));
        assert_eq!(f[1].full_refresh_interval, Duration::from_secs(30 * 60));
    }

    #[test]
    fn full_refresh_interval_errors_name_the_field() {
        let path = Path::new("/etc/x.toml");
        let err = parse(&format!("{A}full_refresh_interval = \"daily\"\n"), path).unwrap_err();
        assert!(
            err.to_string().starts_with(
                "/etc/x.toml: foundation \"a\": full_refresh_interval: \"daily\" is not a duration"
            ),
            "{err}"
        );
        let err = parse(&format!("full_refresh_interval = \"0s\"\n{A}"), path).unwrap_err();
        assert_eq!(
            err.to_string(),
            "/etc/x.toml: full_refresh_interval: must be at least 1s"
        );
    }

    /// Broken files with an inline secret in them: (what, text, the fixed message).
    pub(crate) const BROKEN: [(&str, &str, &str); 5] = [
        (
            "a backslash in an inline password",
            "[[foundation]]\nname = \"a\"\napi_url = \"https://api.a.example\"\nusername = \"u\"\npassword = \"s3cr3t-MARKER\\q\"\n",
            "line 5, column 27: invalid escape sequence",
        ),
        (
            "a bare-number password",
            "[[foundation]]\nname = \"a\"\napi_url = \"https://api.a.example\"\nusername = \"u\"\npassword = 90817263545\n",
            "line 5, column 12: foundation #1: password: must be a string in quotes",
        ),
        (
            "a bare-number client secret",
            "[[foundation]]\nname = \"a\"\napi_url = \"https://api.a.example\"\nclient_secret = 90817263545\n",
            "line 4, column 17: foundation #1: client_secret: must be a string in quotes",
        ),
        (
            "a duplicated password",
            "[[foundation]]\nname = \"a\"\napi_url = \"https://api.a.example\"\nusername = \"u\"\npassword = \"s3cr3t-MARKER\"\npassword = \"s3cr3t-MARKER\"\n",
            "line 6, column 1: a key is set twice",
        ),
        (
            "an unterminated password",
            "[[foundation]]\nname = \"a\"\napi_url = \"https://api.a.example\"\nusername = \"u\"\npassword = \"s3cr3t-MARKER\nrefresh_interval = \"5m\"\n",
            "line 5, column ",
        ),
    ];

    #[test]
    fn broken_files_with_a_secret_fail_with_a_place_and_a_fixed_message_never_the_secret() {
        for (what, text, expected) in BROKEN {
            let err = parse(text, Path::new("/etc/x.toml"))
                .unwrap_err()
                .to_string();
            assert!(
                err.starts_with(&format!("/etc/x.toml: {expected}")),
                "{what}: {err}"
            );
            for secret in ["MARKER", "90817263545", "s3cr3t"] {
                assert!(!err.contains(secret), "{what}: {err}");
            }
        }
    }
}
