//! Opening flow-log inputs and streaming their lines through a format's parser: a file, a
//! directory (sorted, recursive; hidden entries and symbolic links to directories skipped, as
//! the manifest loader does), gzip (`.gz`, or any input starting with gzip's magic bytes) or
//! `-` for stdin. Lines are read one at a time, so memory does not grow with the input.

use crate::{hubble, npa, vpc, Flow, Skip, VpcRecord};
use netfence_model::files::Found;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

/// How many malformed lines are kept as examples (file and line) in [`ReadStats`].
pub const MAX_EXAMPLES: usize = 5;

/// Which log format the inputs are in.
#[derive(Clone, Debug)]
pub enum SourceFormat {
    /// AWS VPC Flow Logs text records in this format, unless a file's header line names
    /// its own fields.
    Vpc(vpc::VpcFormat),
    /// `hubble observe -o json` (JSON Lines).
    Hubble,
    /// AWS Network Policy Agent decision logs.
    Npa,
}

/// A failure that stops reading an input: one that cannot be opened or read on (a `.gz` cut
/// short, a disk error). What was read of it before is handed on and counted.
#[derive(Debug, thiserror::Error)]
pub enum FlowError {
    /// An input could not be opened or read.
    #[error("{path}: {}{source}", after_lines(.lines))]
    Io {
        /// The input (`<stdin>` for `-`).
        path: String,
        /// The whole lines read from it before the failure (0: none, or it could not be
        /// opened).
        lines: usize,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A Parquet input that cannot be read as VPC Flow Logs, or a Parquet output that cannot
    /// be written.
    #[error("{path}: {message}")]
    Parquet {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
}

/// `after line N: ` for a failure after `lines` whole lines, or nothing.
fn after_lines(lines: &usize) -> String {
    match lines {
        0 => String::new(),
        n => format!("after line {n}: "),
    }
}

/// One malformed line, for the report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Example {
    /// The input it came from.
    pub file: String,
    /// Its line number (from 1).
    pub line: usize,
    /// Why it was skipped.
    pub reason: Skip,
}

/// What reading saw: records read and parsed, and skipped records by reason.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReadStats {
    /// Records read: non-empty lines that are not header lines.
    pub read: u64,
    /// Records that gave a flow.
    pub parsed: u64,
    /// Records that gave no flow, by reason.
    pub skipped: BTreeMap<Skip, u64>,
    /// The first [`MAX_EXAMPLES`] malformed lines.
    pub examples: Vec<Example>,
}

impl ReadStats {
    /// How many records gave no flow.
    pub fn skipped_total(&self) -> u64 {
        self.skipped.values().sum()
    }

    /// How many records were malformed.
    pub fn malformed(&self) -> u64 {
        self.skipped
            .iter()
            .filter(|(skip, _)| skip.is_malformed())
            .map(|(_, count)| count)
            .sum()
    }

    /// Add the counts of `later`, read after these: the examples stay the first
    /// [`MAX_EXAMPLES`] in reading order, as if one had read everything in turn.
    pub fn merge(&mut self, later: ReadStats) {
        self.read += later.read;
        self.parsed += later.parsed;
        for (reason, count) in later.skipped {
            *self.skipped.entry(reason).or_default() += count;
        }
        let room = MAX_EXAMPLES.saturating_sub(self.examples.len());
        self.examples.extend(later.examples.into_iter().take(room));
    }

    fn skip(&mut self, file: &str, line: usize, reason: Skip) {
        if reason.is_malformed() && self.examples.len() < MAX_EXAMPLES {
            self.examples.push(Example {
                file: file.to_string(),
                line,
                reason: reason.clone(),
            });
        }
        *self.skipped.entry(reason).or_default() += 1;
    }
}

/// Where the readers hand what they read: flows, and VPC records read the short way
/// ([`VpcRecord`]: a sink that needs only some of a flow's values, such as a [`Checker`]'s
/// ([`Checker::judging`]), takes them without the whole [`Flow`] being made).
///
/// [`Checker`]: crate::Checker
/// [`Checker::judging`]: crate::Checker::judging
pub trait FlowSink {
    /// A flow.
    fn flow(&mut self, flow: Flow);

