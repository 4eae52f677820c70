//! The one way a [`FoundationConfig`] is made. Each source (the single-foundation flags and
//! their environment variables, a `[[foundation]]` of the config file, the demo) parses its own
//! values, naming its own fields in errors, into a [`FoundationDraft`]; [`FoundationDraft::build`]
//! applies the login rules and the defaults, each defined once in [`super`].

use std::num::NonZeroUsize;
use std::time::Duration;

use url::Url;

use super::{
    check_readable, check_secret, ConfigError, FoundationConfig, Grant, HttpOptions, MetadataLabel, SecretSource,
    TlsOptions, DEFAULT_CLIENT_ID, DEFAULT_DETAILS_CONCURRENCY, DEFAULT_FULL_REFRESH_INTERVAL,
    DEFAULT_REFRESH_INTERVAL,
};
use crate::rotation::{NameScheme, RotationConfig};

/// How a source words the two incomplete logins and names its CA file: each source names its
/// own settings.
#[derive(Debug)]
pub(crate) struct LoginWording {
    /// Field and message of a username without a password.
    pub(crate) no_password: (&'static str, &'static str),
    /// Field (`None`: the password's own) and message of a password without a username.
    pub(crate) no_username: (Option<&'static str>, &'static str),
    /// How the source names the CA file in errors.
    pub(crate) ca_file: &'static str,
}

/// A foundation as a source describes it, checked field by field but not yet as a whole. `None`
/// (or empty) is "not said": [`FoundationDraft::build`] puts the default there.
#[derive(Debug)]
pub(crate) struct FoundationDraft {
    pub(crate) name: String,
    pub(crate) api_url: Url,
    pub(crate) uaa_url: Option<Url>,
    pub(crate) username: Option<String>,
    /// With the field it is named by in errors.
    pub(crate) password: Option<(&'static str, SecretSource)>,
    pub(crate) client_id: Option<String>,
    /// With the field it is named by in errors.
    pub(crate) client_secret: Option<(&'static str, SecretSource)>,
    /// Blank is none.
    pub(crate) origin: Option<String>,
    pub(crate) service_plans: Vec<String>,
    pub(crate) metadata_labels: Vec<MetadataLabel>,
    /// Empty is off.
    pub(crate) lead_time_annotation: Option<String>,
    pub(crate) successor_name_suffix: Option<NameScheme>,
    /// Empty is off.
    pub(crate) successor_annotation: Option<String>,
    pub(crate) refresh_interval: Option<Duration>,
    pub(crate) full_refresh_interval: Option<Duration>,
    pub(crate) details_concurrency: Option<NonZeroUsize>,
    pub(crate) tls: TlsOptions,
    pub(crate) wording: &'static LoginWording,
}

impl FoundationDraft {
    /// A draft of `name` at `api_url` that says nothing else.
    pub(crate) fn new(name: String, api_url: Url, wording: &'static LoginWording) -> Self {
        FoundationDraft {
            name,
            api_url,
            uaa_url: None,
            username: None,
            password: None,
            client_id: None,
            client_secret: None,
            origin: None,
            service_plans: Vec::new(),
            metadata_labels: Vec::new(),
            lead_time_annotation: None,
            successor_name_suffix: None,
            successor_annotation: None,
            refresh_interval: None,
            full_refresh_interval: None,
            details_concurrency: None,
            tls: TlsOptions::default(),
            wording,
        }
    }

    /// The validated foundation: a username and a password come together (else the password
    /// grant cannot log in), and both secrets and the CA file can be read now, so a typo fails
    /// at start, not at the first login.
    pub(crate) fn build(self) -> Result<FoundationConfig, ConfigError> {
        let grant = match (self.username, self.password) {
            (Some(username), Some((field, password))) => {
                check_secret(field, &password)?;
                Grant::Password { username, password }
            }
            (Some(_), None) => {
                let (field, message) = self.wording.no_password;
                return Err(ConfigError::invalid(field, message));
            }
            (None, Some((password_field, _))) => {
                let (field, message) = self.wording.no_username;
                return Err(ConfigError::invalid(
                    field.unwrap_or(password_field),
                    message,
                ));
            }
            (None, None) => Grant::ClientCredentials,
        };
        if let Some((field, secret)) = &self.client_secret {
            check_secret(field, secret)?;
        }
        if let Some(ca) = &self.tls.ca_file {
            check_readable(self.wording.ca_file, ca)?;
        }
        Ok(FoundationConfig {
            name: self.name,
            api_url: self.api_url,
            uaa_url: self.uaa_url,
            grant,
            client_id: self
                .client_id
                .unwrap_or_else(|| DEFAULT_CLIENT_ID.to_owned()),
            client_secret: self.client_secret.map(|(_, s)| s),
            origin: self.origin.filter(|o| !o.trim().is_empty()),
            service_plans: self.service_plans,
            metadata_labels: self.metadata_labels,
            lead_time_annotation: self.lead_time_annotation.filter(|k| !k.is_empty()),
            rotation: RotationConfig {
                names: self.successor_name_suffix.unwrap_or_default(),
                successor_annotation: self.successor_annotation.filter(|k| !k.is_empty()),
            },
            refresh_interval: self.refresh_interval.unwrap_or(DEFAULT_REFRESH_INTERVAL),
            full_refresh_interval: self
                .full_refresh_interval
                .unwrap_or(DEFAULT_FULL_REFRESH_INTERVAL),
            details_concurrency: self
                .details_concurrency
                .unwrap_or(DEFAULT_DETAILS_CONCURRENCY),
            tls: self.tls,
            http: HttpOptions::default(),
        })
    }
}
