//! `netfence flows check`: flow logs read, each flow mapped to endpoints at its time and
//! checked against policy. Reading, enrichment and judging are `netfence_flows`'s; this module
//! wires the flags to it and streams the rows to `render`.

use super::*;
use netfence_flows::{Checker, History, ReadStats, Rows, SourceFormat, VpcFormat};

/// The `flows` subcommands.
#[derive(Subcommand)]
pub enum FlowsCommand {
    /// Check observed flows against policy: each flow mapped to pods at its time, judged by
    /// the policies, and compared with what the log says happened. Exit 0, 1 with
    /// --fail-on-mismatch when a flow mismatches, 2 on bad input (or when nothing parses).
    /// An input that cannot be listed or read on (a `.gz` cut short) stops that input only:
    /// what came before the failure and every other input are checked and reported, the
    /// failures are errors on stderr, and the exit is 2.
    Check(CheckArgs),
}

/// `-o` of `flows check`.
#[derive(Clone, Copy, ValueEnum)]
pub enum FlowsFormat {
    /// A summary, then the mismatches grouped by source and destination workload and the
    /// deciding policy.
    Text,
    /// JSON Lines, one judged flow per line (`time`, `src`, `dst`, `protocol`, `port`,
    /// `observed`, `policy`, `decided_by`, `mismatch`).
    Json,
    /// CSV with the JSON keys as its header.
    Csv,
    /// Parquet files with the JSON keys as columns, under `--output-dir`, Hive-partitioned
    /// by the flow's date and hour (`date=2023-11-14/hour=22/flows-0.parquet`); stdout gets
    /// the text summary.
    Parquet,
}

/// The flow inputs `flows check` and `advise` take: one kind of log (several paths), its
/// format, and who held which address when.
#[derive(Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["vpc", "hubble", "npa"])))]
pub struct FlowInputs {
    /// AWS VPC Flow Logs text records: a file, a directory (recursive), a `.gz`, or `-`.
    #[arg(long, value_name = "PATH", num_args = 1..)]
    pub vpc: Vec<PathBuf>,
    /// `hubble observe -o json` output: a file, a directory (recursive), a `.gz`, or `-`.
    #[arg(long, value_name = "PATH", num_args = 1..)]
    pub hubble: Vec<PathBuf>,
    /// AWS Network Policy Agent decision logs (bare or with CloudWatch's timestamp in
    /// front): a file, a directory (recursive), a `.gz`, or `-`.
    #[arg(long, value_name = "PATH", num_args = 1..)]
    pub npa: Vec<PathBuf>,
    /// The flow log's format, in AWS's `${version} ${srcaddr} …` form or as bare field names
    /// (versions 2 to 8); default: the v2 default format. A file's header line wins.
    #[arg(long, value_name = "FORMAT", requires = "vpc")]
    pub vpc_format: Option<String>,
    /// JSON Lines `{"ip", "pod": "ns/name", "from", "to"}` (RFC 3339, `to` null while the pod
    /// has the address): who held each listed address when.
    #[arg(long, value_name = "PATH")]
    pub pods_history: Option<PathBuf>,
}

impl FlowInputs {
    /// The flag, the paths and the format of the source given.
    pub(crate) fn source(&self) -> Result<(&'static str, &[PathBuf], SourceFormat), Failure> {
        source_of(
            &self.vpc,
            &self.hubble,
            &self.npa,
            self.vpc_format.as_deref(),
        )?
        .ok_or_else(|| Failure::input("one of --vpc, --hubble or --npa is required"))
    }

    /// `--pods-history`, read.
    pub(crate) fn history(&self) -> Result<Option<History>, Failure> {
        self.pods_history.as_deref().map(history).transpose()
    }

    /// Whether a flow path is stdin.
    pub(crate) fn reads_stdin(&self) -> bool {
        self.vpc
            .iter()
            .chain(&self.hubble)
            .chain(&self.npa)
            .any(|p| p.as_os_str() == "-")
    }
}

/// Every flow of `paths` (in `format`, named by `flag`) handed to `sink`; the lines read
/// and skipped are counted in `stats`.
pub(crate) fn read_flows(
    (flag, paths, format): Source<'_>,
    stats: &mut ReadStats,
    sink: &mut dyn FnMut(netfence_flows::Flow),
) -> Result<(), Failure> {
    for path in paths {
        netfence_flows::read_path(path, &format, stats, sink)
            .map_err(|e| Failure::input(format!("{flag} {e}")))?;
    }
    Ok(())
}

