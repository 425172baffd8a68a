//! Parquet in and out. In: VPC Flow Logs as AWS delivers them to S3 in Parquet (one column per
//! field, named like the text fields with `_` for `-`: `account_id`, `log_status`,
//! `pkt_srcaddr`; numbers as INT_32/INT_64, the rest STRING: AWS, "Flow log records",
//! "Parquet data type"), each row read as the text record it stands for, so that one parser
//! gives both their meaning. Out: judged flows with the JSON Lines columns of the
//! `flows check` contract, Hive-partitioned by the flow's date and hour
//! (`DIR/date=2023-11-14/hour=22/flows-0.parquet`), so that Athena, Spark or DataFusion read
//! months of them as one table. Only the parquet crate's column API is used (no arrow).

use crate::check::CheckedFlow;
use crate::read::FlowError;
use crate::vpc::VpcFormat;
use crate::{malformed, Flow, Skip};
use netfence_engine::Engine;
use parquet::basic::Compression;
use parquet::data_type::{BoolType, ByteArray, ByteArrayType, Int32Type, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::reader::{ChunkReader, FileReader};
use parquet::file::serialized_reader::SerializedFileReader;
use parquet::file::writer::SerializedFileWriter;
use parquet::record::Field;
use parquet::schema::parser::parse_message_type;
use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Parquet's magic bytes, at the start and the end of every file.
pub const MAGIC: &[u8; 4] = b"PAR1";

/// Read the VPC records of one Parquet file named `name` (for messages): each row becomes
/// the text record of the file's columns (a null is `-`) and is read by [`VpcFormat::record`].
/// A file that is not Parquet, or whose columns are not VPC fields, is an error.
pub(crate) fn read_vpc<R: ChunkReader + 'static>(
    input: R,
    name: &str,
    each: &mut dyn FnMut(Result<Flow, Skip>),
) -> Result<(), FlowError> {
    let fail = |message: String| FlowError::Parquet {
        path: name.to_string(),
        message,
    };
    let reader = SerializedFileReader::new(input).map_err(|e| fail(e.to_string()))?;
    let columns: Vec<String> = reader
        .metadata()
        .file_metadata()
        .schema_descr()
        .columns()
        .iter()
        .map(|column| column.name().replace('_', "-"))
        .collect();
    let format = VpcFormat::parse(&columns.join(" "))
        .map_err(|e| fail(format!("the columns are not VPC Flow Logs fields: {e}")))?;
    let rows = reader.get_row_iter(None).map_err(|e| fail(e.to_string()))?;
    let mut line = String::with_capacity(256);
    for row in rows {
        let row = match row {
            Ok(row) => row,
            Err(e) => {
                each(Err(malformed(format!("unreadable row ({e})"))));
                continue;
            }
        };
        line.clear();
        let mut unusable = None;
        for (index, (_, value)) in row.get_column_iter().enumerate() {
            if index > 0 {
                line.push(' ');
            }
            match text(value) {
                Some(text) if !text.is_empty() && !text.contains(char::is_whitespace) => {
                    line.push_str(&text)
                }
                Some(_) | None => {
                    unusable.get_or_insert(index);
                    line.push('-');
                }
            }
        }
        match unusable {
            Some(index) => each(Err(malformed(format!(
                "column {} holds a value that is no VPC field value",
                columns[index]
            )))),
            None => each(format.record(&line)),
        }
    }
    Ok(())
}

/// A value as the text record writes it: `-` for null, numbers in decimal, strings as they
/// are; `None` for kinds no VPC field has.
fn text(value: &Field) -> Option<String> {
    Some(match value {
        Field::Null => "-".to_string(),
        Field::Byte(n) => n.to_string(),
        Field::Short(n) => n.to_string(),
        Field::Int(n) => n.to_string(),
        Field::Long(n) => n.to_string(),
        Field::UByte(n) => n.to_string(),
        Field::UShort(n) => n.to_string(),
        Field::UInt(n) => n.to_string(),
        Field::ULong(n) => n.to_string(),
        Field::Str(s) => s.clone(),
        Field::Bytes(bytes) => std::str::from_utf8(bytes.data()).ok()?.to_string(),
        _ => return None,
    })
}

/// The schema of the judged flows written: the JSON Lines keys of the contract.
const SCHEMA: &str = "message flow {
    optional int64 time (TIMESTAMP(MICROS,true));
    required binary src (STRING);
    required binary dst (STRING);
    required binary protocol (STRING);
    optional int32 port;
    optional binary observed (STRING);
    optional binary policy (STRING);
    optional binary decided_by (STRING);
    required boolean mismatch;
}";

