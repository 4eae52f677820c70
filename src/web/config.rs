//! The web config file (`--web-config-file`): parse → defaults → validate, with errors that name
//! the file and the field.
//!
//! The format is the Prometheus exporter-toolkit's (`docs/web-configuration.md` there), so one
//! file works for this exporter and for the Go exporters beside it. A key this exporter does not
//! implement is an error, never silently ignored: a security setting the operator wrote down must
//! either take effect or stop the start. This module only reads YAML; it opens no certificate
//! (that is [`super::tls`]).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use axum::http::{HeaderName, HeaderValue};
use serde::Deserialize;

/// A web config file that cannot be used.
///
/// Displays as `web config FILE: FIELD: what is wrong`, e.g.
/// `web config /etc/web.yml: tls_server_config.client_auth_type: "Maybe" is not one of ...`.
#[derive(Debug, thiserror::Error)]
#[error("web config {}: {problem}", path.display())]
pub struct WebConfigError {
    pub path: PathBuf,
    pub problem: Problem,
}

/// What is wrong with a web config file.
#[derive(Debug, thiserror::Error)]
pub enum Problem {
    /// The file itself cannot be read.
    #[error("cannot read the file: {0}")]
    Read(std::io::Error),
    /// Not YAML, a value of the wrong type, or an unknown key (the parser names the key, the line
    /// and the column).
    #[error("{0}")]
    Syntax(String),
    /// A field holds a value that cannot work.
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
    /// A key of the exporter-toolkit format this exporter does not implement.
    #[error("{field}: not supported by cf-service-key-exporter ({reason}); remove it")]
    Unsupported { field: String, reason: &'static str },
}

impl Problem {
    pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Problem {
        Problem::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// A validated web config.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WebConfig {
    /// `None`: plain HTTP.
    pub tls: Option<TlsSettings>,
    /// Headers added to every response (`http_server_config.headers`).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// User → bcrypt hash. Empty: no basic auth.
    pub users: BTreeMap<String, PasswordHash>,
}

/// `tls_server_config`, with relative paths already joined to the config file's directory.
#[derive(Debug, Clone, PartialEq)]
pub struct TlsSettings {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub client_auth: ClientAuth,
    pub client_ca_file: Option<PathBuf>,
    pub min_version: TlsVersion,
    pub max_version: TlsVersion,
    /// rustls' `ignore_client_order`; the toolkit's default is `true`.
    pub prefer_server_cipher_suites: bool,
}

impl WebConfig {
    /// How `new` protects the endpoints less than `self` does, if it does: basic auth removed,
    /// client-certificate checking lowered, or a lower TLS minimum. `None`: no weaker.
    pub fn weakened_by(&self, new: &WebConfig) -> Option<&'static str> {
        if !self.users.is_empty() && new.users.is_empty() {
            return Some("it removes basic auth (basic_auth_users is empty)");
        }
        let (Some(old), Some(new)) = (&self.tls, &new.tls) else {
            return None;
        };
        if new.client_auth.strength() < old.client_auth.strength() {
            return Some("it lowers client-certificate checking (client_auth_type)");
        }
        if new.min_version < old.min_version {
            return Some("it lowers the TLS minimum version (min_version)");
        }
        None
    }
}

impl TlsSettings {
    /// The files a TLS config is built from, to notice when one of them is replaced.
    pub fn files(&self) -> Vec<PathBuf> {
        let mut files = vec![self.cert_file.clone(), self.key_file.clone()];
        files.extend(self.client_ca_file.clone());
        files
    }
}

/// `client_auth_type`, with Go's `crypto/tls` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    NoClientCert,
    /// Asks for a certificate, does not require or verify it.
    RequestClientCert,
    /// Requires a certificate, does not verify it.
    RequireAnyClientCert,
    /// Verifies a certificate against `client_ca_file` if the client sends one.
    VerifyClientCertIfGiven,
    /// Requires a certificate signed by `client_ca_file`: the one mTLS setting.
    RequireAndVerifyClientCert,
}

