//! Loading and removing the netfence table, optionally inside a named network namespace: by
//! default as nf_tables netlink transactions written directly ([`crate::netlink`]), or with
//! the `nft` tool (`ip netns exec … nft -f -`) when `NETFENCE_NFT_CLI` is set ([`Backend`]).
//! Only `table inet netfence` is ever touched. Listing always uses `nft list`.

use crate::render::{Ruleset, TABLE};
use std::io::Write;
use std::process::{Command, Stdio};

/// A failure to run or of the dataplane tools.
#[derive(Debug, thiserror::Error)]
pub enum DataplaneError {
    /// A tool could not be started.
    #[error("cannot run {tool}: {source} (is it installed? netfence needs nftables and iproute2, and root)")]
    Spawn {
        /// The tool.
        tool: String,
        /// Why.
        source: std::io::Error,
    },
    /// A tool ran and failed.
    #[error("{command} failed: {stderr}")]
    Failed {
        /// The command line.
        command: String,
        /// What it printed on stderr.
        stderr: String,
    },
    /// `--node` names a node that neither a Node object nor any pod's `spec.nodeName` in the
    /// inputs mentions: rendering for it would give an empty ruleset, lifting all enforcement
    /// on a typo.
    #[error("node {node:?} is not in the inputs ({})", known_nodes_hint(.known))]
    UnknownNode {
        /// The node asked for.
        node: String,
        /// The nodes the inputs do name, sorted.
        known: Vec<String>,
    },
    /// A rule the packet filter cannot match exactly ([`crate::render::unsupported`]): the
    /// input asks for something netfence refuses to approximate.
    #[error("{0}")]
    Unsupported(String),
    /// Anything else.
    #[error("{0}")]
    Other(String),
}

fn known_nodes_hint(known: &[String]) -> String {
    const SHOWN: usize = 20;
    match known.len() {
        0 => "they name no node: no Node object and no pod with spec.nodeName".to_string(),
        n if n <= SHOWN => format!("known nodes: {}", known.join(", ")),
        n => format!(
            "known nodes: {}, … and {} more",
            known[..SHOWN].join(", "),
            n - SHOWN
        ),
    }
}

/// Run `program args…` (inside `netns` when given) with `stdin`, returning stdout.
/// Used for `nft` and `ip`; exposed for the agent's fail-closed table and for tests.
pub fn run(
    netns: Option<&str>,
    program: &str,
    args: &[&str],
    stdin: Option<&str>,
) -> Result<String, DataplaneError> {
    let mut command = match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, program]);
            c
        }
        None => Command::new(program),
    };
    command.args(args);
    command.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let line = format!(
        "{}{program} {}",
        netns
            .map(|n| format!("ip netns exec {n} "))
            .unwrap_or_default(),
        args.join(" ")
    );
    let mut child = command.spawn().map_err(|source| DataplaneError::Spawn {
        tool: program.to_string(),
        source,
    })?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input.as_bytes())
            .map_err(|e| DataplaneError::Other(format!("{line}: writing stdin: {e}")))?;
    }
    let output = child
        .wait_with_output()
        .map_err(|e| DataplaneError::Other(format!("{line}: {e}")))?;
    if !output.status.success() {
        return Err(DataplaneError::Failed {
            command: line,
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// How the table is written to the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// nf_tables transactions over netlink, written directly ([`crate::netlink`]): the
    /// default.
    Netlink,
    /// The same transactions as nft scripts through `nft -f -` (for comparison in tests and
    /// benchmarks, or where the netlink path is suspect).
    NftCli,
}

impl Backend {
    /// [`Backend::NftCli`] when the environment variable `NETFENCE_NFT_CLI` is set to
    /// anything but `0` or empty, else [`Backend::Netlink`].
    pub fn from_env() -> Backend {
        match std::env::var("NETFENCE_NFT_CLI") {
            Ok(v) if !v.is_empty() && v != "0" => Backend::NftCli,
            _ => Backend::Netlink,
        }
    }
}

/// Load the ruleset in one transaction, replacing any previous netfence table.
pub fn apply(ruleset: &Ruleset, netns: Option<&str>) -> Result<(), DataplaneError> {
    apply_with(Backend::from_env(), ruleset, netns)
}

/// [`apply`] through the given backend.
pub fn apply_with(
    backend: Backend,
    ruleset: &Ruleset,
    netns: Option<&str>,
) -> Result<(), DataplaneError> {
    match backend {
        Backend::Netlink => crate::netlink::apply(ruleset, netns),
        Backend::NftCli => run(netns, "nft", &["-f", "-"], Some(&ruleset.script())).map(|_| ()),
    }
}

/// Turn the loaded `previous` ruleset into `next` in one transaction, touching only what
/// differs. Returns whether anything had to change.
pub fn update(
    previous: &Ruleset,
    next: &Ruleset,
    netns: Option<&str>,
) -> Result<bool, DataplaneError> {
    update_with(Backend::from_env(), previous, next, netns)
}

/// [`update`] through the given backend.
pub fn update_with(
    backend: Backend,
    previous: &Ruleset,
    next: &Ruleset,
    netns: Option<&str>,
) -> Result<bool, DataplaneError> {
    match backend {
        Backend::Netlink => crate::netlink::update(previous, next, netns),
        Backend::NftCli => {
            let script = next.update_script(previous);
            if script.is_empty() {
                return Ok(false);
            }
            run(netns, "nft", &["-f", "-"], Some(&script)).map(|_| true)
        }
    }
}

/// Remove the netfence table; nothing else. Removing an absent table is not an error.
pub fn flush(netns: Option<&str>) -> Result<(), DataplaneError> {
    flush_with(Backend::from_env(), netns)
}

/// [`flush`] through the given backend.
pub fn flush_with(backend: Backend, netns: Option<&str>) -> Result<(), DataplaneError> {
    match backend {
        Backend::Netlink => crate::netlink::flush(netns),
        Backend::NftCli => {
            let script = format!("table inet {TABLE}\ndelete table inet {TABLE}\n");
            run(netns, "nft", &["-f", "-"], Some(&script)).map(|_| ())
        }
    }
}

/// The netfence table as the kernel holds it (`nft list table inet netfence`; listing stays
/// with the nft tool, which prints it in nft syntax whichever path loaded it).
pub fn list(netns: Option<&str>) -> Result<String, DataplaneError> {
    run(netns, "nft", &["list", "table", "inet", TABLE], None)
}