/// The warnings for skipped lines, and a failure when nothing read as a flow.
pub(crate) fn finish_reading(flag: &str, stats: &ReadStats) -> Result<(), Failure> {
    for example in &stats.examples {
        eprintln!(
            "netfence: warning: {}:{}: {}",
            example.file, example.line, example.reason
        );
    }
    if stats.parsed == 0 && (stats.read == 0 || stats.malformed() > 0) {
        return Err(Failure::input(if stats.read == 0 {
            format!("{flag}: no records in the input")
        } else {
            format!(
                "{flag}: no record reads as a flow ({} read, {} malformed)",
                stats.read,
                stats.malformed()
            )
        }));
    }
    Ok(())
}

/// The arguments of `netfence flows check`.
#[derive(Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub inputs: Inputs,
    #[command(flatten)]
    pub flows: FlowInputs,
    /// Security groups in the verdict path (VPC records only: their `action` is the
    /// groups'): a connection the groups of the pod's or node's interface drop is judged
    /// `deny`, decided by the groups.
    #[command(flatten)]
    pub security_groups: SecurityGroupArgs,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = FlowsFormat::Text)]
    pub output: FlowsFormat,
    /// Where `-o parquet` writes its partitions (created when missing).
    #[arg(long, value_name = "DIR")]
    pub output_dir: Option<PathBuf>,
    /// Counts only, whatever -o says: records read, parsed, skipped with reasons, replies,
    /// mismatches and records per second (no rows, no mismatch groups).
    #[arg(long)]
    pub summary: bool,
    /// Exit 1 when any flow mismatches.
    #[arg(long)]
    pub fail_on_mismatch: bool,
}

/// `netfence flows …`.
pub fn flows(command: FlowsCommand) -> Result<u8, Failure> {
    match command {
        FlowsCommand::Check(args) => check(args),
    }
}

/// A flow source: the flag that named it, its paths and their format.
pub(crate) type Source<'a> = (&'static str, &'a [PathBuf], SourceFormat);

/// The flag, the paths and the format of whichever flow-source flag is given (`None` when
/// none is): shared by `flows check` and `serve`.
pub(crate) fn source_of<'a>(
    vpc: &'a [PathBuf],
    hubble: &'a [PathBuf],
    npa: &'a [PathBuf],
    vpc_format: Option<&str>,
) -> Result<Option<Source<'a>>, Failure> {
    if !vpc.is_empty() {
        let format = match vpc_format {
            Some(text) => VpcFormat::parse(text)
                .map_err(|e| Failure::input(format!("--vpc-format {text:?}: {e}")))?,
            None => VpcFormat::default(),
        };
        Ok(Some(("--vpc", vpc, SourceFormat::Vpc(format))))
    } else if !hubble.is_empty() {
        Ok(Some(("--hubble", hubble, SourceFormat::Hubble)))
    } else if !npa.is_empty() {
        Ok(Some(("--npa", npa, SourceFormat::Npa)))
    } else {
        Ok(None)
    }
}

/// `--pods-history FILE` read (shared with `serve`).
pub(crate) fn history(path: &std::path::Path) -> Result<History, Failure> {
    let flag = format!("--pods-history {}", path.display());
    let file = std::fs::File::open(path).map_err(|e| Failure::input(format!("{flag}: {e}")))?;
    History::read(std::io::BufReader::new(file)).map_err(|e| Failure::input(format!("{flag}: {e}")))
}