impl ClientAuth {
    const NAMES: [(&'static str, ClientAuth); 6] = [
        ("NoClientCert", ClientAuth::NoClientCert),
        ("RequestClientCert", ClientAuth::RequestClientCert),
        ("RequireAnyClientCert", ClientAuth::RequireAnyClientCert),
        // The toolkit still accepts this older name for RequireAnyClientCert.
        ("RequireClientCert", ClientAuth::RequireAnyClientCert),
        (
            "VerifyClientCertIfGiven",
            ClientAuth::VerifyClientCertIfGiven,
        ),
        (
            "RequireAndVerifyClientCert",
            ClientAuth::RequireAndVerifyClientCert,
        ),
    ];

    /// How much a policy demands of a client: a reload may not lower it unless allowed.
    pub fn strength(self) -> u8 {
        match self {
            ClientAuth::NoClientCert => 0,
            ClientAuth::RequestClientCert => 1,
            ClientAuth::RequireAnyClientCert => 2,
            ClientAuth::VerifyClientCertIfGiven => 3,
            ClientAuth::RequireAndVerifyClientCert => 4,
        }
    }

    /// Whether certificates are checked against `client_ca_file`.
    pub fn verifies(self) -> bool {
        matches!(
            self,
            ClientAuth::VerifyClientCertIfGiven | ClientAuth::RequireAndVerifyClientCert
        )
    }
}

/// `min_version` / `max_version`. rustls implements TLS 1.2 and 1.3 only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    Tls12,
    Tls13,
}

/// A bcrypt hash; `Debug` does not print it, so a config can be logged.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash(String);

impl PasswordHash {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash(<bcrypt>)")
    }
}

/// Reads and validates `path`. Relative file names inside are relative to `path`'s directory, as
/// in the toolkit. An empty file (or one of comments only) means "no TLS, no auth" when
/// `allow_empty`, else is an error (a reload: an empty file is more likely one being rewritten
/// than a wish to drop every protection).
pub fn load_as(path: &Path, allow_empty: bool) -> Result<WebConfig, WebConfigError> {
    let fail = |problem| WebConfigError {
        path: path.to_owned(),
        problem,
    };
    let text = std::fs::read_to_string(path).map_err(|e| fail(Problem::Read(e)))?;
    if !allow_empty && is_blank(&text) {
        return Err(fail(Problem::invalid(
            "(the whole file)",
            "empty on reload; refused (a file being rewritten would open the endpoints); \
             to serve without protection, restart with the empty file",
        )));
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    parse(&text, dir).map_err(fail)
}

/// A parser message with every quoted value (`invalid type: string "…"`) blanked: a password
/// pasted in the wrong place must not reach the log. Places and key names stay.
fn without_values(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut quoted = false;
    for c in message.chars() {
        match (c, quoted) {
            ('"', false) => {
                out.push_str("\"…");
                quoted = true;
            }
            ('"', true) => {
                out.push('"');
                quoted = false;
            }
            (_, true) => {}
            (c, false) => out.push(c),
        }
    }
    out
}

/// Whether YAML text holds nothing but blank lines and comments.
fn is_blank(text: &str) -> bool {
    text.lines()
        .map(str::trim)
        .all(|l| l.is_empty() || l.starts_with('#') || l == "---" || l == "...")
}

/// Parses and validates the text of a web config file; `dir` anchors relative paths.
pub fn parse(text: &str, dir: &Path) -> Result<WebConfig, Problem> {
    // An empty file (or one of comments only) means "no TLS, no auth", as in the toolkit.
    let raw: RawFile = serde_yaml_ng::from_str(text)
        .map_err(|e| Problem::Syntax(without_values(&e.to_string())))?;
    if raw.rate_limit.is_some() {
        return Err(Problem::Unsupported {
            field: "rate_limit".into(),
            reason: "put a rate limit in front of the exporter if you need one",
        });
    }
    Ok(WebConfig {
        tls: raw
            .tls_server_config
            .map(|t| tls(t, dir))
            .transpose()?
            .flatten(),
        headers: headers(raw.http_server_config.unwrap_or_default())?,
        users: users(raw.basic_auth_users.unwrap_or_default())?,
    })
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    tls_server_config: Option<RawTls>,
    http_server_config: Option<RawHttp>,
    basic_auth_users: Option<BTreeMap<String, String>>,
    rate_limit: Option<serde_yaml_ng::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert_file: Option<String>,
    key_file: Option<String>,
    client_auth_type: Option<String>,
    client_ca_file: Option<String>,
    min_version: Option<String>,
    max_version: Option<String>,
    prefer_server_cipher_suites: Option<bool>,
    // Toolkit keys refused rather than ignored (see `UNSUPPORTED_TLS`).
    cert: Option<serde_yaml_ng::Value>,
    key: Option<serde_yaml_ng::Value>,
    client_ca: Option<serde_yaml_ng::Value>,
    cipher_suites: Option<serde_yaml_ng::Value>,
    curve_preferences: Option<serde_yaml_ng::Value>,
    client_allowed_sans: Option<serde_yaml_ng::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    /// Accepted for compatibility and ignored: the exporter serves HTTP/1.1 only.
    #[allow(dead_code)]
    http2: Option<bool>,
    headers: Option<BTreeMap<String, String>>,
}

/// Go's zero value "" means "not set" in the toolkit; the same here.
fn set(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty())
}

