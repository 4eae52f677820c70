//! Slow and idle clients cannot starve the scraper, over plain HTTP and over TLS.
//!
//! The exporter runs with 20,000 keys, `--web-max-requests 40` and short limits (the flags
//! `--web-header-timeout`, `--web-write-timeout`, `--web-max-connections`; the defaults are
//! longer). Then 1,000 connections sit idle (some with half a request line) and 40 clients ask
//! for `/metrics` and never read. What must hold:
//!
//! - the 40 slow readers hold every scrape slot (a scrape gets 503), until the write deadline
//!   closes their connections and frees the slots;
//! - meanwhile, with the 1,000 idle connections still open, a well-behaved scrape takes at most
//!   twice its time on the unloaded exporter (medians, measured in the same run);
//! - the idle connections are closed by the header timeout;
//! - past the connection cap, a new connection is closed at once.
//!
//! Every wait is on a condition with a generous limit; only the 2× comparison is a timing, and it
//! compares two measurements of the same machine a few seconds apart.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cf_service_key_exporter::web::serve::Limits;
use cf_service_key_exporter::web::WebConfigFile;
use cf_service_key_exporter::ServeOptions;

use crate::common::{one_foundation, Served};
use cf_sim::{demo, Accounts, Sim, World};
use rustls_pki_types::pem::PemObject as _;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::web_config::{client as tls_client, Ca, Dir, TLS};

const KEYS: usize = 20_000;
const IDLE: usize = 1_000;
const SLOW: usize = 40;
/// Long enough that the idle connections are still open while the loaded scrapes are timed.
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);
const WRITE_TIMEOUT: Duration = Duration::from_secs(8);
/// Generous: the test machine may be busy with other builds.
const PATIENCE: Duration = Duration::from_secs(120);

/// Raises the soft limit of open files towards the hard one: 1,000 idle connections are 2,000
/// descriptors in this process (client and server ends).
fn raise_fd_limit(wanted: libc::rlim_t) -> libc::rlim_t {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct given.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        if limit.rlim_cur < wanted {
            limit.rlim_cur = wanted.min(limit.rlim_max);
            assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
        }
    }
    limit.rlim_cur
}

/// The exporter under test and how to reach it.
struct Exporter {
    addr: SocketAddr,
    /// Set when serving TLS: trusts the test CA.
    tls: Option<(Ca, tokio_rustls::TlsConnector)>,
    client: reqwest::Client,
    served: Served,
    _dir: Dir,
    _sim: Sim,
}

impl Exporter {
    async fn start(world: World, tls: bool, limits: Limits) -> Exporter {
        let sim = Sim::start(world, Accounts::default()).await.unwrap();
        let dir = Dir::new();
        let (web_config, tls) = if tls {
            let ca = Ca::new("slow-clients CA");
            dir.server_files(&ca.server());
            let web = WebConfigFile::load(dir.write("web.yml", TLS)).unwrap();
            let connector = connector(&ca);
            (Some(Arc::new(web)), Some((ca, connector)))
        } else {
            (None, None)
        };
        let client = match &tls {
            Some((ca, _)) => tls_client(ca, None),
            None => reqwest::Client::new(),
        };
        let options = ServeOptions {
            web_config,
            max_requests: Some(SLOW),
            limits,
            ..Default::default()
        };
        let served = Served::start(one_foundation(&sim, "slow", None), options).await;
        Exporter {
            addr: served.addr,
            tls,
            client,
            served,
            _dir: dir,
            _sim: sim,
        }
    }

