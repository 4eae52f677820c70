//! OAuth tokens from UAA for one foundation: logging in is part of talking to Cloud Foundry.
//!
//! Finds the login server from the API root document (`GET /` → `links.login.href`, else
//! `links.uaa.href`) unless configured, logs in with the password grant (client `cf`, empty
//! secret by default, `login_hint` for an origin) or the client-credentials grant, reuses the
//! token until shortly before it expires, renews it with the refresh token when there is one,
//! and logs in again when the API rejects it.
//!
//! Concurrency model: one async mutex around the token, so many concurrent `/details` requests
//! that find it expired cause one login, not one each. Secrets are read from their source at
//! each login (a rotated password file works without a restart) and live only in
//! `SecretString`s; no error or log line here ever contains one.

use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tokio::sync::Mutex;
use tokio::time::Instant;
use url::Url;

use super::error::CfError;
use super::http::{BodyLimit, Transport};
use super::model::Root;
use crate::config::{FoundationConfig, Grant, SecretSource};

const TOKEN_ENDPOINT: &str = "/oauth/token";
const ROOT_ENDPOINT: &str = "/";
/// Longest token lifetime believed, in seconds (UAA's default is 12 hours).
const MAX_TOKEN_LIFETIME: u64 = 24 * 3600;

/// A bearer token to send with API requests.
#[derive(Clone)]
pub struct Bearer {
    token: SecretString,
    /// Which login produced it, so a 401 only discards the token that was rejected.
    generation: u64,
}

impl std::fmt::Debug for Bearer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bearer")
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

impl Bearer {
    /// The `Authorization` header value, marked sensitive so that no `Debug` of the request
    /// (hyper, reqwest, a log line) ever prints it.
    pub fn header(&self) -> Result<reqwest::header::HeaderValue, CfError> {
        let mut value = reqwest::header::HeaderValue::try_from(format!(
            "bearer {}",
            self.token.expose_secret()
        ))
        // Never echo the token (nor the parse error, which could quote it).
        .map_err(|_| CfError::TokenNotAHeader)?;
        value.set_sensitive(true);
        Ok(value)
    }
}

struct Token {
    access: SecretString,
    refresh: Option<SecretString>,
    renew_at: Instant,
    generation: u64,
}

#[derive(Default)]
struct State {
    token_url: Option<Url>,
    token: Option<Token>,
    generation: u64,
    /// The last failed login: when, and what UAA (or the way to it) said.
    failed: Option<(Instant, String)>,
}

/// Hands out tokens for one foundation.
pub struct Uaa {
    transport: Arc<Transport>,
    api_url: Url,
    uaa_override: Option<Url>,
    grant: Grant,
    client_id: String,
    client_secret: Option<SecretSource>,
    origin: Option<String>,
    login_retry_after: Duration,
    /// `--cf-allow-http-login`: an `http://` login server under an `https://` API is used.
    allow_http_login: bool,
    state: Mutex<State>,
}

impl std::fmt::Debug for Uaa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Uaa")
            .field("api_url", &self.api_url)
            .field("who", &self.who())
            .finish()
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: SecretString,
    #[serde(default)]
    refresh_token: Option<SecretString>,
    #[serde(default)]
    expires_in: Option<u64>,
}

/// Longest UAA error text kept: enough for any real `error_description`.
const MAX_ERROR_TEXT: usize = 300;

/// UAA's error text made safe to log: every secret that was sent (password, client secret,
/// refresh token) replaced, control characters dropped, words that look like tokens (JWTs, long
/// opaque strings) replaced, and the length capped. UAA can echo what it received.
pub(crate) fn scrub(text: &str, sent: &[&str]) -> String {
    let mut out = text.to_owned();
    for secret in sent.iter().filter(|s| s.len() >= 4) {
        out = out.replace(secret, "<redacted>");
    }
    let out: String = out
        .split(' ')
        .map(|word| {
            if looks_like_token(word) {
                "<redacted>"
            } else {
                word
            }
        })
        .collect::<Vec<_>>()
        .join(" ");
    let mut out: String = out.chars().filter(|c| !c.is_control()).collect();
    if out.chars().count() > MAX_ERROR_TEXT {
        out = out.chars().take(MAX_ERROR_TEXT).collect::<String>() + "…";
    }
    out
}

/// A JWT (three base64url parts) or a long unbroken run of token characters.
fn looks_like_token(word: &str) -> bool {
    let word = word.trim_matches(|c: char| "\"'.,;:()[]{}<>".contains(c));
    let token_chars = word
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_.=+/".contains(c));
    let jwt = word.starts_with("eyJ") && word.matches('.').count() == 2;
    token_chars && (jwt || word.len() >= 32)
}