/// The toolkit's TLS settings this server does not support, refused with what to use instead.
fn refuse_unsupported(raw: &RawTls) -> Result<(), Problem> {
    let unsupported: [(&str, bool, &'static str); 6] = [
        ("cert", raw.cert.is_some(), "use cert_file"),
        ("key", raw.key.is_some(), "use key_file"),
        ("client_ca", raw.client_ca.is_some(), "use client_ca_file"),
        (
            "cipher_suites",
            raw.cipher_suites.is_some(),
            "rustls offers only modern AEAD suites; min_version: TLS13 restricts them further",
        ),
        (
            "curve_preferences",
            raw.curve_preferences.is_some(),
            "rustls chooses among X25519, P-256 and P-384",
        ),
        (
            "client_allowed_sans",
            raw.client_allowed_sans.is_some(),
            "restrict clients with the CA in client_ca_file",
        ),
    ];
    if let Some((key, _, reason)) = unsupported.iter().find(|(_, present, _)| *present) {
        return Err(Problem::Unsupported {
            field: format!("tls_server_config.{key}"),
            reason,
        });
    }
    Ok(())
}

fn tls(raw: RawTls, dir: &Path) -> Result<Option<TlsSettings>, Problem> {
    refuse_unsupported(&raw)?;

    let cert_file = set(raw.cert_file);
    let key_file = set(raw.key_file);
    let client_auth_type = set(raw.client_auth_type);
    let client_ca_file = set(raw.client_ca_file);
    // As the toolkit's `IsEnabled`: any of these turns TLS on, and then a certificate is needed.
    if cert_file.is_none()
        && key_file.is_none()
        && client_auth_type.is_none()
        && client_ca_file.is_none()
    {
        return Ok(None);
    }
    let (cert_file, key_file) = match (cert_file, key_file) {
        (Some(c), Some(k)) => (dir.join(c), dir.join(k)),
        (None, _) => {
            return Err(Problem::invalid(
                "tls_server_config.cert_file",
                "missing; cert_file and key_file are required together to serve TLS",
            ))
        }
        (_, None) => {
            return Err(Problem::invalid(
                "tls_server_config.key_file",
                "missing; cert_file and key_file are required together to serve TLS",
            ))
        }
    };

    let client_auth = match client_auth_type.as_deref() {
        None => ClientAuth::NoClientCert,
        Some(name) => ClientAuth::NAMES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, a)| *a)
            .ok_or_else(|| {
                Problem::invalid(
                    "tls_server_config.client_auth_type",
                    format!(
                        "{name:?} is not one of NoClientCert, RequestClientCert, RequireAnyClientCert, VerifyClientCertIfGiven, RequireAndVerifyClientCert"
                    ),
                )
            })?,
    };
    let client_ca_file = client_ca_file.map(|f| dir.join(f));
    if client_ca_file.is_some() && client_auth == ClientAuth::NoClientCert {
        return Err(Problem::invalid(
            "tls_server_config.client_ca_file",
            "set without a client_auth_type that uses it; for mTLS set client_auth_type: RequireAndVerifyClientCert",
        ));
    }
    if client_ca_file.is_none() && client_auth.verifies() {
        return Err(Problem::invalid(
            "tls_server_config.client_ca_file",
            format!(
                "required when client_auth_type is {}",
                client_auth_type.as_deref().unwrap_or_default()
            ),
        ));
    }

    let min_version = version("min_version", raw.min_version, TlsVersion::Tls12)?;
    let max_version = version("max_version", raw.max_version, TlsVersion::Tls13)?;
    if min_version > max_version {
        return Err(Problem::invalid(
            "tls_server_config.min_version",
            "is above max_version",
        ));
    }
    Ok(Some(TlsSettings {
        cert_file,
        key_file,
        client_auth,
        client_ca_file,
        min_version,
        max_version,
        prefer_server_cipher_suites: raw.prefer_server_cipher_suites.unwrap_or(true),
    }))
}

