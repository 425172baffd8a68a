//! `netfence dataplane render|apply|agent|flush`: the policies compiled to nftables.

use super::*;

/// The dataplane subcommands.
#[derive(Subcommand)]
pub enum DataplaneCommand {
    /// Print the nftables ruleset (an `nft -f` script) for a node.
    Render {
        #[command(flatten)]
        inputs: Inputs,
        /// Render chains for pods with this `spec.nodeName` only (default: every pod).
        #[arg(long)]
        node: Option<String>,
    },
    /// Load the ruleset atomically, replacing the previous netfence table and nothing else.
    Apply {
        #[command(flatten)]
        inputs: Inputs,
        /// Render chains for pods with this `spec.nodeName` only (default: every pod).
        #[arg(long)]
        node: Option<String>,
        /// Apply inside this named network namespace (`ip netns`) instead of the current one.
        #[arg(long)]
        netns: Option<String>,
    },
    /// Watch the inputs and apply every settled change (incrementally), logging each update
    /// with its latency; a bad or empty change keeps the last good ruleset. Stops within a
    /// fraction of a second on Ctrl-C or SIGTERM.
    Agent {
        #[command(flatten)]
        inputs: Inputs,
        /// Render chains for pods with this `spec.nodeName` only (default: every pod).
        #[arg(long)]
        node: Option<String>,
        /// Apply inside this named network namespace instead of the current one.
        #[arg(long)]
        netns: Option<String>,
        /// How often to look for changes, in milliseconds (at least 10: a busy loop would
        /// spend a core re-reading the inputs).
        #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(10..))]
        poll_ms: u64,
        /// How long inputs must stay unchanged before they are applied, in milliseconds.
        #[arg(long, default_value_t = 300)]
        debounce_ms: u64,
        /// Apply a ruleset that isolates no pod even when the one in force does. Without it,
        /// inputs that turn empty (a directory emptied mid-update, a node with no pods, the
        /// last policy deleted) leave the last good ruleset in force, and the agent says so.
        #[arg(long)]
        allow_empty: bool,
    },
    /// Remove the netfence table.
    Flush {
        /// Inside this named network namespace instead of the current one.
        #[arg(long)]
        netns: Option<String>,
    },
}

/// `netfence dataplane …`.
pub fn dataplane(command: DataplaneCommand) -> Result<u8, Failure> {
    // A node the inputs do not name, or a rule nft cannot match exactly, is bad input (exit
    // 2); the tools failing is exit 1.
    let tool_failure = |e: netfence_dataplane::DataplaneError| Failure {
        code: if matches!(
            e,
            netfence_dataplane::DataplaneError::UnknownNode { .. }
                | netfence_dataplane::DataplaneError::Unsupported(_)
        ) {
            2
        } else {
            1
        },
        message: format!("error: dataplane: {e}"),
    };
    match command {
        DataplaneCommand::Render { inputs, node } => {
            let engine = inputs::load(&inputs)?;
            let ruleset =
                netfence_dataplane::render(&engine, &netfence_dataplane::RenderOptions { node })
                    .map_err(tool_failure)?;
            print!("{}", ruleset.script());
            eprintln!(
                "netfence: {} isolated endpoints, {} chains, {} rules",
                ruleset.isolated_endpoints,
                ruleset.chains.len(),
                ruleset.rules()
            );
            Ok(0)
        }
        DataplaneCommand::Apply {
            inputs,
            node,
            netns,
        } => {
            let engine = inputs::load(&inputs)?;
            let ruleset =
                netfence_dataplane::render(&engine, &netfence_dataplane::RenderOptions { node })
                    .map_err(tool_failure)?;
            let started = std::time::Instant::now();
            netfence_dataplane::apply(&ruleset, netns.as_deref()).map_err(tool_failure)?;
            eprintln!(
                "netfence: applied table inet {} ({} chains, {} rules) in {:.1} ms",
                netfence_dataplane::TABLE,
                ruleset.chains.len(),
                ruleset.rules(),
                started.elapsed().as_secs_f64() * 1000.0
            );
            Ok(0)
        }
        DataplaneCommand::Agent {
            inputs,
            node,
            netns,
            poll_ms,
            debounce_ms,
            allow_empty,
        } => {
            if inputs.cluster.cluster {
                return Err(Failure::input(
                    "dataplane agent --cluster: not implemented yet (the agent reads -f files); run `netfence watch --cluster` to follow a live cluster",
                ));
            }
            use std::sync::atomic::{AtomicBool, Ordering};
            static STOP: AtomicBool = AtomicBool::new(false);
            let _ = ctrlc::set_handler(|| STOP.store(true, Ordering::SeqCst));
            let options = netfence_dataplane::AgentOptions {
                inputs: inputs.files,
                node,
                netns,
                poll: std::time::Duration::from_millis(poll_ms),
                debounce: std::time::Duration::from_millis(debounce_ms),
                allow_empty,
            };
            netfence_dataplane::run_agent(&options, &STOP, |event| {
                use netfence_dataplane::AgentEvent;
                match event {
                    AgentEvent::Applied {
                        incremental,
                        chains,
                        rules,
                        latency,
                    } => eprintln!(
                        "netfence agent: applied ({}) {chains} chains, {rules} rules in {:.1} ms",
                        if incremental { "incremental" } else { "full" },
                        latency.as_secs_f64() * 1000.0
                    ),
                    AgentEvent::Unchanged => {
                        eprintln!("netfence agent: inputs changed, ruleset unchanged")
                    }
                    AgentEvent::Rejected(reason) => eprintln!(
                        "netfence agent: change rejected, keeping the last good ruleset:\n{reason}"
                    ),
                    AgentEvent::ApplyFailed(reason) => eprintln!(
                        "netfence agent: apply failed, keeping the last good ruleset: {reason}"
                    ),
                    AgentEvent::FailedClosed(reason) => {
                        eprintln!("netfence agent: inputs do not load; failing closed:\n{reason}")
                    }
                    AgentEvent::EmptyRefused { pods } => eprintln!(
                        "netfence agent: the inputs isolate no pod ({pods} pods{}); keeping the last good ruleset (--allow-empty applies it)",
                        options.node.as_deref().map(|n| format!(" on node {n}")).unwrap_or_default()
                    ),
                }
            })
            .map_err(tool_failure)?;
            Ok(0)
        }
        DataplaneCommand::Flush { netns } => {
            netfence_dataplane::flush(netns.as_deref()).map_err(tool_failure)?;
            Ok(0)
        }
    }
}