    fn url(&self, path: &str) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}{path}", self.addr)
    }

    async fn wait_ready(&self) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let ready = self.client.get(self.url("/readyz")).send().await;
            if ready.is_ok_and(|r| r.status() == 200) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the first refresh did not finish"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// One scrape of the whole body: its status and how long it took.
    async fn scrape(&self) -> (u16, Duration) {
        let started = Instant::now();
        let response = self
            .client
            .get(self.url("/metrics"))
            .header("accept-encoding", "identity")
            .send()
            .await
            .expect("a scrape gets an answer");
        let status = response.status().as_u16();
        let body = response.bytes().await.expect("the body arrives whole");
        if status == 200 {
            assert!(body.len() > 1_000_000, "a small body: {} bytes", body.len());
        }
        (status, started.elapsed())
    }

    /// The median time of `n` successful scrapes.
    async fn median_scrape(&self, n: usize) -> Duration {
        let mut times = Vec::with_capacity(n);
        for _ in 0..n {
            let (status, took) = self.scrape().await;
            assert_eq!(status, 200);
            times.push(took);
        }
        times.sort();
        times[n / 2]
    }

    /// A connection that sends `request` (if any) and then never reads, with a small receive
    /// buffer so the server soon has to wait for it.
    async fn slow_client(&self, request: &[u8]) -> Box<dyn Stream> {
        let socket = TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let tcp = socket.connect(self.addr).await.unwrap();
        let mut stream: Box<dyn Stream> = match &self.tls {
            None => Box::new(tcp),
            Some((_, connector)) => {
                let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
                Box::new(connector.connect(name, tcp).await.unwrap())
            }
        };
        stream.write_all(request).await.unwrap();
        stream.flush().await.unwrap();
        stream
    }

    async fn shutdown(self) {
        self.served.shutdown(PATIENCE).await;
    }
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

