//! Structured logs with `tracing`: text for people, JSON for log pipelines; the level comes
//! from `RUST_LOG`, else the default the caller picks (`info` for the server, `warn` for
//! `report`, whose stdout is the table and whose stderr should only say what went wrong).

use tracing_subscriber::EnvFilter;

use crate::cli::LogFormat;

/// Level used when `RUST_LOG` is unset, for the server.
pub const DEFAULT_LEVEL: &str = "info";
/// Level used when `RUST_LOG` is unset, for one-shot commands such as `report`.
pub const QUIET_LEVEL: &str = "warn";

/// Installs the global subscriber (once, from `main`). Logs go to stderr.
pub fn init(format: LogFormat, default_level: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}