/// Rows buffered in all partitions before they are written out as row groups: memory stays
/// bounded whatever the input's size.
const BUFFERED_ROWS: usize = 1 << 16;

/// Hive's name for the partition of rows without a value (a flow with no time).
const NO_TIME: &str = "__HIVE_DEFAULT_PARTITION__";

#[derive(Default)]
struct Columns {
    time: Vec<i64>,
    time_present: Vec<i16>,
    src: Vec<ByteArray>,
    dst: Vec<ByteArray>,
    protocol: Vec<ByteArray>,
    port: Vec<i32>,
    port_present: Vec<i16>,
    observed: Vec<ByteArray>,
    observed_present: Vec<i16>,
    policy: Vec<ByteArray>,
    policy_present: Vec<i16>,
    decided_by: Vec<ByteArray>,
    decided_by_present: Vec<i16>,
    mismatch: Vec<bool>,
}

impl Columns {
    fn len(&self) -> usize {
        self.mismatch.len()
    }

    /// Every value cleared, the room kept.
    fn clear(&mut self) {
        let Columns {
            time,
            time_present,
            src,
            dst,
            protocol,
            port,
            port_present,
            observed,
            observed_present,
            policy,
            policy_present,
            decided_by,
            decided_by_present,
            mismatch,
        } = self;
        time.clear();
        time_present.clear();
        port.clear();
        port_present.clear();
        for values in [src, dst, protocol, observed, policy, decided_by] {
            values.clear();
        }
        for present in [observed_present, policy_present, decided_by_present] {
            present.clear();
        }
        mismatch.clear();
    }
}

/// Where the row groups are encoded and written: on the thread that adds the rows, or on a
/// thread of their own ([`ParquetWriter::encoding_apart`]).
enum Encoder {
    /// Each partition's file writer, by the partition's place.
    Here(Vec<SerializedFileWriter<File>>),
    Apart(EncodingThread),
}

/// The thread of [`Encoder::Apart`]: it opens each partition's file writer and writes the
/// row groups it is sent, in order, and hands each group's columns back, so that their
/// values (reference-counted names) are let go of on the thread that made them.
struct EncodingThread {
    jobs: Option<std::sync::mpsc::SyncSender<Encode>>,
    /// Columns written, back to be filled again.
    written: std::sync::mpsc::Receiver<Box<Columns>>,
    thread: Option<std::thread::JoinHandle<Result<(), FlowError>>>,
}

/// What the encoding thread is asked to do, in order.
enum Encode {
    /// Start the file of the next partition (its place is the number of files before it).
    Open(File, PathBuf),
    /// Write a row group to the file of a partition.
    Rows(usize, Box<Columns>),
}

impl EncodingThread {
    fn start(schema: Arc<parquet::schema::types::Type>, properties: Arc<WriterProperties>) -> Self {
        // Two row groups may wait: memory stays bounded.
        let (jobs, to_encode) = std::sync::mpsc::sync_channel::<Encode>(2);
        let (give_back, written) = std::sync::mpsc::channel::<Box<Columns>>();
        let thread = std::thread::spawn(move || {
            let mut writers: Vec<(SerializedFileWriter<File>, PathBuf)> = Vec::new();
            for job in to_encode {
                match job {
                    Encode::Open(file, path) => {
                        let writer =
                            SerializedFileWriter::new(file, schema.clone(), properties.clone())
                                .map_err(|e| io_error(&path, e))?;
                        writers.push((writer, path));
                    }
                    Encode::Rows(at, rows) => {
                        if let Some((writer, path)) = writers.get_mut(at) {
                            write_row_group(writer, &rows).map_err(|e| io_error(path, e))?;
                        }
                        // The writer may have stopped taking them back: then they go here.
                        let _ = give_back.send(rows);
                    }
                }
            }
            for (writer, path) in writers {
                writer.close().map_err(|e| io_error(&path, e))?;
            }
            Ok(())
        });
        EncodingThread {
            jobs: Some(jobs),
            written,
            thread: Some(thread),
        }
    }

    /// Send `job`; a thread that has stopped (on a failure) says why.
    fn send(&mut self, job: Encode) -> Result<(), FlowError> {
        let sent = self.jobs.as_ref().map(|jobs| jobs.send(job));
        if let Some(Ok(())) = sent {
            return Ok(());
        }
        self.end()?;
        Err(stopped())
    }

    /// Columns written and back, emptied, or new ones.
    fn empty_columns(&self) -> Columns {
        match self.written.try_recv() {
            Ok(mut columns) => {
                columns.clear();
                *columns
            }
            Err(_) => Columns::default(),
        }
    }

