//! One module per subcommand family, each with its arguments (clap `Args`) and one short
//! function per subcommand. They load inputs, call the library crates and hand the results
//! to `render`; no policy or AWS logic lives here.

pub mod advise;
pub mod agent;
pub mod audit;
pub mod connectivity;
pub mod dataplane;
pub mod flows;
pub mod lab;
pub mod query;
pub mod tls;
pub mod tools;
pub mod view;
pub mod watch;
pub mod whatif;

pub(crate) use crate::{inputs, io_failure, render, Failure};
pub(crate) use clap::{Args, Subcommand, ValueEnum};
pub(crate) use netfence_engine::ProbePort;
pub(crate) use std::io::Write;
pub(crate) use std::path::PathBuf;

/// An output format for one kind of result: how a value is written in it. Each command's
/// `-o` enum implements it for what the command prints; [`emit`] is the one place results
/// reach stdout.
pub trait Format<T: ?Sized>: Copy {
    /// Write `value` in this format.
    fn write(self, out: &mut impl Write, value: &T) -> std::io::Result<()>;
}

/// Print `value` on stdout in `format` (a closed pipe is not an error: see [`io_failure`]).
pub fn emit<T: ?Sized>(format: impl Format<T>, value: &T) -> Result<(), Failure> {
    // Block-buffered: stdout is line-buffered, and a large matrix or list is millions of
    // lines (one write(2) each otherwise).
    let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    format.write(&mut out, value).map_err(io_failure)?;
    out.flush().map_err(io_failure)
}

/// The inputs every analysing command takes.
#[derive(Args)]
pub struct Inputs {
    /// A manifest file, a directory (recursive *.yaml|*.yml|*.json; hidden entries and
    /// symbolic links to directories are skipped) or `-` for stdin; repeatable.
    #[arg(
        short = 'f',
        long = "file",
        required_unless_present = "cluster",
        value_name = "PATH"
    )]
    pub files: Vec<PathBuf>,
    /// Namespace of namespaced objects that name none (Helm and kustomize output), as
    /// `kubectl apply -n`; without it they are in `default`.
    #[arg(short = 'n', long = "namespace", value_name = "NAMESPACE")]
    pub namespace: Option<String>,
    /// Report objects that do not validate as warnings and leave them out, instead of
    /// refusing the input (exit 2). For large dumps; verdicts then ignore those objects.
    #[arg(long)]
    pub lenient: bool,
    /// The CNI that enforces policy: cilium, calico, vpc-cni or generic. It decides details
    /// such as whether a NetworkPolicy ipBlock matches pod addresses (not under Cilium).
    /// Default: detected from the cilium, calico-node or aws-node DaemonSet in the input (or
    /// Cilium policies), else generic.
    #[arg(long, value_name = "CNI")]
    pub cni: Option<String>,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

/// `--cluster [--context NAME] [--kubeconfig PATH]`: a live API server as an input.
#[derive(Args, Clone, Debug, Default)]
pub struct ClusterArgs {
    /// Read every kind netfence evaluates from a live API server too (the kubeconfig's
    /// current context, else the in-cluster service account), in pages; kinds whose CRDs are
    /// not installed are skipped and counted. Combines with -f. Needs get/list (and for
    /// `watch`, watch) on those kinds only.
    #[arg(long)]
    pub cluster: bool,
    /// The kubeconfig context to use with --cluster (default: its current context).
    #[arg(long, value_name = "NAME", requires = "cluster")]
    pub context: Option<String>,
    /// The kubeconfig to use with --cluster (default: $KUBECONFIG, then ~/.kube/config,
    /// then the in-cluster configuration).
    #[arg(long, value_name = "PATH", requires = "cluster")]
    pub kubeconfig: Option<PathBuf>,
}

/// [`Inputs`] where `-f` may be absent (`audit --list-checks`).
#[derive(Args)]
pub struct OptionalInputs {
    /// A manifest file, a directory (recursive *.yaml|*.yml|*.json; hidden entries and
    /// symbolic links to directories are skipped) or `-` for stdin; repeatable.
    #[arg(short = 'f', long = "file", value_name = "PATH")]
    pub files: Vec<PathBuf>,
    /// Namespace of namespaced objects that name none, as `kubectl apply -n`.
    #[arg(short = 'n', long = "namespace", value_name = "NAMESPACE")]
    pub namespace: Option<String>,
    /// Report objects that do not validate as warnings and leave them out.
    #[arg(long)]
    pub lenient: bool,
    /// The CNI that enforces policy: cilium, calico, vpc-cni or generic (default: detected).
    #[arg(long, value_name = "CNI")]
    pub cni: Option<String>,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

impl From<OptionalInputs> for Inputs {
    fn from(inputs: OptionalInputs) -> Self {
        Inputs {
            files: inputs.files,
            namespace: inputs.namespace,
            lenient: inputs.lenient,
            cni: inputs.cni,
            cluster: inputs.cluster,
        }
    }
}

/// The AWS security groups, as `audit` and `flows check` take them.
#[derive(Args, Default)]
pub struct SecurityGroupArgs {
    /// The JSON that `aws ec2 describe-security-groups` prints (repeatable; `-` for stdin).
    #[arg(long, value_name = "FILE")]
    pub aws_security_groups: Vec<PathBuf>,
    /// The EKS cluster security group (`aws eks describe-cluster --query
    /// cluster.resourcesVpcConfig.clusterSecurityGroupId`); by default the one group tagged
    /// `aws:eks:cluster-name`.
    #[arg(long, value_name = "SG_ID", requires = "aws_security_groups")]
    pub cluster_security_group: Option<String>,
    /// A self-managed node group's security group (repeatable).
    #[arg(long, value_name = "SG_ID", requires = "aws_security_groups")]
    pub node_security_group: Vec<String>,
}

impl SecurityGroupArgs {
    /// Read the groups (`None` without `--aws-security-groups`). `stdin_taken`: another input
    /// already reads stdin.
    pub fn load(self, stdin_taken: bool) -> Result<Option<netfence_model::aws::AwsInput>, Failure> {
        let SecurityGroupArgs {
            aws_security_groups,
            cluster_security_group,
            node_security_group,
        } = self;
        if aws_security_groups.is_empty() {
            return Ok(None);
        }
        if stdin_taken && aws_security_groups.iter().any(|p| p.as_os_str() == "-") {
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
        let aws = netfence_model::aws::AwsInput::from_sources(
            sources,
            cluster_security_group,
            node_security_group,
        );
        if let Some(failure) = read_failure {
            return Err(failure);
        }
        aws.map(Some)
            .map_err(|e| Failure::input(aws_input_message(e)))
    }
}

/// An error about `--aws-security-groups` input, naming the flag that chose a missing group.
fn aws_input_message(error: netfence_model::aws::AwsInputError) -> String {
    use netfence_model::aws::AwsInputError;
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
