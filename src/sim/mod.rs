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
pub use world::World;

use std::num::NonZeroUsize;
use std::time::Duration;

use secrecy::SecretString;

use crate::config::{FoundationConfig, Grant, HttpOptions, SecretSource, TlsOptions};

impl Sim {
    /// A foundation config that logs in to this simulator with its accounts.
    pub fn foundation_config(&self, name: &str) -> FoundationConfig {
        foundation_config(name, &self.api_url, &self.state.accounts)
    }
}

/// A foundation config for a simulator at `api_url` with these accounts (also for a simulator
/// running in another process, as the benchmark's does).
pub fn foundation_config(name: &str, api_url: &url::Url, accounts: &Accounts) -> FoundationConfig {
    FoundationConfig {
        name: name.to_owned(),
        api_url: api_url.clone(),
        uaa_url: None,
        grant: Grant::Password {
            username: accounts.username.clone(),
            password: SecretSource::Inline(SecretString::from(accounts.password.clone())),
        },
        client_id: accounts.client_id.clone(),
        client_secret: (!accounts.client_secret.is_empty())
            .then(|| SecretSource::Inline(SecretString::from(accounts.client_secret.clone()))),
        origin: accounts.origin.clone(),
        service_plans: Vec::new(),
        refresh_interval: Duration::from_secs(60),
        full_refresh_interval: crate::config::DEFAULT_FULL_REFRESH_INTERVAL,
        details_concurrency: NonZeroUsize::new(16).expect("16 is not zero"),
        tls: TlsOptions::default(),
        http: HttpOptions::default(),
    }
}
