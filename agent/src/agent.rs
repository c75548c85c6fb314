//! The agent's event loop: one etcd session at a time (grant a lease,
//! register, read every host, watch from that revision, keep the lease
//! alive), and beside it a reconciler that keeps xvsd in step with the
//! latest desired state.
//!
//! The two are decoupled through a watch channel carrying the latest
//! (config, desired state): a slow or absent xvsd never delays a lease
//! keep-alive, and while etcd is unreachable xvsd keeps the last known
//! entries (tearing the overlay down because the registry is unreachable
//! would turn an etcd outage into a network outage). Any session failure
//! (connection lost, keep-alive stream ended, lease expired, watch
//! cancelled by compaction, our own key deleted) ends the session; the
//! next one starts from a fresh lease and a full read, so nothing stale
//! survives a reconnect.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use etcd_client::{
    Client, ConnectOptions, EventType, GetOptions, PutOptions, WatchOptions, WatchResponse,
};
use tokio::sync::watch;
use tokio::time::{sleep, timeout, MissedTickBehavior};
use tracing::{debug, error, info, warn};

use crate::config::AgentConfig;
use crate::registry::{self, HostRecord, Registry};
use crate::state::{self, Asked, State};
use crate::xvsd;

/// How long one unary etcd call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the config file's mtime is checked.
const CONFIG_POLL: Duration = Duration::from_millis(200);
/// Reconnect backoff bounds.
const BACKOFF_MIN: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Retry delay after a failed reconcile (xvsd down or refusing).
const RECONCILE_RETRY: Duration = Duration::from_secs(1);
/// How often lazy nets drain xvsd's lookup misses.
const MISS_POLL: Duration = Duration::from_millis(50);
/// Most lookups remembered (each stays installed while its answer is
/// registered).
const MAX_ASKED: usize = 1 << 16;

/// Why the agent stopped or a session ended.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("etcd: {0}")]
    Etcd(#[from] etcd_client::Error),
    #[error("etcd did not answer {0} within {CALL_TIMEOUT:?}")]
    Timeout(&'static str),
    #[error("{0}")]
    Session(String),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
}

enum SessionEnd {
    Shutdown,
    /// The config changed who we are or where etcd is: start over now.
    Restart,
}

/// What the reconciler works from.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Want {
    config: AgentConfig,
    desired: State,
}

/// The config file and its last seen modification time.
#[derive(Debug)]
struct ConfigFile {
    path: PathBuf,
    mtime: Option<SystemTime>,
    current: AgentConfig,
}

impl ConfigFile {
    fn load(path: &Path) -> Result<ConfigFile, AgentError> {
        let mtime = mtime(path);
        let current = AgentConfig::load(path)?;
        Ok(ConfigFile {
            path: path.to_owned(),
            mtime,
            current,
        })
    }

    /// The new config if the file changed and loads; a bad edit is
    /// logged and the running config kept.
    fn poll(&mut self) -> Option<AgentConfig> {
        let m = mtime(&self.path);
        if m == self.mtime {
            return None;
        }
        self.mtime = m;
        match AgentConfig::load(&self.path) {
            Ok(c) if c != self.current => {
                info!(path = %self.path.display(), "config changed");
                self.current = c.clone();
                Some(c)
            }
            Ok(_) => None,
            Err(e) => {
                error!(error = %e, "config not reloaded; keeping the running one");
                None
            }
        }
    }
}

fn mtime(p: &Path) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

