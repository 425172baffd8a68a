//! The agent: follow a source of policy state ([`AgentSource`]: the files of `-f`, polled
//! ([`FileSource`]), or a live cluster's watch stream, which the CLI provides so that this
//! crate stays free of Kubernetes clients), and on every settled change render and apply
//! (incrementally when a previous ruleset is in force). A bad change is reported and the last
//! good ruleset stays in force. If the very first load fails, the agent fails closed: it keeps
//! an existing netfence table, or else loads one that drops every new forwarded connection
//! (it cannot know which pods are isolated, so it treats them all as isolated). A `node` that
//! the first load's inputs do not name is the exception: it is returned as an error, before
//! the kernel is touched.
//!
//! Two more promises, for inputs that go wrong without failing to load:
//! - it never replaces a table that enforces something with a ruleset that enforces nothing
//!   (no isolated endpoint: the input directory is momentarily empty, the node's pods are gone,
//!   the last policy was deleted) unless [`AgentOptions::allow_empty`] says so; it keeps the
//!   table and reports [`AgentEvent::EmptyRefused`];
//! - it returns within about [`STOP_CHECK`] of `stop` being set, also while it waits or loads:
//!   waits sleep in slices, and each load runs on its own thread, abandoned on stop (a file
//!   that never finishes reading, such as a FIFO without a writer, cannot hold the agent).

use crate::nft::{self, DataplaneError};
use crate::render::{render, PodGuard, RenderOptions, Ruleset, TABLE};
use netfence_engine::Engine;
use netfence_model::Loader;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

/// How often the agent looks at the stop flag while it sleeps or waits for a load.
pub const STOP_CHECK: Duration = Duration::from_millis(50);

/// Agent settings.
#[derive(Clone, Debug)]
pub struct AgentOptions {
    /// Files or directories to watch (as for `-f`; stdin is not watchable).
    pub inputs: Vec<PathBuf>,
    /// Render for this node only.
    pub node: Option<String>,
    /// Apply inside this named network namespace.
    pub netns: Option<String>,
    /// How often to look for changes.
    pub poll: Duration,
    /// How long inputs must stay unchanged before they are applied.
    pub debounce: Duration,
    /// Apply a ruleset with no isolated endpoint even though the table in force enforces
    /// something (per-pod chains, or the fail-closed table). Off, such a change is refused
    /// with [`AgentEvent::EmptyRefused`] and the table stays.
    pub allow_empty: bool,
    /// Drop new connections of local pods the ruleset does not know yet ([`PodGuard`]; its
    /// `known` addresses are filled in by the agent on every render).
    pub guard: Option<PodGuard>,
}

/// What the enforcement loop needs to know, whatever the source.
#[derive(Clone, Debug, Default)]
pub struct Enforcement {
    /// Render for this node only.
    pub node: Option<String>,
    /// Apply inside this named network namespace.
    pub netns: Option<String>,
    /// See [`AgentOptions::allow_empty`].
    pub allow_empty: bool,
    /// See [`AgentOptions::guard`].
    pub guard: Option<PodGuard>,
    /// Kept current for a deny-log reader ([`crate::nflog::start`]): the log ids of the
    /// ruleset in force and the pods' addresses of the latest state.
    pub labels: Option<std::sync::Arc<crate::nflog::Labels>>,
}

impl AgentOptions {
    /// The enforcement settings of these options.
    pub fn enforcement(&self) -> Enforcement {
        Enforcement {
            node: self.node.clone(),
            netns: self.netns.clone(),
            allow_empty: self.allow_empty,
            guard: self.guard.clone(),
            labels: None,
        }
    }
}

/// One settled change of a source.
pub enum SourceChange<'a> {
    /// The state after the change: render and enforce it.
    State {
        /// The engine of the new state.
        engine: &'a Engine,
        /// When the first event of the change was received (latencies count from here).
        received: Instant,
        /// Local pod ranges the source knows (a cluster's Node `spec.podCIDRs`), guarding
        /// new pods when [`Enforcement::guard`] is not set.
        guard: Option<PodGuard>,
    },
    /// The change cannot be applied (inputs that do not load, an invalid object, an
    /// unreachable API server): the last good state stays.
    Rejected(String),
}