fn version(key: &str, value: Option<String>, default: TlsVersion) -> Result<TlsVersion, Problem> {
    let field = || format!("tls_server_config.{key}");
    match set(value).as_deref() {
        None => Ok(default),
        Some("TLS12") => Ok(TlsVersion::Tls12),
        Some("TLS13") => Ok(TlsVersion::Tls13),
        Some("TLS10" | "TLS11") => Err(Problem::Unsupported {
            field: field(),
            reason: "TLS 1.0 and 1.1 are obsolete; use TLS12 or TLS13",
        }),
        Some(other) => Err(Problem::invalid(
            field(),
            format!("{other:?} is not one of TLS12, TLS13"),
        )),
    }
}

/// The headers the toolkit lets an operator set, with the values it accepts (empty: any).
/// Kept to the toolkit's list so one file means the same for every exporter.
const ALLOWED_HEADERS: [(&str, &[&str]); 5] = [
    ("Strict-Transport-Security", &[]),
    ("X-Content-Type-Options", &["nosniff"]),
    ("X-Frame-Options", &["deny", "sameorigin"]),
    ("X-XSS-Protection", &[]),
    ("Content-Security-Policy", &[]),
];

fn headers(raw: RawHttp) -> Result<Vec<(HeaderName, HeaderValue)>, Problem> {
    let mut out = Vec::new();
    for (name, value) in raw.headers.unwrap_or_default() {
        let field = format!("http_server_config.headers.{name}");
        let Some((_, allowed)) = ALLOWED_HEADERS.iter().find(|(n, _)| *n == name) else {
            let names: Vec<&str> = ALLOWED_HEADERS.iter().map(|(n, _)| *n).collect();
            return Err(Problem::invalid(
                field,
                format!("cannot be configured; allowed: {}", names.join(", ")),
            ));
        };
        if value.is_empty() {
            continue; // "Unset if blank"
        }
        if !allowed.is_empty() && !allowed.contains(&value.as_str()) {
            return Err(Problem::invalid(
                field,
                format!("{value:?} is not one of {}", allowed.join(", ")),
            ));
        }
        let header_value = HeaderValue::from_str(&value)
            .map_err(|_| Problem::invalid(&field, "not a valid header value"))?;
        let header_name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| Problem::invalid(&field, "not a valid header name"))?;
        out.push((header_name, header_value));
    }
    Ok(out)
}

