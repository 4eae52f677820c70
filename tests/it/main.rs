//! The integration tests: one binary (linking the exporter once), one module per area.
//!
//! Most run the exporter's real code against the simulated Cloud Foundry (`cf-sim`) over real
//! HTTP on loopback; some run the built binary itself. Shared harness: [`common`].

mod common;

mod cli;
mod config_file;
mod expiry;
mod exporter;
mod faults;
mod fuzz_corpora;
mod golden;
mod hardening;
mod incremental;
mod landing;
mod lead_time;
mod load;
mod multi_foundation;
mod readiness;
mod report;
mod rotation;
mod secrets;
mod simulator;
mod slow_clients;
mod structure;
mod visibility;
mod web_config;