    /// Close the files: wait for the thread to write what it was sent, and close them.
    fn end(&mut self) -> Result<(), FlowError> {
        self.jobs = None;
        let ended = self.thread.take().map(std::thread::JoinHandle::join);
        // Let go of the columns that came back here, where their values were made.
        while self.written.try_recv().is_ok() {}
        match ended {
            Some(Ok(result)) => result,
            Some(Err(panic)) => std::panic::resume_unwind(panic),
            None => Err(stopped()),
        }
    }
}

/// The error of a job sent to an encoding thread that has ended.
fn stopped() -> FlowError {
    FlowError::Parquet {
        path: String::new(),
        message: "the Parquet encoding thread has stopped".to_string(),
    }
}

/// One partition's rows not written yet.
struct Partition {
    rows: Columns,
}

/// A partition by the hour its flows fall in: whole hours since the Unix epoch, UTC (one
/// date and hour each), or `None` for flows with no time.
type HourKey = Option<i64>;

/// The texts of the rows, each made once as a column value and shared from then on (a
/// value is a reference-counted buffer: a clone is a count, not a copy). Made per row, the
/// names, the protocol and the partition's key cost more than judging the flow, most of it
/// in the allocator (docs/performance.md, session 35).
#[derive(Default)]
struct RowTexts {
    /// Every pod's name (`namespace/name`), one after another in one buffer, made when the
    /// first pod is met: a value is a slice of it, so that every clone counts on the same
    /// count (a buffer per name had each row wait for its names' counts in memory).
    pod_names: bytes::Bytes,
    /// Where each pod's name starts in `pod_names`, by its place in the inventory, and
    /// where the last one ends.
    pod_bounds: Vec<usize>,
    /// Each deciding policy's name.
    policies: crate::ByNameAddress<ByteArray>,
}

/// A column value of a text known when the program is built.
fn word(text: &'static str) -> ByteArray {
    ByteArray::from(bytes::Bytes::from_static(text.as_bytes()))
}

impl RowTexts {
    /// The name of `endpoint` as [`Engine::endpoint_name`] makes it.
    fn name(&mut self, engine: &Engine, endpoint: netfence_engine::Endpoint) -> ByteArray {
        let made = || ByteArray::from(engine.endpoint_name(endpoint).into_bytes());
        match endpoint {
            netfence_engine::Endpoint::Pod(id) => {
                if self.pod_bounds.is_empty() {
                    let mut names = Vec::new();
                    self.pod_bounds.push(0);
                    for pod in engine.inventory().pods() {
                        names.extend_from_slice(pod.key().as_bytes());
                        self.pod_bounds.push(names.len());
                    }
                    self.pod_names = bytes::Bytes::from(names);
                }
                let at = id.index();
                match (self.pod_bounds.get(at), self.pod_bounds.get(at + 1)) {
                    (Some(&start), Some(&end)) => ByteArray::from(self.pod_names.slice(start..end)),
                    _ => made(),
                }
            }
            netfence_engine::Endpoint::Address(_) => made(),
        }
    }

    /// The name of a deciding policy.
    fn policy(&mut self, name: &Arc<str>) -> ByteArray {
        self.policies
            .get_or_make(name, |name| ByteArray::from(name.as_bytes().to_vec()))
            .clone()
    }
}

/// The protocol's name ([`crate::FlowProtocol::name`]), or its number, as its `Display`
/// writes it.
fn protocol_text(protocol: crate::FlowProtocol) -> ByteArray {
    match protocol.name() {
        Some(name) => word(name),
        None => ByteArray::from(protocol.to_string().into_bytes()),
    }
}

/// The partition of a flow at `time`.
fn hour_key(time: Option<jiff::Timestamp>) -> HourKey {
    time.map(|time| {
        // Whole seconds rounded down (before 1970 too), then whole hours.
        let second = time.as_second() - i64::from(time.subsec_nanosecond() < 0);
        second.div_euclid(3600)
    })
}

/// The directories of the partition of a flow at `time`: `date=YYYY-MM-DD` and `hour=HH`
/// in UTC, or Hive's name for a missing value.
fn partition_dirs(time: Option<jiff::Timestamp>) -> (String, String) {
    match time {
        Some(time) => {
            let utc = time.to_zoned(jiff::tz::TimeZone::UTC);
            (
                format!("date={}", utc.strftime("%Y-%m-%d")),
                format!("hour={}", utc.strftime("%H")),
            )
        }
        None => (format!("date={NO_TIME}"), format!("hour={NO_TIME}")),
    }
}

