//! The simulated Cloud Foundry foundation (demo, integration tests, benchmarks).

pub mod credentials;
