//! Starts, stops and replaces the per-foundation refreshers when the configuration changes.
//!
//! Each foundation refreshes in its own task with its own cancellation token, so one slow or
//! failing foundation never delays another. A new configuration is applied all-or-nothing:
//! every new refresher is built first (a bad CA file fails here), and only then are removed or
//! changed foundations stopped and new ones started. With a cache file, the supervisor tells
//! the [`Cache`] which foundations it holds and hands it to every refresher.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::cache::Cache;
use crate::cf::CfError;
use crate::config::FoundationConfig;
use crate::metrics::ExporterMetrics;
use crate::refresher::Refresher;
use crate::snapshot::Store;

struct Running {
    /// Debug rendering of the config (secrets print redacted), to see what changed.
    fingerprint: String,
    cancel: CancellationToken,
    task: JoinHandle<()>,
}

/// Owns the refresher tasks.
pub struct Supervisor {
    store: Arc<Store>,
    metrics: Arc<ExporterMetrics>,
    running: HashMap<String, Running>,
    parent: CancellationToken,
    cache: Option<Arc<Cache>>,
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
        }
    }

    /// Keeps the readings of every foundation in this cache file.
    pub fn with_cache(mut self, cache: Option<Arc<Cache>>) -> Self {
        self.cache = cache;
        self
    }

    /// Makes the running refreshers match `foundations`.
    pub fn apply(&mut self, foundations: Vec<FoundationConfig>) -> Result<(), CfError> {
        let mut next = Vec::new();
        for config in foundations {
            let fingerprint = format!("{config:?}");
            if self
                .running
                .get(&config.name)
                .is_some_and(|r| r.fingerprint == fingerprint)
            {
                next.push((config.name.clone(), None));
                continue;
            }
            next.push((
                config.name.clone(),
                Some((
                    build(&config, &self.store, &self.metrics)?.with_cache(self.cache.clone()),
                    fingerprint,
                    config.api_url.to_string(),
                )),
            ));
        }
        let wanted: std::collections::HashSet<&str> =
            next.iter().map(|(n, _)| n.as_str()).collect();
        let removed: Vec<String> = self
            .running
            .keys()
            .filter(|n| !wanted.contains(n.as_str()))
            .cloned()
            .collect();
        for name in removed {
            if let Some(r) = self.running.remove(&name) {
                r.cancel.cancel();
            }
            self.store.remove(&name);
            if let Some(cache) = &self.cache {
                cache.forget(&name);
            }
            tracing::info!(foundation = %name, "foundation removed");
        }
        for (name, fresh) in next {
            let Some((refresher, fingerprint, api_url)) = fresh else {
                continue;
            };
            if let Some(cache) = &self.cache {
                cache.watch(&name, &api_url);
            }
            if let Some(old) = self.running.remove(&name) {
                old.cancel.cancel();
                tracing::info!(foundation = %name, "foundation configuration changed; restarting its refresher");
            } else {
                tracing::info!(foundation = %name, "watching foundation");
            }
            self.store.register(&name);
            let cancel = self.parent.child_token();
            let task = tokio::spawn(refresher.run(cancel.clone()));
            self.running.insert(
                name,
                Running {
                    fingerprint,
                    cancel,
                    task,
                },
            );
        }
        Ok(())
    }

    /// Stops every refresher and waits for them.
    pub async fn shutdown(self) {
        for r in self.running.values() {
            r.cancel.cancel();
        }
        for (_, r) in self.running {
            let _ = r.task.await;
        }
    }
}

fn build(
    config: &FoundationConfig,
    store: &Arc<Store>,
    metrics: &Arc<ExporterMetrics>,
) -> Result<Refresher, CfError> {
    Refresher::new(config.clone(), store.clone(), metrics.clone())
}
