//! Rotating service keys: from a page to the exact steps, and knowing when a key already has a
//! successor.
//!
//! - [`naming`]: the successor naming scheme (a date suffix that replaces an earlier one);
//! - [`successor`]: which newer key on the same instance succeeds which (pure, per snapshot);
//! - [`shape`]: what a key's credentials show about how it was created (credential type,
//!   certificate key length), read with its expiry and kept without any credential value;
//! - [`parameters`]: a successor's creation parameters, fetched from `/parameters` where the
//!   offering allows it, checked against (or else derived from) the key's shape;
//! - [`plan`]: the steps of one key's rotation, each a `cf` command and its V3 request (pure);
//! - [`render`]: the plan as text or JSON;
//! - [`fetch`] and [`run`]: `report --rotate-plan`, reading offerings and parameters through
//!   the foundation's own transport (so they count against its rate-limit budget).
//!
//! The exporter itself never writes to Cloud Foundry: a plan is printed, never executed.

pub mod fetch;
pub mod naming;
pub mod parameters;
pub mod plan;
pub mod render;
pub mod run;
pub mod shape;
pub mod successor;

use std::sync::Arc;

pub use naming::NameScheme;
pub use shape::Shape;
pub use successor::Successors;

/// How one foundation's successors are named and recognised.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RotationConfig {
    /// `--successor-name-suffix`: the date suffix of successor names.
    pub names: NameScheme,
    /// `--successor-annotation`: the annotation on a new key that names the key it succeeds
    /// (by name or guid); `None` = names only.
    pub successor_annotation: Option<String>,
}

/// What the list pages say about a key beyond its labels, for rotation: its instance's and
/// offering's guids (the plan's requests name them) and the key it says it succeeds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyFacts {
    pub instance_guid: Arc<str>,
    pub offering_guid: Arc<str>,
    /// The value of the successor annotation on the key itself (a key's name or guid).
    pub successor_of: Option<Arc<str>>,
}