/// `netfence flows check` (its help text is on [`FlowsCommand::Check`]).
pub fn check(mut args: CheckArgs) -> Result<u8, Failure> {
    let (flag, paths, format) = args.flows.source()?;
    let paths = paths.to_vec();
    let history = args.flows.history()?;
    let stdin_taken =
        args.inputs.files.iter().any(|p| p.as_os_str() == "-") || args.flows.reads_stdin();
    let security_groups = std::mem::take(&mut args.security_groups).load(stdin_taken)?;
    // Never dropped: the process ends after this command, and its exit returns the memory at
    // once where dropping walks every pod, label and policy (about 7 % of the user time of a
    // 1 M-record check). Left so on every path, so that a run with an empty log costs what
    // the same run's setup costs.
    let engine: &netfence_engine::Engine = Box::leak(Box::new(inputs::load(&args.inputs)?));
    let output = args.output;
    let parquet = match (output, &args.output_dir) {
        (FlowsFormat::Parquet, Some(dir)) => {
            // The directory is made (or found) now: a bad one is said before any reading.
            netfence_flows::ParquetWriter::new(dir)
                .map_err(|e| Failure::input(format!("--output-dir {e}")))?;
            Some(dir.as_path())
        }
        (FlowsFormat::Parquet, None) => {
            return Err(Failure::input("error: -o parquet needs --output-dir DIR"))
        }
        (_, Some(_)) => return Err(Failure::input("error: --output-dir is for -o parquet")),
        (_, None) => None,
    };
    let rows = matches!(output, FlowsFormat::Json | FlowsFormat::Csv);
    // Each pod's workload named once, for the mismatch groups of every file and thread.
    let workloads = std::sync::Arc::new(netfence_flows::Workloads::of(engine));
    let mut groups = netfence_flows::MismatchGroups::new(std::sync::Arc::clone(&workloads));
    let mut stats = ReadStats::default();
    // Inputs that could not be listed or read on, as `error: …` lines in reading order.
    let mut failures: Vec<String> = Vec::new();
    let started = std::time::Instant::now();
    let checked = if parquet.is_some() || args.summary || !rows {
        // Counts and mismatch groups (and Parquet files): the inputs' files are checked on
        // every core, and their counts merged in reading order (the same output as one
        // thread).
        check_files(
            (flag, &paths, &format),
            engine,
            (history.as_ref(), security_groups.as_ref()),
            (&mut stats, &mut groups, &mut failures),
            (&workloads, parquet),
        )?
    } else {
        let mut checker = Checker::new(engine, history);
        if let Some(groups) = security_groups {
            checker = checker.with_security_groups(groups);
        }
        check_rows(
            (engine, &mut checker),
            (inputs_of(flag, &paths), &format, &mut stats),
            (output_kind(output), threads()),
            (flag, &mut failures),
        )?;
        checker.take_stats()
    };
    let elapsed = started.elapsed();
    if let Err(failure) = finish_reading(flag, &stats) {
        return Err(failed_inputs(failures, Some(failure)));
    }
    let summary = render::FlowsSummary {
        read: &stats,
        checked: &checked,
        seconds: elapsed.as_secs_f64(),
    };
    let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    let result = if args.summary || !rows {
        render::flows_summary(&mut out, &summary).and_then(|_| match args.summary {
            true => Ok(()),
            false => netfence_flows::groups::write_text(&mut out, &groups),
        })
    } else {
        Ok(())
    };
    result.and_then(|_| out.flush()).map_err(io_failure)?;
    // As the engine: the groups are left to the exit.
    std::mem::forget(groups);
    if !failures.is_empty() {
        return Err(failed_inputs(failures, None));
    }
    Ok(u8::from(args.fail_on_mismatch && checked.mismatches > 0))
}

/// The threads to check on: `NETFENCE_THREADS`, or as many as the machine runs at once.
fn threads() -> usize {
    std::env::var("NETFENCE_THREADS")
        .ok()
        .and_then(|n| n.parse::<usize>().ok())
        .or_else(|| std::thread::available_parallelism().ok().map(usize::from))
        .unwrap_or(1)
}

