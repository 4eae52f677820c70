//! The parts of V3 API resources the exporter reads. Unknown fields are ignored, so newer Cloud
//! Controllers keep working; fields we rely on are required, so a malformed page is an error.

use std::collections::BTreeMap;

use serde::Deserialize;

/// A paginated list: `{"pagination": {...}, "resources": [...], "included": {...}}`.
#[derive(Debug, Deserialize)]
pub struct Page<T> {
    pub pagination: Pagination,
    pub resources: Vec<T>,
    #[serde(default)]
    pub included: Included,
}

#[derive(Debug, Deserialize)]
pub struct Pagination {
    #[serde(default)]
    pub total_pages: u64,
    pub next: Option<Link>,
}

#[derive(Debug, Deserialize)]
pub struct Link {
    pub href: String,
}

/// Resources requested with `fields[...]` or `include=`, for the whole page.
#[derive(Debug, Default, Deserialize)]
pub struct Included {
    #[serde(default)]
    pub spaces: Vec<IncludedSpace>,
    /// Names only with `fields[space.organization]`; with metadata from `/v3/spaces?include=organization`.
    #[serde(default)]
    pub organizations: Vec<Organization>,
    #[serde(default)]
    pub service_plans: Vec<IncludedPlan>,
    #[serde(default)]
    pub service_offerings: Vec<Named>,
}

#[derive(Debug, Deserialize)]
pub struct Named {
    pub guid: String,
    pub name: String,
}

/// `labels` and `annotations` of a V3 resource (`prefix/name` or `name` keys). A value may
/// be null in a request; in a response it is a string, but null is tolerated.
#[derive(Debug, Default, Deserialize)]
pub struct Metadata {
    #[serde(default)]
    pub labels: BTreeMap<String, Option<String>>,
    #[serde(default)]
    pub annotations: BTreeMap<String, Option<String>>,
}

/// An organization: in `included` of instances (name only) or of spaces (with metadata).
#[derive(Debug, Deserialize)]
pub struct Organization {
    pub guid: String,
    pub name: String,
    #[serde(default)]
    pub metadata: Metadata,
}

/// `GET /v3/spaces` resource (with `include=organization`).
#[derive(Debug, Deserialize)]
pub struct Space {
    pub guid: String,
    pub relationships: SpaceRelationships,
    #[serde(default)]
    pub metadata: Metadata,
}

#[derive(Debug, Deserialize)]
pub struct IncludedSpace {
    pub guid: String,
    pub name: String,
    pub relationships: SpaceRelationships,
}

#[derive(Debug, Deserialize)]
pub struct SpaceRelationships {
    pub organization: ToOne,
}

#[derive(Debug, Deserialize)]
pub struct IncludedPlan {
    pub guid: String,
    pub name: String,
    pub relationships: PlanRelationships,
}

#[derive(Debug, Deserialize)]
pub struct PlanRelationships {
    pub service_offering: ToOne,
}

/// `{"data": {"guid": "..."}}`; `data` is null for an absent relationship.
#[derive(Debug, Deserialize)]
pub struct ToOne {
    pub data: Option<GuidRef>,
}

#[derive(Debug, Deserialize)]
pub struct GuidRef {
    pub guid: String,
}

impl ToOne {
    pub fn guid(&self) -> Option<&str> {
        self.data.as_ref().map(|d| d.guid.as_str())
    }
}

#[derive(Debug, Deserialize)]
pub struct ServiceInstance {
    pub guid: String,
    pub name: String,
    #[serde(default)]
    pub updated_at: Option<String>,
    pub relationships: InstanceRelationships,
    #[serde(default)]
    pub metadata: Metadata,
}

#[derive(Debug, Deserialize)]
pub struct InstanceRelationships {
    pub space: ToOne,
    /// Absent on user-provided instances.
    pub service_plan: Option<ToOne>,
}

#[derive(Debug, Deserialize)]
pub struct CredentialBinding {
    pub guid: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub updated_at: Option<String>,
    #[serde(default)]
    pub last_operation: Option<LastOperation>,
    pub relationships: BindingRelationships,
    #[serde(default)]
    pub metadata: Metadata,
}

#[derive(Debug, Deserialize)]
pub struct LastOperation {
    #[serde(rename = "type")]
    pub kind: String,
    pub state: String,
}

#[derive(Debug, Deserialize)]
pub struct BindingRelationships {
    pub service_instance: ToOne,
}

/// `GET /v3/service_credential_bindings/:guid/details`. Its `Debug` never shows the
/// credentials.
#[derive(Deserialize)]
pub struct Details {
    #[serde(default)]
    pub credentials: serde_json::Value,
}

impl std::fmt::Debug for Details {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Details").finish_non_exhaustive()
    }
}

/// `GET /`: where the login server is.
#[derive(Debug, Deserialize)]
pub struct Root {
    pub links: RootLinks,
}

#[derive(Debug, Deserialize)]
pub struct RootLinks {
    pub login: Option<Link>,
    pub uaa: Option<Link>,
}