fn connector(ca: &Ca) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_slice_iter(ca.pem().as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// Whether the server closed `stream`: reads until end of stream or an error (a reset), within
/// `limit`. Data still buffered (part of a body) is read and dropped.
async fn closed_by_server(stream: &mut (impl AsyncRead + Unpin), limit: Duration) -> bool {
    let mut buf = vec![0u8; 64 * 1024];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

const SCRAPE_REQUEST: &[u8] =
    b"GET /metrics HTTP/1.1\r\nHost: exporter\r\nAccept-Encoding: identity\r\n\r\n";

async fn idle_and_slow_clients_do_not_starve_the_scraper(tls: bool) {
    let fds = raise_fd_limit(8192);
    assert!(
        fds >= (2 * IDLE + 500) as libc::rlim_t,
        "the open-file limit is {fds}; this test needs about {}",
        2 * IDLE + 500
    );
    let limits = Limits {
        header_timeout: HEADER_TIMEOUT,
        write_timeout: WRITE_TIMEOUT,
        max_connections: IDLE + SLOW + 100,
    };
    let exporter = Exporter::start(
        demo::large(KEYS, time::OffsetDateTime::now_utc()).unwrap(),
        tls,
        limits,
    )
    .await;
    exporter.wait_ready().await;
    // The first scrape renders the snapshot; time the ones after it.
    assert_eq!(exporter.scrape().await.0, 200);
    let unloaded_before = exporter.median_scrape(9).await;

    // 1,000 idle connections; over plain HTTP every other one sends half a request line (on
    // the TLS port that would be answered at once as plain HTTP, so there they send nothing).
    let mut idle = Vec::with_capacity(IDLE);
    for i in 0..IDLE {
        let mut stream = TcpStream::connect(exporter.addr).await.unwrap();
        if !tls && i % 2 == 0 {
            stream.write_all(b"GET /metr").await.unwrap();
        }
        idle.push(stream);
    }
    let idle_since = Instant::now();

    // 40 clients ask for /metrics and never read: they hold every slot...
    let mut slow = Vec::with_capacity(SLOW);
    for _ in 0..SLOW {
        slow.push(exporter.slow_client(SCRAPE_REQUEST).await);
    }
    // Each has its answer started (read a few bytes of it, leaving megabytes unread).
    for (n, stream) in slow.iter_mut().enumerate() {
        let mut head = [0u8; 12];
        tokio::time::timeout(PATIENCE, stream.read_exact(&mut head))
            .await
            .unwrap_or_else(|_| panic!("slow reader {n} got no answer"))
            .unwrap();
        assert_eq!(&head, b"HTTP/1.1 200", "slow reader {n}");
    }
    let deadline = Instant::now() + PATIENCE;
    while exporter.scrape().await.0 != 503 {
        assert!(
            Instant::now() < deadline,
            "the slow readers never held every slot"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // ...until the write deadline closes their connections and frees the slots.
    while exporter.scrape().await.0 != 200 {
        assert!(
            Instant::now() < deadline,
            "the slots of the slow readers were never freed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Meanwhile, with the idle connections open, a scrape is about as fast as unloaded.
    let loaded = exporter.median_scrape(9).await;
    let still_idle = idle_since.elapsed() < HEADER_TIMEOUT;
    for (n, stream) in slow.iter_mut().enumerate() {
        assert!(
            closed_by_server(stream, PATIENCE).await,
            "slow reader {n} was never closed"
        );
    }
    // The header timeout closes every idle connection.
    for (n, stream) in idle.iter_mut().enumerate() {
        let left = PATIENCE + HEADER_TIMEOUT.saturating_sub(idle_since.elapsed());
        assert!(
            closed_by_server(stream, left).await,
            "idle connection {n} was still open after {:?}",
            idle_since.elapsed()
        );
    }
    // Unloaded again, now that every idle and slow connection is gone: the machine's own load
    // (other builds, other tests) may have changed meanwhile, so the slower of the two counts.
    let unloaded_after = exporter.median_scrape(9).await;
    let unloaded = unloaded_before.max(unloaded_after);
    println!(
        "tls={tls}: median scrape unloaded {unloaded_before:?} before, {unloaded_after:?} after; \
         with {IDLE} idle connections and {SLOW} slow readers {loaded:?} (idle connections still \
         open then: {still_idle})"
    );
    assert!(
        loaded <= unloaded * 2,
        "tls={tls}: a scrape took {loaded:?} under load, {unloaded:?} without"
    );
    exporter.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_slow_clients_do_not_starve_the_scraper_over_http() {
    idle_and_slow_clients_do_not_starve_the_scraper(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_slow_clients_do_not_starve_the_scraper_over_tls() {
    idle_and_slow_clients_do_not_starve_the_scraper(true).await;
}

/// Past the cap, a new connection is closed at once, while those under it stay open; once one of
/// them goes, a new connection is served again.
async fn past_the_connection_cap_new_connections_are_closed(tls: bool) {
    const CAP: usize = 20;
    let exporter = Exporter::start(
        World::new(),
        tls,
        Limits {
            // Far longer than the test: only the cap can close a connection here.
            header_timeout: Duration::from_secs(600),
            write_timeout: WRITE_TIMEOUT,
            max_connections: CAP,
        },
    )
    .await;
    // No request before: no pooled connection of a client counts against the cap. The listener
    // accepts in order, so the first CAP connections are the ones served.
    let mut held = Vec::new();
    for _ in 0..CAP {
        held.push(TcpStream::connect(exporter.addr).await.unwrap());
    }
    let mut refused = TcpStream::connect(exporter.addr).await.unwrap();
    assert!(
        closed_by_server(&mut refused, PATIENCE).await,
        "tls={tls}: a connection past the cap was not closed"
    );
    // Those under the cap are still open (accepted before the refused one, so any closing of
    // theirs would already show).
    for stream in &held {
        let mut byte = [0u8; 1];
        let peeked = tokio::time::timeout(Duration::from_millis(200), stream.peek(&mut byte)).await;
        assert!(
            peeked.is_err(),
            "tls={tls}: a connection under the cap ended: {peeked:?}"
        );
    }
    // Room again once a connection goes away.
    drop(held.pop());
    let deadline = Instant::now() + PATIENCE;
    loop {
        let fresh = reqwest::Client::builder().pool_max_idle_per_host(0);
        let fresh = match &exporter.tls {
            Some((ca, _)) => fresh
                .tls_built_in_root_certs(false)
                .add_root_certificate(reqwest::Certificate::from_pem(ca.pem().as_bytes()).unwrap()),
            None => fresh,
        };
        let answer = fresh
            .build()
            .unwrap()
            .get(exporter.url("/healthz"))
            .send()
            .await;
        if answer.is_ok_and(|r| r.status() == 200) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "tls={tls}: no room after a connection closed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(held);
    exporter.shutdown().await;
}

#[tokio::test]
async fn past_the_connection_cap_new_connections_are_closed_over_http() {
    past_the_connection_cap_new_connections_are_closed(false).await;
}

#[tokio::test]
async fn past_the_connection_cap_new_connections_are_closed_over_tls() {
    past_the_connection_cap_new_connections_are_closed(true).await;
}
