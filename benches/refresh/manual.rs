//! The manual procedure the exporter replaces: what an operator's script does. Log in, list every
//! key with the default page size (50), then read each key's `/details` one after the other,
//! every time.

use std::time::{Duration, Instant};

use cf_service_key_exporter::expiry;
use cf_sim::Accounts;

pub const MANUAL_PAGE_SIZE: usize = 50;

/// One pass of the procedure: its time and requests.
#[derive(Debug, Clone, Copy)]
pub struct Manual {
    pub keys: usize,
    pub time: Duration,
    pub requests: u64,
}

impl Manual {
    /// The same procedure at `keys`, scaled by its request count: every request is one round
    /// trip, one after the other.
    pub fn extrapolate(&self, keys: usize) -> Manual {
        let requests = 1 + keys.div_ceil(MANUAL_PAGE_SIZE) as u64 + keys as u64;
        let per_request = self.time.as_secs_f64() / self.requests as f64;
        Manual {
            keys,
            time: Duration::from_secs_f64(per_request * requests as f64),
            requests,
        }
    }
}

/// Runs the procedure once against the simulator at `api_url` (whose UAA it finds from the API
/// root, as the cf CLI does).
pub async fn manual_pass(api_url: &str) -> Manual {
    let client = reqwest::Client::new();
    let accounts = Accounts::default();
    let api = api_url.trim_end_matches('/');
    let root: serde_json::Value = client
        .get(api)
        .send()
        .await
        .expect("api root")
        .json()
        .await
        .expect("api root body");
    let uaa = root["links"]["uaa"]["href"].as_str().expect("uaa link");
    let start = Instant::now();
    let mut requests = 0u64;
    let token: serde_json::Value = client
        .post(format!("{uaa}/oauth/token"))
        .basic_auth(&accounts.client_id, Some(&accounts.client_secret))
        .form(&[
            ("grant_type", "password"),
            ("username", accounts.username.as_str()),
            ("password", accounts.password.as_str()),
        ])
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("token");
    requests += 1;
    let bearer = format!("bearer {}", token["access_token"].as_str().expect("token"));

    let mut guids = Vec::new();
    let mut next = Some(format!("{api}/v3/service_credential_bindings?type=key"));
    while let Some(url) = next {
        let page: serde_json::Value = client
            .get(&url)
            .header("authorization", &bearer)
            .send()
            .await
            .expect("list")
            .json()
            .await
            .expect("page");
        requests += 1;
        for r in page["resources"].as_array().expect("resources") {
            guids.push(r["guid"].as_str().expect("guid").to_owned());
        }
        next = page["pagination"]["next"]["href"]
            .as_str()
            .map(str::to_owned);
    }
    let mut read = 0;
    for guid in &guids {
        let details: serde_json::Value = client
            .get(format!(
                "{api}/v3/service_credential_bindings/{guid}/details"
            ))
            .header("authorization", &bearer)
            .send()
            .await
            .expect("details")
            .json()
            .await
            .expect("details body");
        requests += 1;
        if expiry::extract(&details["credentials"])
            .earliest()
            .is_some()
        {
            read += 1;
        }
    }
    assert_eq!(read, guids.len(), "the manual procedure read every key");
    Manual {
        keys: guids.len(),
        time: start.elapsed(),
        requests,
    }
}
