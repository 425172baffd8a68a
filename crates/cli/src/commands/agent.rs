//! `netfence dataplane agent`: the enforcement loop of `netfence_dataplane::enforce` fed by
//! the files of `-f` (polled) or by a live cluster's watch stream (`--cluster`: the watchers
//! `netfence watch` uses, each debounced burst applied to the engine with `Cluster::update`),
//! with health and metrics served on a local address.

use super::{inputs, ClusterArgs, Failure, Inputs};
use netfence_cluster::{Feed, Update, UpdateKind};
use netfence_dataplane::agent::sleep_until_stopped;
use netfence_dataplane::nflog::{DenyLogEvent, DenyLogStats, Labels};
use netfence_dataplane::{AgentEvent, AgentSource, Drops, Metrics, PodGuard, SourceChange};
use netfence_engine::Cluster;
use netfence_model::{Loader, Origin};
use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The longest a steady stream of changes is gathered before it is applied.
const LONGEST_BURST: Duration = Duration::from_secs(1);

/// The live cluster as the agent's source: a first complete read (the state enforced at
/// start, or a failure that makes the agent fail closed), then each settled burst of watch
/// events applied through the engine's incremental update (without the reachability delta
/// `watch` prints: the agent renders the new state). The connection is retried with
/// backoff while it fails.
pub struct ClusterSource {
    files: Inputs,
    source: netfence_cluster::Source,
    node: Option<String>,
    debounce: Duration,
    feed: Option<Feed>,
    cluster: Option<Cluster>,
    guard: Option<PodGuard>,
    interfaces: Vec<String>,
    rejected: VecDeque<String>,
    attempts: u32,
    relisting: bool,
}

impl ClusterSource {
    /// A source reading `files` (the `-f` part, may be empty) and the cluster of `args`.
    pub fn new(
        files: Inputs,
        args: &ClusterArgs,
        node: Option<String>,
        debounce: Duration,
    ) -> ClusterSource {
        ClusterSource {
            files,
            source: inputs::source(args),
            node,
            debounce,
            feed: None,
            cluster: None,
            guard: None,
            interfaces: Vec::new(),
            rejected: VecDeque::new(),
            attempts: 0,
            relisting: false,
        }
    }

    /// Guard new pods on these interfaces (`--pod-interface`) as well as in the node's
    /// podCIDRs: the VPC CNI gives nodes no podCIDR, and names a pod's host-side veth
    /// `eni…`.
    pub fn guard_interfaces(mut self, interfaces: Vec<String>) -> ClusterSource {
        self.interfaces = interfaces;
        self
    }

    /// The guard of `node`: its `spec.podCIDRs`, and the interfaces of `--pod-interface`.
    fn node_guard(&self, feed: &Feed, node: &str) -> Option<PodGuard> {
        let cidrs: Vec<ipnet::IpNet> = match feed.node_pod_cidrs(node) {
            Ok(cidrs) => cidrs.iter().filter_map(|c| c.parse().ok()).collect(),
            Err(e) => {
                eprintln!("netfence agent: warning: cannot read node {node}'s podCIDRs ({e})");
                Vec::new()
            }
        };
        let joined = |items: &[String]| items.join(", ");
        let ranges: Vec<String> = cidrs.iter().map(ToString::to_string).collect();
        match (ranges.is_empty(), self.interfaces.is_empty()) {
            (true, true) => {
                eprintln!("netfence agent: node {node} has no spec.podCIDR(s); new pods are not guarded (give --pod-cidr or --pod-interface)");
                return None;
            }
            (false, true) => eprintln!(
                "netfence agent: guarding new pods in {} (node {node}'s podCIDRs)",
                joined(&ranges)
            ),
            (true, false) => eprintln!(
                "netfence agent: node {node} has no spec.podCIDR(s); guarding new pods on interfaces {}",
                joined(&self.interfaces)
            ),
            (false, false) => eprintln!(
                "netfence agent: guarding new pods in {} (node {node}'s podCIDRs) and on interfaces {}",
                joined(&ranges),
                joined(&self.interfaces)
            ),
        }
        Some(PodGuard {
            cidrs,
            interfaces: self.interfaces.clone(),
            ..PodGuard::default()
        })
    }

    /// Read everything and start the watchers.
    fn connect(&mut self) -> Result<(), String> {
        let mut loader = inputs::loader(&self.files).map_err(|f| f.message)?;
        let (feed, summary) =
            Feed::connect(&self.source, &mut loader).map_err(|e| format!("--cluster: {e}"))?;
        inputs::report_cluster(&summary);
        let cluster = Cluster::new(loader).map_err(|e| e.to_string())?;
        inputs::report(cluster.engine().inventory());
        if let Some(node) = &self.node {
            self.guard = self.node_guard(&feed, node);
        }
        let unfollowed = feed.follower().unfollowed();
        eprintln!(
            "netfence agent: watching {} object(s){}",
            feed.follower().tracker().len(),
            match unfollowed.is_empty() {
                true => String::new(),
                false => format!(
                    "; read once, not followed (changes need a restart): {}",
                    unfollowed.join(", ")
                ),
            }
        );
        self.feed = Some(feed);
        self.cluster = Some(cluster);
        Ok(())
    }

