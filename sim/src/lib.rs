//! A simulated Cloud Foundry foundation (V3 API + UAA) served on loopback.
//!
//! One simulator serves `--demo`, the integration tests and the benchmarks, so all three run
//! the exporter's real code path against the same faithful fake. [`world`] holds the data,
//! [`server`] the HTTP behaviour and its switches, [`demo`] the foundation a newcomer sees.

pub mod credentials;
pub mod demo;
pub mod server;
pub mod world;

pub use server::{Accounts, Outage, RateLimit, Sim, SimState, Switches};
pub use world::{Metadata, World};