#[derive(Deserialize)]
struct OauthError {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

impl Uaa {
    pub fn new(transport: Arc<Transport>, config: &FoundationConfig) -> Self {
        Uaa {
            transport,
            api_url: config.api_url.clone(),
            uaa_override: config.uaa_url.clone(),
            grant: config.grant.clone(),
            client_id: config.client_id.clone(),
            client_secret: config.client_secret.clone(),
            origin: config.origin.clone(),
            login_retry_after: config.http.login_retry_after,
            allow_http_login: config.tls.allow_http_login,
            state: Mutex::new(State::default()),
        }
    }

    /// Who logs in, for log lines and errors (never a secret).
    pub fn who(&self) -> String {
        match &self.grant {
            Grant::Password { username, .. } => match &self.origin {
                Some(origin) => format!("user {username:?} (origin {origin:?})"),
                None => format!("user {username:?}"),
            },
            Grant::ClientCredentials => format!("client {:?}", self.client_id),
        }
    }

    /// A token that is valid for a while yet; logs in or renews when needed.
    pub async fn bearer(&self) -> Result<Bearer, CfError> {
        let mut state = self.state.lock().await;
        if let Some(token) = &state.token {
            if Instant::now() < token.renew_at {
                return Ok(Bearer {
                    token: token.access.clone(),
                    generation: token.generation,
                });
            }
        }
        let token_url = match &state.token_url {
            Some(url) => url.clone(),
            None => {
                let url = self.discover_token_url().await?;
                state.token_url = Some(url.clone());
                url
            }
        };
        // Every request waiting on this lock would otherwise try its own login after a failed
        // one: a wrong password would count one failure per pending request and get the
        // account locked by UAA.
        if let Some((at, message)) = &state.failed {
            let next_try = *at + self.login_retry_after;
            if Instant::now() < next_try {
                return Err(self.login_error(
                    &token_url,
                    format!(
                        "{message} (not retried for {:?}: a login failed {:?} ago)",
                        self.login_retry_after,
                        at.elapsed()
                    ),
                ));
            }
        }
        let refresh = state.token.take().and_then(|t| t.refresh);
        let result = match refresh {
            Some(refresh) => match self.renew(&token_url, &refresh).await {
                Ok(r) => Ok(r),
                Err(e) => {
                    tracing::debug!(error = %e, "refresh token not accepted, logging in again");
                    self.login(&token_url).await
                }
            },
            None => self.login(&token_url).await,
        };
        let response = match result {
            Ok(response) => {
                state.failed = None;
                response
            }
            Err(error) => {
                if let CfError::Login { message, .. } = &error {
                    state.failed = Some((Instant::now(), message.clone()));
                }
                return Err(error);
            }
        };
        state.generation += 1;
        // Capped: an absurd `expires_in` must not overflow the clock (a panic) nor keep a token
        // for ever.
        let lifetime =
            Duration::from_secs(response.expires_in.unwrap_or(300).min(MAX_TOKEN_LIFETIME));
        // Renew a little before expiry so a token never dies between check and use.
        let margin = (lifetime / 5).min(Duration::from_secs(60));
        let token = Token {
            access: response.access_token,
            refresh: response.refresh_token,
            renew_at: Instant::now() + lifetime - margin,
            generation: state.generation,
        };
        let bearer = Bearer {
            token: token.access.clone(),
            generation: token.generation,
        };
        state.token = Some(token);
        Ok(bearer)
    }

    /// The API rejected `bearer` (401): drop it so the next [`Uaa::bearer`] logs in again.
    /// A newer token obtained meanwhile by another request is kept.
    pub async fn reject(&self, bearer: &Bearer) {
        let mut state = self.state.lock().await;
        if state
            .token
            .as_ref()
            .is_some_and(|t| t.generation == bearer.generation)
        {
            // The refresh token may be what the CC no longer trusts either: full login.
            state.token = None;
        }
    }

    async fn discover_token_url(&self) -> Result<Url, CfError> {
        let base = match &self.uaa_override {
            Some(url) => url.clone(),
            None => {
                let mut root_url = self.api_url.clone();
                root_url.set_path("/");
                root_url.set_query(None);
                let root: Root = self
                    .transport
                    .send(ROOT_ENDPOINT, BodyLimit::Small, || {
                        self.transport.client().get(root_url.clone())
                    })
                    .await?
                    .json(ROOT_ENDPOINT)?;
                let href = root
                    .links
                    .login
                    .or(root.links.uaa)
                    .ok_or_else(|| CfError::Unusable {
                        endpoint: ROOT_ENDPOINT,
                        message: "the API root document has neither links.login nor links.uaa"
                            .into(),
                    })?
                    .href;
                Url::parse(&href).map_err(|e| CfError::Unusable {
                    endpoint: ROOT_ENDPOINT,
                    message: format!("links.login.href is not a URL: {e}"),
                })?
            }
        };
        let mut url = base;
        let path = format!("{}/oauth/token", url.path().trim_end_matches('/'));
        url.set_path(&path);
        url.set_query(None);
        if url.scheme() == "http" && self.api_url.scheme() == "https" && !self.allow_http_login {
            // A tampered or misconfigured API root must not make us send the password in clear.
            return Err(CfError::Login {
                who: self.who(),
                uaa: url.to_string(),
                message: "the login server is plain http under an https API; refusing to send \
                          credentials in clear (allow with --cf-allow-http-login or \
                          allow_http_login = true)"
                    .into(),
            });
        }
        if url.scheme() == "http" && !crate::config::is_loopback(&url) {
            tracing::warn!(uaa = %url, "UAA is reached over plain http: credentials are not encrypted in transit");
        }
        tracing::debug!(uaa = %url, "token endpoint");
        Ok(url)
    }