    /// Apply a burst to the engine: all at once, or, when that is refused, object by object
    /// (each refused object is reported; the others go in).
    fn apply(&mut self, updates: &[Update]) -> bool {
        let Some(cluster) = &mut self.cluster else {
            return false;
        };
        if cluster
            .update(changes(updates), &deletions(updates))
            .is_ok()
        {
            return true;
        }
        let mut any = false;
        for update in updates {
            let one = std::slice::from_ref(update);
            match cluster.update(changes(one), &deletions(one)) {
                Ok(_) => any = true,
                Err(errors) => self
                    .rejected
                    .push_back(format!("{}: not applied: {errors}", update.key)),
            }
        }
        any
    }
}

fn changes(updates: &[Update]) -> Loader {
    let mut loader = Loader::new();
    for update in updates.iter().filter(|u| u.kind == UpdateKind::Applied) {
        loader.load_object(
            &update.object,
            Origin {
                file: "<watch>".into(),
                document: 1,
                line: 1,
                item: None,
            },
        );
    }
    loader
}

fn deletions(updates: &[Update]) -> Vec<netfence_model::ObjectKey> {
    updates
        .iter()
        .filter(|u| u.kind == UpdateKind::Deleted)
        .map(|u| u.key.clone())
        .collect()
}

impl AgentSource for ClusterSource {
    fn next(&mut self, stop: &AtomicBool) -> Option<SourceChange<'_>> {
        if let Some(reason) = self.rejected.pop_front() {
            return Some(SourceChange::Rejected(reason));
        }
        loop {
            if stop.load(Ordering::SeqCst) {
                return None;
            }
            if self.feed.is_none() {
                if self.attempts > 0 {
                    let backoff = Duration::from_secs(1 << self.attempts.min(5));
                    if !sleep_until_stopped(backoff, stop) {
                        return None;
                    }
                }
                self.attempts += 1;
                let received = Instant::now();
                return Some(match self.connect() {
                    Ok(()) => SourceChange::State {
                        engine: self.cluster.as_ref()?.engine(),
                        received,
                        guard: self.guard.clone(),
                    },
                    Err(reason) => SourceChange::Rejected(reason),
                });
            }
            let feed = self.feed.as_mut()?;
            let burst = feed.next_burst(
                Duration::from_millis(200),
                self.debounce,
                LONGEST_BURST,
                &|| stop.load(Ordering::SeqCst),
            );
            for error in &burst.errors {
                // A compaction ends every watch with 410 Gone at once: say so once.
                if error.to_string().contains("Expired") {
                    if !self.relisting {
                        eprintln!("netfence agent: the API server's history moved on (410 Gone): relisting, changes missed meanwhile are found by comparing resource versions");
                    }
                    self.relisting = true;
                } else {
                    eprintln!("netfence agent: warning: {error} (retrying with backoff)");
                }
            }
            let Some(received) = burst.received else {
                continue;
            };
            self.relisting = false;
            let applied = self.apply(&burst.updates);
            eprintln!(
                "netfence agent: {} object change(s): {}",
                burst.updates.len(),
                summary(&burst.updates)
            );
            if !applied {
                if let Some(reason) = self.rejected.pop_front() {
                    return Some(SourceChange::Rejected(reason));
                }
                continue;
            }
            return Some(SourceChange::State {
                engine: self.cluster.as_ref()?.engine(),
                received,
                guard: self.guard.clone(),
            });
        }
    }
}

/// `Pod ns/a applied, NetworkPolicy ns/p deleted` (the first few).
fn summary(updates: &[Update]) -> String {
    const SHOWN: usize = 5;
    let mut parts: Vec<String> = updates
        .iter()
        .take(SHOWN)
        .map(|u| {
            let verb = match u.kind {
                UpdateKind::Applied => "applied",
                UpdateKind::Deleted => "deleted",
            };
            format!("{} {verb}", u.key)
        })
        .collect();
    if updates.len() > SHOWN {
        parts.push(format!("… and {} more", updates.len() - SHOWN));
    }
    parts.join(", ")
}

/// What the agent's endpoints show, shared with the loop.
#[derive(Default)]
pub struct Shared {
    metrics: Mutex<Metrics>,
    deny_log: std::sync::OnceLock<Arc<DenyLogStats>>,
}

impl Shared {
    /// Count one event.
    pub fn record(&self, event: &AgentEvent) {
        if let Ok(mut metrics) = self.metrics.lock() {
            metrics.record(event);
        }
    }
}

/// Serve `/healthz` and `/metrics` on `listen` from a thread of its own; the address bound
/// (port 0 picks one) is returned and printed.
pub fn serve_metrics(
    listen: SocketAddr,
    shared: Arc<Shared>,
    netns: Option<String>,
) -> Result<SocketAddr, Failure> {
    let listener = TcpListener::bind(listen)
        .map_err(|e| Failure::input(format!("error: --metrics-listen {listen}: {e}")))?;
    let bound = listener
        .local_addr()
        .map_err(|e| Failure::input(format!("error: --metrics-listen {listen}: {e}")))?;
    eprintln!("netfence agent: health and metrics on http://{bound}/healthz and /metrics");
    std::thread::Builder::new()
        .name("netfence-agent-metrics".into())
        .spawn(move || {
            for stream in listener.incoming().flatten() {
                let _ = answer(stream, &shared, netns.as_deref());
            }
        })
        .map_err(|e| Failure::input(format!("error: --metrics-listen: {e}")))?;
    Ok(bound)
}

