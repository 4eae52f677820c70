//! Cloud Foundry V3 API client for one foundation: the three calls the exporter needs.
//!
//! 1. `GET /v3/service_instances?type=managed&fields[...]` — every managed instance with its
//!    space, org, plan and offering names resolved through `included` (one request per 5000
//!    instances, not one per instance);
//! 2. `GET /v3/service_credential_bindings?type=key` — every service key;
//! 3. `GET /v3/service_credential_bindings/:guid/details` — one key's credentials.
//!
//! Both lists filter by `service_plan_names` when plans are configured, follow
//! `pagination.next.href` only on the API's own origin, and stop on a page loop. Every request
//! carries a token from [`Auth`]; a 401 gets one new login and one retry, never a loop.

pub mod error;
pub mod http;
pub mod model;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde::de::DeserializeOwned;
use url::Url;

use crate::auth::Auth;
use crate::config::FoundationConfig;
use crate::metrics::ApiRecorder;
pub use error::CfError;
use http::{BodyLimit, Transport};
use model::{CredentialBinding, Details, Page, ServiceInstance};

/// Route templates: the `endpoint` label of `api_requests_total`.
pub const INSTANCES_ENDPOINT: &str = "/v3/service_instances";
pub const BINDINGS_ENDPOINT: &str = "/v3/service_credential_bindings";
pub const DETAILS_ENDPOINT: &str = "/v3/service_credential_bindings/:guid/details";

/// Largest page the Cloud Controller serves.
pub const MAX_PER_PAGE: u32 = 5000;

/// Most pages one listing reads (50 million resources at 5000 a page): a bound that holds even
/// when a misbehaving API announces absurd page counts and invents a new `next` link each time.
const MAX_PAGES: u64 = 10_000;

/// A managed service instance with its names resolved.
#[derive(Debug, Clone)]
pub struct Instance {
    pub name: Arc<str>,
    pub org: Arc<str>,
    pub space: Arc<str>,
    pub offering: Arc<str>,
    pub plan: Arc<str>,
    pub updated_at: Arc<str>,
}

/// A service key as listed (without its credentials).
#[derive(Debug, Clone)]
pub struct Key {
    pub guid: String,
    pub name: String,
    pub instance_guid: Option<String>,
    pub updated_at: String,
    /// The key is fully created; one still being created may answer `/details` with 404.
    pub ready: bool,
}

/// Talks to one foundation's API.
#[derive(Debug)]
pub struct CfClient {
    transport: Arc<Transport>,
    auth: Auth,
    api_url: Url,
}

impl CfClient {
    /// Builds the client (TLS settings, connection pool) for one foundation.
    pub fn new(config: &FoundationConfig, recorder: ApiRecorder) -> Result<Self, CfError> {
        let client = http::build_client(&config.tls, &config.http)?;
        let transport = Arc::new(Transport::new(client, recorder, config.http.clone()));
        let auth = Auth::new(transport.clone(), config);
        Ok(CfClient {
            transport,
            auth,
            api_url: config.api_url.clone(),
        })
    }

