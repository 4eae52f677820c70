//! The optional cache file (`--cache-file`): the last key readings kept across restarts, so a
//! restart does not re-read every key's `/details`.
//!
//! What it holds, per foundation: the API URL it was read from and, per key, its labels (named
//! as on `/metrics`, from [`KeyLabels`]), its creation time, the change markers the incremental
//! refresh compares (`updated_at` of the key and of its instance), its last reading (when,
//! expiry and valid-from in Unix seconds, `expiry_source`, public certificate facts) and the
//! failure of its latest read, if it failed. Never credentials: the file is written from
//! [`KeyRecord`]s, which hold none. Owner labels and lead times are not kept: they are read from
//! the list pages at every refresh.
//!
//! Format: versioned JSON,
//! `{"format": "cf-service-key-exporter/cache", "version": 2, "foundations": {name: {api_url, keys: [...]}}}`.
//! A file of version 1 (before creation times and failures were kept) is ignored, so the first
//! refresh after the upgrade reads every key once.
//!
//! Trust: the file is an optimisation, never a source of truth. A file that is unreadable, not
//! JSON, of another format or version is ignored whole with a warning; a foundation whose
//! `api_url` differs from the configured one (another foundation under the same name) is
//! ignored with a warning; a key entry with an unknown `expiry_source` or `reason`, an empty
//! guid or a `read_at` in the future is dropped. Seeded keys count as read at their `read_at`, so the
//! periodic full re-read still comes due on time, and they never count as a successful
//! refresh: `refresh_success` and the last-success timestamp wait for a real one. A seeded
//! foundation is ready at once (`/readyz`): its readings are the last truth a refresh read, so a
//! restarted exporter serves them instead of a cold, half-read estate.
//!
//! Foundations in the file that are not configured are kept in it as they were (a configuration
//! that leaves one out by mistake loses nothing) and seed the store when a reload adds them; a
//! foundation removed by a reload is dropped from the file.
//!
//! Writing: the cache follows the store ([`Cache::follow`]): after each refresh that published a
//! key set, and once more when the exporter stops, the whole file is rewritten from the store's
//! current snapshot, atomically (a temporary file of random name in the same directory,
//! created new without following links, fsync, rename, fsync of the directory), on a blocking
//! thread. Reading is capped at [`MAX_FILE_SIZE`] whatever the file system says the size is. Writes are serialised by an async mutex, so
//! two foundations finishing at once write one after the other. A failed write is logged and
//! changes nothing else.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::clock::{Clock, SystemClock};

use crate::cf::listing::Interner;
use crate::config::FoundationConfig;
use crate::expiry::CertificateInfo;
use crate::snapshot::{
    KeyExpiry, KeyLabels, KeyRecord, LeadTime, ReadFailure, Reading, Shape, Snapshot, Store,
};
use crate::vocab::{ExpirySource, Reason};

/// The `format` field: tells our file from any other JSON.
pub const FORMAT: &str = "cf-service-key-exporter/cache";
/// The `version` field; a file of another version is ignored (and rewritten).
pub const VERSION: u32 = 2;
/// A cache file larger than this is not read (file sizes per key count: docs/performance.md,
/// "Sizing").
pub const MAX_FILE_SIZE: u64 = 64 * 1024 * 1024;
/// A `read_at` this far in the future (clock skew between restarts) is still accepted.
const FUTURE_TOLERANCE_SECS: i64 = 300;

/// Why a cache file was not used.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is {size} bytes or more, more than the {MAX_FILE_SIZE} a cache file may be", path.display())]
    TooLarge { path: PathBuf, size: u64 },
    #[error("{} is not a cache file of this exporter: {message}", path.display())]
    Corrupt { path: PathBuf, message: String },
    #[error("{} is a cache file of format {format:?} version {version}, not {FORMAT:?} version {VERSION}", path.display())]
    Foreign {
        path: PathBuf,
        format: String,
        version: u64,
    },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

// ---- The file's shape: one set of types for writing and reading. ----

