//! cf-service-key-exporter: a Prometheus exporter for the expiry of Cloud Foundry service keys.
//!
//! Data flows one way, and modules depend on each other one way (README, "Module graph";
//! `tests/it/structure.rs` checks it): [`cli`] turns the flags into a [`config::Config`] →
//! [`supervisor`] → [`refresher`] (using [`cf`] to list and read keys, [`lead_time`] to read
//! their owners' lead times, [`expiry`] to read their credentials, [`rotation`] for their shape)
//! → [`snapshot`] → [`metrics`] and [`server`]. The store is the one meeting point: the
//! refreshers, one per foundation, only publish their foundation's part to it; the
//! [`supervisor`] registers a foundation it starts watching (seeded from the [`cache`] file when
//! that has its readings) and removes one a reload dropped once its refresher has stopped. Who
//! needs to know follows the store's changes: the metrics render each published snapshot
//! ahead of the scrapes, and the cache file is rewritten when a refresh published new keys. A
//! scrape only reads the latest snapshot and never calls Cloud Foundry. What producers and
//! consumers share (read-failure reasons, the rate limit, the transport's telemetry events) is
//! in [`vocab`], which depends on nothing. [`web`] puts TLS and basic auth in front of the
//! endpoints (`--web-config-file`); [`landing`] renders the landing page. [`report`] runs the
//! `report` command, and its `rotate` module the plans of `report --rotate-plan`. [`app`] wires
//! them all: `main` only parses flags, sets up logging, binds and calls [`run`]; tests and
//! `--demo` use the same entry point (the demo's simulated foundation is the separate `cf-sim`
//! crate).

#![cfg_attr(not(test), warn(clippy::too_many_lines))]

/// Declares the modules: private in the product, whose interface is what the binary uses
/// (re-exported below), so a public item that only the tests use is dead code there; public with
/// the `testing` feature, which the tests and benchmarks enable.
macro_rules! modules {
    ($($name:ident),* $(,)?) => {$(
        #[cfg(feature = "testing")]
        pub mod $name;
        #[cfg(not(feature = "testing"))]
        mod $name;
    )*};
}

modules!(
    app, cache, cf, cli, clock, config, expiry, landing, lead_time, logging, metrics, refresher,
    report, rotation, server, snapshot, supervisor, vocab, web,
);
/// The fuzz targets' entry points (`fuzz/` builds the crate without features).
#[doc(hidden)]
pub mod fuzzing;
/// Test support: a manual clock, the exposition of a fixed snapshot.
#[cfg(any(test, feature = "testing"))]
#[doc(hidden)]
pub mod testing;

// The library's interface: what the binary uses. With the `dead-code-check` feature
// (scripts/test.sh) the binary's own source is compiled into the library and nothing is public
// but its `main` and the fuzz targets' entry points, so `dead_code` names every item that
// neither uses.
#[cfg(any(not(feature = "dead-code-check"), feature = "testing"))]
pub use app::{binary, run, ServeOptions};
#[cfg(all(feature = "dead-code-check", not(feature = "testing")))]
use app::{binary, run, ServeOptions};
#[cfg(feature = "dead-code-check")]
extern crate self as cf_service_key_exporter;
#[cfg(feature = "dead-code-check")]
#[path = "main.rs"]
pub mod main_rs;
