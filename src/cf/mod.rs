//! Talking to one Cloud Foundry foundation: the V3 calls the exporter needs, and the UAA login
//! that authorizes them ([`uaa`]).
//!
//! 1. `GET /v3/service_instances?type=managed&fields[...]` — every managed instance with its
//!    space, org, plan and offering names resolved through `included` (one request per 5000
//!    instances, not one per instance);
//! 2. `GET /v3/service_credential_bindings?type=key` — every service key;
//! 3. with owner labels or a lead-time annotation configured,
//!    `GET /v3/spaces?include=organization` — the metadata of every space and org;
//! 4. `GET /v3/service_credential_bindings/:guid/details` — one key's credentials;
//! 5. for `report --rotate-plan` only, [`rotation`]: `GET /v3/service_offerings` and
//!    `GET /v3/service_credential_bindings/:guid/parameters`.
//!
//! [`listing`] joins the pages (pure); [`http`] is the one transport every request goes
//! through. Lists filter by `service_plan_names` when plans are configured, follow
//! `pagination.next.href` only on the API's own origin, and stop on a page loop. Every request
//! carries a token from [`Uaa`]; a 401 gets one new login and one retry, never a loop.

pub mod error;
pub mod http;
pub mod listing;
pub mod model;
pub mod rotation;
pub mod uaa;

use std::collections::HashSet;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use url::Url;

use crate::config::FoundationConfig;
use crate::vocab::{RateLimit, Telemetry};
pub use error::CfError;
use http::{BodyLimit, Transport};
pub use listing::ListedKey;
use listing::{InstancePages, Interner, MetadataKeys, SpaceMetadata};
use model::{CredentialBinding, Details, Page, ServiceInstance, Space};
use uaa::Uaa;

/// Route templates: the `endpoint` label of `api_requests_total`.
pub const INSTANCES_ENDPOINT: &str = "/v3/service_instances";
pub const BINDINGS_ENDPOINT: &str = "/v3/service_credential_bindings";
pub const DETAILS_ENDPOINT: &str = "/v3/service_credential_bindings/:guid/details";
pub const SPACES_ENDPOINT: &str = "/v3/spaces";

/// Largest page the Cloud Controller serves.
pub const MAX_PER_PAGE: u32 = 5000;

/// Most pages one listing reads (50 million resources at 5000 a page): a bound that holds even
/// when a misbehaving API announces absurd page counts and invents a new `next` link each time.
const MAX_PAGES: u64 = 10_000;

/// Talks to one foundation's API.
#[derive(Debug)]
pub struct CfClient {
    transport: Arc<Transport>,
    uaa: Uaa,
    api_url: Url,
    metadata: MetadataKeys,
}

impl CfClient {
    /// Builds the client (TLS settings, connection pool) for one foundation.
    pub fn new(config: &FoundationConfig, telemetry: Arc<dyn Telemetry>) -> Result<Self, CfError> {
        let client = http::build_client(&config.tls, &config.http)?;
        let transport = Arc::new(Transport::new(client, telemetry, config.http.clone()));
        let uaa = Uaa::new(transport.clone(), config);
        Ok(CfClient {
            transport,
            uaa,
            api_url: config.api_url.clone(),
            metadata: MetadataKeys {
                owners: (config.metadata_labels.iter())
                    .map(|m| m.key.clone())
                    .collect(),
                lead_time: config.lead_time_annotation.clone(),
                successor_of: config.rotation.successor_annotation.clone(),
            },
        })
    }

    /// Every service key of the foundation (of instances of the given plans), joined with its
    /// instance's names, its owners and its lead time: two or three listings, run
    /// concurrently, a page of up to 5000 resources per request, never a request per key.
    pub async fn list_keys(&self, plans: &[String]) -> Result<Vec<ListedKey>, CfError> {
        let (instances, keys, spaces) = tokio::try_join!(
            self.instance_pages(plans),
            self.binding_pages(plans),
            self.space_pages()
        )?;
        let mut names = Interner::default();
        let instances = instances.finish(&mut names);
        Ok(listing::join(
            &instances,
            keys,
            &spaces,
            &self.metadata,
            &mut names,
        ))
    }

    async fn instance_pages(&self, plans: &[String]) -> Result<InstancePages, CfError> {
        let mut url = self.url(INSTANCES_ENDPOINT);
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
        let mut pages = InstancePages::default();
        let mut names = Interner::default();
        self.for_each_page(INSTANCES_ENDPOINT, url, |page: Page<ServiceInstance>| {
            pages.add(page, &self.metadata, &mut names)
        })
        .await?;
        Ok(pages)
    }

    async fn binding_pages(&self, plans: &[String]) -> Result<Vec<listing::Key>, CfError> {
        let mut url = self.url(BINDINGS_ENDPOINT);
        url.query_pairs_mut()
            .append_pair("type", "key")
            .append_pair("per_page", &MAX_PER_PAGE.to_string());
        append_list(&mut url, "service_plan_names", plans);
        let mut keys = Vec::new();
        let mut names = Interner::default();
        self.for_each_page(BINDINGS_ENDPOINT, url, |page: Page<CredentialBinding>| {
            keys.extend(listing::keys(page, &self.metadata, &mut names))
        })
        .await?;
        Ok(keys)
    }

    /// The metadata of every space and org: only when owner labels or a lead-time annotation
    /// are configured. Metadata edits do not move a resource's `updated_at`, so this is read at
    /// every refresh.
    async fn space_pages(&self) -> Result<SpaceMetadata, CfError> {
        let mut owners = SpaceMetadata::default();
        if self.metadata.is_empty() {
            return Ok(owners);
        }
        let mut url = self.url(SPACES_ENDPOINT);
        url.query_pairs_mut()
            .append_pair("include", "organization")
            .append_pair("per_page", &MAX_PER_PAGE.to_string());
        let mut names = Interner::default();
        self.for_each_page(SPACES_ENDPOINT, url, |page: Page<Space>| {
            owners.add(page, &self.metadata, &mut names)
        })
        .await?;
        Ok(owners)
    }

    /// Measures the transport's rate-limit waits on `clock` (set it before the first request).
    pub fn set_clock(&self, clock: Arc<dyn crate::clock::Clock>) {
        self.transport.set_clock(clock);
    }

    /// The rate limit Cloud Foundry announced last, while its window lasts (`None` before any
    /// announcement and once its reset has passed).
    pub fn rate_limit(&self) -> Option<RateLimit> {
        self.transport.rate_limit()
    }

    /// Requests sent to this foundation so far.
    pub fn requests_sent(&self) -> u64 {
        self.transport.requests_sent()
    }

    /// One key's `credentials` object.
    pub async fn key_details(&self, guid: &str) -> Result<serde_json::Value, CfError> {
        let mut url = self.api_url.clone();
        url.path_segments_mut()
            .map_err(|_| CfError::ApiUrl {
                url: self.api_url.to_string(),
            })?
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
            let bearer = self.uaa.bearer().await?;
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
                self.uaa.reject(&bearer).await;
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
        let url = self.api_url.join(href).map_err(|e| CfError::Unusable {
            endpoint,
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
pub(crate) fn append_list(url: &mut Url, name: &str, values: &[String]) {
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
