//! What a key says about its rotation, beside its expiry: the facts the model keeps.
//!
//! - [`naming`]: the successor naming scheme (a date suffix that replaces an earlier one);
//! - [`shape`]: what a key's credentials show about how it was created (credential type,
//!   certificate key length), read with its expiry and kept without any credential value;
//! - [`RotationConfig`] and [`KeyFacts`]: how successors are recognised, and what the list pages
//!   say about a key for that.
//!
//! Which key succeeds which is computed per snapshot ([`crate::snapshot::Successors`]); the
//! plans of `report --rotate-plan` are built in [`crate::report::rotate`].

pub mod naming;
pub mod shape;

use std::sync::Arc;

pub use naming::NameScheme;
pub use shape::Shape;

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
