//! The enforcement side: compile the policy model into an nftables ruleset ([`render`]),
//! load or remove it ([`nft`]), and prove it with real packets between network namespaces
//! ([`lab`]). The library never prints and never exits; the CLI renders what it returns.

pub mod agent;
pub mod lab;
pub mod nft;
pub mod render;

pub use agent::{run_agent, AgentEvent, AgentOptions};
pub use lab::{run_lab, teardown_all, Lab, LabOptions, LabReport};
pub use nft::{apply, flush, update, DataplaneError};
pub use render::{render, Chain, RenderOptions, Ruleset, TABLE};