    /// Every managed service instance (of the given plans), by guid.
    pub async fn list_instances(
        &self,
        plans: &[String],
    ) -> Result<HashMap<String, Instance>, CfError> {
        let mut url = self.url("/v3/service_instances");
        url.query_pairs_mut()
            .append_pair("type", "managed")
            .append_pair("per_page", &MAX_PER_PAGE.to_string())
            .append_pair("fields[space]", "guid,name,relationships.organization")
            .append_pair("fields[space.organization]", "guid,name")
            .append_pair(
                "fields[service_plan]",
                "guid,name,relationships.service_offering",
            )
            .append_pair("fields[service_plan.service_offering]", "guid,name");
        append_list(&mut url, "service_plan_names", plans);

        let mut spaces = HashMap::new();
        let mut orgs = HashMap::new();
        let mut plans_by_guid = HashMap::new();
        let mut offerings = HashMap::new();
        let mut raw = Vec::new();
        self.for_each_page(INSTANCES_ENDPOINT, url, |page: Page<ServiceInstance>| {
            let inc = page.included;
            for s in inc.spaces {
                let org = s
                    .relationships
                    .organization
                    .guid()
                    .unwrap_or_default()
                    .to_owned();
                spaces.insert(s.guid, (Arc::<str>::from(s.name), org));
            }
            for o in inc.organizations {
                orgs.insert(o.guid, Arc::<str>::from(o.name));
            }
            for p in inc.service_plans {
                let offering = p
                    .relationships
                    .service_offering
                    .guid()
                    .unwrap_or_default()
                    .to_owned();
                plans_by_guid.insert(p.guid, (Arc::<str>::from(p.name), offering));
            }
            for o in inc.service_offerings {
                offerings.insert(o.guid, Arc::<str>::from(o.name));
            }
            raw.extend(page.resources);
        })
        .await?;

        // Names the API did not include (should not happen) are shown as "unknown", not dropped:
        // a key must not vanish from alerting because a name is missing.
        let unknown: Arc<str> = Arc::from("unknown");
        let mut instances = HashMap::with_capacity(raw.len());
        for si in raw {
            let (space, org_guid) = si
                .relationships
                .space
                .guid()
                .and_then(|g| spaces.get(g))
                .map(|(name, org)| (name.clone(), org.as_str()))
                .unwrap_or((unknown.clone(), ""));
            let org = orgs
                .get(org_guid)
                .cloned()
                .unwrap_or_else(|| unknown.clone());
            let (plan, offering_guid) = si
                .relationships
                .service_plan
                .as_ref()
                .and_then(|p| p.guid())
                .and_then(|g| plans_by_guid.get(g))
                .map(|(name, offering)| (name.clone(), offering.as_str()))
                .unwrap_or((unknown.clone(), ""));
            let offering = offerings
                .get(offering_guid)
                .cloned()
                .unwrap_or_else(|| unknown.clone());
            instances.insert(
                si.guid,
                Instance {
                    name: Arc::from(si.name),
                    org,
                    space,
                    offering,
                    plan,
                    updated_at: Arc::from(si.updated_at.unwrap_or_default()),
                },
            );
        }
        Ok(instances)
    }

    /// Every service key (of instances of the given plans).
    pub async fn list_keys(&self, plans: &[String]) -> Result<Vec<Key>, CfError> {
        let mut url = self.url("/v3/service_credential_bindings");
        url.query_pairs_mut()
            .append_pair("type", "key")
            .append_pair("per_page", &MAX_PER_PAGE.to_string());
        append_list(&mut url, "service_plan_names", plans);
        let mut keys = Vec::new();
        self.for_each_page(BINDINGS_ENDPOINT, url, |page: Page<CredentialBinding>| {
            keys.extend(page.resources.into_iter().map(|b| {
                Key {
                    ready: b
                        .last_operation
                        .as_ref()
                        .is_none_or(|op| op.state == "succeeded" || op.kind != "create"),
                    instance_guid: b.relationships.service_instance.guid().map(str::to_owned),
                    name: b.name.unwrap_or_default(),
                    updated_at: b.updated_at.unwrap_or_default(),
                    guid: b.guid,
                }
            }));
        })
        .await?;
        Ok(keys)
    }

    /// Requests sent to this foundation so far.
    pub fn requests_sent(&self) -> u64 {
        self.transport.requests_sent()
    }

    /// One key's `credentials` object.
    pub async fn key_details(&self, guid: &str) -> Result<serde_json::Value, CfError> {
        let mut url = self.api_url.clone();
        url.path_segments_mut()
            .map_err(|_| CfError::Config("the API URL cannot be a base".into()))?
            .pop_if_empty()
            .extend(["v3", "service_credential_bindings", guid, "details"]);
        let details: Details = self.get(DETAILS_ENDPOINT, BodyLimit::Small, &url).await?;
        Ok(details.credentials)
    }

