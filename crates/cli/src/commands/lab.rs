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
    /// Record the flows of the probes' packets as the kernel saw them cross the lab's node
    /// (forwarded or dropped by the ruleset, and the replies): `FILE` gets `hubble observe -o
    /// json` lines, `FILE.vpc` VPC Flow Logs records with a header line, both for `netfence
    /// flows check`.
    #[arg(long, value_name = "FILE")]
    pub record_flows: Option<PathBuf>,
    /// Probe only the connections this file lists (an application's call graph), one per
    /// line: `SRC -> DST PROTO/PORT`, SRC and DST a workload (`ns/name`, or `name` in
    /// `default`) or pod (`ns/pod`), SRC `*` for every pod; `#` comments. Disagreements are
    /// counted on those connections only.
    #[arg(long, value_name = "FILE")]
    pub calls: Option<PathBuf>,
}

/// `netfence lab` (its help text is on [`crate::Command`]).
pub fn lab(args: LabArgs) -> Result<u8, Failure> {
    let LabArgs {
        inputs,
        ports,
        output,
        timeout_ms,
        record_flows,
        calls,
    } = args;
    let engine = inputs::load(&inputs)?;
    let connections = calls
        .map(|path| {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| Failure::input(format!("--calls {}: {e}", path.display())))?;
            netfence_dataplane::parse_connections(&engine, &text)
                .map_err(|e| Failure::input(format!("--calls {}: {e}", path.display())))
        })
        .transpose()?;
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
        record_flows: record_flows.is_some(),
        connections,
        ..Default::default()
    };
    let report = netfence_dataplane::run_lab(&engine, &options).map_err(|e| Failure {
        code: 2,
        message: format!("lab: {e}"),
    })?;
    if let Some(path) = &record_flows {
        write_flows(path, &report, &engine)?;
    }
    let blocked = report.connections.iter().filter(|(_, ok)| !ok).count();
    if !report.connections.is_empty() {
        eprintln!(
            "lab: {} listed connections probed, {blocked} blocked",
            report.connections.len()
        );
    }
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

/// `FILE` as Hubble JSON lines (naming the lab's pods, as Hubble does), `FILE.vpc` as VPC
/// records, from what the kernel recorded.
fn write_flows(
    path: &std::path::Path,
    report: &netfence_dataplane::LabReport,
    engine: &netfence_engine::Engine,
) -> Result<(), Failure> {
    use netfence_flows::write::{hubble_line, vpc_record, VPC_HEADER};
    let mut vpc_path = path.as_os_str().to_owned();
    vpc_path.push(".vpc");
    let vpc_path = PathBuf::from(vpc_path);
    let create = |path: &std::path::Path| {
        std::fs::File::create(path)
            .map(std::io::BufWriter::new)
            .map_err(|e| Failure::input(format!("--record-flows {}: {e}", path.display())))
    };
    let (mut hubble, mut vpc) = (create(path)?, create(&vpc_path)?);
    let written = writeln!(vpc, "{VPC_HEADER}").and_then(|_| {
        for flow in &report.flows {
            let mut record = flow.record(report.window);
            record.flow.src_pod = netfence_dataplane::lab_pod(engine, record.flow.src);
            record.flow.dst_pod = netfence_dataplane::lab_pod(engine, record.flow.dst);
            hubble_line(&mut hubble, &record, "netfence-lab")?;
            vpc_record(&mut vpc, &record, "eni-netfence-lab")?;
        }
        hubble.flush().and_then(|_| vpc.flush())
    });
    written.map_err(|e| Failure::input(format!("--record-flows {}: {e}", path.display())))?;
    eprintln!(
        "lab: {} flows recorded from the kernel to {} (Hubble JSON) and {} (VPC Flow Logs)",
        report.flows.len(),
        path.display(),
        vpc_path.display()
    );
    Ok(())
}

impl<M: netfence_engine::MatrixView> Format<M> for LabFormat {
    fn write(self, out: &mut impl Write, matrix: &M) -> std::io::Result<()> {
        match self {
            LabFormat::Grid => render::matrix_grid(out, matrix),
            LabFormat::Json => render::matrix_json(out, matrix),
        }
    }
}
