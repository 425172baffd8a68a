//! The enforcement side: compile the policy model into an nftables ruleset ([`render`](mod@render), whose
//! rules are the structured [`rule::NftRule`]), load or remove it ([`nft`]: nf_tables netlink
//! transactions written directly by [`netlink`], or `nft -f` when `NETFENCE_NFT_CLI` is set),
//! and prove it with real packets between network namespaces ([`lab`]). The library never
//! prints and never exits; the CLI renders what it returns.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod agent;
pub mod lab;
pub mod metrics;
pub mod netlink;
pub mod nflog;
pub mod nft;
pub mod record;
pub mod render;
pub mod rule;

pub use agent::{
    enforce, run_agent, AgentEvent, AgentOptions, AgentSource, Enforcement, FileSource,
    SourceChange,
};
pub use lab::{
    lab_pod, parse_connections, run_lab, teardown_all, Lab, LabConnection, LabOptions, LabReport,
};
pub use metrics::{Drops, Metrics};
pub use nft::{apply, flush, update, DataplaneError};
pub use record::KernelFlow;
pub use render::{render, Chain, PodGuard, RenderOptions, Ruleset, TABLE};

/// Whether this process runs with effective user id 0, which the kernel-level work (network
/// namespaces, nftables) needs. Read from the owner of `/proc/self`, which the kernel sets to
/// the effective ids, so no `unsafe` call to geteuid(2) is needed.
pub fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}
