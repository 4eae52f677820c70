//! A simulated Cloud Foundry foundation (V3 API + UAA) served on loopback.
//!
//! One simulator serves `--demo`, the integration tests and the benchmarks, so all three run
//! the exporter's real code path against the same faithful fake. [`world`] holds the data
//! (with creation times, labels and annotations, and `/details` failures it carries),
//! [`server`] the HTTP behaviour, its switches and its settable clock, [`credentials`] the
//! look of each kind of key, [`broker`] how each offering's broker turns a new key's parameters
//! into credentials, [`operations`] key creation and deletion through jobs (the HTTP side in
//! `keys_api`), [`demo`] the foundation a newcomer sees and a large one for benchmarks.

pub mod broker;
pub mod certs;
pub mod credentials;
pub mod demo;
mod keys_api;
pub mod operations;
mod rsa_keys;
pub mod server;
pub mod world;

pub use server::{Accounts, Outage, RateLimit, Sim, SimState, Switches};
pub use world::{Metadata, World};