    /// A VPC record read the short way; by default, made into its flow.
    fn vpc_record(&mut self, record: &VpcRecord) {
        self.flow(record.flow());
    }

    /// Consecutive VPC records read the short way (no other line between them), in order;
    /// by default, [`FlowSink::vpc_record`] of each. A sink may start the memory loads of
    /// all of them before it works through them.
    fn vpc_records(&mut self, records: &[VpcRecord]) {
        for record in records {
            self.vpc_record(record);
        }
    }

    /// Whether VPC records are read the short way at all (always, but for the tests that
    /// compare the two ways).
    #[doc(hidden)]
    fn short_way(&self) -> bool {
        true
    }
}

impl<F: FnMut(Flow) + ?Sized> FlowSink for F {
    fn flow(&mut self, flow: Flow) {
        self(flow);
    }
}

/// What a format's parser makes of one line.
// Not boxed: a line is made and consumed at once, and a heap allocation per record cost more
// than the move (the benchmark in docs/performance.md).
#[allow(clippy::large_enum_variant)]
pub(crate) enum Line {
    /// A flow.
    Flow(Flow),
    /// A header line (VPC): not a record.
    Header,
    /// A record that gives no flow.
    Skip(Skip),
}

/// The inputs `path` names, in the order [`read_path`] reads them: `-` (stdin) or a file as
/// itself, a directory as its files (sorted, recursive, by the loader's rule).
pub fn input_files(path: &Path) -> Result<Vec<PathBuf>, FlowError> {
    if path.as_os_str() == "-" {
        return Ok(vec![path.to_path_buf()]);
    }
    let io = |source| FlowError::Io {
        path: path.display().to_string(),
        lines: 0,
        source,
    };
    if std::fs::metadata(path).map_err(io)?.is_dir() {
        let mut files = Vec::new();
        collect_files(path, &mut files).map_err(io)?;
        files.sort();
        return Ok(files);
    }
    Ok(vec![path.to_path_buf()])
}

/// `work` on every input of `inputs`, on up to `threads` threads (one input at a time per
/// thread, each thread with its own `state` from `init`), the results in the order of
/// `inputs` whatever the threads' timing: merging them in that order gives what one thread
/// reading everything in turn gives. One thread (or one input) runs on the caller's thread.
pub fn for_each_input<S: Send, T: Send>(
    inputs: &[PathBuf],
    threads: usize,
    init: impl Fn() -> S + Sync,
    work: impl Fn(&mut S, &Path) -> T + Sync,
) -> Vec<T> {
    for_each_input_keeping(inputs, threads, init, work).0
}

/// [`for_each_input`], and each thread's state at its end (in no set order), for a state
/// that holds what must be finished after the last input (an output file).
pub fn for_each_input_keeping<S: Send, T: Send>(
    inputs: &[PathBuf],
    threads: usize,
    init: impl Fn() -> S + Sync,
    work: impl Fn(&mut S, &Path) -> T + Sync,
) -> (Vec<T>, Vec<S>) {
    let threads = threads.clamp(1, inputs.len().max(1));
    if threads == 1 {
        let mut state = init();
        let results = inputs.iter().map(|input| work(&mut state, input)).collect();
        return (results, vec![state]);
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut results: Vec<Option<T>> = std::iter::repeat_with(|| None).take(inputs.len()).collect();
    let done: Vec<(Vec<(usize, T)>, S)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut state = init();
                    let mut done = Vec::new();
                    loop {
                        let index = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(input) = inputs.get(index) else {
                            return (done, state);
                        };
                        done.push((index, work(&mut state, input)));
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|worker| match worker.join() {
                Ok(done) => done,
                Err(panic) => std::panic::resume_unwind(panic),
            })
            .collect()
    });
    let mut states = Vec::with_capacity(done.len());
    for (done, state) in done {
        for (index, result) in done {
            results[index] = Some(result);
        }
        states.push(state);
    }
    (results.into_iter().flatten().collect(), states)
}

/// Read every flow of `path` (a file, a directory, a `.gz`, a pipe, or `-` for stdin), handing each
/// to `sink` and counting what was read in `stats`.
pub fn read_path(
    path: &Path,
    format: &SourceFormat,
    stats: &mut ReadStats,
    mut sink: &mut dyn FnMut(Flow),
) -> Result<(), FlowError> {
    read_path_into(path, format, stats, &mut sink)
}