/// Writes judged flows as Parquet under a directory, one file per (date, hour) partition.
pub struct ParquetWriter {
    dir: PathBuf,
    partitions: Vec<Partition>,
    /// Each partition's place in `partitions`, by its hour.
    by_hour: BTreeMap<HourKey, usize>,
    /// The partition of the last row (consecutive flows mostly share their hour).
    last: Option<(HourKey, usize)>,
    texts: RowTexts,
    buffered: usize,
    schema: Arc<parquet::schema::types::Type>,
    properties: Arc<WriterProperties>,
    files: Vec<PathBuf>,
    /// The name of this writer's file in each partition.
    file_name: String,
    encoder: Encoder,
}

fn io_error(path: &Path, error: impl std::fmt::Display) -> FlowError {
    FlowError::Parquet {
        path: path.display().to_string(),
        message: error.to_string(),
    }
}

impl ParquetWriter {
    /// A writer under `dir` (created when missing). Files already there are not removed; a
    /// file of the same name is replaced.
    pub fn new(dir: &Path) -> Result<Self, FlowError> {
        Self::numbered(dir, 0)
    }

    /// A writer under `dir` whose file in each partition is `flows-N.parquet` (Hive reads
    /// every file of a partition): writers of different numbers, one per thread, write
    /// side by side under the same directory.
    pub fn numbered(dir: &Path, number: usize) -> Result<Self, FlowError> {
        std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
        let schema = parse_message_type(SCHEMA).map_err(|e| io_error(dir, e))?;
        let properties = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_created_by("netfence flows check".to_string())
            .build();
        Ok(ParquetWriter {
            dir: dir.to_path_buf(),
            partitions: Vec::new(),
            by_hour: BTreeMap::new(),
            last: None,
            texts: RowTexts::default(),
            buffered: 0,
            schema: Arc::new(schema),
            properties: Arc::new(properties),
            files: Vec::new(),
            file_name: format!("flows-{number}.parquet"),
            encoder: Encoder::Here(Vec::new()),
        })
    }

    /// This writer with its row groups encoded and written on a thread of their own, while
    /// the rows are added here: the encoding (each column's dictionary, its pages, their
    /// compression) costs about what judging the flows does, so that one input checked to
    /// Parquet uses two cores. The files are the same (the groups are written in the same
    /// order). Before any row.
    pub fn encoding_apart(mut self) -> Self {
        if let Encoder::Here(writers) = &self.encoder {
            if writers.is_empty() {
                self.encoder = Encoder::Apart(EncodingThread::start(
                    self.schema.clone(),
                    self.properties.clone(),
                ));
            }
        }
        self
    }

    /// Add one judged flow, with its endpoints named by `engine` as the other outputs name
    /// them.
    pub fn write(&mut self, engine: &Engine, flow: &CheckedFlow) -> Result<(), FlowError> {
        let key = hour_key(flow.time);
        let at = match self.last {
            Some((last, at)) if last == key => at,
            _ => {
                let at = match self.by_hour.get(&key) {
                    Some(&at) => at,
                    None => self.open_partition(key, flow.time)?,
                };
                self.last = Some((key, at));
                at
            }
        };
        let Some(partition) = self.partitions.get_mut(at) else {
            return Ok(());
        };
        let rows = &mut partition.rows;
        let optional =
            |values: &mut Vec<ByteArray>, present: &mut Vec<i16>, text: Option<ByteArray>| {
                present.push(i16::from(text.is_some()));
                values.extend(text);
            };
        rows.time_present.push(i16::from(flow.time.is_some()));
        if let Some(time) = flow.time {
            rows.time.push(time.as_microsecond());
        }
        rows.src.push(self.texts.name(engine, flow.src));
        rows.dst.push(self.texts.name(engine, flow.dst));
        rows.protocol.push(protocol_text(flow.protocol));
        rows.port_present.push(i16::from(flow.port.is_some()));
        if let Some(port) = flow.port {
            rows.port.push(i32::from(port));
        }
        optional(
            &mut rows.observed,
            &mut rows.observed_present,
            flow.observed.map(|observed| word(observed.as_str())),
        );
        optional(
            &mut rows.policy,
            &mut rows.policy_present,
            flow.policy.map(|policy| word(policy.as_str())),
        );
        optional(
            &mut rows.decided_by,
            &mut rows.decided_by_present,
            flow.decided_by.as_ref().map(|name| self.texts.policy(name)),
        );
        rows.mismatch.push(flow.mismatch);
        self.buffered += 1;
        if self.buffered >= BUFFERED_ROWS {
            self.flush()?;
        }
        Ok(())
    }