/// Check `inputs` in turn on this thread, and write a row for every flow (`-o json|csv`, in
/// `rows`' form) to stdout in reading order; an input that cannot be listed or read on is
/// an `error: …` line in `failures`, in its place. With more than one thread, the rows are
/// put together and written by the others (`threads - 1` of them), a full
/// [`netfence_flows::FlowBatch`] at a time in turn, while this one reads and judges on: a
/// row costs about what judging its flow does (docs/performance.md, session 36). A failed
/// write (stdout closed) ends the check after the input it came in.
fn check_rows(
    (engine, checker): (&netfence_engine::Engine, &mut Checker),
    inputs: (Vec<Result<PathBuf, String>>, &SourceFormat, &mut ReadStats),
    (rows, threads): (render::FlowRowFormat, usize),
    failures: (&str, &mut Vec<String>),
) -> Result<(), Failure> {
    if threads <= 1 {
        let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
        let mut written = render::flows_header(&mut out, rows);
        let failed = std::cell::Cell::new(written.is_err());
        let mut row_writer = render::FlowRowWriter::new(engine, rows);
        let mut sink = |checked: &netfence_flows::CheckedFlow| {
            if !failed.get() {
                written = row_writer.write(&mut out, checked);
                failed.set(written.is_err());
            }
        };
        judge_inputs(checker, inputs, failures, &mut sink, &|| failed.get());
        return written.and_then(|()| out.flush()).map_err(io_failure);
    }
    let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout());
    render::flows_header(&mut out, rows).map_err(io_failure)?;
    let (_, mut out, written) = crate::in_turn::write_in_turn(
        out,
        threads - 1,
        || render::FlowRowWriter::new(engine, rows),
        |writer, batch: &mut netfence_flows::FlowBatch, text| {
            for (flow, decided_by) in batch.iter() {
                writer.append(text, flow, decided_by);
            }
            batch.clear();
        },
        |handing| {
            let mut batch = netfence_flows::FlowBatch::default();
            let mut sink = |checked: &netfence_flows::CheckedFlow| {
                batch.push(checked);
                if batch.is_full() {
                    handing.hand_on(&mut batch);
                }
            };
            judge_inputs(checker, inputs, failures, &mut sink, &|| handing.failed());
            if !batch.is_empty() {
                handing.hand_on(&mut batch);
            }
        },
    );
    written.and_then(|()| out.flush()).map_err(io_failure)
}

/// Read and judge `inputs` in turn, every judged flow handed to `sink`; an input that cannot
/// be listed or read on is an `error: …` line in `failures`, in its place. Once `failed()`
/// (the rows can no longer be written) no further input is read.
fn judge_inputs(
    checker: &mut Checker,
    (inputs, format, stats): (Vec<Result<PathBuf, String>>, &SourceFormat, &mut ReadStats),
    (flag, failures): (&str, &mut Vec<String>),
    sink: &mut dyn FnMut(&netfence_flows::CheckedFlow),
    failed: &dyn Fn() -> bool,
) {
    for input in inputs {
        let path = match input {
            Ok(path) => path,
            Err(failure) => {
                failures.push(failure);
                continue;
            }
        };
        let mut judging = checker.judging(Rows::All, sink);
        let read = netfence_flows::read_path_into(&path, format, stats, &mut judging);
        drop(judging);
        if let Err(e) = read {
            failures.push(format!("error: {flag} {e}"));
        }
        if failed() {
            return;
        }
    }
}

/// Mismatch rows counted into the groups at a time, when every flow is handed on (with
/// `-o parquet`; [`netfence_flows::MismatchGroups::add_rows`]).
const MISMATCH_BATCH: usize = 64;

/// The inputs `paths` name, in reading order ([`netfence_flows::input_files`]): each file, or
/// the `error: …` line of a path that cannot be listed, in its place.
pub(crate) fn inputs_of(flag: &str, paths: &[PathBuf]) -> Vec<Result<PathBuf, String>> {
    paths
        .iter()
        .flat_map(|path| match netfence_flows::input_files(path) {
            Ok(files) => files.into_iter().map(Ok).collect(),
            Err(e) => vec![Err(format!("error: {flag} {e}"))],
        })
        .collect()
}

/// The failure (exit 2) of a check whose inputs `failures` could not be read (each an
/// `error: …` line), then `last` (nothing parsed) if any.
pub(crate) fn failed_inputs(mut failures: Vec<String>, last: Option<Failure>) -> Failure {
    if let Some(last) = last {
        failures.push(match last.message.strip_prefix("error: ") {
            Some(_) => last.message,
            None => format!("error: {}", last.message),
        });
    }
    Failure::input(failures.join("\n"))
}

