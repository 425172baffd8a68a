//! `netfence lab`: the cluster rebuilt from network namespaces, probed with real packets.

use super::*;
use netfence_engine::default_ports;

#[derive(Clone, Copy, ValueEnum)]
pub enum LabFormat {
    Grid,
    Json,
}

/// The arguments of `netfence lab`.
#[derive(Args)]
pub struct LabArgs {
    #[command(flatten)]
    pub inputs: Inputs,
    /// Comma-separated `PROTO/PORT` list (TCP, UDP); default as for `matrix`.
    #[arg(long, value_delimiter = ',')]
    pub ports: Vec<ProbePort>,
    /// Output format of the observed matrix (`json` is the `matrix -o json` contract).
    #[arg(short = 'o', long, value_enum, default_value_t = LabFormat::Grid)]
    pub output: LabFormat,
    /// Milliseconds a probe waits before calling the port blocked.
    #[arg(long, default_value_t = 1000)]
    pub timeout_ms: u64,
}

/// `netfence lab` (its help text is on [`crate::Command`]).
pub fn lab(args: LabArgs) -> Result<u8, Failure> {
    let LabArgs {
        inputs,
        ports,
        output,
        timeout_ms,
    } = args;
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
    emit(output, &report.observed)?;
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

impl<M: netfence_engine::MatrixView> Format<M> for LabFormat {
    fn write(self, out: &mut impl Write, matrix: &M) -> std::io::Result<()> {
        match self {
            LabFormat::Grid => render::matrix_grid(out, matrix),
            LabFormat::Json => render::matrix_json(out, matrix),
        }
    }
}