/// Where the agent's policy state comes from: the first call of [`AgentSource::next`] is the
/// initial load (a [`SourceChange::Rejected`] then makes the agent fail closed), every later
/// call waits for the next settled (debounced) change.
pub trait AgentSource {
    /// The next change, blocking; `None` once `stop` is set (within about [`STOP_CHECK`]).
    fn next(&mut self, stop: &AtomicBool) -> Option<SourceChange<'_>>;
}

/// What the agent did, for the caller to log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AgentEvent {
    /// A ruleset was loaded into the kernel.
    Applied {
        /// Whether it was an incremental update (else a full replace).
        incremental: bool,
        /// Per-pod chains in force.
        chains: usize,
        /// Rules in force.
        rules: usize,
        /// From the moment the change was received (the first event of a debounced burst;
        /// for files, the moment they settled) to the kernel having it.
        latency: Duration,
    },
    /// The inputs changed but the rendered ruleset did not.
    Unchanged,
    /// The inputs do not load; the last good ruleset stays in force.
    Rejected(String),
    /// The kernel refused the ruleset; the last good one stays in force.
    ApplyFailed(String),
    /// The first load failed: failing closed.
    FailedClosed(String),
    /// The inputs load but give a ruleset with no isolated endpoint while the table in force
    /// enforces something; that table stays (see [`AgentOptions::allow_empty`]).
    EmptyRefused {
        /// Pods in the inputs on this node (every pod, without a node): 0 when the inputs
        /// hold none at all.
        pods: usize,
    },
}

/// The fail-closed table: established traffic continues, every new forwarded connection drops.
pub fn fail_closed_script() -> String {
    format!(
        "table inet {TABLE}\ndelete table inet {TABLE}\ntable inet {TABLE} {{\n\tchain forward {{\n\t\ttype filter hook forward priority filter; policy accept;\n\t\tct state established,related accept\n\t\tcounter log prefix \"netfence fail-closed \" group {group} drop\n\t}}\n}}\n",
        group = crate::rule::LOG_GROUP
    )
}

type Fingerprint = Vec<(PathBuf, Option<SystemTime>, u64)>;

/// Every file under the inputs with its modification time and size. Each directory is walked
/// once, by (device, inode): symbolic links that loop back (`dir/again -> .`) would otherwise
/// multiply the walk at every level, and it runs on the agent's own thread.
fn fingerprint(inputs: &[PathBuf]) -> Fingerprint {
    use std::os::unix::fs::MetadataExt;
    fn walk(path: &Path, visited: &mut HashSet<(u64, u64)>, out: &mut Fingerprint) {
        match std::fs::metadata(path) {
            Ok(meta) if meta.is_dir() => {
                if !visited.insert((meta.dev(), meta.ino())) {
                    return;
                }
                let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
                    .map(|d| d.flatten().map(|e| e.path()).collect())
                    .unwrap_or_default();
                entries.sort();
                for entry in entries {
                    walk(&entry, visited, out);
                }
            }
            Ok(meta) => out.push((path.to_path_buf(), meta.modified().ok(), meta.len())),
            Err(_) => out.push((path.to_path_buf(), None, 0)),
        }
    }
    let mut visited = HashSet::new();
    let mut out = Vec::new();
    for input in inputs {
        walk(input, &mut visited, &mut out);
    }
    out
}

/// The files of `-f`, polled: a change is loaded once the inputs stayed unchanged for the
/// debounce time; each load runs on its own thread, abandoned on stop.
pub struct FileSource {
    inputs: Vec<PathBuf>,
    poll: Duration,
    debounce: Duration,
    seen: Option<Fingerprint>,
    engine: Option<Engine>,
}

impl FileSource {
    /// A source for `options.inputs`; stdin cannot be watched.
    pub fn new(options: &AgentOptions) -> Result<FileSource, DataplaneError> {
        if options.inputs.iter().any(|p| p.as_os_str() == "-") {
            return Err(DataplaneError::Other(
                "the agent watches files and directories, not stdin".into(),
            ));
        }
        Ok(FileSource {
            inputs: options.inputs.clone(),
            poll: options.poll,
            debounce: options.debounce,
            seen: None,
            engine: None,
        })
    }

    fn load(&mut self, received: Instant, stop: &AtomicBool) -> Option<SourceChange<'_>> {
        match load_until_stopped(&self.inputs, stop)? {
            Ok(engine) => {
                let engine = self.engine.insert(engine);
                Some(SourceChange::State {
                    engine,
                    received,
                    guard: None,
                })
            }
            Err(reason) => Some(SourceChange::Rejected(reason)),
        }
    }
}

