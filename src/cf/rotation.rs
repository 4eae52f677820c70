//! The V3 reads `report --rotate-plan` adds: which offerings return key parameters, and a
//! key's parameters.
//!
//! - `GET /v3/service_offerings?names=...`: `broker_catalog.features.bindings_retrievable` of
//!   each offering (a page of up to 5000, filtered by the names of the keys to plan);
//! - `GET /v3/service_credential_bindings/:guid/parameters`: the parameters a key was created
//!   with, as its broker returns them (only where its offering is `bindings_retrievable`).
//!
//! Both go through the foundation's one transport, like every other request: they are paced,
//! retried, counted in `api_requests_total` and spend the same rate-limit budget. Nothing here
//! writes to Cloud Foundry.

use std::collections::HashMap;

use serde::Deserialize;

use super::http::BodyLimit;
use super::model::Page;
use super::{append_list, CfClient, CfError, MAX_PER_PAGE};

/// Route templates: the `endpoint` label of `api_requests_total`.
pub const OFFERINGS_ENDPOINT: &str = "/v3/service_offerings";
pub const PARAMETERS_ENDPOINT: &str = "/v3/service_credential_bindings/:guid/parameters";

/// The part of a `/v3/service_offerings` resource read here.
#[derive(Debug, Deserialize)]
struct Offering {
    guid: String,
    #[serde(default)]
    broker_catalog: BrokerCatalog,
}

#[derive(Debug, Default, Deserialize)]
struct BrokerCatalog {
    #[serde(default)]
    features: Features,
}

#[derive(Debug, Default, Deserialize)]
struct Features {
    #[serde(default)]
    bindings_retrievable: bool,
}

impl CfClient {
    /// For the offerings of these names: offering guid → whether its broker returns the
    /// parameters of its keys (`bindings_retrievable`).
    pub async fn bindings_retrievable(
        &self,
        names: &[String],
    ) -> Result<HashMap<String, bool>, CfError> {
        let mut url = self.url(OFFERINGS_ENDPOINT);
        url.query_pairs_mut()
            .append_pair("per_page", &MAX_PER_PAGE.to_string());
        append_list(&mut url, "names", names);
        let mut out = HashMap::new();
        self.for_each_page(OFFERINGS_ENDPOINT, url, |page: Page<Offering>| {
            for o in page.resources {
                out.insert(o.guid, o.broker_catalog.features.bindings_retrievable);
            }
        })
        .await?;
        Ok(out)
    }

    /// The parameters key `guid` was created with, as its broker returns them.
    pub async fn key_parameters(&self, guid: &str) -> Result<serde_json::Value, CfError> {
        let mut url = self.api_url.clone();
        url.path_segments_mut()
            .map_err(|_| CfError::ApiUrl {
                url: self.api_url.to_string(),
            })?
            .pop_if_empty()
            .extend(["v3", "service_credential_bindings", guid, "parameters"]);
        self.get(PARAMETERS_ENDPOINT, BodyLimit::Small, &url).await
    }
}
