//! cf-service-key-exporter: a Prometheus exporter for the expiry of Cloud Foundry service keys.
//!
//! Data flows one way: [`config`] → [`refresher`] (using [`auth`], [`cf`] and [`expiry`]) →
//! [`snapshot`] → [`metrics`] and [`server`]. The refreshers are the only writers; a scrape only
//! reads the latest snapshot and never calls Cloud Foundry.

pub mod cli;
pub mod config;
pub mod expiry;
pub mod sim;