impl AgentSource for FileSource {
    fn next(&mut self, stop: &AtomicBool) -> Option<SourceChange<'_>> {
        let Some(seen) = self.seen.clone() else {
            // Fingerprint before loading: a change made while the first load runs is seen
            // as a change.
            self.seen = Some(fingerprint(&self.inputs));
            return self.load(Instant::now(), stop);
        };
        let mut seen = seen;
        let mut pending: Option<(Fingerprint, Instant)> = None;
        while sleep_until_stopped(self.poll, stop) {
            let now = fingerprint(&self.inputs);
            match &pending {
                None if now != seen => pending = Some((now, Instant::now())),
                Some((candidate, _)) if now != *candidate => pending = Some((now, Instant::now())),
                Some((_, since)) if since.elapsed() >= self.debounce => {
                    seen = now;
                    self.seen = Some(seen);
                    return self.load(Instant::now(), stop);
                }
                _ => {}
            }
        }
        None
    }
}

/// Load the inputs into an engine.
fn load(inputs: &[PathBuf]) -> Result<Engine, String> {
    let mut loader = Loader::new();
    for input in inputs {
        loader.load_path(input);
    }
    let inventory = loader.finish().map_err(|e| e.to_string())?;
    Ok(Engine::new(inventory))
}

/// [`load`] on a thread of its own; `None` once `stop` is set (the thread is left to finish,
/// or to block, by itself).
fn load_until_stopped(inputs: &[PathBuf], stop: &AtomicBool) -> Option<Result<Engine, String>> {
    let (sender, receiver) = mpsc::channel();
    let inputs = inputs.to_vec();
    let spawned = std::thread::Builder::new()
        .name("netfence-agent-load".into())
        .spawn(move || {
            // The receiver is gone only when the agent stopped waiting.
            let _ = sender.send(load(&inputs));
        });
    if let Err(e) = spawned {
        return Some(Err(format!(
            "cannot start a thread to load the inputs: {e}"
        )));
    }
    loop {
        if stop.load(Ordering::SeqCst) {
            return None;
        }
        match receiver.recv_timeout(STOP_CHECK) {
            Ok(result) => return Some(result),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Some(Err("loading the inputs panicked".into()))
            }
        }
    }
}

/// Sleep for `duration` in slices of [`STOP_CHECK`]; false as soon as `stop` is set.
pub fn sleep_until_stopped(duration: Duration, stop: &AtomicBool) -> bool {
    // A duration too long to add to now (`--poll-ms` near u64::MAX) sleeps until stopped.
    let deadline = Instant::now().checked_add(duration);
    loop {
        if stop.load(Ordering::SeqCst) {
            return false;
        }
        let left = match deadline {
            Some(deadline) => deadline.saturating_duration_since(Instant::now()),
            None => STOP_CHECK,
        };
        if left.is_zero() {
            return true;
        }
        std::thread::sleep(left.min(STOP_CHECK));
    }
}

/// Whether the netfence table in the kernel enforces anything: the fail-closed table, or a
/// rendered one with per-pod chains (any chain but `forward`). No table: nothing.
fn table_enforces(netns: Option<&str>) -> bool {
    nft::list(netns).is_ok_and(|text| {
        text.contains("netfence fail-closed")
            || text.lines().any(|line| {
                let line = line.trim_start();
                line.starts_with("chain ") && !line.starts_with("chain forward ")
            })
    })
}

/// A rendered ruleset and the number of pods it was rendered for.
struct Rendered {
    ruleset: Ruleset,
    pods: usize,
}

/// Render `engine` for the node, with the guard's known pods: every pod of the node that
/// has its own addresses (not host-network, not a template's synthetic address).
fn prepare(
    engine: &Engine,
    settings: &Enforcement,
    source_guard: Option<PodGuard>,
) -> Result<Rendered, DataplaneError> {
    let node = &settings.node;
    let on_node = || {
        engine
            .inventory()
            .pods()
            .iter()
            .filter(move |p| node.is_none() || p.node == *node)
    };
    let mut ruleset = render(engine, &RenderOptions { node: node.clone() })?;
    if let Some(labels) = &settings.labels {
        labels.set_pods(engine.inventory());
    }
    if let Some(guard) = settings.guard.clone().or(source_guard) {
        let known = on_node()
            .filter(|p| !p.host_network && !p.synthetic_ip)
            .flat_map(|p| p.ips.iter().copied())
            .collect();
        ruleset.guard = Some(PodGuard { known, ..guard });
    }
    Ok(Rendered {
        ruleset,
        pods: on_node().count(),
    })
}

