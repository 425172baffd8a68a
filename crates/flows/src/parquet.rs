//! Parquet in and out. In: VPC Flow Logs as AWS delivers them to S3 in Parquet (one column per
//! field, named like the text fields with `_` for `-`: `account_id`, `log_status`,
//! `pkt_srcaddr`; numbers as INT_32/INT_64, the rest STRING: AWS, "Flow log records",
//! "Parquet data type"), each row read as the text record it stands for, so that one parser
//! gives both their meaning. Out: judged flows with the JSON Lines columns of the
//! `flows check` contract, Hive-partitioned by the flow's date and hour
//! (`DIR/date=2023-11-14/hour=22/flows-0.parquet`), so that Athena, Spark or DataFusion read
//! months of them as one table. Only the parquet crate's column API is used (no arrow).

use crate::batch::FlowBatch;
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
}

/// One partition's file, open while the run lasts, and its rows not written yet.
struct Partition {
    writer: SerializedFileWriter<File>,
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
    /// The texts of the pods of `engine` (made once; later calls change nothing).
    fn name_pods(&mut self, engine: &Engine) {
        if !self.pod_bounds.is_empty() {
            return;
        }
        let mut names = Vec::new();
        self.pod_bounds.push(0);
        for pod in engine.inventory().pods() {
            names.extend_from_slice(pod.key().as_bytes());
            self.pod_bounds.push(names.len());
        }
        self.pod_names = bytes::Bytes::from(names);
    }