/// [`read_path`] into a [`FlowSink`].
pub fn read_path_into(
    path: &Path,
    format: &SourceFormat,
    stats: &mut ReadStats,
    sink: &mut dyn FlowSink,
) -> Result<(), FlowError> {
    if path.as_os_str() == "-" {
        return read_unseekable(std::io::stdin().lock(), "<stdin>", format, stats, sink);
    }
    for file in input_files(path)? {
        read_file(&file, format, stats, sink)?;
    }
    Ok(())
}

fn read_file(
    path: &Path,
    format: &SourceFormat,
    stats: &mut ReadStats,
    sink: &mut dyn FlowSink,
) -> Result<(), FlowError> {
    let name = path.display().to_string();
    let io = |source| FlowError::Io {
        path: name.clone(),
        lines: 0,
        source,
    };
    let mut file = std::fs::File::open(path).map_err(io)?;
    // A pipe, a FIFO or a device (`--vpc <(zcat …)`, `/dev/stdin`) cannot go back to its
    // start once its first bytes are looked at.
    if !file.metadata().map_err(io)?.is_file() {
        return read_unseekable(file, &name, format, stats, sink);
    }
    if let SourceFormat::Vpc(_) = format {
        let parquet = read_head(&mut file).is_ok_and(|head| head == crate::parquet::MAGIC);
        std::io::Seek::rewind(&mut file).map_err(io)?;
        if parquet {
            return read_parquet(file, &name, stats, sink);
        }
    }
    read_stream_into(
        open_maybe_gzip(BufReader::with_capacity(1 << 16, file)),
        &name,
        format,
        stats,
        sink,
    )
}

/// The first bytes of `input`, four unless it ends before, however it delivers them (a
/// pipe's read may return fewer): enough to tell Parquet ([`crate::parquet::MAGIC`]) and
/// gzip from text.
fn read_head(input: &mut impl Read) -> std::io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(4);
    input.take(4).read_to_end(&mut head)?;
    Ok(head)
}

/// Read an input that cannot seek (stdin, a pipe, a FIFO) named `name`: its first bytes say
/// what it is, and are read again after that. Parquet is read from its footer, so a VPC
/// input in Parquet is read whole first; gzip and text are read as they come.
fn read_unseekable(
    mut input: impl Read,
    name: &str,
    format: &SourceFormat,
    stats: &mut ReadStats,
    sink: &mut dyn FlowSink,
) -> Result<(), FlowError> {
    let io = |source| FlowError::Io {
        path: name.to_string(),
        lines: 0,
        source,
    };
    let head = read_head(&mut input).map_err(io)?;
    let mut input = head.as_slice().chain(input);
    if matches!(format, SourceFormat::Vpc(_)) && head == crate::parquet::MAGIC {
        let mut bytes = Vec::new();
        input.read_to_end(&mut bytes).map_err(io)?;
        return read_parquet(bytes::Bytes::from(bytes), name, stats, sink);
    }
    read_stream_into(
        open_maybe_gzip(BufReader::with_capacity(1 << 16, input)),
        name,
        format,
        stats,
        sink,
    )
}

/// Read a Parquet file of VPC records, counting rows as records.
fn read_parquet<R: parquet::file::reader::ChunkReader + 'static>(
    input: R,
    name: &str,
    stats: &mut ReadStats,
    sink: &mut dyn FlowSink,
) -> Result<(), FlowError> {
    let mut row = 0;
    crate::parquet::read_vpc(input, name, &mut |result| {
        row += 1;
        stats.read += 1;
        match result {
            Ok(flow) => {
                stats.parsed += 1;
                sink.flow(flow);
            }
            Err(reason) => stats.skip(name, row, reason),
        }
    })
}

/// Every regular file below `dir`, by the loader's rule (`netfence_model::files`): hidden
/// entries, links to directories, FIFOs and broken links are passed over; an unreadable
/// directory or entry is an error.
fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut failure = None;
    netfence_model::files::walk(dir, &mut |found| match found {
        Found::File(path) => out.push(path),
        Found::Unreadable(_, e) => {
            failure.get_or_insert(e);
        }
        Found::LinkToDirectory(_) | Found::NotRegular(_) | Found::BrokenLink(..) => {}
    });
    failure.map_or(Ok(()), Err)
}