/// Run the file-polling agent until `stop` is set, reporting every action through `log`.
pub fn run_agent(
    options: &AgentOptions,
    stop: &AtomicBool,
    log: impl FnMut(AgentEvent),
) -> Result<(), DataplaneError> {
    let mut source = FileSource::new(options)?;
    enforce(&mut source, &options.enforcement(), stop, log)
}

/// Enforce what `source` gives until `stop` is set, reporting every action through `log`:
/// the first state is applied whole (or the agent fails closed), every later one
/// incrementally; a change that does not load, render or apply leaves the last good ruleset
/// in force.
pub fn enforce(
    source: &mut dyn AgentSource,
    settings: &Enforcement,
    stop: &AtomicBool,
    mut log: impl FnMut(AgentEvent),
) -> Result<(), DataplaneError> {
    let netns = settings.netns.as_deref();
    let mut in_force: Option<Ruleset> = None;
    // Whether the table in the kernel enforces anything, which an empty ruleset would lift.
    let mut enforcing = true;
    let Some(first) = source.next(stop) else {
        return Ok(());
    };
    let first = match first {
        SourceChange::State {
            engine,
            received,
            guard,
        } => prepare(engine, settings, guard).map(|rendered| (rendered, received)),
        SourceChange::Rejected(reason) => Err(DataplaneError::Other(reason)),
    };
    match first {
        Ok((loaded, _))
            if loaded.ruleset.is_empty() && !settings.allow_empty && table_enforces(netns) =>
        {
            log(AgentEvent::EmptyRefused { pods: loaded.pods });
        }
        Ok((Rendered { ruleset, .. }, received)) => {
            nft::apply(&ruleset, netns)?;
            if let Some(labels) = &settings.labels {
                labels.set_rules(&ruleset.logs);
            }
            log(AgentEvent::Applied {
                incremental: false,
                chains: ruleset.chains.len(),
                rules: ruleset.rules(),
                latency: received.elapsed(),
            });
            enforcing = !ruleset.is_empty();
            in_force = Some(ruleset);
        }
        // The agent's own --node names no node of the inputs: a usage error, reported before
        // the kernel is touched (failing closed would drop every pod's traffic on a typo).
        Err(unknown @ DataplaneError::UnknownNode { .. }) => return Err(unknown),
        Err(error) => {
            let reason = error.to_string();
            if nft::list(netns).is_err() {
                nft::run(netns, "nft", &["-f", "-"], Some(&fail_closed_script()))?;
            }
            // The fail-closed table, or an earlier one kept: ask the kernel which.
            enforcing = table_enforces(netns);
            log(AgentEvent::FailedClosed(reason));
        }
    }
    while let Some(change) = source.next(stop) {
        let (engine, received, guard) = match change {
            SourceChange::State {
                engine,
                received,
                guard,
            } => (engine, received, guard),
            SourceChange::Rejected(reason) => {
                log(AgentEvent::Rejected(reason));
                continue;
            }
        };
        match prepare(engine, settings, guard) {
            Err(error) => log(AgentEvent::Rejected(error.to_string())),
            Ok(next) if in_force.as_ref() == Some(&next.ruleset) => log(AgentEvent::Unchanged),
            Ok(next) if next.ruleset.is_empty() && enforcing && !settings.allow_empty => {
                log(AgentEvent::EmptyRefused { pods: next.pods })
            }
            Ok(Rendered { ruleset: next, .. }) => {
                let result = match &in_force {
                    Some(previous) => nft::update(previous, &next, netns).map(|_| true),
                    None => nft::apply(&next, netns).map(|_| false),
                };
                match result {
                    Ok(incremental) => {
                        if let Some(labels) = &settings.labels {
                            labels.set_rules(&next.logs);
                        }
                        log(AgentEvent::Applied {
                            incremental,
                            chains: next.chains.len(),
                            rules: next.rules(),
                            latency: received.elapsed(),
                        });
                        enforcing = !next.is_empty();
                        in_force = Some(next);
                    }
                    Err(e) => log(AgentEvent::ApplyFailed(e.to_string())),
                }
            }
        }
    }
    Ok(())
}