    /// Open the file of the partition `key` (of a flow at `time`), and return its place.
    fn open_partition(
        &mut self,
        key: HourKey,
        time: Option<jiff::Timestamp>,
    ) -> Result<usize, FlowError> {
        let (date, hour) = partition_dirs(time);
        let directory = self.dir.join(date).join(hour);
        std::fs::create_dir_all(&directory).map_err(|e| io_error(&directory, e))?;
        let path = directory.join(&self.file_name);
        let file = File::create(&path).map_err(|e| io_error(&path, e))?;
        match &mut self.encoder {
            Encoder::Here(writers) => writers.push(
                SerializedFileWriter::new(file, self.schema.clone(), self.properties.clone())
                    .map_err(|e| io_error(&path, e))?,
            ),
            Encoder::Apart(thread) => thread.send(Encode::Open(file, path.clone()))?,
        }
        self.files.push(path);
        self.partitions.push(Partition {
            rows: Columns::default(),
        });
        let at = self.partitions.len() - 1;
        self.by_hour.insert(key, at);
        Ok(at)
    }

    /// Write every buffered row out as a row group of its partition's file.
    fn flush(&mut self) -> Result<(), FlowError> {
        for (at, partition) in self.partitions.iter_mut().enumerate() {
            if partition.rows.len() == 0 {
                continue;
            }
            match &mut self.encoder {
                Encoder::Here(writers) => {
                    if let (Some(writer), Some(path)) = (writers.get_mut(at), self.files.get(at)) {
                        write_row_group(writer, &partition.rows).map_err(|e| io_error(path, e))?;
                    }
                    partition.rows.clear();
                }
                Encoder::Apart(thread) => {
                    let rows = std::mem::replace(&mut partition.rows, thread.empty_columns());
                    thread.send(Encode::Rows(at, Box::new(rows)))?;
                }
            }
        }
        self.buffered = 0;
        Ok(())
    }

    /// Write what is buffered and close every file; the files written, sorted.
    pub fn finish(mut self) -> Result<Vec<PathBuf>, FlowError> {
        self.flush()?;
        match &mut self.encoder {
            Encoder::Here(writers) => {
                for (writer, path) in std::mem::take(writers).into_iter().zip(&self.files) {
                    writer.close().map_err(|e| io_error(path, e))?;
                }
            }
            Encoder::Apart(thread) => thread.end()?,
        }
        self.files.sort();
        Ok(self.files)
    }
}

fn write_row_group(
    writer: &mut SerializedFileWriter<File>,
    rows: &Columns,
) -> parquet::errors::Result<()> {
    let mut group = writer.next_row_group()?;
    let mut index = 0;
    while let Some(mut column) = group.next_column()? {
        match index {
            0 => {
                column.typed::<Int64Type>().write_batch(
                    &rows.time,
                    Some(&rows.time_present),
                    None,
                )?;
            }
            4 => {
                column.typed::<Int32Type>().write_batch(
                    &rows.port,
                    Some(&rows.port_present),
                    None,
                )?;
            }
            8 => {
                column
                    .typed::<BoolType>()
                    .write_batch(&rows.mismatch, None, None)?;
            }
            _ => {
                let (values, present): (&[ByteArray], Option<&[i16]>) = match index {
                    1 => (&rows.src, None),
                    2 => (&rows.dst, None),
                    3 => (&rows.protocol, None),
                    5 => (&rows.observed, Some(&rows.observed_present)),
                    6 => (&rows.policy, Some(&rows.policy_present)),
                    _ => (&rows.decided_by, Some(&rows.decided_by_present)),
                };
                column
                    .typed::<ByteArrayType>()
                    .write_batch(values, present, None)?;
            }
        }
        column.close()?;
        index += 1;
    }
    group.close()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Flows share a partition key exactly when they share their directories (a UTC date
    /// and hour), before 1970 too, where whole seconds round toward zero.
    #[test]
    fn flows_share_a_partition_key_when_they_share_date_and_hour() {
        let at =
            |second: i64, nanosecond: i32| Some(jiff::Timestamp::new(second, nanosecond).unwrap());
        let times = [
            at(-3601, 0),
            at(-3600, 0),
            at(-1, -500_000_000),
            at(0, -1),
            at(0, 0),
            at(3599, 999_999_999),
            at(3600, 0),
            at(1_700_000_000, 0),
            at(1_700_003_599, 0),
            at(1_700_003_600, 0),
            None,
        ];
        for a in times {
            for b in times {
                assert_eq!(
                    hour_key(a) == hour_key(b),
                    partition_dirs(a) == partition_dirs(b),
                    "{a:?} {b:?}"
                );
            }
        }
    }
}