/// The input itself, or its gzip-decoded stream when it starts with gzip's magic bytes
/// (1f 8b, RFC 1952): S3 delivers VPC flow logs as `.gz`, and stdin may carry either.
fn open_maybe_gzip<'a, R: BufRead + 'a>(mut input: R) -> Box<dyn BufRead + 'a> {
    let gzip = matches!(input.fill_buf(), Ok([0x1f, 0x8b, ..]));
    if gzip {
        // Multi-member: concatenated gzip files are one stream to `gzip -dc`, and to us.
        Box::new(BufReader::with_capacity(
            1 << 16,
            flate2::bufread::MultiGzDecoder::new(input),
        ))
    } else {
        Box::new(input)
    }
}

/// Read flows from an open stream named `name` (for the report).
pub fn read_stream(
    input: impl BufRead,
    name: &str,
    format: &SourceFormat,
    stats: &mut ReadStats,
    mut sink: &mut dyn FnMut(Flow),
) -> Result<(), FlowError> {
    read_stream_into(input, name, format, stats, &mut sink)
}

/// VPC records read the short way are handed to the sink this many at a time
/// ([`FlowSink::vpc_records`]), so that a sink can start every record's memory loads before
/// it works through them.
pub(crate) const BATCH: usize = 16;

/// What [`read_stream_into`] does with each line: the usual VPC record read the short way and
/// kept for the next batch, any other line read the general way (after the batch, so that the
/// sink sees the lines in order).
struct Lines<'a> {
    name: &'a str,
    format: &'a SourceFormat,
    /// A VPC file's header line names its fields for that file only.
    vpc_state: Option<vpc::FileState>,
    short_way: bool,
    /// [`BATCH`] records, the first `filled` of them read: a record is read into its place
    /// here ([`vpc::VpcFormat::fast_first_line_into`]).
    batch: Vec<VpcRecord>,
    filled: usize,
    sink: &'a mut dyn FlowSink,
}

impl Lines<'_> {
    /// Hand the batch to the sink.
    fn flush(&mut self) {
        if self.filled > 0 {
            self.sink.vpc_records(&self.batch[..self.filled]);
            self.filled = 0;
        }
    }

    /// The record read into the batch's next place is kept (and counted in `stats`); the
    /// batch is handed on when full.
    #[inline(always)]
    fn keep(&mut self, stats: &mut ReadStats) {
        stats.read += 1;
        stats.parsed += 1;
        self.filled += 1;
        if self.filled == BATCH {
            self.flush();
        }
    }

    /// The first line of `bytes` when it is a whole line (it ends in a line feed) and reads
    /// the short way: the record goes to the batch, and the line's length with its line feed
    /// is returned. `None` (nothing done) for any other line: [`Lines::line`] reads it.
    #[inline(always)]
    fn fast_first_line(&mut self, bytes: &[u8], stats: &mut ReadStats) -> Option<usize> {
        let (Some(state), true) = (&self.vpc_state, self.short_way) else {
            return None;
        };
        let place = self.batch.get_mut(self.filled)?;
        let end = state.format()?.fast_first_line_into(bytes, place)?;
        if end == bytes.len() {
            // No line feed yet: the line may go on in the next buffer fill (the place is
            // not kept).
            return None;
        }
        self.keep(stats);
        Some(end + 1)
    }

    /// One line. `short_way`: whether to try the short way first (not for a whole line that
    /// [`Lines::fast_first_line`] has already left, which would leave it again).
    fn line(&mut self, bytes: &[u8], number: usize, stats: &mut ReadStats, short_way: bool) {
        // The usual VPC record, read the short way; any other line the general way below.
        if let (Some(state), true, true) = (&self.vpc_state, self.short_way, short_way) {
            let mut line = bytes;
            while let [rest @ .., b'\n' | b'\r'] = line {
                line = rest;
            }
            if let (Some(record), Some(place)) = (
                state.format().and_then(|format| format.fast_record(line)),
                self.batch.get_mut(self.filled),
            ) {
                *place = record;
                self.keep(stats);
                return;
            }
        }
        let Ok(text) = std::str::from_utf8(bytes) else {
            stats.read += 1;
            stats.skip(self.name, number, crate::malformed("not UTF-8"));
            return;
        };
        let text = text
            .trim_end_matches(['\n', '\r'])
            .trim_start_matches('\u{feff}');
        if text.trim().is_empty() {
            return;
        }
        let line = match (&mut self.vpc_state, self.format) {
            (Some(state), _) => state.line(text),
            (None, SourceFormat::Hubble) => hubble::line(text),
            (None, _) => npa::line(text),
        };
        match line {
            Line::Header => {}
            Line::Flow(flow) => {
                stats.read += 1;
                stats.parsed += 1;
                self.flush();
                self.sink.flow(flow);
            }
            Line::Skip(reason) => {
                stats.read += 1;
                stats.skip(self.name, number, reason);
            }
        }
    }
}