#[derive(Debug, Clone, Serialize, Deserialize)]
struct File {
    format: String,
    version: u32,
    foundations: BTreeMap<String, FoundationEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct FoundationEntry {
    api_url: String,
    keys: Vec<KeyEntry>,
}

/// One key: its labels (named as on `/metrics`), change markers and last reading.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct KeyEntry {
    labels: KeyLabels,
    created_at: Option<i64>,
    key_updated_at: Arc<str>,
    instance_updated_at: Arc<str>,
    /// `null`: never read successfully.
    reading: Option<ReadingEntry>,
    /// Set while the latest attempt failed.
    failure: Option<FailureEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ReadingEntry {
    read_at: i64,
    /// `null`: read, and nothing in it expires.
    expiry: Option<ExpiryEntry>,
    /// What the credentials showed about how the key was created (no credential value);
    /// absent in files of earlier versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    shape: Option<Shape>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ExpiryEntry {
    /// Unix seconds.
    expires_at: i64,
    valid_from: Option<i64>,
    source: String,
    certificate: Option<CertificateInfo>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct FailureEntry {
    reason: String,
    attempts: u32,
    retry_at: Option<i64>,
}

/// Read first and alone, so a foreign file is told apart from a corrupt one.
#[derive(Deserialize)]
struct Header {
    format: Option<String>,
    version: Option<u64>,
}

impl KeyEntry {
    fn new(k: &KeyRecord) -> KeyEntry {
        KeyEntry {
            labels: k.labels.clone(),
            created_at: k.created_at,
            key_updated_at: k.key_updated_at.clone(),
            instance_updated_at: k.instance_updated_at.clone(),
            reading: k.reading.as_ref().map(|r| ReadingEntry {
                read_at: r.read_at,
                expiry: r.expiry.as_ref().map(|e| ExpiryEntry {
                    expires_at: e.expires_at,
                    valid_from: e.valid_from,
                    source: e.source.as_str().to_owned(),
                    certificate: e.certificate.clone(),
                }),
                shape: r.shape,
            }),
            failure: k.failure.as_ref().map(|f| FailureEntry {
                reason: f.reason.as_str().to_owned(),
                attempts: f.attempts,
                retry_at: f.retry_at,
            }),
        }
    }

    /// The record, or `None` for an entry that cannot be trusted: an empty guid, a reading
    /// from the future, or a source or reason that is not ours (they become label values).
    fn record(self, now: i64, names: &mut Interner) -> Option<KeyRecord> {
        if self.labels.service_key_guid.is_empty() {
            return None;
        }
        let reading = match self.reading {
            None => None,
            Some(r) if r.read_at > now + FUTURE_TOLERANCE_SECS => return None,
            Some(r) => Some(Reading {
                read_at: r.read_at,
                expiry: match r.expiry {
                    None => None,
                    Some(e) => Some(KeyExpiry {
                        expires_at: e.expires_at,
                        valid_from: e.valid_from,
                        source: ExpirySource::parse_read(&e.source)?,
                        certificate: e.certificate,
                    }),
                },
                shape: r.shape,
            }),
        };
        let failure = match self.failure {
            None => None,
            Some(f) => Some(ReadFailure {
                reason: Reason::parse(&f.reason)?,
                attempts: f.attempts,
                retry_at: f.retry_at,
            }),
        };
        Some(KeyRecord {
            labels: self.labels.map(|s| names.get(&s)),
            created_at: self.created_at,
            owners: Arc::from([]),
            lead_time: LeadTime::Unset,
            key_updated_at: self.key_updated_at,
            instance_updated_at: names.get(&self.instance_updated_at),
            reading,
            failure,
            facts: Default::default(),
        })
    }
}

/// Serialises the keys of the foundations in `api_urls` (name → API URL) as cache JSON, with
/// the `carried` entries of foundations not configured now.
fn encode(
    snapshot: &Snapshot,
    api_urls: &BTreeMap<String, String>,
    carried: &BTreeMap<String, FoundationEntry>,
) -> Vec<u8> {
    let watched = api_urls.iter().filter_map(|(name, api_url)| {
        let f = snapshot.foundations.get(name)?;
        Some((
            name.as_str(),
            FoundationOut {
                api_url,
                keys: f.keys.iter().map(KeyEntry::new).collect(),
            },
        ))
    });
    // Serialised by reference: a carried foundation is written as it was read.
    #[derive(Serialize)]
    struct FoundationOut<'a> {
        api_url: &'a str,
        keys: Vec<KeyEntry>,
    }
    #[derive(Serialize)]
    #[serde(untagged)]
    enum Out<'a> {
        Watched(FoundationOut<'a>),
        Carried(&'a FoundationEntry),
    }
    let mut foundations: BTreeMap<&str, Out> = carried
        .iter()
        .map(|(name, entry)| (name.as_str(), Out::Carried(entry)))
        .collect();
    foundations.extend(watched.map(|(name, f)| (name, Out::Watched(f))));
    #[derive(Serialize)]
    struct FileOut<'a> {
        format: &'static str,
        version: u32,
        foundations: BTreeMap<&'a str, Out<'a>>,
    }
    let file = FileOut {
        format: FORMAT,
        version: VERSION,
        foundations,
    };
    serde_json::to_vec(&file).expect("serialising strings and integers cannot fail")
}

/// What [`decode`] found usable, by foundation name, and what it left out.
#[derive(Debug, Default)]
pub struct Decoded {
    /// Keys sorted by guid, per foundation whose `api_url` matched.
    pub foundations: HashMap<String, Vec<KeyRecord>>,
    /// Foundations left out because their `api_url` is not the configured one.
    pub mismatched: Vec<(String, String)>,
    /// Key entries dropped (unknown `expiry_source` or reason, empty guid, duplicate, a
    /// reading from the future).
    pub dropped_keys: usize,
    /// Foundations in the file that are not configured, as they were read: kept in the file,
    /// and seeded from if a reload adds them.
    carried: BTreeMap<String, FoundationEntry>,
}

/// Reads cache JSON: the records of foundations named in `api_urls` (name → configured API URL)
/// whose recorded `api_url` is the same, and the others as they are. `now` is Unix seconds.
pub(crate) fn decode(
    bytes: &[u8],
    path: &Path,
    api_urls: &HashMap<&str, &str>,
    now: i64,
) -> Result<Decoded, CacheError> {
    let corrupt = |e: serde_json::Error| CacheError::Corrupt {
        path: path.to_owned(),
        message: e.to_string(),
    };
    let header: Header = serde_json::from_slice(bytes).map_err(corrupt)?;
    match (header.format.as_deref(), header.version) {
        (Some(FORMAT), Some(v)) if v == u64::from(VERSION) => {}
        (format, version) => {
            return Err(CacheError::Foreign {
                path: path.to_owned(),
                format: format.unwrap_or("none").to_owned(),
                version: version.unwrap_or(0),
            })
        }
    }
    let file: File = serde_json::from_slice(bytes).map_err(corrupt)?;
    let mut out = Decoded::default();
    let mut names = Interner::default();
    for (name, foundation) in file.foundations {
        let Some(configured) = api_urls.get(name.as_str()) else {
            out.carried.insert(name, foundation);
            continue;
        };
        if !same_url(&foundation.api_url, configured) {
            out.mismatched.push((name, foundation.api_url));
            continue;
        }
        let (keys, dropped) = foundation.records(now, &mut names);
        out.dropped_keys += dropped;
        out.foundations.insert(name, keys);
    }
    Ok(out)
}

impl FoundationEntry {
    /// The usable records, sorted by guid, and how many entries were dropped.
    fn records(self, now: i64, names: &mut Interner) -> (Vec<KeyRecord>, usize) {
        let mut seen = HashSet::new();
        let mut dropped = 0;
        let mut keys = Vec::with_capacity(self.keys.len());
        for key in self.keys {
            match key.record(now, names) {
                Some(k) if seen.insert(k.labels.service_key_guid.clone()) => keys.push(k),
                _ => dropped += 1,
            }
        }
        keys.sort_by(|a, b| a.labels.service_key_guid.cmp(&b.labels.service_key_guid));
        (keys, dropped)
    }
}

/// Two spellings of one API URL (a trailing slash, case of the host) count as the same.
fn same_url(a: &str, b: &str) -> bool {
    match (url::Url::parse(a), url::Url::parse(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// The key sets refreshes published, by foundation (held, so a pointer is never reused).
fn refreshed_keys(snapshot: &Snapshot) -> BTreeMap<String, Arc<Vec<KeyRecord>>> {
    snapshot
        .foundations
        .iter()
        .filter(|(_, f)| f.status.finished_once)
        .map(|(name, f)| (name.clone(), f.keys.clone()))
        .collect()
}

/// Seeds the store with a foundation's cached readings.
fn publish_seed(store: &Store, name: &str, keys: Vec<KeyRecord>) {
    tracing::info!(foundation = %name, keys = keys.len(), "seeded from the cache file; unchanged keys will not be read again");
    store.seed(name, keys);
}

/// Writes `bytes` to `path` atomically: a temporary file in the same directory, fsync, rename
/// over `path`, then fsync of the directory so the rename itself survives a crash.
///
/// The temporary file has a random name and is created new (`O_EXCL`) without following a
/// symlink (`O_NOFOLLOW`), mode 0600: whoever can write the directory cannot make the exporter
/// overwrite another file through a planted link, nor guess the name in advance.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "cache".to_owned());
    let prefix = format!(".{file_name}.");
    let mut temp = tempfile::Builder::new()
        .prefix(&prefix)
        .suffix(".tmp")
        .make_in(&dir, |temp_path| {
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            // Key names and certificate subjects are not secrets, but nobody else needs them.
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                options.mode(0o600).custom_flags(libc::O_NOFOLLOW);
            }
            options.open(temp_path)
        })?;
    // On any error below, dropping `temp` removes the temporary file.
    temp.as_file_mut().write_all(bytes)?;
    temp.as_file().sync_all()?;
    temp.persist(path).map_err(|e| e.error)?;
    #[cfg(unix)]
    std::fs::File::open(&dir)?.sync_all()?;
    Ok(())
}

/// Reads at most `cap` bytes; more is [`CacheError::TooLarge`]. The size the file system
/// reports is not trusted (a file growing meanwhile, or a link to a device that never ends).
fn read_capped(reader: impl std::io::Read, cap: u64, path: &Path) -> Result<Vec<u8>, CacheError> {
    use std::io::Read as _;
    let mut bytes = Vec::new();
    reader
        .take(cap + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| CacheError::Read {
            path: path.to_owned(),
            source,
        })?;
    if bytes.len() as u64 > cap {
        return Err(CacheError::TooLarge {
            path: path.to_owned(),
            size: bytes.len() as u64,
        });
    }
    Ok(bytes)
}

/// Reads and checks a cache file for the given foundations (name → configured API URL); `now`
/// is Unix seconds.
fn load(path: &Path, api_urls: &HashMap<&str, &str>, now: i64) -> Result<Decoded, CacheError> {
    let read_error = |source| CacheError::Read {
        path: path.to_owned(),
        source,
    };
    let size = std::fs::metadata(path).map_err(read_error)?.len();
    if size > MAX_FILE_SIZE {
        return Err(CacheError::TooLarge {
            path: path.to_owned(),
            size,
        });
    }
    let file = std::fs::File::open(path).map_err(read_error)?;
    let bytes = read_capped(file, MAX_FILE_SIZE, path)?;
    decode(&bytes, path, api_urls, now)
}

/// The cache file of a running exporter: seeds the store at start, rewritten as refreshes
/// publish.
#[derive(Debug)]
pub struct Cache {
    path: PathBuf,
    /// Name → API URL of the foundations being watched: what the file holds.
    api_urls: Mutex<BTreeMap<String, String>>,
    /// Foundations of the file that are not configured: written back as they were, so a
    /// configuration that leaves one out by mistake does not lose its readings.
    carried: Mutex<BTreeMap<String, FoundationEntry>>,
    /// One write at a time. The blocking write holds it to its end, even when the refresh
    /// that started it is cancelled, so a later write never shares its temporary file.
    writing: Arc<tokio::sync::Mutex<()>>,
    /// Tells a reading from the future (see the module doc) when seeding.
    clock: Arc<dyn Clock>,
}

impl Cache {
    /// Reads the file at `path` and publishes the usable readings into `store`, one
    /// not-yet-refreshed [`FoundationSnapshot`] per foundation. A missing file is normal (first
    /// start); anything else unusable is ignored with a warning. Never fails.
    pub fn open(path: &Path, foundations: &[FoundationConfig], store: &Store) -> Cache {
        Cache::open_with_clock(path, foundations, store, Arc::new(SystemClock))
    }

    /// [`Cache::open`], reading the wall clock from `clock` (tests step it).
    pub fn open_with_clock(
        path: &Path,
        foundations: &[FoundationConfig],
        store: &Store,
        clock: Arc<dyn Clock>,
    ) -> Cache {
        let cache = Cache {
            path: path.to_owned(),
            api_urls: Mutex::new(BTreeMap::new()),
            carried: Mutex::new(BTreeMap::new()),
            writing: Arc::new(tokio::sync::Mutex::new(())),
            clock,
        };
        let api_urls: HashMap<&str, &str> = foundations
            .iter()
            .map(|f| (f.name.as_str(), f.api_url.as_str()))
            .collect();
        for f in foundations {
            cache.watch(&f.name, f.api_url.as_str());
        }
        let decoded = match load(path, &api_urls, cache.clock.unix_now()) {
            Ok(d) => d,
            Err(CacheError::Read { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                tracing::info!(file = %path.display(), "no cache file yet; the first refresh reads every key");
                return cache;
            }
            Err(error) => {
                tracing::warn!(%error, "ignoring the cache file; the first refresh reads every key");
                return cache;
            }
        };
        for (name, url) in &decoded.mismatched {
            tracing::warn!(
                file = %path.display(),
                foundation = %name,
                cached_api_url = %url,
                configured_api_url = api_urls.get(name.as_str()).copied().unwrap_or(""),
                "ignoring the cached keys of a foundation read from another API URL"
            );
        }
        if decoded.dropped_keys > 0 {
            tracing::warn!(file = %path.display(), dropped = decoded.dropped_keys, "ignoring unusable key entries in the cache file");
        }
        for (name, keys) in decoded.foundations {
            publish_seed(store, &name, keys);
        }
        *cache.carried.lock().unwrap_or_else(|e| e.into_inner()) = decoded.carried;
        cache
    }

    /// A foundation added by a reload: publishes its readings from the file, if the file has
    /// them (from the same API URL), so its first refresh reads only what changed.
    pub fn seed(&self, foundation: &FoundationConfig, store: &Store) {
        let entry = {
            let mut carried = self.carried.lock().unwrap_or_else(|e| e.into_inner());
            match carried.get(&foundation.name) {
                Some(e) if same_url(&e.api_url, foundation.api_url.as_str()) => {
                    carried.remove(&foundation.name)
                }
                _ => None,
            }
        };
        if let Some(entry) = entry {
            let now = self.clock.unix_now();
            let (keys, _) = entry.records(now, &mut Interner::default());
            publish_seed(store, &foundation.name, keys);
        }
    }

    /// Keeps this foundation's keys in the file from now on.
    pub fn watch(&self, name: &str, api_url: &str) {
        self.api_urls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_owned(), api_url.to_owned());
    }

    /// Leaves a removed foundation out of the file from the next write on.
    pub fn forget(&self, name: &str) {
        self.api_urls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
        self.carried
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
    }

    /// Waits until a write in progress has ended (its refresh may have been cancelled meanwhile),
    /// so nothing writes the file after the exporter has stopped.
    pub async fn idle(&self) {
        let _ = self.writing.lock().await;
    }

    /// Follows the store until `stop`: rewrites the file whenever the keys a refresh published
    /// changed (a new key set, not a failed listing that kept the last one), then, once
    /// stopped, writes what changed since and waits for the write to end. What the store holds
    /// when this is called (seeded readings) counts as written.
    pub fn follow(
        self: Arc<Self>,
        store: Arc<Store>,
        stop: CancellationToken,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        let changes = store.subscribe();
        let written = refreshed_keys(&store.load());
        self.write_changes(store, changes, written, stop)
    }

    async fn write_changes(
        self: Arc<Self>,
        store: Arc<Store>,
        mut changes: tokio::sync::watch::Receiver<()>,
        mut written: BTreeMap<String, Arc<Vec<KeyRecord>>>,
        stop: CancellationToken,
    ) {
        loop {
            let stopping = tokio::select! {
                biased;
                _ = stop.cancelled() => true,
                changed = changes.changed() => changed.is_err(),
            };
            let snapshot = store.load();
            let now = refreshed_keys(&snapshot);
            let unchanged = now.len() == written.len()
                && now
                    .iter()
                    .zip(&written)
                    .all(|((a, x), (b, y))| a == b && Arc::ptr_eq(x, y));
            if !unchanged {
                self.save(snapshot).await;
                written = now;
            }
            if stopping {
                break;
            }
        }
        self.idle().await;
    }

    /// Rewrites the file from `snapshot`. Logs a failure; never fails.
    async fn save(&self, snapshot: Arc<Snapshot>) {
        let one_at_a_time = self.writing.clone().lock_owned().await;
        let api_urls = self
            .api_urls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let path = self.path.clone();
        // A copy: a reload that seeds a carried foundation meanwhile must still find it.
        let carried = self
            .carried
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let written = tokio::task::spawn_blocking(move || {
            let _one_at_a_time = one_at_a_time;
            let bytes = encode(&snapshot, &api_urls, &carried);
            write_atomically(&path, &bytes)
                .map(|()| bytes.len())
                .map_err(|source| CacheError::Write { path, source })
        })
        .await;
        match written {
            Ok(Ok(bytes)) => {
                tracing::debug!(file = %self.path.display(), bytes, "cache file written")
            }
            Ok(Err(error)) => tracing::warn!(%error, "cache file not written"),
            Err(error) => tracing::warn!(%error, "cache file not written"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::{FoundationSnapshot, RefreshStatus};
    use std::time::Duration;

    fn record(guid: &str, expiry: Option<KeyExpiry>) -> KeyRecord {
        KeyRecord {
            labels: KeyLabels {
                org: "org".into(),
                space: "space".into(),
                service_offering: "it-rt".into(),
                service_plan: "integration-flow".into(),
                service_instance: "inst \"quoted\"".into(),
                service_key: format!("key-{guid}").into(),
                service_key_guid: guid.into(),
            },
            created_at: Some(1_690_000_000),
            owners: Arc::from([]),
            lead_time: Default::default(),
            key_updated_at: "2025-01-01T00:00:00Z".into(),
            instance_updated_at: "2025-01-02T00:00:00Z".into(),
            reading: Some(Reading {
                read_at: 1_750_000_000,
                expiry,
                shape: None,
            }),
            failure: None,
            facts: Default::default(),
        }
    }

    fn snapshot() -> Snapshot {
        let mut unread = record("d", None);
        unread.reading = None;
        unread.failure = Some(ReadFailure {
            reason: Reason::NotFound,
            attempts: 3,
            retry_at: Some(1_750_000_600),
        });
        let keys = vec![
            record(
                "a",
                Some(KeyExpiry {
                    expires_at: 1_800_000_000,
                    valid_from: Some(1_700_000_000),
                    source: ExpirySource::Certificate,
                    certificate: Some(CertificateInfo {
                        subject: "CN=a".into(),
                        issuer: "CN=ca".into(),
                        serial: "0x01".into(),
                    }),
                }),
            ),
            record(
                "b",
                Some(KeyExpiry {
                    expires_at: 1_700_000_000,
                    valid_from: None,
                    source: ExpirySource::CertificateDetailsValidUntil,
                    certificate: None,
                }),
            ),
            record("c", None),
            unread,
        ];
        let mut s = Snapshot::default();
        s.foundations.insert(
            "eu10".into(),
            Arc::new(FoundationSnapshot {
                keys: Arc::new(keys),
                ..Default::default()
            }),
        );
        s
    }

    fn urls() -> BTreeMap<String, String> {
        BTreeMap::from([("eu10".to_owned(), "https://api.eu10.example/".to_owned())])
    }

    #[test]
    fn a_written_cache_reads_back_the_same_records() {
        let s = snapshot();
        let bytes = encode(&s, &urls(), &BTreeMap::new());
        let api = HashMap::from([("eu10", "https://api.eu10.example")]);
        let d = decode(&bytes, Path::new("c.json"), &api, 1_750_000_100).unwrap();
        assert_eq!(d.foundations["eu10"], *s.foundations["eu10"].keys);
        assert_eq!(d.dropped_keys, 0);
    }

    #[test]
    fn another_format_or_version_is_foreign_and_garbage_is_corrupt() {
        let api = HashMap::from([("eu10", "https://api.eu10.example")]);
        let p = Path::new("c.json");
        for text in [
            r#"{"format": "something-else", "version": 1, "foundations": {}}"#,
            r#"{"format": "cf-service-key-exporter/cache", "version": 1, "foundations": {}}"#,
            r#"{"foundations": {}}"#,
        ] {
            let e = decode(text.as_bytes(), p, &api, 0).err().unwrap();
            assert!(matches!(e, CacheError::Foreign { .. }), "{text}: {e}");
        }
        for text in ["", "{", "[1,2]", "\u{0}\u{1}binary"] {
            let e = decode(text.as_bytes(), p, &api, 0).err().unwrap();
            assert!(matches!(e, CacheError::Corrupt { .. }), "{text}: {e}");
        }
        let bad_keys = r#"{"format": "cf-service-key-exporter/cache", "version": 2, "foundations": {"eu10": {"api_url": "x", "keys": 5}}}"#;
        let e = decode(bad_keys.as_bytes(), p, &api, 0).err().unwrap();
        assert!(matches!(e, CacheError::Corrupt { .. }), "{e}");
    }

    #[test]
    fn another_api_url_unknown_sources_and_future_reads_are_left_out() {
        let text = String::from_utf8(encode(&snapshot(), &urls(), &BTreeMap::new())).unwrap();
        let p = Path::new("c.json");
        let other = HashMap::from([("eu10", "https://api.us10.example")]);
        let d = decode(text.as_bytes(), p, &other, 1_750_000_100).unwrap();
        assert!(d.foundations.is_empty());
        assert_eq!(d.mismatched.len(), 1);

        let api = HashMap::from([("eu10", "https://api.eu10.example")]);
        let tampered = text.replacen("\"certificate\",", "\"made-up\",", 1);
        let d = decode(tampered.as_bytes(), p, &api, 1_750_000_100).unwrap();
        assert_eq!(d.foundations["eu10"].len(), 3);
        assert_eq!(d.dropped_keys, 1);
        let tampered = text.replacen("\"not_found\"", "\"made-up\"", 1);
        let d = decode(tampered.as_bytes(), p, &api, 1_750_000_100).unwrap();
        assert_eq!(d.dropped_keys, 1);

        // Read "in the future": the clock went back, or the file was edited. Not trusted (the
        // unread key has no reading to distrust).
        let d = decode(text.as_bytes(), p, &api, 1_740_000_000).unwrap();
        assert_eq!(d.foundations["eu10"].len(), 1);
        assert_eq!(d.dropped_keys, 3);

        // A foundation that is not configured is not read at all.
        let d = decode(text.as_bytes(), p, &HashMap::new(), 1_750_000_100).unwrap();
        assert!(d.foundations.is_empty() && d.mismatched.is_empty());
    }

    fn fresh_dir(test: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("cfske-cache-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// The written file and nothing else (no temporary file left behind); removes the folder.
    fn assert_only_the_cache_file_in(dir: &Path) {
        let names: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("cache.json")]);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn a_write_outlives_the_cancelled_save_that_started_it_and_idle_waits_for_it() {
        use futures::FutureExt;
        let dir = fresh_dir("idle");
        let path = dir.join("cache.json");
        let store = Store::new();
        let cache = Cache::open(&path, &[], &store);
        cache.watch("eu10", "https://api.eu10.example/");
        // Large enough that the write is still running when the save is dropped.
        let keys: Vec<KeyRecord> = (0..20_000)
            .map(|i| record(&format!("k{i}"), None))
            .collect();
        publish_seed(&store, "eu10", keys);

        // Polled once, the save starts the write; then it is dropped, as a cancelled refresh is.
        assert!(cache.save(store.load()).now_or_never().is_none());
        cache.idle().await;

        let api = HashMap::from([("eu10", "https://api.eu10.example")]);
        let bytes = std::fs::read(&path).expect("written once idle");
        let d = decode(&bytes, &path, &api, 1_750_000_100).unwrap();
        assert_eq!(d.foundations["eu10"].len(), 20_000);
        assert_only_the_cache_file_in(&dir);
    }

    /// Keys of one foundation, as a refresh publishes them.
    fn refreshed(keys: Arc<Vec<KeyRecord>>) -> FoundationSnapshot {
        FoundationSnapshot {
            keys,
            status: RefreshStatus {
                finished_once: true,
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn cached_keys(path: &Path) -> Option<usize> {
        let api = HashMap::from([("eu10", "https://api.eu10.example")]);
        let bytes = std::fs::read(path).ok()?;
        let d = decode(&bytes, path, &api, 1_750_000_100).ok()?;
        Some(d.foundations.get("eu10").map_or(0, Vec::len))
    }

    #[tokio::test]
    async fn the_file_follows_the_key_sets_refreshes_publish() {
        let dir = fresh_dir("follow");
        let path = dir.join("cache.json");
        let store = Arc::new(Store::new());
        let cache = Arc::new(Cache::open(&path, &[], &store));
        cache.watch("eu10", "https://api.eu10.example/");

        let stop = CancellationToken::new();
        let writer = tokio::spawn(cache.clone().follow(store.clone(), stop.clone()));
        let published = store.publish("eu10", refreshed(Arc::new(vec![record("a", None)])));
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while cached_keys(&path) != Some(1) {
            assert!(
                std::time::Instant::now() < deadline,
                "the refresh's keys were not written"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        std::fs::remove_file(&path).unwrap();
        // A listing that failed publishes the same key set again, a registration none: the file
        // has nothing new to say, not even when the writer stops.
        store.publish("eu10", refreshed(published.keys.clone()));
        store.register("other");
        stop.cancel();
        writer.await.unwrap();
        assert_eq!(cached_keys(&path), None);

        // A key set published just before the writer stops is written before it ends.
        let stop = CancellationToken::new();
        let writer = tokio::spawn(cache.clone().follow(store.clone(), stop.clone()));
        let two = vec![record("a", None), record("b", None)];
        store.publish("eu10", refreshed(Arc::new(two)));
        stop.cancel();
        writer.await.unwrap();
        assert_eq!(cached_keys(&path), Some(2));
        assert_only_the_cache_file_in(&dir);
    }

    #[test]
    fn writing_replaces_the_file_whole_and_leaves_no_temporary_file() {
        let dir = fresh_dir("atomic");
        let path = dir.join("cache.json");
        write_atomically(&path, b"first").unwrap();
        write_atomically(&path, b"second").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        assert_only_the_cache_file_in(&dir);
    }

    #[cfg(unix)]
    #[test]
    fn a_planted_link_at_the_old_temporary_name_is_never_followed() {
        let dir = fresh_dir("planted-link");
        let path = dir.join("cache.json");
        let victim = dir.join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        // The name the temporary file used to have: predictable from the pid.
        let predictable = dir.join(format!(".cache.json.tmp-{}", std::process::id()));
        std::os::unix::fs::symlink(&victim, &predictable).unwrap();
        write_atomically(&path, b"cache").unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        assert_eq!(std::fs::read(&path).unwrap(), b"cache");
        std::fs::remove_file(&predictable).unwrap();
        std::fs::remove_file(&victim).unwrap();
        assert_only_the_cache_file_in(&dir);
    }

    #[test]
    fn the_read_is_capped_whatever_the_size_says() {
        let path = Path::new("/dev/zero");
        let e = read_capped(std::io::repeat(b' '), 1000, path).unwrap_err();
        assert!(matches!(e, CacheError::TooLarge { size: 1001, .. }), "{e}");
        assert_eq!(read_capped(&b"12345"[..], 5, path).unwrap(), b"12345");
    }

    #[cfg(unix)]
    #[test]
    fn a_cache_file_linked_to_an_endless_device_is_refused() {
        // The file system says 0 bytes; reading it never ends. The capped read stops.
        let dir = fresh_dir("endless");
        let path = dir.join("cache.json");
        std::os::unix::fs::symlink("/dev/zero", &path).unwrap();
        let e = match load(&path, &HashMap::new(), 0) {
            Err(e) => e,
            Ok(_) => panic!("an endless file must be refused"),
        };
        assert!(matches!(e, CacheError::TooLarge { .. }), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