    fn url(&self, path: &str) -> Url {
        let mut url = self.api_url.clone();
        let base = url.path().trim_end_matches('/').to_owned();
        url.set_path(&format!("{base}{path}"));
        url
    }

    /// An authorized GET, decoded; on a 401 one fresh login and one more try.
    async fn get<T: DeserializeOwned>(
        &self,
        endpoint: &'static str,
        limit: BodyLimit,
        url: &Url,
    ) -> Result<T, CfError> {
        let mut retried = false;
        loop {
            let bearer = self.auth.bearer().await?;
            let authorization = bearer.header()?;
            let answer = self
                .transport
                .send(endpoint, limit, || {
                    self.transport
                        .client()
                        .get(url.clone())
                        .header(reqwest::header::AUTHORIZATION, authorization.clone())
                        .header(reqwest::header::ACCEPT, "application/json")
                })
                .await?;
            if answer.status == reqwest::StatusCode::UNAUTHORIZED && !retried {
                tracing::debug!(endpoint, "token rejected by the API, logging in again");
                self.auth.reject(&bearer).await;
                retried = true;
                continue;
            }
            return answer.json(endpoint);
        }
    }

    /// Walks every page of a list, handing each to `visit`.
    async fn for_each_page<T: DeserializeOwned>(
        &self,
        endpoint: &'static str,
        first: Url,
        mut visit: impl FnMut(Page<T>),
    ) -> Result<(), CfError> {
        let mut seen = HashSet::new();
        let mut next = Some(first);
        let mut pages = 0u64;
        while let Some(url) = next.take() {
            if !seen.insert(url.to_string()) {
                return Err(CfError::Pagination {
                    endpoint,
                    message: format!("page {url} was already read (a pagination loop)"),
                });
            }
            let page: Page<T> = self.get(endpoint, BodyLimit::List, &url).await?;
            pages += 1;
            let total_pages = page.pagination.total_pages;
            if pages > total_pages.max(1) || pages > MAX_PAGES {
                return Err(CfError::Pagination {
                    endpoint,
                    message: format!(
                        "page {pages} is beyond the {total_pages} announced (or the limit of {MAX_PAGES})"
                    ),
                });
            }
            if let Some(link) = &page.pagination.next {
                next = Some(self.same_origin(endpoint, &link.href)?);
            }
            visit(page);
        }
        Ok(())
    }

    /// Resolves a `next` link, refusing any other origin: the token goes only to the API.
    fn same_origin(&self, endpoint: &'static str, href: &str) -> Result<Url, CfError> {
        let url = self.api_url.join(href).map_err(|e| CfError::Decode {
            endpoint,
            status: 200,
            content_type: "application/json".into(),
            message: format!("pagination.next.href is not a URL: {e}"),
        })?;
        if url.origin() != self.api_url.origin() {
            return Err(CfError::ForeignOrigin {
                endpoint,
                origin: url.origin().ascii_serialization(),
            });
        }
        Ok(url)
    }
}

/// Appends a V3 list filter. The API splits values on commas and percent-decodes each element
/// once more, so a literal comma (or percent sign) inside a name is pre-encoded here.
fn append_list(url: &mut Url, name: &str, values: &[String]) {
    if values.is_empty() {
        return;
    }
    let joined = values
        .iter()
        .map(|v| v.replace('%', "%25").replace(',', "%2C"))
        .collect::<Vec<_>>()
        .join(",");
    url.query_pairs_mut().append_pair(name, &joined);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_values_with_commas_are_encoded_twice() {
        let mut url = Url::parse("https://api.example.com/v3/x").unwrap();
        append_list(&mut url, "names", &["a,b".into(), "c".into()]);
        assert_eq!(url.query(), Some("names=a%252Cb%2Cc"));
    }
}
