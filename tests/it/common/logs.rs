//! Captures every log line of one test, at TRACE, in memory.
//!
//! `#[tokio::test]` runs on a current-thread runtime, so a thread-local default subscriber
//! sees every event of the exporter, the simulator and the test itself. `log` records (reqwest,
//! hyper, rustls) are routed into `tracing` once per process by `LogTracer`.
//!
//! A global subscriber that is interested in everything (and writes nowhere) is installed once
//! too: `tracing` caches each call site's interest process-wide, and a call site first reached
//! by a test without a capture (no subscriber: interest "never") would otherwise stay silent for
//! the tests that capture, when they run in parallel.

use std::io::Write;
use std::sync::{Arc, Mutex, Once};

use tracing::subscriber::DefaultGuard;
use tracing_subscriber::fmt::MakeWriter;

/// The captured text; readable while the capture is live.
#[derive(Clone, Default)]
pub struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    /// Installs a TRACE subscriber writing into a fresh buffer for the current thread.
    pub fn capture() -> (Logs, DefaultGuard) {
        static LOG_BRIDGE: Once = Once::new();
        LOG_BRIDGE.call_once(|| {
            let _ = tracing_log::LogTracer::init();
            let _ = tracing::subscriber::set_global_default(tracing_subscriber::registry());
        });
        let logs = Logs::default();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(logs.clone())
            .finish();
        let guard = tracing::subscriber::set_default(subscriber);
        (logs, guard)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// The lines containing every one of `needles`.
    pub fn lines_with(&self, needles: &[&str]) -> Vec<String> {
        self.text()
            .lines()
            .filter(|l| needles.iter().all(|n| l.contains(n)))
            .map(str::to_owned)
            .collect()
    }

    /// Panics (showing the log) unless some line contains every one of `needles`.
    #[track_caller]
    pub fn assert_line(&self, needles: &[&str]) -> String {
        let found = self.lines_with(needles);
        assert!(
            !found.is_empty(),
            "no log line contains all of {needles:?}; the log was:\n{}",
            tail(&self.text())
        );
        found[0].clone()
    }
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(60);
    lines[start..].join("\n")
}

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Logs {
    type Writer = Logs;
    fn make_writer(&'a self) -> Logs {
        self.clone()
    }
}
