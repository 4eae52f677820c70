//! Starts, stops and replaces the per-foundation refreshers when the configuration changes.
//!
//! Each foundation refreshes in its own task with its own cancellation token, so one slow or
//! failing foundation never delays another. A new configuration is applied all-or-nothing:
//! every new refresher is built first (a bad CA file fails here), and only then are removed or
//! changed foundations stopped and new ones started. A foundation's configuration is compared
//! by value, secrets included (never printed), so a reload that only changes an inline password
//! restarts its refresher.
//!
//! Stopping a refresher means cancelling it *and waiting for its task to end* before its entry
//! leaves the store: a refresh that was publishing at that moment must not put a removed
//! foundation back. The supervisor changes the store only through its API (register, seed,
//! remove). With a cache file, it tells the [`Cache`] which foundations it holds and runs its
//! writer, which follows the store, until [`Supervisor::shutdown`].

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::cache::Cache;
use crate::cf::CfError;
use crate::config::FoundationConfig;
use crate::metrics::ExporterMetrics;
use crate::refresher::Refresher;
use crate::snapshot::Store;

/// The longest spread of the first refreshes of foundations started together.
pub const MAX_STAGGER: Duration = Duration::from_secs(60);

/// When the `index`th of `count` foundations started together refreshes first: evenly spread
/// over one refresh interval, at most [`MAX_STAGGER`], so ten foundations do not all start (and
/// keep refreshing) in the same second.
pub fn stagger(index: usize, count: usize, refresh_interval: Duration) -> Duration {
    let span = refresh_interval.min(MAX_STAGGER);
    let count = u32::try_from(count.max(1)).unwrap_or(u32::MAX);
    let index = u32::try_from(index).unwrap_or(u32::MAX).min(count);
    span / count * index
}

/// Runs one refresher until its token is cancelled. [`Refresher::run`] in the exporter; a test
/// substitutes its own to force an interleaving.
pub type Runner = Arc<dyn Fn(Refresher, CancellationToken) -> BoxFuture<'static, ()> + Send + Sync>;

struct Running {
    config: FoundationConfig,
    cancel: CancellationToken,
    task: JoinHandle<()>,
}

impl Running {
    /// Cancels the refresher and waits until its task has ended.
    async fn stop(self) {
        self.cancel.cancel();
        if let Err(e) = self.task.await {
            tracing::error!(foundation = %self.config.name, error = %e, "refresher task failed");
        }
    }
}

/// Owns the refresher tasks.
pub struct Supervisor {
    store: Arc<Store>,
    metrics: Arc<ExporterMetrics>,
    running: HashMap<String, Running>,
    parent: CancellationToken,
    cache: Option<Arc<Cache>>,
    /// Stops the cache file's writer ([`Cache::follow`]), and its task.
    cache_writer: Option<(CancellationToken, JoinHandle<()>)>,
    runner: Runner,
}

impl Supervisor {
    pub fn new(
        store: Arc<Store>,
        metrics: Arc<ExporterMetrics>,
        parent: CancellationToken,
    ) -> Self {
        Supervisor {
            store,
            metrics,
            running: HashMap::new(),
            parent,
            cache: None,
            cache_writer: None,
            runner: Arc::new(|refresher, cancel| Box::pin(refresher.run(cancel))),
        }
    }

    /// Keeps the readings of every foundation in this cache file: it follows the store from
    /// now on, until [`Supervisor::shutdown`]. Call it within the runtime.
    pub fn with_cache(mut self, cache: Option<Arc<Cache>>) -> Self {
        self.cache_writer = cache.as_ref().map(|cache| {
            let stop = CancellationToken::new();
            let writer = cache.clone().follow(self.store.clone(), stop.clone());
            (stop, tokio::spawn(writer))
        });
        self.cache = cache;
        self
    }

    /// Runs each refresher with `runner` instead of [`Refresher::run`].
    #[cfg(test)]
    pub fn with_runner(mut self, runner: Runner) -> Self {
        self.runner = runner;
        self
    }

