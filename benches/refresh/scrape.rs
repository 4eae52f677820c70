//! The Prometheus side: scrapes `/metrics` over real HTTP from the parent process, as
//! Prometheus asks (OpenMetrics, optionally gzip), and times each answer until its last byte.
//! Bodies are streamed and discarded, never decompressed: the time is the exporter's answer,
//! the size what travels.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Barrier;

/// The `Accept` header Prometheus sends.
const PROMETHEUS_ACCEPT: &str =
    "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// One scrape.
#[derive(Debug, Clone, Copy)]
pub struct Scraped {
    pub status: u16,
    pub time: Duration,
    pub bytes: usize,
    /// Sample lines (uncompressed bodies only, when asked to count).
    pub series: usize,
}

/// Times of a series of scrapes.
#[derive(Debug, Clone, Default)]
pub struct Latencies {
    pub times: Vec<Duration>,
    pub bytes: usize,
    pub series: usize,
}

impl Latencies {
    pub fn add(&mut self, s: Scraped) {
        self.times.push(s.time);
        self.bytes = s.bytes;
        self.series = self.series.max(s.series);
    }

    /// The `q` quantile (nearest rank: the smallest time at least `q` of the scrapes took).
    pub fn quantile(&self, q: f64) -> Duration {
        if self.times.is_empty() {
            return Duration::ZERO;
        }
        let mut sorted = self.times.clone();
        sorted.sort();
        let rank = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len());
        sorted[rank - 1]
    }

    pub fn p50(&self) -> Duration {
        self.quantile(0.50)
    }

    pub fn p99(&self) -> Duration {
        self.quantile(0.99)
    }

    pub fn max(&self) -> Duration {
        self.times.iter().copied().max().unwrap_or_default()
    }

    pub fn count(&self) -> usize {
        self.times.len()
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_gzip()
        .build()
        .expect("http client")
}

/// One scrape; counts the sample lines of an uncompressed body when `count_series`.
pub async fn scrape(
    client: &reqwest::Client,
    url: &str,
    gzip: bool,
    count_series: bool,
) -> Scraped {
    let mut request = client.get(url).header("accept", PROMETHEUS_ACCEPT);
    if gzip {
        request = request.header("accept-encoding", "gzip");
    }
    let start = Instant::now();
    let mut response = request.send().await.expect("scrape");
    let status = response.status().as_u16();
    let mut bytes = 0;
    let mut lines = LineCounter::default();
    while let Some(chunk) = response.chunk().await.expect("body") {
        bytes += chunk.len();
        if count_series && !gzip {
            lines.feed(&chunk);
        }
    }
    Scraped {
        status,
        time: start.elapsed(),
        bytes,
        series: lines.samples,
    }
}

/// Counts the non-comment, non-empty lines of a body fed in chunks.
#[derive(Debug)]
struct LineCounter {
    at_line_start: bool,
    samples: usize,
}

impl Default for LineCounter {
    fn default() -> Self {
        LineCounter {
            at_line_start: true,
            samples: 0,
        }
    }
}

impl LineCounter {
    fn feed(&mut self, chunk: &[u8]) {
        for &b in chunk {
            if self.at_line_start && b != b'#' && b != b'\n' {
                self.samples += 1;
            }
            self.at_line_start = b == b'\n';
        }
    }
}

/// `n` scrapes one after the other on one connection, as one Prometheus server does.
pub async fn sequential(url: &str, n: usize, gzip: bool) -> Latencies {
    let client = client();
    let mut out = Latencies::default();
    for i in 0..n.max(1) {
        let s = scrape(&client, url, gzip, i == 0).await;
        assert_eq!(s.status, 200, "scrape answered {}", s.status);
        out.add(s);
    }
    out
}

/// What a crowd of concurrent scrapers saw.
#[derive(Debug, Clone, Default)]
pub struct Crowd {
    pub ok: usize,
    pub total: usize,
    /// Statuses other than 200, with their count.
    pub refused: Vec<(u16, usize)>,
    pub plain: Latencies,
    pub gzip: Latencies,
    pub wall: Duration,
}

/// `scrapers` clients (each with its own connection; every other one asks for gzip) start at
/// the same moment and scrape `rounds` times each, one scrape after the other.
pub async fn concurrent(url: &str, scrapers: usize, rounds: usize) -> Crowd {
    let barrier = Arc::new(Barrier::new(scrapers));
    let start = Instant::now();
    let tasks: Vec<_> = (0..scrapers)
        .map(|i| {
            let url = url.to_owned();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                let client = client();
                let gzip = i % 2 == 1;
                barrier.wait().await;
                let mut seen = Vec::with_capacity(rounds);
                for _ in 0..rounds.max(1) {
                    seen.push((gzip, scrape(&client, &url, gzip, false).await));
                }
                seen
            })
        })
        .collect();
    let mut crowd = Crowd::default();
    for task in tasks {
        for (gzip, s) in task.await.expect("scraper") {
            crowd.total += 1;
            if s.status == 200 {
                crowd.ok += 1;
                if gzip {
                    crowd.gzip.add(s);
                } else {
                    crowd.plain.add(s);
                }
            } else {
                match crowd.refused.iter_mut().find(|(c, _)| *c == s.status) {
                    Some((_, n)) => *n += 1,
                    None => crowd.refused.push((s.status, 1)),
                }
            }
        }
    }
    crowd.wall = start.elapsed();
    crowd
}
