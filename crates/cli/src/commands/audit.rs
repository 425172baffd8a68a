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
    /// Security groups: with them, the security-group checks that read the groups run.
    #[command(flatten)]
    pub security_groups: SecurityGroupArgs,
}

/// `netfence audit` (its help text is on [`crate::Command`]).
pub fn audit(args: AuditArgs) -> Result<u8, Failure> {
    let AuditArgs {
        inputs,
        output,
        fail_on,
        list_checks,
        config,
        security_groups,
    } = args;
    let mut out = std::io::stdout().lock();
    if list_checks {
        write!(out, "{}", netfence_audit::checks_markdown()).map_err(io_failure)?;
        return Ok(0);
    }
    if inputs.files.is_empty() && !inputs.cluster.cluster {
        return Err(Failure::input(
            "error: audit needs at least one -f PATH or --cluster (or --list-checks)",
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
    let stdin_taken = inputs.files.iter().any(|p| p.as_os_str() == "-");
    let aws = security_groups.load(stdin_taken)?;
    let engine = inputs::load(&inputs.into())?;
    let report = netfence_audit::audit_all(&engine, &suppressions, aws.as_ref());
    emit(output, &report)?;
    Ok(u8::from(
        report.findings.iter().any(|f| f.severity >= fail_on),
    ))
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