/// Runs the agent until `shutdown` turns true: then revokes the lease (so
/// the others drop this host at once) and returns.
pub async fn run(
    config_path: &Path,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), AgentError> {
    let mut file = ConfigFile::load(config_path)?;
    let (want_tx, want_rx) = watch::channel(None::<Want>);
    let reconciler = tokio::spawn(reconciler(want_rx));
    let mut backoff = BACKOFF_MIN;
    let mut registry = Registry::new();
    loop {
        let started = Instant::now();
        let end = session(&mut file, &mut registry, &want_tx, &mut shutdown).await;
        match end {
            Ok(SessionEnd::Shutdown) => break,
            Ok(SessionEnd::Restart) => {
                backoff = BACKOFF_MIN;
                continue;
            }
            Err(e) => {
                // A session that ran for a while was healthy: start the
                // backoff over.
                if started.elapsed() > BACKOFF_MAX * 2 {
                    backoff = BACKOFF_MIN;
                }
                warn!(error = %e, retry_in = ?backoff, "etcd session ended");
                tokio::select! {
                    _ = sleep(backoff) => {}
                    _ = shutdown.changed() => break,
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }
    reconciler.abort();
    info!("stopped");
    Ok(())
}

async fn call<T>(
    what: &'static str,
    f: impl std::future::Future<Output = Result<T, etcd_client::Error>>,
) -> Result<T, AgentError> {
    match timeout(CALL_TIMEOUT, f).await {
        Ok(r) => Ok(r?),
        Err(_) => Err(AgentError::Timeout(what)),
    }
}

/// Publishes the desired state for `cfg` if it differs from the last one.
fn publish(want_tx: &watch::Sender<Option<Want>>, cfg: &AgentConfig, reg: &Registry) {
    let w = Want {
        config: cfg.clone(),
        desired: state::desired(cfg, reg),
    };
    want_tx.send_if_modified(|cur| {
        if cur.as_ref() == Some(&w) {
            false
        } else {
            *cur = Some(w);
            true
        }
    });
}

async fn register(client: &mut Client, cfg: &AgentConfig, lease: i64) -> Result<(), AgentError> {
    let value = HostRecord::from_config(cfg).to_json();
    call(
        "put",
        client.put(
            cfg.host_key(),
            value,
            Some(PutOptions::new().with_lease(lease)),
        ),
    )
    .await?;
    Ok(())
}

async fn session(
    file: &mut ConfigFile,
    registry: &mut Registry,
    want_tx: &watch::Sender<Option<Want>>,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<SessionEnd, AgentError> {
    let cfg = file.current.clone();
    let opts = ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(3))
        .with_keep_alive(Duration::from_secs(1), Duration::from_secs(2))
        .with_keep_alive_while_idle(true);
    let mut client = call(
        "connect",
        Client::connect(cfg.etcd_endpoints.clone(), Some(opts)),
    )
    .await?;
    let ttl = cfg.lease_ttl_secs as i64;
    let lease = call("lease grant", client.lease_grant(ttl, None))
        .await?
        .id();
    // From here on the lease is revoked on every way out but a lost
    // connection (then it expires by itself).
    let r = session_with_lease(file, registry, want_tx, shutdown, &mut client, lease).await;
    if !matches!(r, Err(AgentError::Etcd(_)) | Err(AgentError::Timeout(_))) {
        match call("lease revoke", client.lease_revoke(lease)).await {
            Ok(_) => debug!(lease, "lease revoked"),
            Err(e) => warn!(lease, error = %e, "could not revoke the lease; it will expire"),
        }
    }
    r
}

async fn session_with_lease(
    file: &mut ConfigFile,
    registry: &mut Registry,
    want_tx: &watch::Sender<Option<Want>>,
    shutdown: &mut watch::Receiver<bool>,
    client: &mut Client,
    lease: i64,
) -> Result<SessionEnd, AgentError> {
    let mut cfg = file.current.clone();
    let ttl = cfg.lease_ttl();
    register(client, &cfg, lease).await?;
    let (mut keeper, mut ka_stream) = call("keep-alive", client.lease_keep_alive(lease)).await?;
    let hosts = cfg.hosts_prefix();
    let resp = call(
        "range",
        client.get(hosts.clone(), Some(GetOptions::new().with_prefix())),
    )
    .await?;
    let rev = resp.header().map(|h| h.revision()).unwrap_or(0);
    registry.clear();
    for kv in resp.kvs() {
        if let Some(name) = registry::host_name(&hosts, kv.key()) {
            registry::put(registry, name, kv.value(), kv.mod_revision(), &cfg);
        }
    }
    info!(
        lease, ttl = ?ttl, revision = rev, hosts = registry.len(),
        key = %cfg.host_key(), "registered; watching"
    );
    publish(want_tx, &cfg, registry);
    let mut watch = call(
        "watch",
        client.watch(
            hosts.clone(),
            Some(
                WatchOptions::new()
                    .with_prefix()
                    .with_start_revision(rev + 1),
            ),
        ),
    )
    .await?;

    let ka_every = (ttl / 3).max(Duration::from_millis(300));
    let mut ka_tick = tokio::time::interval(ka_every);
    ka_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut poll_tick = tokio::time::interval(CONFIG_POLL);
    poll_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut last_ka = Instant::now();
    loop {
        tokio::select! {
            _ = shutdown.changed() => return Ok(SessionEnd::Shutdown),
            _ = ka_tick.tick() => {
                if last_ka.elapsed() > ttl {
                    return Err(AgentError::Session(format!(
                        "no keep-alive answer for {:?}: the lease may be gone", last_ka.elapsed())));
                }
                keeper.keep_alive().await?;
            }
            m = ka_stream.message() => match m? {
                Some(r) if r.ttl() > 0 => last_ka = Instant::now(),
                Some(_) => return Err(AgentError::Session(format!("lease {lease:x} expired"))),
                None => return Err(AgentError::Session("keep-alive stream closed".into())),
            },
            m = watch.message() => match m? {
                Some(resp) => {
                    if on_watch(&resp, &hosts, &cfg, lease, registry)? {
                        publish(want_tx, &cfg, registry);
                    }
                }
                None => return Err(AgentError::Session("watch stream closed".into())),
            },
            _ = poll_tick.tick() => {
                let Some(new) = file.poll() else { continue };
                let same_identity = new.etcd_endpoints == cfg.etcd_endpoints
                    && new.prefix == cfg.prefix
                    && new.name == cfg.name
                    && new.lease_ttl_secs == cfg.lease_ttl_secs;
                if !same_identity {
                    info!("etcd endpoints, prefix, name or lease TTL changed: new session");
                    return Ok(SessionEnd::Restart);
                }
                cfg = new;
                register(client, &cfg, lease).await?;
                publish(want_tx, &cfg, registry);
            }
        }
    }
}

/// Applies one watch response to the registry; returns whether anything
/// changed. A cancelled watch (compaction) or our own key deleted ends
/// the session, so the next one re-registers from a full read.
fn on_watch(
    resp: &WatchResponse,
    hosts: &str,
    cfg: &AgentConfig,
    lease: i64,
    registry: &mut Registry,
) -> Result<bool, AgentError> {
    let own = cfg.name.as_str();
    if resp.canceled() {
        return Err(AgentError::Session(format!(
            "watch cancelled (compacted at revision {}): {}",
            resp.compact_revision(),
            resp.cancel_reason()
        )));
    }
    let mut changed = false;
    for ev in resp.events() {
        let Some(kv) = ev.kv() else { continue };
        let Some(name) = registry::host_name(hosts, kv.key()) else {
            continue;
        };
        match ev.event_type() {
            EventType::Put => {
                if name == own && kv.lease() != lease {
                    // Two agents with one name overwrite each other; the
                    // others see whichever wrote last.
                    warn!(host = name, "another agent registered under our name");
                }
                debug!(
                    host = name,
                    revision = kv.mod_revision(),
                    "host registered or updated"
                );
                registry::put(registry, name, kv.value(), kv.mod_revision(), cfg);
            }
            EventType::Delete => {
                if name == own {
                    return Err(AgentError::Session(
                        "our registration was deleted (lease lost?)".into(),
                    ));
                }
                info!(host = name, "host left");
                registry.remove(name);
            }
        }
        changed = true;
    }
    Ok(changed)
}

/// Keeps xvsd in step with the latest [`Want`]: at once on every change,
/// every `resync_secs` anyway (a restarted xvsd is repaired), every second
/// while xvsd is unreachable or refuses. With lazy nets it also drains
/// xvsd's lookup misses every [`MISS_POLL`] and reconciles at once when
/// one asks for something new.
async fn reconciler(mut rx: watch::Receiver<Option<Want>>) {
    let mut asked: BTreeSet<Asked> = BTreeSet::new();
    loop {
        let Some(w) = rx.borrow_and_update().clone() else {
            if rx.changed().await.is_err() {
                return;
            }
            continue;
        };
        let (cfg, desired, a) = (w.config.clone(), w.desired.clone(), asked.clone());
        let r = tokio::task::spawn_blocking(move || {
            xvsd::reconcile(&cfg.xvsd_socket, &cfg, &desired, &a)
        })
        .await;
        let wait = match r {
            Ok(Ok(a)) => {
                if a.commands > 0 {
                    info!(commands = a.commands, change = %a.diff.summary(), "xvsd updated");
                }
                Duration::from_secs(w.config.resync_secs)
            }
            Ok(Err(e)) => {
                warn!(error = %e, "xvsd not updated; retrying");
                RECONCILE_RETRY
            }
            Err(e) => {
                error!(error = %e, "reconcile task failed; retrying");
                RECONCILE_RETRY
            }
        };
        let lazy: Vec<String> = w
            .config
            .nets
            .iter()
            .filter(|n| n.lookup)
            .map(|n| n.bridge.clone())
            .collect();
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let poll = async {
                if lazy.is_empty() {
                    std::future::pending::<()>().await
                }
                sleep(MISS_POLL).await
            };
            tokio::select! {
                r = rx.changed() => {
                    if r.is_err() {
                        return;
                    }
                    break;
                }
                _ = tokio::time::sleep_until(deadline) => break,
                _ = poll => {
                    let (socket, bridges) = (w.config.xvsd_socket.clone(), lazy.clone());
                    let r = tokio::task::spawn_blocking(move || xvsd::poll_misses(&socket, &bridges)).await;
                    // xvsd down: the reconcile retries report it.
                    let Ok(Ok(questions)) = r else { continue };
                    let mut new = false;
                    for q in questions {
                        if asked.len() >= MAX_ASKED {
                            warn!(max = MAX_ASKED, "too many lookups remembered; ignoring more");
                            break;
                        }
                        new |= asked.insert(q);
                    }
                    if new {
                        debug!(asked = asked.len(), "xvsd asked for something new");
                        break;
                    }
                }
            }
        }
    }
}