/// Check every file of `paths` for counts and mismatch groups, on every core (one checker
/// per thread, one file at a time each), merging each file's counts and groups in reading
/// order: the output is the same as one thread reading the files in turn, and so are the
/// failures (`error: …` lines into `failures`, in reading order: a path that cannot be
/// listed, a file that cannot be read on, whose records before the failure count). With
/// `parquet`, every judged flow is also written under that directory, each thread to its
/// own file of each partition (`flows-N.parquet`, N the thread's number; Hive reads every
/// file of a partition).
fn check_files(
    (flag, paths, format): (&str, &[PathBuf], &SourceFormat),
    engine: &netfence_engine::Engine,
    (history, security_groups): (Option<&History>, Option<&netfence_model::aws::AwsInput>),
    (stats, groups, failures): (
        &mut ReadStats,
        &mut netfence_flows::MismatchGroups,
        &mut Vec<String>,
    ),
    (workloads, parquet): (
        &std::sync::Arc<netfence_flows::Workloads>,
        Option<&std::path::Path>,
    ),
) -> Result<netfence_flows::check::CheckStats, Failure> {
    let inputs = inputs_of(flag, paths);
    let files: Vec<PathBuf> = inputs
        .iter()
        .filter_map(|i| i.as_ref().ok())
        .cloned()
        .collect();
    let threads = threads();
    let numbers = std::sync::atomic::AtomicUsize::new(0);
    let (results, writers) = netfence_flows::for_each_input_keeping(
        &files,
        threads,
        || {
            let checker = Checker::new(engine, history.cloned());
            let checker = match security_groups {
                Some(groups) => checker.with_security_groups(groups.clone()),
                None => checker,
            };
            let writer = parquet.map(|dir| {
                let number = numbers.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let writer = netfence_flows::ParquetWriter::numbered(dir, number);
                // One input: its rows are put together and written on the other core.
                match files.len() == 1 && threads > 1 {
                    true => writer.map(|writer| writer.on_a_thread(engine)),
                    false => writer,
                }
            });
            (checker, writer)
        },
        |(checker, writer), path| {
            let mut file_stats = ReadStats::default();
            let mut file_groups =
                netfence_flows::MismatchGroups::new(std::sync::Arc::clone(workloads));
            // The first failure to write Parquet, which ends the check.
            let mut written: Result<(), String> = Ok(());
            let read = match writer {
                Some(Ok(writer)) => {
                    // Every flow to the file; the mismatches counted into the groups a
                    // batch at a time, so that the batch's groups are looked up together.
                    let mut mismatches = Vec::with_capacity(MISMATCH_BATCH);
                    let mut sink = |checked: &netfence_flows::CheckedFlow| {
                        if checked.mismatch {
                            mismatches.push((checked.clone(), 1));
                            if mismatches.len() == MISMATCH_BATCH {
                                file_groups.add_rows(&mismatches);
                                mismatches.clear();
                            }
                        }
                        if written.is_ok() {
                            written = writer.write(engine, checked).map_err(|e| e.to_string());
                        }
                    };
                    let mut judging = checker.judging(Rows::All, &mut sink);
                    let read =
                        netfence_flows::read_path_into(path, format, &mut file_stats, &mut judging);
                    drop(judging);
                    file_groups.add_rows(&mismatches);
                    read
                }
                Some(Err(e)) => {
                    written = Err(e.to_string());
                    Ok(())
                }
                None => {
                    // Mismatches counted per connection, each connection's added in one
                    // go, a batch of connections at a time.
                    let mut add = |rows: &[netfence_flows::check::CountedRow]| {
                        file_groups.add_rows(rows);
                    };
                    let mut counting = checker.counting(&mut add);
                    let read = netfence_flows::read_path_into(
                        path,
                        format,
                        &mut file_stats,
                        &mut counting,
                    );
                    drop(counting);
                    read
                }
            };
            (read, file_stats, checker.take_stats(), file_groups, written)
        },
    );
    let mut checked = netfence_flows::check::CheckStats::default();
    let mut results = results.into_iter();
    for input in inputs {
        if let Err(failure) = input {
            failures.push(failure);
            continue;
        }
        let Some((read, file_stats, file_checked, file_groups, written)) = results.next() else {
            break;
        };
        if let Err(e) = written {
            return Err(Failure::input(format!("error: -o parquet: {e}")));
        }
        if let Err(e) = read {
            failures.push(format!("error: {flag} {e}"));
        }
        stats.merge(file_stats);
        checked.merge(&file_checked);
        groups.merge(file_groups);
    }
    if parquet.is_some() {
        let mut files = Vec::new();
        for (_, writer) in writers {
            if let Some(writer) = writer {
                let written = writer.and_then(|writer| writer.finish());
                files.extend(
                    written.map_err(|e| Failure::input(format!("error: -o parquet: {e}")))?,
                );
            }
        }
        eprintln!("netfence: wrote {} Parquet file(s)", files.len());
    }
    Ok(checked)
}

fn output_kind(format: FlowsFormat) -> render::FlowRowFormat {
    match format {
        FlowsFormat::Csv => render::FlowRowFormat::Csv,
        FlowsFormat::Json | FlowsFormat::Text | FlowsFormat::Parquet => render::FlowRowFormat::Json,
    }
}