fn users(raw: BTreeMap<String, String>) -> Result<BTreeMap<String, PasswordHash>, Problem> {
    raw.into_iter()
        .map(|(user, hash)| {
            if let Err(e) = hash.parse::<bcrypt::HashParts>() {
                // Never echo the value: a plaintext password pasted here by mistake stays private.
                return Err(Problem::invalid(
                    format!("basic_auth_users.{user}"),
                    format!(
                        "not a bcrypt hash ({e}); make one with `htpasswd -nBC 10 \"\" | tr -d ':\\n'`"
                    ),
                ));
            }
            Ok((user, PasswordHash(hash)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "$2y$04$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi";

    fn parse_ok(text: &str) -> WebConfig {
        parse(text, Path::new("/etc/exporter")).unwrap()
    }

    fn error(text: &str) -> String {
        parse(text, Path::new("/etc/exporter"))
            .expect_err("the config is refused")
            .to_string()
    }

    #[test]
    fn an_empty_file_means_plain_http_without_auth() {
        assert_eq!(parse_ok(""), WebConfig::default());
        assert_eq!(parse_ok("# nothing yet\n"), WebConfig::default());
        assert_eq!(parse_ok("tls_server_config:\n"), WebConfig::default());
    }

    #[test]
    fn a_full_config_parses_with_paths_relative_to_the_file() {
        let config = parse_ok(&format!(
            "tls_server_config:
  cert_file: server.crt
  key_file: /abs/server.key
  client_auth_type: RequireAndVerifyClientCert
  client_ca_file: ca.pem
  min_version: TLS13
http_server_config:
  http2: false
  headers:
    X-Frame-Options: deny
    Strict-Transport-Security: max-age=31536000
basic_auth_users:
  prometheus: '{HASH}'
"
        ));
        let tls = config.tls.unwrap();
        assert_eq!(tls.cert_file, Path::new("/etc/exporter/server.crt"));
        assert_eq!(tls.key_file, Path::new("/abs/server.key"));
        assert_eq!(
            tls.client_ca_file.as_deref(),
            Some(Path::new("/etc/exporter/ca.pem"))
        );
        assert_eq!(tls.client_auth, ClientAuth::RequireAndVerifyClientCert);
        assert_eq!(tls.min_version, TlsVersion::Tls13);
        assert_eq!(tls.max_version, TlsVersion::Tls13);
        assert!(tls.prefer_server_cipher_suites);
        assert_eq!(config.headers.len(), 2);
        assert_eq!(config.users["prometheus"].as_str(), HASH);
    }

    #[test]
    fn unknown_keys_are_named_with_their_place() {
        let e = error("basic_auth_user:\n  a: b\n");
        assert!(
            e.starts_with("unknown field `basic_auth_user`, expected one of"),
            "{e}"
        );
        let e = error("tls_server_config:\n  cert_file: a\n  key_fle: b\n");
        assert!(
            e.starts_with("tls_server_config: unknown field `key_fle`") && e.contains("line 3"),
            "{e}"
        );
        let e = error("http_server_config:\n  header: {}\n");
        assert!(e.contains("unknown field `header`"), "{e}");
    }

    #[test]
    fn cert_and_key_are_required_together() {
        assert_eq!(
            error("tls_server_config:\n  cert_file: a.crt\n"),
            "tls_server_config.key_file: missing; cert_file and key_file are required together to serve TLS"
        );
        let e = error("tls_server_config:\n  key_file: a.key\n");
        assert!(e.starts_with("tls_server_config.cert_file: missing"), "{e}");
        // A client CA alone also turns TLS on, and then needs a certificate.
        let e = error(
            "tls_server_config:\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.pem\n",
        );
        assert!(e.starts_with("tls_server_config.cert_file: missing"), "{e}");
    }

    #[test]
    fn client_auth_type_must_be_a_known_policy() {
        let e =
            error("tls_server_config:\n  cert_file: a\n  key_file: b\n  client_auth_type: Maybe\n");
        assert!(
            e.starts_with("tls_server_config.client_auth_type: \"Maybe\" is not one of"),
            "{e}"
        );
        // The toolkit's older alias still works.
        let c = parse_ok(
            "tls_server_config:\n  cert_file: a\n  key_file: b\n  client_auth_type: RequireClientCert\n",
        );
        assert_eq!(c.tls.unwrap().client_auth, ClientAuth::RequireAnyClientCert);
    }

    #[test]
    fn a_client_ca_needs_a_policy_and_verifying_policies_need_a_ca() {
        let e = error("tls_server_config:\n  cert_file: a\n  key_file: b\n  client_ca_file: ca\n");
        assert!(
            e.starts_with("tls_server_config.client_ca_file: set without"),
            "{e}"
        );
        let e = error(
            "tls_server_config:\n  cert_file: a\n  key_file: b\n  client_auth_type: RequireAndVerifyClientCert\n",
        );
        assert_eq!(
            e,
            "tls_server_config.client_ca_file: required when client_auth_type is RequireAndVerifyClientCert"
        );
        let e = error(
            "tls_server_config:\n  cert_file: a\n  key_file: b\n  client_auth_type: VerifyClientCertIfGiven\n",
        );
        assert!(e.contains("required when client_auth_type is VerifyClientCertIfGiven"));
    }

    #[test]
    fn tls_versions_are_checked() {
        let base = "tls_server_config:\n  cert_file: a\n  key_file: b\n";
        let e = error(&format!("{base}  min_version: TLS11\n"));
        assert!(
            e.starts_with("tls_server_config.min_version: not supported"),
            "{e}"
        );
        let e = error(&format!("{base}  max_version: SSL3\n"));
        assert_eq!(
            e,
            "tls_server_config.max_version: \"SSL3\" is not one of TLS12, TLS13"
        );
        let e = error(&format!(
            "{base}  min_version: TLS13\n  max_version: TLS12\n"
        ));
        assert_eq!(e, "tls_server_config.min_version: is above max_version");
    }

    #[test]
    fn toolkit_keys_without_an_implementation_are_refused_not_ignored() {
        let base = "tls_server_config:\n  cert_file: a\n  key_file: b\n";
        for (key, value) in [
            ("cipher_suites", "[TLS_AES_128_GCM_SHA256]"),
            ("curve_preferences", "[X25519]"),
            ("client_allowed_sans", "[client.example.com]"),
            ("cert", "'-----BEGIN CERTIFICATE-----'"),
            ("key", "secret"),
            ("client_ca", "'-----BEGIN CERTIFICATE-----'"),
        ] {
            let e = error(&format!("{base}  {key}: {value}\n"));
            assert!(
                e.starts_with(&format!(
                    "tls_server_config.{key}: not supported by cf-service-key-exporter"
                )),
                "{e}"
            );
        }
        let e = error("rate_limit:\n  interval: 1s\n  burst: 10\n");
        assert!(e.starts_with("rate_limit: not supported"), "{e}");
    }

    #[test]
    fn only_the_toolkits_headers_with_their_values() {
        let e = error("http_server_config:\n  headers:\n    Server: me\n");
        assert!(
            e.starts_with("http_server_config.headers.Server: cannot be configured; allowed:"),
            "{e}"
        );
        let e = error("http_server_config:\n  headers:\n    X-Frame-Options: allow\n");
        assert_eq!(
            e,
            "http_server_config.headers.X-Frame-Options: \"allow\" is not one of deny, sameorigin"
        );
        // Blank means unset.
        let c = parse_ok("http_server_config:\n  headers:\n    X-XSS-Protection: ''\n");
        assert!(c.headers.is_empty());
    }

    #[test]
    fn passwords_must_be_bcrypt_hashes_and_are_never_echoed() {
        let e = error("basic_auth_users:\n  prometheus: hunter2\n");
        assert!(
            e.starts_with("basic_auth_users.prometheus: not a bcrypt hash"),
            "{e}"
        );
        assert!(!e.contains("hunter2"), "{e}");
        let e = error("basic_auth_users:\n  prometheus: 42\n");
        assert!(e.contains("basic_auth_users"), "{e}");
    }

    #[test]
    fn the_debug_form_hides_the_hashes() {
        let c = parse_ok(&format!("basic_auth_users:\n  prometheus: '{HASH}'\n"));
        assert!(!format!("{c:?}").contains(HASH));
    }

    #[test]
    fn a_value_in_the_wrong_place_is_not_echoed() {
        for text in [
            "basic_auth_users: hunter2-MARKER\n",
            "basic_auth_users:\n  prometheus: [hunter2-MARKER]\n",
            "tls_server_config: \"hunter2-MARKER\"\n",
        ] {
            let e = error(text);
            assert!(!e.contains("MARKER"), "{e}");
            assert!(e.contains("line"), "{e}");
        }
    }

    #[test]
    fn not_yaml_is_a_syntax_error_with_a_place() {
        let e = error("tls_server_config: [\n");
        assert!(e.contains("line"), "{e}");
    }
}