    fn client_secret(&self) -> Result<SecretString, CfError> {
        match &self.client_secret {
            Some(source) => source.read().map_err(CfError::Secret),
            None => Ok(SecretString::from(String::new())),
        }
    }

    async fn login(&self, token_url: &Url) -> Result<TokenResponse, CfError> {
        let secret = self.client_secret()?;
        let mut form: Vec<(&str, String)> = Vec::new();
        let password = match &self.grant {
            Grant::Password { username, password } => {
                let password = password.read().map_err(CfError::Secret)?;
                form.push(("grant_type", "password".into()));
                form.push(("username", username.clone()));
                if let Some(origin) = &self.origin {
                    form.push((
                        "login_hint",
                        serde_json::json!({ "origin": origin }).to_string(),
                    ));
                }
                Some(password)
            }
            Grant::ClientCredentials => {
                form.push(("grant_type", "client_credentials".into()));
                None
            }
        };
        self.token_request(
            token_url,
            &secret,
            &form,
            password.as_ref().map(|p| ("password", p)),
        )
        .await
    }

    async fn renew(
        &self,
        token_url: &Url,
        refresh: &SecretString,
    ) -> Result<TokenResponse, CfError> {
        let secret = self.client_secret()?;
        let form = [("grant_type", "refresh_token".to_owned())];
        let mut response = self
            .token_request(token_url, &secret, &form, Some(("refresh_token", refresh)))
            .await?;
        // UAA may not rotate the refresh token; keep the one we have then.
        response.refresh_token = response.refresh_token.or_else(|| Some(refresh.clone()));
        Ok(response)
    }

    async fn token_request(
        &self,
        token_url: &Url,
        client_secret: &SecretString,
        form: &[(&str, String)],
        secret_field: Option<(&str, &SecretString)>,
    ) -> Result<TokenResponse, CfError> {
        let answer = self
            .transport
            .send(TOKEN_ENDPOINT, BodyLimit::Small, || {
                let mut fields: Vec<(&str, &str)> =
                    form.iter().map(|(k, v)| (*k, v.as_str())).collect();
                if let Some((name, value)) = secret_field {
                    fields.push((name, value.expose_secret()));
                }
                self.transport
                    .client()
                    .post(token_url.clone())
                    .header(reqwest::header::ACCEPT, "application/json")
                    .basic_auth(&self.client_id, Some(client_secret.expose_secret()))
                    .form(&fields)
            })
            .await
            .map_err(|e| self.login_error(token_url, e.to_string()))?;
        if !answer.status.is_success() {
            let said = serde_json::from_slice::<OauthError>(&answer.body)
                .map(|e| match e.error_description {
                    Some(d) => format!("{}: {d}", e.error),
                    None => e.error,
                })
                .unwrap_or_else(|_| "no OAuth error in the body".to_owned());
            let mut sent: Vec<&str> = vec![client_secret.expose_secret()];
            sent.extend(secret_field.map(|(_, v)| v.expose_secret()));
            let said = scrub(&said, &sent);
            return Err(self.login_error(
                token_url,
                format!("HTTP {}: {said}", answer.status.as_u16()),
            ));
        }
        answer
            .json::<TokenResponse>(TOKEN_ENDPOINT)
            .map_err(|e| self.login_error(token_url, e.to_string()))
    }

    fn login_error(&self, token_url: &Url, message: String) -> CfError {
        let message = scrub(&message, &[]);
        CfError::Login {
            who: self.who(),
            uaa: token_url.to_string(),
            message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uaa_error_text_loses_what_was_sent_and_anything_token_like() {
        let jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl";
        let said = format!(
            "invalid_grant: Bad credentials for hunter2-pw (refresh {jwt}) \x1b]0;pwned\x07 \
             opaque-0123456789abcdef0123456789abcdef"
        );
        let out = scrub(&said, &["hunter2-pw", "client-s3cret"]);
        for leaked in [
            "hunter2-pw",
            jwt,
            "0123456789abcdef0123456789abcdef",
            "\x1b",
            "\x07",
        ] {
            assert!(!out.contains(leaked), "{out:?} contains {leaked:?}");
        }
        assert!(
            out.starts_with("invalid_grant: Bad credentials for <redacted>"),
            "{out}"
        );
    }

    #[test]
    fn uaa_error_text_is_capped() {
        let out = scrub(&"word ".repeat(500), &[]);
        assert!(out.chars().count() <= MAX_ERROR_TEXT + 1, "{}", out.len());
    }
}