/// [`read_stream`] into a [`FlowSink`].
pub fn read_stream_into(
    input: impl BufRead,
    name: &str,
    format: &SourceFormat,
    stats: &mut ReadStats,
    sink: &mut dyn FlowSink,
) -> Result<(), FlowError> {
    let mut lines = Lines {
        name,
        format,
        vpc_state: match format {
            SourceFormat::Vpc(default) => Some(vpc::FileState::new(default.clone())),
            _ => None,
        },
        short_way: sink.short_way(),
        batch: vec![VpcRecord::FILLER; BATCH],
        filled: 0,
        sink,
    };
    let result = read_lines(input, name, stats, &mut lines);
    // The records read before an error are handed on too.
    lines.flush();
    result
}

/// Every line of `input`, to `lines`.
fn read_lines(
    mut input: impl BufRead,
    name: &str,
    stats: &mut ReadStats,
    lines: &mut Lines<'_>,
) -> Result<(), FlowError> {
    let mut number = 0usize;
    // Lines are read in place from the reader's buffer; only a line that straddles two
    // buffer fills is copied (into `partial`).
    let mut partial: Vec<u8> = Vec::new();
    loop {
        // A failure here (a `.gz` cut short) ends this input: the lines before it are read
        // (a line it cut is not), and the error says how many.
        let chunk = input.fill_buf().map_err(|source| FlowError::Io {
            path: name.to_string(),
            lines: number,
            source,
        })?;
        if chunk.is_empty() {
            if !partial.is_empty() {
                number += 1;
                lines.line(&partial, number, stats, true);
            }
            return Ok(());
        }
        let length = chunk.len();
        let mut start = 0;
        loop {
            if partial.is_empty() {
                // The usual record line is read in one pass that also finds its end; any
                // other line is looked for with `memchr` below.
                while let Some(used) = lines.fast_first_line(&chunk[start..], stats) {
                    number += 1;
                    start += used;
                }
            }
            let Some(end) = memchr::memchr(b'\n', &chunk[start..]) else {
                break;
            };
            let line = &chunk[start..start + end + 1];
            number += 1;
            if partial.is_empty() {
                lines.line(line, number, stats, false);
            } else {
                partial.extend_from_slice(line);
                lines.line(&partial, number, stats, true);
                partial.clear();
            }
            start += end + 1;
        }
        partial.extend_from_slice(&chunk[start..]);
        input.consume(length);
    }
}

/// Read everything in `bytes` (for tests and benchmarks over in-memory logs).
pub fn read_bytes(
    bytes: &[u8],
    name: &str,
    format: &SourceFormat,
    stats: &mut ReadStats,
    mut sink: &mut dyn FnMut(Flow),
) -> Result<(), FlowError> {
    read_bytes_into(bytes, name, format, stats, &mut sink)
}

/// [`read_bytes`] into a [`FlowSink`].
pub fn read_bytes_into(
    bytes: &[u8],
    name: &str,
    format: &SourceFormat,
    stats: &mut ReadStats,
    sink: &mut dyn FlowSink,
) -> Result<(), FlowError> {
    read_stream_into(open_maybe_gzip(bytes), name, format, stats, sink)
}
