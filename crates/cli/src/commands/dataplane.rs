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
    /// Enforce the policies of the inputs and follow every settled change (incrementally):
    /// `-f` files are polled, `--cluster` follows the API server's watch stream. Each update
    /// is logged with its latency (change received to kernel); a bad or empty change keeps
    /// the last good ruleset; inputs that do not load at start fail closed. Stops within a
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
        /// How often to look for changes of -f files, in milliseconds (at least 10: a busy
        /// loop would spend a core re-reading the inputs).
        #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(10..))]
        poll_ms: u64,
        /// How long inputs must stay unchanged (files) or the watch stream quiet (--cluster)
        /// before a change is applied, in milliseconds.
        #[arg(long, default_value_t = 300)]
        debounce_ms: u64,
        /// Apply a ruleset that isolates no pod even when the one in force does. Without it,
        /// -f inputs that turn empty (a directory emptied mid-update, a node with no pods,
        /// the last policy deleted) leave the last good ruleset in force, and the agent says
        /// so. Always on with --cluster: the watch stream is authoritative (a deletion is an
        /// explicit event), and refusing it would keep enforcing a deleted policy, even
        /// across restarts.
        #[arg(long)]
        allow_empty: bool,
        /// The node's pod address range (repeatable): new connections from or to an address
        /// in it that is no pod the ruleset knows are dropped until the pod's rules are in.
        /// Default with --cluster and --node: the Node's spec.podCIDRs.
        #[arg(long, value_name = "CIDR")]
        pod_cidr: Vec<ipnet::IpNet>,
        /// Pod interfaces (repeatable, nft wildcards such as `veth*` or `eni*`): new
        /// connections through them from or to an address no pod the ruleset knows has are
        /// dropped (for CNIs whose pods take addresses outside a node podCIDR, such as the
        /// VPC CNI, whose host-side veths are `eni*`). With --cluster and --node they add to
        /// the Node's spec.podCIDRs; otherwise to --pod-cidr.
        #[arg(long, value_name = "NAME")]
        pod_interface: Vec<String>,
        /// Serve /healthz (200 once a ruleset is in force) and /metrics (Prometheus text
        /// format) on this address (port 0: any free port, printed on stderr).
        #[arg(long, value_name = "ADDR:PORT")]
        metrics_listen: Option<std::net::SocketAddr>,
        /// Deny logs: each packet the table drops (or a Log rule logs) is a line on stderr
        /// naming the pods, the policy's kind, namespace and name, the tier and the rule
        /// (read from NFLOG group 28262 in the agent's network namespace), at most this many
        /// lines a second (the rest are counted in /metrics as suppressed); 0 turns them off.
        #[arg(long, default_value_t = 100, value_name = "LINES")]
        deny_log_rate: u32,
        /// Format of the deny log lines: `text` (`netfence deny: <time> drop TCP <src>
        /// (<pod>) -> <dst> (<pod>): Ingress denied by <Kind> <ns>/<name> rule <n> (tier
        /// <tier>)`) or `json` (one object per line).
        #[arg(long, value_enum, default_value_t = agent::LogFormat::Text)]
        log_format: agent::LogFormat,
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
            pod_cidr,
            pod_interface,
            metrics_listen,
            deny_log_rate,
            log_format,
        } => {
            use std::sync::atomic::{AtomicBool, Ordering};
            static STOP: AtomicBool = AtomicBool::new(false);
            let _ = ctrlc::set_handler(|| STOP.store(true, Ordering::SeqCst));
            // With --cluster and --node, the guard's ranges are the Node's podCIDRs (read by
            // the source) unless --pod-cidr names them; --pod-interface adds to them.
            let node_ranges = inputs.cluster.cluster && node.is_some() && pod_cidr.is_empty();
            let settings = netfence_dataplane::Enforcement {
                node: node.clone(),
                netns: netns.clone(),
                allow_empty: allow_empty || inputs.cluster.cluster,
                guard: match node_ranges {
                    true => None,
                    false => agent::guard(&pod_cidr, &pod_interface),
                },
                labels: None,
            };
            let shared = std::sync::Arc::new(agent::Shared::default());
            let settings = match deny_log_rate {
                0 => settings,
                rate => netfence_dataplane::Enforcement {
                    labels: agent::deny_log(netns.as_deref(), rate, log_format, &shared, &STOP),
                    ..settings
                },
            };
            if let Some(listen) = metrics_listen {
                agent::serve_metrics(listen, shared.clone(), netns.clone())?;
            }
            let debounce = std::time::Duration::from_millis(debounce_ms);
            let log = |event: netfence_dataplane::AgentEvent| {
                shared.record(&event);
                agent::log(&event, node.as_deref());
            };
            let result = if inputs.cluster.cluster {
                let cluster_args = inputs.cluster.clone();
                let files = Inputs {
                    cluster: ClusterArgs::default(),
                    ..inputs
                };
                let mut source =
                    agent::ClusterSource::new(files, &cluster_args, node.clone(), debounce)
                        .guard_interfaces(match node_ranges {
                            true => pod_interface,
                            false => Vec::new(),
                        });
                netfence_dataplane::enforce(&mut source, &settings, &STOP, log)
            } else {
                let options = netfence_dataplane::AgentOptions {
                    inputs: inputs.files,
                    node: node.clone(),
                    netns,
                    poll: std::time::Duration::from_millis(poll_ms),
                    debounce,
                    allow_empty,
                    guard: settings.guard.clone(),
                };
                netfence_dataplane::run_agent(&options, &STOP, log)
            };
            result.map_err(tool_failure)?;
            Ok(0)
        }
        DataplaneCommand::Flush { netns } => {
            netfence_dataplane::flush(netns.as_deref()).map_err(tool_failure)?;
            Ok(0)
        }
    }
}