    /// Makes the running refreshers match `foundations`.
    pub async fn apply(&mut self, foundations: Vec<FoundationConfig>) -> Result<(), CfError> {
        // Build every new refresher before touching anything, so a bad one changes nothing.
        let mut fresh = Vec::new();
        for (index, config) in foundations.iter().enumerate() {
            let unchanged = self
                .running
                .get(&config.name)
                .is_some_and(|r| r.config == *config);
            if !unchanged {
                let delay = stagger(index, foundations.len(), config.refresh_interval);
                let telemetry = self.metrics.recorder(&config.name);
                let refresher = Refresher::new(config.clone(), self.store.clone(), telemetry)?
                    .with_start_delay(delay);
                fresh.push((config.clone(), refresher));
            }
        }
        let wanted: HashSet<&str> = foundations.iter().map(|f| f.name.as_str()).collect();
        let removed: Vec<String> = self
            .running
            .keys()
            .filter(|n| !wanted.contains(n.as_str()))
            .cloned()
            .collect();
        for name in removed {
            if let Some(r) = self.running.remove(&name) {
                r.stop().await;
            }
            self.store.remove(&name);
            self.metrics.forget(&name);
            if let Some(cache) = &self.cache {
                cache.forget(&name);
            }
            tracing::info!(foundation = %name, "foundation removed");
        }
        for (config, refresher) in fresh {
            let name = config.name.clone();
            if let Some(cache) = &self.cache {
                cache.watch(&name, config.api_url.as_str());
                // A foundation added by a reload starts from its cached readings too.
                if self.store.foundation(&name).is_none() {
                    cache.seed(&config, &self.store);
                }
            }
            if let Some(old) = self.running.remove(&name) {
                old.stop().await;
                tracing::info!(foundation = %name, "foundation configuration changed; restarting its refresher");
            } else {
                tracing::info!(foundation = %name, "watching foundation");
            }
            self.store.register(&name);
            let cancel = self.parent.child_token();
            let task = tokio::spawn((self.runner)(refresher, cancel.clone()));
            self.running.insert(
                name,
                Running {
                    config,
                    cancel,
                    task,
                },
            );
        }
        Ok(())
    }

