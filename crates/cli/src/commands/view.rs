//! `netfence view` and `netfence serve`: the policy viewer. The page, the SVG and the server
//! are `netfence_view`'s; this module loads the inputs, runs the audit, wires flow inputs and
//! answers the server's queries exactly as `netfence query -o json` does and its what-ifs
//! exactly as `netfence what-if -o json` does.

use super::connectivity::DiffFormat;
use super::*;
use netfence_model::{Loader, ObjectKey};
use netfence_view::whatif::Baseline;
use netfence_view::{data, html, overlay::Overlay, serve, svg, BuildOptions, ViewData};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// The arguments of `netfence view`.
#[derive(Args)]
pub struct ViewArgs {
    #[command(flatten)]
    pub inputs: Inputs,
    /// Where to write: `FILE.html` (the self-contained page), `FILE.svg` (a static graph) or
    /// `-` (the page on stdout).
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: PathBuf,
    /// Print the time of each phase on stderr.
    #[arg(long)]
    pub timings: bool,
}

/// The arguments of `netfence serve` (one flow source at most, as `flows check`).
#[derive(Args)]
#[command(group(clap::ArgGroup::new("source").args(["vpc", "hubble", "npa"])))]
pub struct ServeArgs {
    #[command(flatten)]
    pub inputs: Inputs,
    /// Address to listen on (port 0: any free port). Keep it on loopback: the server has no
    /// authentication (it is read-only).
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDRESS")]
    pub listen: String,
    /// AWS VPC Flow Logs to draw over the allowed graph (as `flows check --vpc`).
    #[arg(long, value_name = "PATH", num_args = 1..)]
    pub vpc: Vec<PathBuf>,
    /// `hubble observe -o json` output to draw (as `flows check --hubble`).
    #[arg(long, value_name = "PATH", num_args = 1..)]
    pub hubble: Vec<PathBuf>,
    /// Network Policy Agent decision logs to draw (as `flows check --npa`).
    #[arg(long, value_name = "PATH", num_args = 1..)]
    pub npa: Vec<PathBuf>,
    /// The flow log's format (as `flows check --vpc-format`).
    #[arg(long, value_name = "FORMAT", requires = "vpc")]
    pub vpc_format: Option<String>,
    /// Who held each address when (as `flows check --pods-history`).
    #[arg(long, value_name = "PATH")]
    pub pods_history: Option<PathBuf>,
}

/// Time of each phase, for `--timings`.
struct Clock {
    started: std::time::Instant,
    last: std::time::Instant,
    phases: Vec<(&'static str, f64)>,
}

impl Clock {
    fn new() -> Self {
        let now = std::time::Instant::now();
        Clock {
            started: now,
            last: now,
            phases: Vec::new(),
        }
    }

    fn lap(&mut self, phase: &'static str) {
        let now = std::time::Instant::now();
        self.phases
            .push((phase, (now - self.last).as_secs_f64() * 1000.0));
        self.last = now;
    }

