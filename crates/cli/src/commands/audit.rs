//! `netfence audit`: the best-practice checks, with AWS security groups when given.

use super::*;

#[derive(Clone, Copy, ValueEnum)]
pub enum AuditFormat {
    Text,
    Json,
    Sarif,
}

/// The arguments of `netfence audit`.
#[derive(Args)]
pub struct AuditArgs {
    #[command(flatten)]
    pub inputs: OptionalInputs,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = AuditFormat::Text)]
    pub output: AuditFormat,
    /// Lowest severity that makes the exit code 1: info, warning or error.
    #[arg(long, default_value = "error")]
    pub fail_on: netfence_audit::Severity,
    /// Print the list of checks (Markdown) and exit.
    #[arg(long)]
    pub list_checks: bool,
    /// YAML file of suppressions (`ignore: [{id, namespace?, object?}]`); suppressed
    /// findings are counted.
    #[arg(long, value_name = "FILE")]
    pub config: Option<std::path::PathBuf>,
    /// The JSON that `aws ec2 describe-security-groups` prints (repeatable; `-` for stdin):
    /// enables the security-group checks that read the groups.
    #[arg(long, value_name = "FILE")]
    pub aws_security_groups: Vec<PathBuf>,
    /// The EKS cluster security group (`aws eks describe-cluster --query
    /// cluster.resourcesVpcConfig.clusterSecurityGroupId`); by default the one group tagged
    /// `aws:eks:cluster-name`.
    #[arg(long, value_name = "SG_ID", requires = "aws_security_groups")]
    pub cluster_security_group: Option<String>,
    /// A self-managed node group's security group (repeatable), checked against the EKS
    /// minimum rules with the cluster security group.
    #[arg(long, value_name = "SG_ID", requires = "aws_security_groups")]
    pub node_security_group: Vec<String>,
}

/// `netfence audit` (its help text is on [`crate::Command`]).
pub fn audit(args: AuditArgs) -> Result<u8, Failure> {
    let AuditArgs {
        inputs,
        output,
        fail_on,
        list_checks,
        config,
        aws_security_groups,
        cluster_security_group,
        node_security_group,
    } = args;
    let mut out = std::io::stdout().lock();
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
            let text = netfence_model::parse::read_input(path)
                .map_err(|e| Failure::input(format!("error: {}: {e}", path.display())))?;
            netfence_audit::Suppressions::from_yaml(&path.display().to_string(), &text).map_err(
                |e| match e {
                    netfence_audit::ConfigError::UnknownCheck { .. } => {
                        Failure::input(format!("error: {e} (see `netfence audit --list-checks`)"))
                    }
                    other => Failure::input(format!("error: {other}")),
                },
            )?
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
    emit(output, &report)?;
    Ok(u8::from(
        report.findings.iter().any(|f| f.severity >= fail_on),
    ))
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

impl Format<netfence_audit::Report> for AuditFormat {
    fn write(self, out: &mut impl Write, report: &netfence_audit::Report) -> std::io::Result<()> {
        match self {
            AuditFormat::Text => {
                // Colour only on a terminal, and never with NO_COLOR set (no-color.org).
                use std::io::IsTerminal;
                let colour = std::io::stdout().is_terminal()
                    && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
                render::audit_text(out, report, colour)
            }
            AuditFormat::Json => render::audit_json(out, report),
            AuditFormat::Sarif => render::audit_sarif(out, report),
        }
    }
}
