//! `netfence matrix`, `list` and `diff`: what the whole cluster allows, as a pod matrix, as
//! connections by workload, and as the difference between two configurations.

use super::*;
use netfence_engine::{connlist, default_ports};

#[derive(Clone, Copy, ValueEnum)]
pub enum MatrixFormat {
    Grid,
    Json,
    Csv,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum ListFormat {
    Txt,
    Json,
    Csv,
    Md,
    Dot,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum DiffFormat {
    Txt,
    Csv,
    Md,
    Json,
}

/// The arguments of `netfence matrix`.
#[derive(Args)]
pub struct MatrixArgs {
    #[command(flatten)]
    pub inputs: Inputs,
    /// Comma-separated `PROTO/PORT` list; default: every port a pod declares or a policy names.
    #[arg(long, value_delimiter = ',')]
    pub ports: Vec<ProbePort>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = MatrixFormat::Grid)]
    pub output: MatrixFormat,
    /// Compute the whole matrix but print only counts (classes, allowed pairs per port,
    /// time per phase): for clusters too large to print.
    #[arg(long)]
    pub summary: bool,
}

/// `netfence matrix` (its help text is on [`crate::Command`]).
pub fn matrix(args: MatrixArgs) -> Result<u8, Failure> {
    let MatrixArgs {
        inputs,
        ports,
        output,
        summary,
    } = args;
    let mut out = std::io::stdout().lock();
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
            engine.inventory().pods().len(),
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
        // Freeing 100k pods, their labels and the class rows one by one takes 0.1-0.3 s at
        // the end of a run whose memory the process's exit returns at once anyway.
        std::mem::forget(classes);
        std::mem::forget(engine);
        return Ok(0);
    }
    if synthetic > 0 && engine.has_address_rules() {
        eprintln!("netfence: note: {synthetic_note}");
    }
    // Streamed from the class bits: no pod-by-pod matrix is materialised.
    let matrix = classes.view(&engine);
    emit(output, &matrix)?;
    // As above: the exit returns the memory without walking it.
    std::mem::forget(matrix);
    std::mem::forget(classes);
    std::mem::forget(engine);
    Ok(0)
}

/// The arguments of `netfence list`.
#[derive(Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub inputs: Inputs,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = ListFormat::Txt)]
    pub output: ListFormat,
}

/// `netfence list` (its help text is on [`crate::Command`]).
pub fn list(args: ListArgs) -> Result<u8, Failure> {
    let ListArgs { inputs, output } = args;
    let engine = inputs::load(&inputs)?;
    let list = connlist(&engine);
    emit(output, list.as_slice())?;
    Ok(0)
}

/// The arguments of `netfence diff`.
#[derive(Args)]
pub struct DiffArgs {
    #[command(flatten)]
    pub inputs: Inputs,
    /// The new configuration: files, directories or `-`; repeatable.
    #[arg(long, required = true, value_name = "PATH")]
    pub against: Vec<PathBuf>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = DiffFormat::Txt)]
    pub output: DiffFormat,
}

/// `netfence diff` (its help text is on [`crate::Command`]).
pub fn diff(args: DiffArgs) -> Result<u8, Failure> {
    let DiffArgs {
        inputs,
        against,
        output,
    } = args;
    let before = inputs::load(&inputs)?;
    let after = inputs::load(&Inputs {
        files: against,
        // The cluster (when read) is the old side; `--against` names the new one.
        cluster: super::ClusterArgs::default(),
        ..inputs
    })?;
    let lines = netfence_engine::diff(&before, &after);
    emit(output, lines.as_slice())?;
    // As `diff(1)`, for CI gates: 1 when connectivity differs.
    Ok(u8::from(!lines.is_empty()))
}

impl<M: netfence_engine::MatrixView> Format<M> for MatrixFormat {
    fn write(self, out: &mut impl Write, matrix: &M) -> std::io::Result<()> {
        match self {
            MatrixFormat::Grid => render::matrix_grid(out, matrix),
            MatrixFormat::Json => render::matrix_json(out, matrix),
            MatrixFormat::Csv => render::matrix_csv(out, matrix),
        }
    }
}

impl Format<[netfence_engine::Connection]> for ListFormat {
    fn write(
        self,
        out: &mut impl Write,
        list: &[netfence_engine::Connection],
    ) -> std::io::Result<()> {
        match self {
            ListFormat::Txt => render::list_txt(out, list),
            ListFormat::Json => render::list_json(out, list),
            ListFormat::Csv => render::list_csv(out, list),
            ListFormat::Md => render::list_md(out, list),
            ListFormat::Dot => render::list_dot(out, list),
        }
    }
}

impl Format<[netfence_engine::DiffLine]> for DiffFormat {
    fn write(
        self,
        out: &mut impl Write,
        lines: &[netfence_engine::DiffLine],
    ) -> std::io::Result<()> {
        match self {
            DiffFormat::Txt => render::diff_txt(out, lines),
            DiffFormat::Csv => render::diff_csv(out, lines),
            DiffFormat::Md => render::diff_md(out, lines),
            DiffFormat::Json => render::diff_json(out, lines),
        }
    }
}