    fn report(&self) -> String {
        let phases: Vec<String> = self
            .phases
            .iter()
            .map(|(name, ms)| format!("{name} {ms:.1} ms"))
            .collect();
        format!(
            "time: {}, total {:.1} ms",
            phases.join(", "),
            self.started.elapsed().as_secs_f64() * 1000.0
        )
    }
}

/// The page title: the inputs as given.
fn title(inputs: &Inputs) -> String {
    let files: Vec<String> = inputs
        .files
        .iter()
        .map(|f| f.display().to_string())
        .collect();
    files.join(" ")
}

/// Audit and gather the view of the loaded inputs.
fn gather(
    engine: &netfence_engine::Engine,
    inputs: &Inputs,
    live: bool,
    clock: &mut Clock,
) -> ViewData {
    // The audit runs beside the connection table (which uses every core for its cells).
    let (list, report) = std::thread::scope(|scope| {
        let audit = scope.spawn(|| {
            netfence_audit::audit_all(engine, &netfence_audit::Suppressions::default(), None)
        });
        let list =
            netfence_engine::conn_table(engine, &netfence_engine::connlist::cuts(engine), None);
        let report = audit
            .join()
            .unwrap_or_else(|e| std::panic::resume_unwind(e));
        (list, report)
    });
    clock.lap("connlist+audit");
    let options = BuildOptions {
        title: title(inputs),
        live,
    };
    let view = data::build_from(engine, &list, &report, &options);
    clock.lap("explain");
    view
}

/// What `netfence view` writes, chosen by the output file's extension.
#[derive(Clone, Copy)]
pub enum ViewFormat {
    /// The self-contained page.
    Html,
    /// The static graph.
    Svg,
}

impl Format<ViewData> for ViewFormat {
    fn write(self, out: &mut impl Write, view: &ViewData) -> std::io::Result<()> {
        match self {
            ViewFormat::Html => html::write_page(out, view),
            ViewFormat::Svg => out.write_all(svg::render(view).as_bytes()),
        }
    }
}

/// The format `-o` names: `.html`/`.htm`, `.svg`, or `-` (the page on stdout).
fn view_format(output: &std::path::Path) -> Result<ViewFormat, Failure> {
    if output.as_os_str() == "-" {
        return Ok(ViewFormat::Html);
    }
    let extension = output
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match extension.as_deref() {
        Some("html" | "htm") => Ok(ViewFormat::Html),
        Some("svg") => Ok(ViewFormat::Svg),
        _ => Err(Failure::input(format!(
            "-o {}: the file name must end in .html or .svg (or be - for the page on stdout)",
            output.display()
        ))),
    }
}

/// `netfence view` (its help text is on [`crate::Command`]).
pub fn view(args: ViewArgs) -> Result<u8, Failure> {
    let ViewArgs {
        inputs,
        output,
        timings,
    } = args;
    let format = view_format(&output)?;
    let mut clock = Clock::new();
    let engine = inputs::load(&inputs)?;
    clock.lap("load+compile");
    let view = gather(&engine, &inputs, false, &mut clock);
    if output.as_os_str() == "-" {
        emit(format, &view)?;
    } else {
        let failed = |e: std::io::Error| Failure::input(format!("{}: {e}", output.display()));
        let file = std::fs::File::create(&output).map_err(failed)?;
        let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
        format
            .write(&mut out, &view)
            .and_then(|_| out.flush())
            .map_err(failed)?;
    }
    clock.lap("render+write");
    if timings {
        eprintln!("netfence: {}", clock.report());
    }
    Ok(0)
}

/// The flow inputs of `serve`, as `flows check` reads them.
fn observed(
    args: &ServeArgs,
    engine: &netfence_engine::Engine,
    view: &mut ViewData,
) -> Result<(), Failure> {
    let Some((flag, paths, format)) = super::flows::source_of(
        &args.vpc,
        &args.hubble,
        &args.npa,
        args.vpc_format.as_deref(),
    )?
    else {
        return Ok(());
    };
    let history = args
        .pods_history
        .as_deref()
        .map(super::flows::history)
        .transpose()?;
    let mut checker = netfence_flows::Checker::new(engine, history);
    let mut overlay = Overlay::new(view);
    let mut stats = netfence_flows::ReadStats::default();
    // As `flows check` does: an input that cannot be listed or read on stops that input
    // only (the records before the failure count), each failure an `error: …` line in
    // reading order; the server starts with the rest, unless nothing at all was read.
    let mut failures = Vec::new();
    for input in super::flows::inputs_of(flag, paths) {
        let file = match input {
            Ok(file) => file,
            Err(failure) => {
                failures.push(failure);
                continue;
            }
        };
        let mut sink = |flow: netfence_flows::Flow| {
            if let netfence_flows::Checked::Judged(checked) = checker.check(&flow) {
                overlay.add(engine, &checked);
            }
        };
        if let Err(e) = netfence_flows::read_path(&file, &format, &mut stats, &mut sink) {
            failures.push(format!("error: {flag} {e}"));
        }
    }
    if stats.read == 0 && !failures.is_empty() {
        return Err(super::flows::failed_inputs(failures, None));
    }
    for failure in &failures {
        eprintln!("{failure}");
    }
    let (edges, dropped) = overlay.finish();
    let checked = checker.stats();
    view.observed_notes.push(format!(
        "{} record(s) read, {} parsed, {} malformed; {} mismatch(es)",
        stats.read,
        stats.parsed,
        stats.malformed(),
        checked.mismatches
    ));
    for failure in failures {
        let failure = failure.strip_prefix("error: ").unwrap_or(&failure);
        view.observed_notes.push(format!(
            "not read to its end, not drawn past that: {failure}"
        ));
    }
    if dropped > 0 {
        view.observed_notes.push(format!(
            "{dropped} flow(s) beyond the observed-edge limit not drawn"
        ));
    }
    view.observed = edges;
    Ok(())
}

/// `netfence serve` (its help text is on [`crate::Command`]).
pub fn serve(args: ServeArgs) -> Result<u8, Failure> {
    let mut clock = Clock::new();
    // The loaded objects are kept with the engine: what-if previews apply changes to a copy.
    let baseline = Baseline::new(inputs::loader(&args.inputs)?)
        .map_err(|errors| Failure::input(errors.to_string()))?;
    inputs::report(baseline.engine().inventory());
    let engine = baseline.engine();
    clock.lap("load+compile");
    let mut view = gather(engine, &args.inputs, true, &mut clock);
    observed(&args, engine, &mut view)?;
    let page = html::page(&view);
    let data = serde_json::to_string(&view).map_err(|e| Failure::input(e.to_string()))?;
    let live = serve::bind(&args.listen).map_err(|e| Failure::input(e.to_string()))?;
    // Tests and scripts read this line for the port when listening on port 0.
    eprintln!(
        "netfence: serving http://{} (read-only; Ctrl-C stops)",
        live.address()
    );
    if !live.address().ip().is_loopback() {
        eprintln!(
            "netfence: warning: {} is not a loopback address: anyone who reaches it can read every policy and ask queries (there is no authentication)",
            live.address()
        );
    }
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    // Without a handler the default signal action ends the process, which is also fine;
    // with one, the server finishes the request in hand.
    let _ = ctrlc::set_handler(move || flag.store(true, std::sync::atomic::Ordering::Relaxed));
    let query = |asked: &serve::QueryRequest| query_json(engine, asked);
    let what_if = |asked: &serve::WhatIfRequest| what_if_json(&baseline, &args.inputs, asked);
    let handlers = serve::Handlers {
        query: &query,
        what_if: &what_if,
    };
    live.run(&page, &data, &handlers, &stop)
        .map_err(|e| Failure::input(e.to_string()))?;
    Ok(0)
}

/// One what-if answered as `netfence what-if -f INPUTS --apply BODY --delete … -o json`
/// prints it (the same delta, the same renderer), without changing the served state.
fn what_if_json(
    baseline: &Baseline,
    inputs: &Inputs,
    asked: &serve::WhatIfRequest,
) -> Result<Vec<u8>, String> {
    let deletions = asked
        .deletions
        .iter()
        .map(|text| text.parse::<ObjectKey>().map_err(|e| format!("delete {e}")))
        .collect::<Result<Vec<ObjectKey>, String>>()?;
    // As `--apply` reads a file: the inputs' default namespace and leniency.
    let mut changes = Loader::new();
    if let Some(namespace) = &inputs.namespace {
        changes.set_default_namespace(namespace);
    }
    changes.set_lenient(inputs.lenient);
    let manifests = asked.manifests.trim_start_matches('\u{feff}');
    if manifests.trim().is_empty() {
        if deletions.is_empty() {
            return Err(
                "nothing to change: give manifests to apply, objects to delete, or both".into(),
            );
        }
    } else {
        // The loader reads a document starting with `{` as JSON only from a `.json` file.
        let json = manifests.trim_start().starts_with(['{', '[']);
        let name = if json { "what-if.json" } else { "what-if.yaml" };
        changes.load_str(name, manifests);
        unknown_kinds(&changes)?;
    }
    let preview = baseline.preview(changes, &deletions).map_err(|errors| {
        // The loader's lines as the CLI prints them, without its `error: ` prefix.
        let text = errors.to_string();
        let lines: Vec<&str> = text
            .lines()
            .map(|line| line.strip_prefix("error: ").unwrap_or(line))
            .collect();
        lines.join("\n")
    })?;
    let mut out = Vec::new();
    DiffFormat::Json
        .write(&mut out, preview.delta.as_slice())
        .map_err(|e| e.to_string())?;
    Ok(out)
}

/// One query answered as `netfence query -o json` prints it.
fn query_json(
    engine: &netfence_engine::Engine,
    asked: &serve::QueryRequest,
) -> Result<serde_json::Value, String> {
    let strip = |failure: Failure| {
        failure
            .message
            .strip_prefix("error: ")
            .unwrap_or(&failure.message)
            .to_string()
    };
    let port: ProbePort = asked
        .port
        .parse()
        .map_err(|e| format!("port {:?}: {e}", asked.port))?;
    let src = inputs::endpoint(engine, &asked.from, "from").map_err(strip)?;
    let mut out = Vec::new();
    match inputs::target(engine, &asked.to, "to").map_err(strip)? {
        inputs::Target::Endpoint(dst) => {
            let verdict = engine.explain(src, dst, port.protocol, port.port);
            render::query_json(&mut out, engine, src, dst, port, &verdict)
        }
        inputs::Target::Service(index) => {
            let service = &engine.inventory().services[index];
            let answer = engine.explain_via_service(src, service, port.protocol, port.port);
            render::service_query_json(&mut out, engine, src, service, port, &answer)
        }
    }
    .map_err(|e| e.to_string())?;
    serde_json::from_slice(&out).map_err(|e| e.to_string())
}

/// Refuse manifests of kinds netfence does not read: `--apply` would skip them with a note on
/// stderr, which a page cannot show, so a mistyped kind would look like "no change".
fn unknown_kinds(changes: &Loader) -> Result<(), String> {
    // On its own the loader may not link (a pod of a namespace in the inputs only): then the
    // skipped kinds are unknown here, and applying reports the real errors.
    let Ok(alone) = changes.clone().finish() else {
        return Ok(());
    };
    if alone.skipped_kinds.is_empty() {
        return Ok(());
    }
    let kinds: Vec<String> = alone
        .skipped_kinds
        .iter()
        .map(|(kind, count)| format!("{kind} ×{count}"))
        .collect();
    Err(format!(
        "what-if: kinds netfence does not evaluate: {} (it applies pods, namespaces, service accounts, services, nodes, workloads and policy kinds)",
        kinds.join(", ")
    ))
}
