//! The `netfence` binary: argument parsing, input loading and rendering. No policy logic
//! lives here; it calls the library crates and prints what they return.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod examples;
mod inputs;
mod render;

use clap::{Args, Parser, Subcommand, ValueEnum};
use netfence_engine::{connlist, default_ports, ProbePort};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// netfence: what your network policies really allow.
#[derive(Parser)]
#[command(name = "netfence", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct Inputs {
    /// A manifest file, a directory (recursive *.yaml|*.yml|*.json; hidden entries and
    /// symbolic links to directories are skipped) or `-` for stdin; repeatable.
    #[arg(short = 'f', long = "file", required = true, value_name = "PATH")]
    files: Vec<PathBuf>,
    /// Namespace of namespaced objects that name none (Helm and kustomize output), as
    /// `kubectl apply -n`; without it they are in `default`.
    #[arg(short = 'n', long = "namespace", value_name = "NAMESPACE")]
    namespace: Option<String>,
    /// Report objects that do not validate as warnings and leave them out, instead of
    /// refusing the input (exit 2). For large dumps; verdicts then ignore those objects.
    #[arg(long)]
    lenient: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Can A reach B on a port? Explains both directions. Exit 0 when allowed, 1 when denied.
    ///
    /// Through a Service (`--to NAMESPACE/svc/NAME` or a cluster IP; PORT is the Service port),
    /// the connection lands on one backend pod on the target port, chosen per connection: the
    /// answer lists every backend's verdict and allows only when every backend allows (exit 0);
    /// a Service with no backend denies (exit 1).
    Query {
        #[command(flatten)]
        inputs: Inputs,
        /// Source: `namespace/pod`, `pod` (namespace `default`), `namespace/workload`, or an IP.
        #[arg(long)]
        from: String,
        /// Destination, in the same forms as --from, or a Service: `namespace/svc/name`,
        /// `svc/name` (namespace `default`) or a cluster IP of a loaded Service.
        #[arg(long)]
        to: String,
        /// `PROTO/PORT`, e.g. TCP/80 or UDP/53.
        #[arg(long)]
        port: ProbePort,
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value_t = QueryFormat::Text)]
        output: QueryFormat,
    },
    /// Pod-to-pod reachability for each port.
    Matrix {
        #[command(flatten)]
        inputs: Inputs,
        /// Comma-separated `PROTO/PORT` list; default: every port a pod declares or a policy names.
        #[arg(long, value_delimiter = ',')]
        ports: Vec<ProbePort>,
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value_t = MatrixFormat::Grid)]
        output: MatrixFormat,
        /// Compute the whole matrix but print only counts (classes, allowed pairs per port,
        /// time per phase): for clusters too large to print.
        #[arg(long)]
        summary: bool,
    },
    /// Allowed connections by workload and external range (netpol-analyzer style).
    List {
        #[command(flatten)]
        inputs: Inputs,
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value_t = ListFormat::Txt)]
        output: ListFormat,
    },
    /// The connectivity difference between two configurations (netpol-analyzer's diff):
    /// connections changed, added and removed, by workload and external range.
    Diff {
        #[command(flatten)]
        inputs: Inputs,
        /// The new configuration: files, directories or `-`; repeatable.
        #[arg(long, required = true, value_name = "PATH")]
        against: Vec<PathBuf>,
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value_t = DiffFormat::Txt)]
        output: DiffFormat,
    },
    /// Write a deterministic synthetic cluster (same options and seed, same bytes). Sizes are
    /// bounded (at most 1,000,000 pods); exit 2 on absurd sizes or a non-empty directory.
    Gen {
        /// Pods in total, the two CoreDNS pods included.
        #[arg(long)]
        pods: usize,
        /// Application namespaces.
        #[arg(long)]
        namespaces: usize,
        /// NetworkPolicies (at least the per-namespace baseline).
        #[arg(long)]
        policies: usize,
        /// Calico GlobalNetworkPolicies to add, in a `security` tier (0: Kubernetes only).
        #[arg(long, default_value_t = 0)]
        calico: usize,
        /// Seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Output directory: new or empty, unless --force.
        #[arg(short = 'o', long = "output", value_name = "DIR")]
        output: PathBuf,
        /// Write into a directory that is not empty: replace the generator's own files
        /// (`00-namespaces.yaml` … `50-calico.yaml`, removing one this cluster leaves empty) and
        /// leave every other file alone.
        #[arg(long)]
        force: bool,
    },
    /// Compile policies to nftables and load or remove them.
    Dataplane {
        #[command(subcommand)]
        command: DataplaneCommand,
    },
    /// Build the cluster from network namespaces on this host, enforce the rendered ruleset in
    /// the kernel, probe every pair with real packets and compare with `netfence matrix`.
    /// Needs root, iproute2 and nftables. Exit 1 on any disagreement.
    Lab {
        #[command(flatten)]
        inputs: Inputs,
        /// Comma-separated `PROTO/PORT` list (TCP, UDP); default as for `matrix`.
        #[arg(long, value_delimiter = ',')]
        ports: Vec<ProbePort>,
        /// Output format of the observed matrix (`json` is the `matrix -o json` contract).
        #[arg(short = 'o', long, value_enum, default_value_t = LabFormat::Grid)]
        output: LabFormat,
        /// Milliseconds a probe waits before calling the port blocked.
        #[arg(long, default_value_t = 1000)]
        timeout_ms: u64,
    },
    /// Parse a Calico selector: print its canonical form, or with --labels whether it matches
    /// (prints true/false, exit 0/1). A parse error shows the column (exit 2).
    Selector {
        /// The selector expression, e.g. `role == "db" && !has(legacy)`.
        expression: String,
        /// Labels to evaluate against: `k=v,k2=v2` (`''` for an endpoint with no labels).
        #[arg(long)]
        labels: Option<String>,
    },
    /// Check the cluster against the EKS network-security practices. Exit 0 when clean, 1 when
    /// a finding reaches --fail-on, 2 on bad input.
    Audit {
        #[command(flatten)]
        inputs: OptionalInputs,
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value_t = AuditFormat::Text)]
        output: AuditFormat,
        /// Lowest severity that makes the exit code 1: info, warning or error.
        #[arg(long, default_value = "error")]
        fail_on: netfence_audit::Severity,
        /// Print the list of checks (Markdown) and exit.
        #[arg(long)]
        list_checks: bool,
        /// YAML file of suppressions (`ignore: [{id, namespace?, object?}]`); suppressed
        /// findings are counted.
        #[arg(long, value_name = "FILE")]
        config: Option<std::path::PathBuf>,
        /// The JSON that `aws ec2 describe-security-groups` prints (repeatable; `-` for stdin):
        /// enables the security-group checks that read the groups.
        #[arg(long, value_name = "FILE")]
        aws_security_groups: Vec<PathBuf>,
        /// The EKS cluster security group (`aws eks describe-cluster --query
        /// cluster.resourcesVpcConfig.clusterSecurityGroupId`); by default the one group tagged
        /// `aws:eks:cluster-name`.
        #[arg(long, value_name = "SG_ID", requires = "aws_security_groups")]
        cluster_security_group: Option<String>,
        /// A self-managed node group's security group (repeatable), checked against the EKS
        /// minimum rules with the cluster security group.
        #[arg(long, value_name = "SG_ID", requires = "aws_security_groups")]
        node_security_group: Vec<String>,
    },
    /// Run on the built-in example cluster (the EKS best-practices guide's examples).
    Demo {
        /// Write the example manifests to this directory instead of analysing them.
        #[arg(long, value_name = "DIR")]
        export: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum DataplaneCommand {
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
        /// How often to look for changes, in milliseconds.
        #[arg(long, default_value_t = 500)]
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

/// [`Inputs`] where `-f` may be absent (`audit --list-checks`).
#[derive(Args)]
struct OptionalInputs {
    /// A manifest file, a directory (recursive *.yaml|*.yml|*.json; hidden entries and
    /// symbolic links to directories are skipped) or `-` for stdin; repeatable.
    #[arg(short = 'f', long = "file", value_name = "PATH")]
    files: Vec<PathBuf>,
    /// Namespace of namespaced objects that name none, as `kubectl apply -n`.
    #[arg(short = 'n', long = "namespace", value_name = "NAMESPACE")]
    namespace: Option<String>,
    /// Report objects that do not validate as warnings and leave them out.
    #[arg(long)]
    lenient: bool,
}

impl From<OptionalInputs> for Inputs {
    fn from(inputs: OptionalInputs) -> Self {
        Inputs {
            files: inputs.files,
            namespace: inputs.namespace,
            lenient: inputs.lenient,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum DiffFormat {
    Txt,
    Csv,
    Md,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum AuditFormat {
    Text,
    Json,
    Sarif,
}

#[derive(Clone, Copy, ValueEnum)]
enum LabFormat {
    Grid,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum QueryFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum MatrixFormat {
    Grid,
    Json,
    Csv,
}

#[derive(Clone, Copy, ValueEnum)]
enum ListFormat {
    Txt,
    Json,
    Csv,
    Md,
    Dot,
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
            // per line).
            if failure.message.starts_with("error: ") || failure.message.is_empty() {
                eprintln!("{}", failure.message);
            } else {
                eprintln!("error: {}", failure.message);
            }
            ExitCode::from(failure.code)
        }
    }
}

fn run(cli: Cli) -> Result<u8, Failure> {
    let mut out = std::io::stdout().lock();
    match cli.command {
        Command::Query {
            inputs,
            from,
            to,
            port,
            output,
        } => {
            let engine = inputs::load(&inputs)?;
            let src = inputs::endpoint(&engine, &from, "--from")?;
            let dst = match inputs::target(&engine, &to, "--to")? {
                inputs::Target::Endpoint(dst) => dst,
                inputs::Target::Service(index) => {
                    let service = &engine.inventory().services[index];
                    let answer = engine.explain_via_service(src, service, port.protocol, port.port);
                    match output {
                        QueryFormat::Text => render::service_query_text(
                            &mut out, &engine, src, service, port, &answer,
                        ),
                        QueryFormat::Json => render::service_query_json(
                            &mut out, &engine, src, service, port, &answer,
                        ),
                    }
                    .map_err(io_failure)?;
                    return Ok(if answer.allowed() { 0 } else { 1 });
                }
            };
            let verdict = engine.explain(src, dst, port.protocol, port.port);
            match output {
                QueryFormat::Text => {
                    render::query_text(&mut out, &engine, src, dst, port, &verdict)
                }
                QueryFormat::Json => {
                    render::query_json(&mut out, &engine, src, dst, port, &verdict)
                }
            }
            .map_err(io_failure)?;
            Ok(if verdict.allowed { 0 } else { 1 })
        }
        Command::Matrix {
            inputs,
            ports,
            output,
            summary,
        } => {
            let started = std::time::Instant::now();
            let loader = inputs::loader(&inputs)?;
            let loaded = started.elapsed();
            let engine = inputs::finish(loader)?;
            let compiled = started.elapsed();
            let ports = if ports.is_empty() {
                default_ports(engine.inventory())
            } else {
                ports
            };
            let classes = engine.class_matrix(&ports);
            let computed = started.elapsed();
            // Pods without a known address get invented ones, which no CIDR rule matches.
            let synthetic = engine.synthetic_address_pods();
            let synthetic_note = format!(
                "{synthetic} pod(s) have no status.podIP and were given synthetic addresses ({}); ipBlock, nets and network-set rules never match them, so cells involving them may differ from the real cluster",
                netfence_model::SYNTHETIC_IPV4_RANGE
            );
            if summary {
                let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
                writeln!(
                    out,
                    "pods: {}\nendpoint classes: {}\nports: {}",
                    engine.inventory().pods.len(),
                    classes.classes.len(),
                    ports.len()
                )
                .map_err(io_failure)?;
                writeln!(out, "synthetic addresses: {synthetic} pods").map_err(io_failure)?;
                if synthetic > 0 && engine.has_address_rules() {
                    writeln!(out, "note: {synthetic_note}").map_err(io_failure)?;
                }
                for (p, port) in ports.iter().enumerate() {
                    writeln!(out, "allowed pairs {port}: {}", classes.allowed_pairs(p))
                        .map_err(io_failure)?;
                }
                writeln!(
                    out,
                    "time: load {:.1} ms, compile {:.1} ms, matrix {:.1} ms",
                    ms(loaded),
                    ms(compiled - loaded),
                    ms(computed - compiled)
                )
                .map_err(io_failure)?;
                return Ok(0);
            }
            if synthetic > 0 && engine.has_address_rules() {
                eprintln!("netfence: note: {synthetic_note}");
            }
            // Streamed from the class bits: no pod-by-pod matrix is materialised.
            let matrix = classes.view(&engine);
            match output {
                MatrixFormat::Grid => render::matrix_grid(&mut out, &matrix),
                MatrixFormat::Json => render::matrix_json(&mut out, &matrix),
                MatrixFormat::Csv => render::matrix_csv(&mut out, &matrix),
            }
            .map_err(io_failure)?;
            Ok(0)
        }
        Command::List { inputs, output } => {
            let engine = inputs::load(&inputs)?;
            let list = connlist(&engine);
            match output {
                ListFormat::Txt => render::list_txt(&mut out, &list),
                ListFormat::Json => render::list_json(&mut out, &list),
                ListFormat::Csv => render::list_csv(&mut out, &list),
                ListFormat::Md => render::list_md(&mut out, &list),
                ListFormat::Dot => render::list_dot(&mut out, &list),
            }
            .map_err(io_failure)?;
            Ok(0)
        }
        Command::Diff {
            inputs,
            against,
            output,
        } => {
            let before = inputs::load(&inputs)?;
            let after = inputs::load(&Inputs {
                files: against,
                ..inputs
            })?;
            let lines = netfence_engine::diff(&before, &after);
            match output {
                DiffFormat::Txt => render::diff_txt(&mut out, &lines),
                DiffFormat::Csv => render::diff_csv(&mut out, &lines),
                DiffFormat::Md => render::diff_md(&mut out, &lines),
                DiffFormat::Json => render::diff_json(&mut out, &lines),
            }
            .map_err(io_failure)?;
            // As `diff(1)`, for CI gates: 1 when connectivity differs.
            Ok(u8::from(!lines.is_empty()))
        }
        Command::Gen {
            pods,
            namespaces,
            policies,
            calico,
            seed,
            output,
            force,
        } => gen(
            &netfence_engine::gen::GenOptions {
                pods,
                namespaces,
                policies,
                calico,
                seed,
            },
            &output,
            force,
        ),
        Command::Dataplane { command } => dataplane(command),
        Command::Lab {
            inputs,
            ports,
            output,
            timeout_ms,
        } => {
            let engine = inputs::load(&inputs)?;
            let ports = if ports.is_empty() {
                default_ports(engine.inventory())
            } else {
                ports
            };
            // Tear the namespaces down on Ctrl-C and termination, too.
            let _ = ctrlc::set_handler(|| {
                netfence_dataplane::teardown_all();
                std::process::exit(130);
            });
            let options = netfence_dataplane::LabOptions {
                ports,
                timeout: std::time::Duration::from_millis(timeout_ms),
                ..Default::default()
            };
            let report = netfence_dataplane::run_lab(&engine, &options).map_err(|e| Failure {
                code: 2,
                message: format!("lab: {e}"),
            })?;
            match output {
                LabFormat::Grid => render::matrix_grid(&mut out, &report.observed),
                LabFormat::Json => render::matrix_json(&mut out, &report.observed),
            }
            .map_err(io_failure)?;
            for line in &report.disagreements {
                eprintln!("disagreement: {line}");
            }
            eprintln!(
                "lab: {} pods, {} ports, {} probes, {} disagreements with netfence matrix (setup {:.2}s, probing {:.2}s)",
                report.observed.endpoints.len(),
                report.observed.ports.len(),
                report.probes,
                report.disagreements.len(),
                report.setup.as_secs_f64(),
                report.probing.as_secs_f64()
            );
            Ok(if report.disagreements.is_empty() {
                0
            } else {
                1
            })
        }
        Command::Audit {
            inputs,
            output,
            fail_on,
            list_checks,
            config,
            aws_security_groups,
            cluster_security_group,
            node_security_group,
        } => {
            if list_checks {
                write!(out, "{}", netfence_audit::checks_markdown()).map_err(io_failure)?;
                return Ok(0);
            }
            if inputs.files.is_empty() {
                return Err(Failure::input(
                    "error: audit needs at least one -f PATH (or --list-checks)",
                ));
            }
            let suppressions = match &config {
                None => netfence_audit::Suppressions::default(),
                Some(path) => {
                    let text = std::fs::read_to_string(path)
                        .map_err(|e| Failure::input(format!("error: {}: {e}", path.display())))?;
                    netfence_audit::Suppressions::from_yaml(&path.display().to_string(), &text)
                        .map_err(|e| Failure::input(format!("error: {e}")))?
                }
            };
            let aws = if aws_security_groups.is_empty() {
                None
            } else {
                let stdin_twice = aws_security_groups.iter().any(|p| p.as_os_str() == "-")
                    && inputs.files.iter().any(|p| p.as_os_str() == "-");
                if stdin_twice {
                    return Err(Failure::input(
                        "error: -f - and --aws-security-groups - cannot both read stdin",
                    ));
                }
                // Read lazily, as the library parses: a read error after a bad file is not
                // reached, and one before it ends the reading.
                let mut read_failure = None;
                let sources = aws_security_groups.iter().map_while(|path| {
                    let name = if path.as_os_str() == "-" {
                        "<stdin>".to_string()
                    } else {
                        path.display().to_string()
                    };
                    match netfence_model::parse::read_input(path) {
                        Ok(text) => Some((name, text)),
                        Err(e) => {
                            read_failure = Some(Failure::input(format!("error: {name}: {e}")));
                            None
                        }
                    }
                });
                let aws = netfence_audit::AwsInput::from_sources(
                    sources,
                    cluster_security_group,
                    node_security_group,
                );
                if let Some(failure) = read_failure {
                    return Err(failure);
                }
                Some(aws.map_err(|e| Failure::input(aws_input_message(e)))?)
            };
            let engine = inputs::load(&inputs.into())?;
            let report = netfence_audit::audit_all(&engine, &suppressions, aws.as_ref());
            match output {
                AuditFormat::Text => {
                    // Colour only on a terminal, and never with NO_COLOR set (no-color.org).
                    use std::io::IsTerminal;
                    let colour = std::io::stdout().is_terminal()
                        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
                    render::audit_text(&mut out, &report, colour)
                }
                AuditFormat::Json => render::audit_json(&mut out, &report),
                AuditFormat::Sarif => render::audit_sarif(&mut out, &report),
            }
            .map_err(io_failure)?;
            Ok(u8::from(
                report.findings.iter().any(|f| f.severity >= fail_on),
            ))
        }
        Command::Selector { expression, labels } => {
            let selector =
                netfence_selector::calico::Selector::parse(&expression).map_err(|e| {
                    Failure::input(format!(
                        "error: invalid selector at column {}: {}\n  {expression}\n  {}^",
                        e.column,
                        e.message,
                        " ".repeat(e.column.saturating_sub(1))
                    ))
                })?;
            match labels {
                None => {
                    writeln!(out, "{selector}").map_err(io_failure)?;
                    Ok(0)
                }
                Some(text) => {
                    let mut map = netfence_selector::Labels::new();
                    for pair in text.split(',').filter(|p| !p.trim().is_empty()) {
                        let (key, value) = pair.split_once('=').ok_or_else(|| {
                            Failure::input(format!("--labels: {pair:?} is not key=value"))
                        })?;
                        map.insert(key.trim().to_string(), value.trim().to_string());
                    }
                    let matched = selector.matches(&map);
                    writeln!(out, "{matched}").map_err(io_failure)?;
                    Ok(if matched { 0 } else { 1 })
                }
            }
        }
        Command::Demo { export } => {
            if let Some(dir) = export {
                examples::export(&dir)
                    .map_err(|e| Failure::input(format!("{}: {e}", dir.display())))?;
                return Ok(0);
            }
            let engine = examples::engine()?;
            let groups = examples::security_groups()?;
            render::demo(&mut out, &engine, &groups).map_err(io_failure)?;
            Ok(0)
        }
    }
}

/// `netfence gen`: check the sizes and the directory before generating anything, then write.
fn gen(
    options: &netfence_engine::gen::GenOptions,
    output: &std::path::Path,
    force: bool,
) -> Result<u8, Failure> {
    options
        .check()
        .map_err(|e| Failure::input(format!("error: gen: {e}")))?;
    let dir = output.display();
    match std::fs::read_dir(output) {
        Ok(mut entries) => {
            if !force && entries.next().is_some() {
                return Err(Failure::input(format!(
                    "error: gen: {dir} is not empty; choose a new directory, or pass --force to replace the generated files in it"
                )));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Failure::input(format!("error: gen: {dir}: {e}"))),
    }
    let files = netfence_engine::gen::generate(options)
        .map_err(|e| Failure::input(format!("error: gen: {e}")))?;
    std::fs::create_dir_all(output).map_err(|e| Failure::input(format!("error: {dir}: {e}")))?;
    for (name, text) in files {
        let path = output.join(&name);
        let written = if text.is_empty() {
            // A file of an earlier, larger run (--force) must not outlive it.
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                other => other,
            }
        } else {
            std::fs::write(&path, text)
        };
        written.map_err(|e| Failure::input(format!("error: {}: {e}", path.display())))?;
    }
    Ok(0)
}

/// An error about `--aws-security-groups` input, naming the flag that chose a missing group.
fn aws_input_message(error: netfence_audit::AwsInputError) -> String {
    use netfence_audit::AwsInputError;
    match error {
        AwsInputError::UnknownClusterGroup { id, files } => format!(
            "error: --cluster-security-group {id}: no such group in {}",
            files.join(", ")
        ),
        AwsInputError::UnknownNodeGroup { id, files } => format!(
            "error: --node-security-group {id}: no such group in {}",
            files.join(", ")
        ),
        other => format!("error: {other}"),
    }
}

fn dataplane(command: DataplaneCommand) -> Result<u8, Failure> {
    // A node the inputs do not name is bad input (exit 2); the tools failing is exit 1.
    let tool_failure = |e: netfence_dataplane::DataplaneError| Failure {
        code: if matches!(e, netfence_dataplane::DataplaneError::UnknownNode { .. }) {
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

fn io_failure(error: std::io::Error) -> Failure {
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
