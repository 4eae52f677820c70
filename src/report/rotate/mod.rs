//! `report --rotate-plan`: from a key to the exact steps that rotate it.
//!
//! - [`parameters`]: a successor's creation parameters, fetched from `/parameters` where the
//!   offering allows it, checked against (or else derived from) the key's shape;
//! - [`plan`]: the steps of one key's rotation, each a `cf` command and its V3 request (pure);
//! - [`render`]: the plan as text or JSON;
//! - [`fetch`] and [`run`]: reading offerings and parameters through the foundation's own
//!   transport (so they count against its rate-limit budget).
//!
//! The exporter itself never writes to Cloud Foundry: a plan is printed, never executed.

pub mod fetch;
pub mod parameters;
pub mod plan;
pub mod render;
pub mod run;
