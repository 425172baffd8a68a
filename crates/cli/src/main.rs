//! The `netfence` binary: `main` parses the arguments and dispatches to one short function per
//! subcommand (`commands`); inputs are loaded by `inputs` and results printed by `render`. No
//! policy logic lives here: it calls the library crates and prints what they return.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod commands;
mod examples;
mod in_turn;
mod inputs;
mod render;
mod render_tls;

use clap::{Parser, Subcommand};
use commands::Inputs;
use std::process::ExitCode;

/// netfence: what your network policies really allow.
#[derive(Parser)]
#[command(name = "netfence", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The subcommands; each one's arguments and code live in its `commands` module.
#[derive(Subcommand)]
enum Command {
    /// Can A reach B on a port? Explains both directions. Exit 0 when allowed, 1 when denied.
    ///
    /// Through a Service (`--to NAMESPACE/svc/NAME` or a cluster IP; PORT is the Service port),
    /// the connection lands on one backend pod on the target port, chosen per connection: the
    /// answer lists every backend's verdict and allows only when every backend allows (exit 0);
    /// a Service with no backend denies (exit 1).
    Query(commands::query::QueryArgs),
    /// Pod-to-pod reachability for each port.
    Matrix(commands::connectivity::MatrixArgs),
    /// Allowed connections by workload and external range (netpol-analyzer style).
    List(commands::connectivity::ListArgs),
    /// The connectivity difference between two configurations (netpol-analyzer's diff):
    /// connections changed, added and removed, by workload and external range.
    Diff(commands::connectivity::DiffArgs),
    /// The connectivity change that applying objects (--apply, create or replace by kind,
    /// namespace and name) and deleting others (--delete) would cause, computed incrementally
    /// on the loaded state: the lines `diff` prints against the changed inputs. Exit 1 when
    /// connectivity changes.
    WhatIf(commands::whatif::WhatIfArgs),
    /// Follow a live cluster (--cluster) and print every change of reachability as it
    /// happens, with the object change that caused it: `+ a -> b TCP 80 (NetworkPolicy ns/p
    /// created)`, or with -o json one object per line (diff's keys plus time and cause).
    /// Until interrupted (or --max-changes).
    Watch(commands::watch::WatchArgs),
    /// Write a deterministic synthetic cluster (same options and seed, same bytes). Sizes are
    /// bounded (at most 1,000,000 pods); exit 2 on absurd sizes or a non-empty directory.
    Gen(commands::tools::GenArgs),
    /// Compile policies to nftables and load or remove them.
    Dataplane {
        #[command(subcommand)]
        command: commands::dataplane::DataplaneCommand,
    },
    /// Build the cluster from network namespaces on this host, enforce the rendered ruleset in
    /// the kernel, probe every pair with real packets and compare with `netfence matrix`.
    /// Needs root, iproute2 and nftables. Exit 1 on any disagreement.
    Lab(commands::lab::LabArgs),
    /// Parse a Calico selector: print its canonical form, or with --labels whether it matches
    /// (prints true/false, exit 0/1). A parse error shows the column (exit 2).
    Selector(commands::tools::SelectorArgs),
    /// Check the cluster against the EKS network-security practices. Exit 0 when clean, 1 when
    /// a finding reaches --fail-on, 2 on bad input.
    Audit(commands::audit::AuditArgs),
    /// Run on the built-in example cluster (the EKS best-practices guide's examples).
    Demo(commands::tools::DemoArgs),
    /// Observed traffic: flow logs (AWS VPC Flow Logs, Hubble, AWS Network Policy Agent)
    /// checked against policy.
    Flows {
        #[command(subcommand)]
        command: commands::flows::FlowsCommand,
    },
    /// Least-privilege policies for the observed traffic (flow inputs as `flows check`),
    /// proven by the engine: YAML documents on stdout (one policy per workload and direction,
    /// a default deny per namespace), the proof on stderr and in --report. Exit 1 when an
    /// observed connection would be denied with the proposal, 2 on bad input.
    Advise(commands::advise::AdviseArgs),
    /// Is the traffic in packet captures encrypted? One record per TCP connection: plaintext
    /// (with the protocol when recognisable), tls, mtls (a client certificate seen, TLS ≤ 1.2),
    /// mtls-inferred (TLS 1.3 with evidence), unknown; version, cipher, SNI, ALPN, JA4. With -f,
    /// pods and Services named and NF-WIRE findings. Exit 1 with --fail-on-plaintext when any
    /// connection is plaintext, 2 on bad input.
    Tls(commands::tls::TlsArgs),
    /// Write the policy viewer: a self-contained HTML page, or an SVG with `-o FILE.svg`.
    ///
    /// The page (script, style and data inline; no network access when opened): namespaces
    /// and workloads with the allowed edges of `list`, the policies selecting each workload
    /// per direction and tier, the deciding rule of each edge (`query`'s explanation), audit
    /// findings, search. The SVG: the same graph, laid out deterministically.
    View(commands::view::ViewArgs),
    /// Serve the viewer on localhost, read-only, with query and what-if boxes and observed flows.
    ///
    /// The page of `view`, plus `GET /api/query?from=&to=&port=` (the JSON of `query -o
    /// json`), `POST /api/what-if?delete=KIND/NS/NAME,…` with manifests to create or replace
    /// in the body (the JSON of `what-if -o json`: a preview, the served cluster never
    /// changes; at most 1 MiB) and, given flow logs (as `flows check` reads them), the observed
    /// traffic drawn over the allowed graph with mismatches marked.
    Serve(commands::view::ServeArgs),
}

