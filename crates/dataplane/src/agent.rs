//! The agent: watch the inputs, and on every settled change load, compile, render and apply
//! (incrementally when a previous ruleset is in force). A bad change is reported and the last
//! good ruleset stays in force. If the very first load fails, the agent fails closed: it keeps
//! an existing netfence table, or else loads one that drops every new forwarded connection
//! (it cannot know which pods are isolated, so it treats them all as isolated).

use crate::nft::{self, DataplaneError};
use crate::render::{render, RenderOptions, Ruleset, TABLE};
use netfence_engine::Engine;
use netfence_model::Loader;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

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
        /// From the moment the change settled to the kernel having it.
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
}

/// The fail-closed table: established traffic continues, every new forwarded connection drops.
pub fn fail_closed_script() -> String {
    format!(
        "table inet {TABLE}\ndelete table inet {TABLE}\ntable inet {TABLE} {{\n\tchain forward {{\n\t\ttype filter hook forward priority filter; policy accept;\n\t\tct state established,related accept\n\t\tcounter log prefix \"netfence fail-closed \" drop\n\t}}\n}}\n"
    )
}

type Fingerprint = Vec<(PathBuf, Option<SystemTime>, u64)>;

fn fingerprint(inputs: &[PathBuf]) -> Fingerprint {
    fn walk(path: &Path, out: &mut Fingerprint) {
        match std::fs::metadata(path) {
            Ok(meta) if meta.is_dir() => {
                let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
                    .map(|d| d.flatten().map(|e| e.path()).collect())
                    .unwrap_or_default();
                entries.sort();
                for entry in entries {
                    walk(&entry, out);
                }
            }
            Ok(meta) => out.push((path.to_path_buf(), meta.modified().ok(), meta.len())),
            Err(_) => out.push((path.to_path_buf(), None, 0)),
        }
    }
    let mut out = Vec::new();
    for input in inputs {
        walk(input, &mut out);
    }
    out
}

fn load(inputs: &[PathBuf], node: &Option<String>) -> Result<Ruleset, String> {
    let mut loader = Loader::new();
    for input in inputs {
        loader.load_path(input);
    }
    let inventory = loader.finish().map_err(|e| e.to_string())?;
    render(
        &Engine::new(inventory),
        &RenderOptions { node: node.clone() },
    )
    .map_err(|e| e.to_string())
}

/// Run until `stop` is set, reporting every action through `log`.
pub fn run_agent(
    options: &AgentOptions,
    stop: &AtomicBool,
    mut log: impl FnMut(AgentEvent),
) -> Result<(), DataplaneError> {
    if options.inputs.iter().any(|p| p.as_os_str() == "-") {
        return Err(DataplaneError::Other(
            "the agent watches files and directories, not stdin".into(),
        ));
    }
    let netns = options.netns.as_deref();
    let mut in_force: Option<Ruleset> = None;
    match load(&options.inputs, &options.node) {
        Ok(ruleset) => {
            let started = Instant::now();
            nft::apply(&ruleset, netns)?;
            log(AgentEvent::Applied {
                incremental: false,
                chains: ruleset.chains.len(),
                rules: ruleset.rules(),
                latency: started.elapsed(),
            });
            in_force = Some(ruleset);
        }
        Err(reason) => {
            if nft::list(netns).is_err() {
                nft::run(netns, "nft", &["-f", "-"], Some(&fail_closed_script()))?;
            }
            log(AgentEvent::FailedClosed(reason));
        }
    }
    let mut seen = fingerprint(&options.inputs);
    let mut pending: Option<(Fingerprint, Instant)> = None;
    while !stop.load(Ordering::SeqCst) {
        std::thread::sleep(options.poll);
        let now = fingerprint(&options.inputs);
        match &pending {
            None if now != seen => pending = Some((now, Instant::now())),
            Some((candidate, since)) => {
                if now != *candidate {
                    pending = Some((now, Instant::now()));
                } else if since.elapsed() >= options.debounce {
                    let settled = Instant::now();
                    seen = now;
                    pending = None;
                    match load(&options.inputs, &options.node) {
                        Err(reason) => log(AgentEvent::Rejected(reason)),
                        Ok(next) if in_force.as_ref() == Some(&next) => log(AgentEvent::Unchanged),
                        Ok(next) => {
                            let result = match &in_force {
                                Some(previous) => nft::update(previous, &next, netns).map(|_| true),
                                None => nft::apply(&next, netns).map(|_| false),
                            };
                            match result {
                                Ok(incremental) => {
                                    log(AgentEvent::Applied {
                                        incremental,
                                        chains: next.chains.len(),
                                        rules: next.rules(),
                                        latency: settled.elapsed(),
                                    });
                                    in_force = Some(next);
                                }
                                Err(e) => log(AgentEvent::ApplyFailed(e.to_string())),
                            }
                        }
                    }
                }
            }
            None => {}
        }
    }
    Ok(())
}