    /// The name of `endpoint` as [`Engine::endpoint_name`] makes it (the pods named by
    /// [`RowTexts::name_pods`] first).
    fn name(&self, endpoint: netfence_engine::Endpoint) -> ByteArray {
        match endpoint {
            netfence_engine::Endpoint::Pod(id) => {
                let at = id.index();
                match (self.pod_bounds.get(at), self.pod_bounds.get(at + 1)) {
                    (Some(&start), Some(&end)) => ByteArray::from(self.pod_names.slice(start..end)),
                    // No pod of the engine's inventory: not a flow judged by it.
                    _ => ByteArray::from(format!("pod #{at}").into_bytes()),
                }
            }
            netfence_engine::Endpoint::Address(ip) => ByteArray::from(ip.to_string().into_bytes()),
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

/// Writes judged flows as Parquet under a directory, one file per (date, hour) partition:
/// on the thread that hands them over, or on a thread of its own
/// ([`ParquetWriter::on_a_thread`]).
pub struct ParquetWriter {
    way: Way,
}

/// Where a [`ParquetWriter`] writes.
enum Way {
    Here(Box<Files>),
    Apart(WritingThread),
}

/// The files of a [`ParquetWriter`], and the rows not written yet.
struct Files {
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
        let files = Files {
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
        };
        Ok(ParquetWriter {
            way: Way::Here(Box::new(files)),
        })
    }

    /// This writer on a thread of its own, for the flows of `engine`: the flows handed over
    /// go there a [`FlowBatch`] at a time, and the rows are put together, encoded (each
    /// column's dictionary, its pages, their compression) and written there. That costs
    /// more than judging the flows: one input checked to Parquet then uses two cores. The
    /// files are the same. Before any flow (after one, the writer stays as it is).
    pub fn on_a_thread(self, engine: &Engine) -> Self {
        match self.way {
            Way::Here(mut files) if files.partitions.is_empty() => {
                files.texts.name_pods(engine);
                ParquetWriter {
                    way: Way::Apart(WritingThread::start(*files)),
                }
            }
            way => ParquetWriter { way },
        }
    }

    /// Add one judged flow, with its endpoints named by `engine` as the other outputs name
    /// them. On a thread of its own, a failure to write comes with a later flow, or with
    /// [`ParquetWriter::finish`].
    pub fn write(&mut self, engine: &Engine, flow: &CheckedFlow) -> Result<(), FlowError> {
        match &mut self.way {
            Way::Here(files) => {
                files.texts.name_pods(engine);
                files.write(flow, flow.decided_by.as_ref())
            }
            Way::Apart(thread) => thread.write(flow),
        }
    }

    /// Write what is buffered and close every file; the files written, sorted.
    pub fn finish(self) -> Result<Vec<PathBuf>, FlowError> {
        match self.way {
            Way::Here(files) => files.finish(),
            Way::Apart(thread) => thread.finish(),
        }
    }
}

/// The thread of a [`ParquetWriter`] on a thread of its own: it takes batches of flows in
/// order and writes them to its [`Files`], and hands each emptied batch back.
struct WritingThread {
    /// The directory written under (for errors).
    dir: PathBuf,
    batch: FlowBatch,
    batches: Option<std::sync::mpsc::SyncSender<FlowBatch>>,
    emptied: std::sync::mpsc::Receiver<FlowBatch>,
    thread: Option<std::thread::JoinHandle<Result<Vec<PathBuf>, FlowError>>>,
}

impl WritingThread {
    fn start(mut files: Files) -> Self {
        let dir = files.dir.clone();
        // Memory stays bounded: at most a row group and a half of flows wait (the thread
        // writes a row group at a time, for a while: with less room, the flows handed over
        // in the meantime would wait for it).
        let waiting = (BUFFERED_ROWS + BUFFERED_ROWS / 2) / FlowBatch::FULL;
        let (batches, to_write) = std::sync::mpsc::sync_channel::<FlowBatch>(waiting);
        let (give_back, emptied) = std::sync::mpsc::channel::<FlowBatch>();
        let thread = std::thread::spawn(move || {
            for mut batch in to_write {
                for (flow, decided_by) in batch.iter() {
                    files.write(flow, decided_by)?;
                }
                batch.clear();
                // The writer may be done: then the batch is not needed.
                let _ = give_back.send(batch);
            }
            files.finish()
        });
        WritingThread {
            dir,
            batch: FlowBatch::default(),
            batches: Some(batches),
            emptied,
            thread: Some(thread),
        }
    }

    fn write(&mut self, flow: &CheckedFlow) -> Result<(), FlowError> {
        self.batch.push(flow);
        if self.batch.is_full() {
            self.hand_on()?;
        }
        Ok(())
    }

    /// Send the batch to the thread; a thread that has stopped (on a failure) says why.
    fn hand_on(&mut self) -> Result<(), FlowError> {
        let next = self.emptied.try_recv().unwrap_or_default();
        let batch = std::mem::replace(&mut self.batch, next);
        let sent = self.batches.as_ref().map(|batches| batches.send(batch));
        if let Some(Ok(())) = sent {
            return Ok(());
        }
        self.end()?;
        Err(self.stopped())
    }

    /// Wait for the thread to write what it was sent and close the files. Once only: the
    /// thread has stopped after that.
    fn end(&mut self) -> Result<Vec<PathBuf>, FlowError> {
        self.batches = None;
        match self.thread.take().map(std::thread::JoinHandle::join) {
            Some(Ok(written)) => written,
            Some(Err(panic)) => std::panic::resume_unwind(panic),
            None => Err(self.stopped()),
        }
    }

    /// The error of flows handed to the thread after it stopped.
    fn stopped(&self) -> FlowError {
        io_error(&self.dir, "the Parquet writing thread has stopped")
    }

    fn finish(mut self) -> Result<Vec<PathBuf>, FlowError> {
        if !self.batch.is_empty() {
            self.hand_on()?;
        }
        self.end()
    }
}

impl Files {
    /// Add one judged flow whose deciding policy is `decided_by` (its own is not read),
    /// with its endpoints named as the other outputs name them (the pods named first:
    /// [`RowTexts::name_pods`]).
    fn write(
        &mut self,
        flow: &CheckedFlow,
        decided_by: Option<&Arc<str>>,
    ) -> Result<(), FlowError> {
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
        rows.src.push(self.texts.name(flow.src));
        rows.dst.push(self.texts.name(flow.dst));
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
            decided_by.map(|name| self.texts.policy(name)),
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
        let writer = SerializedFileWriter::new(file, self.schema.clone(), self.properties.clone())
            .map_err(|e| io_error(&path, e))?;
        self.files.push(path);
        self.partitions.push(Partition {
            writer,
            rows: Columns::default(),
        });
        let at = self.partitions.len() - 1;
        self.by_hour.insert(key, at);
        Ok(at)
    }

    /// Write every buffered row out as a row group of its partition's file.
    fn flush(&mut self) -> Result<(), FlowError> {
        for (partition, path) in self.partitions.iter_mut().zip(&self.files) {
            if partition.rows.len() > 0 {
                let rows = std::mem::take(&mut partition.rows);
                write_row_group(&mut partition.writer, &rows).map_err(|e| io_error(path, e))?;
            }
        }
        self.buffered = 0;
        Ok(())
    }

    /// Write what is buffered and close every file; the files written, sorted.
    fn finish(mut self) -> Result<Vec<PathBuf>, FlowError> {
        self.flush()?;
        for (partition, path) in std::mem::take(&mut self.partitions)
            .into_iter()
            .zip(&self.files)
        {
            partition.writer.close().map_err(|e| io_error(path, e))?;
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