fn answer(
    mut stream: std::net::TcpStream,
    shared: &Shared,
    netns: Option<&str>,
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut request = Vec::new();
    let mut buffer = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 16 * 1024 {
        let read = stream.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        request.extend_from_slice(&buffer[..read]);
    }
    let line = String::from_utf8_lossy(&request);
    let mut words = line.split_whitespace();
    let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let (status, content_type, body) = match (method, path) {
        ("GET", "/healthz") => {
            let healthy = shared.metrics.lock().map(|m| m.healthy()).unwrap_or(false);
            match healthy {
                true => ("200 OK", "text/plain", "ok\n".to_string()),
                false => (
                    "503 Service Unavailable",
                    "text/plain",
                    "no ruleset in force yet\n".to_string(),
                ),
            }
        }
        ("GET", "/metrics") => {
            let drops = netfence_dataplane::nft::list(netns)
                .ok()
                .map(|text| Drops::from_listing(&text));
            let mut text = shared
                .metrics
                .lock()
                .map(|m| m.exposition(drops))
                .unwrap_or_default();
            if let Some(stats) = shared.deny_log.get() {
                text.push_str(&stats.exposition());
            }
            ("200 OK", "text/plain; version=0.0.4; charset=utf-8", text)
        }
        ("GET", _) => ("404 Not Found", "text/plain", "not found\n".to_string()),
        _ => (
            "405 Method Not Allowed",
            "text/plain",
            "GET only\n".to_string(),
        ),
    };
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()
}

/// Log one event on stderr, as the agent always has.
pub fn log(event: &AgentEvent, node: Option<&str>) {
    match event {
        AgentEvent::Applied {
            incremental,
            chains,
            rules,
            latency,
        } => eprintln!(
            "netfence agent: applied ({}) {chains} chains, {rules} rules in {:.1} ms",
            if *incremental { "incremental" } else { "full" },
            latency.as_secs_f64() * 1000.0
        ),
        AgentEvent::Unchanged => eprintln!("netfence agent: inputs changed, ruleset unchanged"),
        AgentEvent::Rejected(reason) => eprintln!(
            "netfence agent: change rejected, keeping the last good ruleset:\n{reason}"
        ),
        AgentEvent::ApplyFailed(reason) => {
            eprintln!("netfence agent: apply failed, keeping the last good ruleset: {reason}")
        }
        AgentEvent::FailedClosed(reason) => {
            eprintln!("netfence agent: inputs do not load; failing closed:\n{reason}")
        }
        AgentEvent::EmptyRefused { pods } => eprintln!(
            "netfence agent: the inputs isolate no pod ({pods} pods{}); keeping the last good ruleset (--allow-empty applies it)",
            node.map(|n| format!(" on node {n}")).unwrap_or_default()
        ),
    }
}

/// Format of the deny log lines.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum LogFormat {
    /// `netfence deny: <time> drop TCP <src>:<port> (<pod>) -> <dst>:<port> (<pod>): …`.
    Text,
    /// One JSON object per line.
    Json,
}

/// Start the deny-log reader (NFLOG group in the agent's namespace): its lines go to stderr,
/// its counters to `/metrics`; the labels it names packets with are for the enforcement
/// loop to keep current. A reader that cannot start is reported and enforcement goes on
/// without it.
pub fn deny_log(
    netns: Option<&str>,
    rate: u32,
    format: LogFormat,
    shared: &Shared,
    stop: &'static AtomicBool,
) -> Option<Arc<Labels>> {
    let labels = Arc::new(Labels::default());
    let stats = Arc::new(DenyLogStats::default());
    let started = netfence_dataplane::nflog::start(
        netns,
        labels.clone(),
        stats.clone(),
        rate,
        move || !stop.load(Ordering::SeqCst),
        move |event| match event {
            DenyLogEvent::Record(record) => match format {
                LogFormat::Text => eprintln!("{record}"),
                LogFormat::Json => eprintln!("{}", record.json()),
            },
            DenyLogEvent::Failed(reason) => eprintln!("netfence agent: {reason}"),
        },
    );
    match started {
        Ok(_) => {
            let _ = shared.deny_log.set(stats);
            Some(labels)
        }
        Err(e) => {
            eprintln!("netfence agent: {e}; running without deny logs");
            None
        }
    }
}

/// The guard the flags ask for, if any.
pub fn guard(cidrs: &[ipnet::IpNet], interfaces: &[String]) -> Option<PodGuard> {
    (!cidrs.is_empty() || !interfaces.is_empty()).then(|| PodGuard {
        cidrs: cidrs.to_vec(),
        interfaces: interfaces.to_vec(),
        ..PodGuard::default()
    })
}