    /// Stops every refresher and waits for them, and for a cache-file write in progress.
    pub async fn shutdown(self) {
        for r in self.running.values() {
            r.cancel.cancel();
        }
        for (_, r) in self.running {
            r.stop().await;
        }
        // The refreshers are stopped: the writer writes what they published last, and ends.
        if let Some((stop, writer)) = self.cache_writer {
            stop.cancel();
            if let Err(e) = writer.await {
                tracing::error!(error = %e, "cache file writer failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{DemoTarget, Grant, SecretSource};
    use crate::snapshot::FoundationSnapshot;
    use secrecy::SecretString;

    fn foundation(name: &str) -> FoundationConfig {
        DemoTarget {
            api_url: "http://127.0.0.1:9/".parse().unwrap(),
            username: "u".into(),
            password: SecretString::from("p"),
            client_id: "cf".into(),
            client_secret: String::new().into(),
            origin: None,
            metadata_labels: Vec::new(),
            lead_time_annotation: None,
            successor_annotation: None,
        }
        .foundation(name)
    }

    /// A runner that publishes once more after it was told to stop, as a refresh caught in the
    /// middle of publishing does, then says it is done.
    fn publishes_while_stopping(store: Arc<Store>, done: Arc<tokio::sync::Notify>) -> Runner {
        Arc::new(move |refresher, cancel| {
            let (store, done) = (store.clone(), done.clone());
            let name = refresher.name().to_owned();
            Box::pin(async move {
                cancel.cancelled().await;
                tokio::task::yield_now().await;
                store.publish(&name, FoundationSnapshot::default());
                done.notify_one();
            })
        })
    }

    #[tokio::test]
    async fn a_removed_foundation_stays_removed_when_its_refresher_publishes_while_stopping() {
        let store = Arc::new(Store::new());
        let done = Arc::new(tokio::sync::Notify::new());
        let metrics = Arc::new(ExporterMetrics::default());
        let exposition = metrics.exposition(store.clone());
        let mut supervisor = Supervisor::new(store.clone(), metrics, CancellationToken::new())
            .with_runner(publishes_while_stopping(store.clone(), done.clone()));
        supervisor
            .apply(vec![foundation("a"), foundation("b")])
            .await
            .unwrap();
        supervisor.apply(vec![foundation("b")]).await.unwrap();
        // Whatever the scheduler did, the stopped refresher has published by now.
        done.notified().await;
        let snapshot = store.load();
        let names: Vec<&str> = snapshot.foundations.keys().map(String::as_str).collect();
        assert_eq!(names, ["b"]);
        // Nor do its own series stay (its error counters were created with its refresher).
        let text = exposition.encode(crate::metrics::Format::Text);
        assert!(text.contains("foundation=\"b\""), "{text}");
        assert!(!text.contains("foundation=\"a\""), "{text}");
    }

    #[test]
    fn foundations_started_together_are_spread_over_at_most_a_minute() {
        let five_minutes = Duration::from_secs(300);
        let delays: Vec<u64> = (0..10)
            .map(|i| stagger(i, 10, five_minutes).as_secs())
            .collect();
        assert_eq!(delays, [0, 6, 12, 18, 24, 30, 36, 42, 48, 54]);
        // A short interval: spread over the interval itself.
        assert_eq!(
            stagger(1, 2, Duration::from_secs(10)),
            Duration::from_secs(5)
        );
        assert_eq!(stagger(0, 1, five_minutes), Duration::ZERO);
    }

    #[tokio::test]
    async fn each_new_refresher_gets_its_place_in_the_stagger() {
        let delays = Arc::new(std::sync::Mutex::new(Vec::new()));
        let recording: Runner = {
            let delays = delays.clone();
            Arc::new(move |refresher, cancel| {
                delays
                    .lock()
                    .unwrap()
                    .push((refresher.name().to_owned(), refresher.start_delay()));
                Box::pin(async move { cancel.cancelled().await })
            })
        };
        let mut supervisor = Supervisor::new(
            Arc::new(Store::new()),
            Arc::new(ExporterMetrics::default()),
            CancellationToken::new(),
        )
        .with_runner(recording);
        let names = ["a", "b", "c", "d"];
        supervisor
            .apply(names.iter().map(|n| foundation(n)).collect())
            .await
            .unwrap();
        let mut seen = delays.lock().unwrap().clone();
        seen.sort();
        let expected: Vec<(String, Duration)> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.to_string(), Duration::from_secs(15 * i as u64)))
            .collect();
        assert_eq!(seen, expected);
        supervisor.shutdown().await;
    }

    #[tokio::test]
    async fn a_change_of_an_inline_secret_alone_restarts_the_refresher() {
        let store = Arc::new(Store::new());
        let starts = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counting: Runner = {
            let starts = starts.clone();
            Arc::new(move |_, cancel| {
                starts.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                Box::pin(async move { cancel.cancelled().await })
            })
        };
        let mut supervisor = Supervisor::new(
            store,
            Arc::new(ExporterMetrics::default()),
            CancellationToken::new(),
        )
        .with_runner(counting);
        let with_password = |password: &str| {
            let mut f = foundation("a");
            f.grant = Grant::Password {
                username: "u".into(),
                password: SecretSource::Inline(SecretString::from(password.to_owned())),
            };
            f
        };
        supervisor.apply(vec![with_password("old")]).await.unwrap();
        supervisor.apply(vec![with_password("old")]).await.unwrap();
        assert_eq!(
            starts.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "unchanged: kept"
        );
        supervisor.apply(vec![with_password("new")]).await.unwrap();
        assert_eq!(
            starts.load(std::sync::atomic::Ordering::SeqCst),
            2,
            "new password: restarted"
        );
        supervisor.shutdown().await;
    }
}
