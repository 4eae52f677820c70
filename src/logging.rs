//! Structured logs with `tracing`: text for people, JSON for log pipelines; the level comes
//! from `RUST_LOG`, else the default the caller picks (`info` for the server, `warn` for
//! `report`, whose stdout is the table and whose stderr should only say what went wrong).
//!
//! Colour (ANSI escapes) only where a person reads: text format, stderr a terminal, and
//! `NO_COLOR` unset (<https://no-color.org>). A log file, journald or `kubectl logs` gets plain
//! text, and JSON never carries escapes.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::cli::LogFormat;

/// Level used when `RUST_LOG` is unset, for the server.
pub const DEFAULT_LEVEL: &str = "info";
/// Level used when `RUST_LOG` is unset, for one-shot commands such as `report`.
pub const QUIET_LEVEL: &str = "warn";

/// Whether log lines may carry colour: text format, to a terminal, and `NO_COLOR` unset (any
/// value, even empty, turns colour off).
pub fn use_colour(format: LogFormat, terminal: bool, no_color: bool) -> bool {
    format == LogFormat::Text && terminal && !no_color
}

/// Whether output to a `terminal` (or not) may carry colour: only to a terminal, and only with
/// `NO_COLOR` unset. The report's table asks this too.
pub fn colour_allowed(terminal: bool) -> bool {
    use_colour(
        LogFormat::Text,
        terminal,
        std::env::var_os("NO_COLOR").is_some(),
    )
}

/// Installs the global subscriber (once, from `main`). Logs go to stderr.
pub fn init(format: LogFormat, default_level: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let colour = use_colour(
        format,
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR").is_some(),
    );
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_only_for_text_on_a_terminal_without_no_color() {
        assert!(use_colour(LogFormat::Text, true, false));
        assert!(!use_colour(LogFormat::Text, false, false));
        assert!(!use_colour(LogFormat::Text, true, true));
        assert!(!use_colour(LogFormat::Json, true, false));
    }
}
