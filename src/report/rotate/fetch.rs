//! The reads a rotation plan needs beyond the refresh: which offerings return key parameters,
//! and the parameters of the keys whose offering does.
//!
//! Everything goes through the foundation's own client ([`CfClient`]): the same transport,
//! pacer, retries and rate-limit reading as the refresh before it, so these reads count
//! against the same budget. They are bounded by it too: with a rate limit announced, at most
//! what [`read_budget`] allows for one refresh is asked; the keys beyond it are planned from
//! their credentials, saying so. At most `concurrency` reads are in flight at once.

use std::collections::HashMap;
use std::time::Duration;

use futures::stream::{self, StreamExt};

use super::parameters::Fetched;
use crate::cf::error::Chain;
use crate::cf::CfClient;
use crate::refresher::plan::read_budget;
use crate::snapshot::KeyRecord;

/// What `/parameters` gave for each of `keys`, by key guid.
pub async fn parameters(
    client: &CfClient,
    keys: &[&KeyRecord],
    concurrency: usize,
    now: i64,
) -> HashMap<String, Fetched> {
    let guid = |k: &KeyRecord| k.labels.service_key_guid.to_string();
    let mut out = HashMap::new();
    if keys.is_empty() {
        return out;
    }
    let mut names: Vec<String> = keys
        .iter()
        .map(|k| k.labels.service_offering.to_string())
        .collect();
    names.sort();
    names.dedup();
    let retrievable = match client.bindings_retrievable(&names).await {
        Ok(r) => r,
        Err(e) => {
            let why = format!("the service offerings could not be read ({})", Chain(&e));
            return keys
                .iter()
                .map(|k| (guid(k), Fetched::Failed(why.clone())))
                .collect();
        }
    };
    let mut asked = Vec::new();
    for k in keys {
        if retrievable.get(&*k.facts.offering_guid) == Some(&true) {
            asked.push(guid(k));
        } else {
            out.insert(guid(k), Fetched::NotRetrievable);
        }
    }
    // One refresh's worth of what the window has left, less the offerings page just read.
    let budget = read_budget(client.rate_limit(), now, Duration::MAX, 0).unwrap_or(usize::MAX);
    if asked.len() > budget {
        for skipped in asked.split_off(budget) {
            let why = "it was not asked: the rate-limit budget is spent".to_owned();
            out.insert(skipped, Fetched::Failed(why));
        }
    }
    let answers: Vec<(String, Fetched)> = stream::iter(asked)
        .map(|g| async move {
            let answer = match client.key_parameters(&g).await {
                Ok(value) => Fetched::Returned(value),
                Err(e) => Fetched::Failed(Chain(&e).to_string()),
            };
            (g, answer)
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    out.extend(answers);
    out
}