/// A failure that ends the command, with its exit code.
pub struct Failure {
    code: u8,
    message: String,
}

impl Failure {
    /// Bad input or usage: exit 2.
    pub fn input(message: impl Into<String>) -> Self {
        Failure {
            code: 2,
            message: message.into(),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(failure) => {
            // Every refusal and failure reads `error: …` (load errors already carry it, one
            // per line); a quiet one (stdout closed by its reader, `| head`) says nothing.
            if failure.message.starts_with("error: ") {
                eprintln!("{}", failure.message);
            } else if !failure.message.is_empty() {
                eprintln!("error: {}", failure.message);
            }
            ExitCode::from(failure.code)
        }
    }
}

fn run(cli: Cli) -> Result<u8, Failure> {
    match cli.command {
        Command::Query(args) => commands::query::query(args),
        Command::Matrix(args) => commands::connectivity::matrix(args),
        Command::List(args) => commands::connectivity::list(args),
        Command::Diff(args) => commands::connectivity::diff(args),
        Command::WhatIf(args) => commands::whatif::what_if(args),
        Command::Watch(args) => commands::watch::watch(args),
        Command::Gen(args) => commands::tools::gen(args),
        Command::Dataplane { command } => commands::dataplane::dataplane(command),
        Command::Lab(args) => commands::lab::lab(args),
        Command::Selector(args) => commands::tools::selector(args),
        Command::Audit(args) => commands::audit::audit(args),
        Command::Demo(args) => commands::tools::demo(args),
        Command::Flows { command } => commands::flows::flows(command),
        Command::Advise(args) => commands::advise::advise(args),
        Command::Tls(args) => commands::tls::tls(args),
        Command::View(args) => commands::view::view(args),
        Command::Serve(args) => commands::view::serve(args),
    }
}

/// A write to stdout that failed: a closed pipe (`netfence … | head`) is not an error.
pub(crate) fn io_failure(error: std::io::Error) -> Failure {
    if error.kind() == std::io::ErrorKind::BrokenPipe {
        // `netfence … | head` is not an error.
        return Failure {
            code: 0,
            message: String::new(),
        };
    }
    Failure {
        code: 1,
        message: format!("error writing output: {error}"),
    }
}
