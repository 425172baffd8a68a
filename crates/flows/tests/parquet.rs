//! Parquet in and out. In: a VPC Flow Logs file as AWS delivers it, written by pyarrow (an
//! independent implementation; `tests/data/make-vpc-parquet.py` made it) reads exactly as the
//! same records in text. Out: judged flows land in Hive partitions by date and hour and read
//! back, with the parquet crate and with pyarrow, as the JSON Lines rows say.

use netfence_engine::Engine;
use netfence_flows::read::read_bytes;
use netfence_flows::{
    read_path, Checked, Checker, Flow, FlowError, FlowProtocol, ParquetWriter, ReadStats,
    SourceFormat, VpcFormat,
};
use netfence_model::Loader;
use parquet::file::reader::FileReader;
use parquet::file::serialized_reader::SerializedFileReader;
use std::path::{Path, PathBuf};

const CLUSTER: &str = include_str!("../../../examples/flows/cluster.yaml");

fn engine() -> Engine {
    let mut loader = Loader::new();
    loader.load_str("cluster.yaml", CLUSTER);
    Engine::new(loader.finish().unwrap())
}

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/vpc.parquet")
}

/// The records of `make-vpc-parquet.py`, as text with S3's header line.
const SAME_AS_TEXT: &str = "\
version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status vpc-id tcp-flags pkt-srcaddr pkt-dstaddr flow-direction
5 123456789010 eni-0a1b2c3d4e5f60718 10.0.0.10 10.0.0.20 40000 8080 6 10 840 1700000000 1700000060 ACCEPT OK vpc-01234567 2 10.0.0.10 10.0.0.20 ingress
5 123456789010 eni-0a1b2c3d4e5f60718 10.0.0.20 10.0.0.10 8080 40000 6 10 840 1700000000 1700000060 ACCEPT OK vpc-01234567 18 10.0.0.20 10.0.0.10 egress
5 123456789010 eni-0b1b2c3d4e5f60718 10.0.1.5 10.0.0.20 40001 8080 6 3 180 1700000060 1700000120 ACCEPT OK vpc-01234567 2 10.0.1.30 10.0.0.20 ingress
5 123456789010 eni-0a1b2c3d4e5f60718 10.0.0.10 10.0.0.20 40003 8080 6 2 120 1700000060 1700000120 REJECT OK vpc-01234567 2 10.0.0.10 10.0.0.20 ingress
5 123456789010 eni-0a1b2c3d4e5f60718 10.0.1.30 10.0.0.20 - - 1 1 84 1700000120 1700000180 ACCEPT OK vpc-01234567 - 10.0.1.30 10.0.0.20 ingress
5 123456789010 eni-0a1b2c3d4e5f60718 - - - - - - - 1700000180 1700000240 - NODATA vpc-01234567 - - - -
";

fn read(path: &Path) -> Result<(Vec<Flow>, ReadStats), FlowError> {
    let mut flows = Vec::new();
    let mut stats = ReadStats::default();
    read_path(
        path,
        &SourceFormat::Vpc(VpcFormat::default()),
        &mut stats,
        &mut |f| flows.push(f),
    )?;
    Ok((flows, stats))
}

#[test]
fn aws_parquet_written_by_pyarrow_reads_as_its_text_records() {
    let (from_parquet, parquet_stats) = read(&fixture()).unwrap();
    let mut from_text = Vec::new();
    let mut text_stats = ReadStats::default();
    read_bytes(
        SAME_AS_TEXT.as_bytes(),
        "text",
        &SourceFormat::Vpc(VpcFormat::default()),
        &mut text_stats,
        &mut |f| from_text.push(f),
    )
    .unwrap();
    assert_eq!(from_parquet.len(), 5);
    assert_eq!(from_parquet, from_text);
    assert_eq!(
        (
            parquet_stats.read,
            parquet_stats.parsed,
            parquet_stats.skipped
        ),
        (text_stats.read, text_stats.parsed, text_stats.skipped)
    );
    // pkt-srcaddr wins over the node's primary address; ICMP has no ports.
    assert_eq!(from_parquet[2].src.to_string(), "10.0.1.30");
    assert_eq!(from_parquet[4].protocol, FlowProtocol::Icmp);
    assert_eq!(from_parquet[4].dst_port, None);
}

#[test]
fn parquet_that_is_not_vpc_flow_logs_is_an_error_naming_the_file() {
    let dir = std::env::temp_dir().join(format!("netfence-parquet-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // Judged flows are Parquet too, but their columns are no VPC fields.
    let engine = engine();
    let mut writer = ParquetWriter::new(&dir.join("out")).unwrap();
    let mut checker = Checker::new(&engine, None);
    let (flows, _) = read(&fixture()).unwrap();
    for flow in &flows {
        if let Checked::Judged(checked) = checker.check(flow) {
            writer.write(&engine, &checked).unwrap();
        }
    }
    let files = writer.finish().unwrap();
    let error = read(&files[0]).unwrap_err().to_string();
    assert!(
        error.starts_with(&files[0].display().to_string()),
        "{error}"
    );
    assert!(error.contains("not VPC Flow Logs fields"), "{error}");
    // Cut short: the footer is gone.
    let bytes = std::fs::read(fixture()).unwrap();
    let cut = dir.join("cut.parquet");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let error = read(&cut).unwrap_err().to_string();
    assert!(error.starts_with(&cut.display().to_string()), "{error}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Judged flows over two hours and one without a time, written and read back.
#[test]
fn judged_flows_land_in_hive_partitions_and_read_back() {
    let engine = engine();
    let dir = std::env::temp_dir().join(format!("netfence-parquet-out-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut checker = Checker::new(&engine, None);
    let mut flows = Vec::new();
    read_bytes(
        b"2 1 eni-1 10.0.0.10 10.0.0.20 40000 8080 6 1 1 1700000000 1700000060 ACCEPT OK
2 1 eni-1 10.0.1.30 10.0.0.20 40001 8080 6 1 1 1700003600 1700003660 ACCEPT OK
2 1 eni-1 10.0.1.30 10.0.0.20 0 0 1 1 1 1700003600 1700003660 ACCEPT OK
",
        "t",
        &SourceFormat::Vpc(VpcFormat::default()),
        &mut ReadStats::default(),
        &mut |f| flows.push(f),
    )
    .unwrap();
    let mut timeless = flows[0].clone();
    timeless.time = None;
    flows.push(timeless);
    let mut writer = ParquetWriter::new(&dir).unwrap();
    let mut expected = Vec::new();
    for flow in &flows {
        let Checked::Judged(checked) = checker.check(flow) else {
            panic!("a reply")
        };
        writer.write(&engine, &checked).unwrap();
        expected.push(checked);
    }
    let files = writer.finish().unwrap();
    let relative: Vec<String> = files
        .iter()
        .map(|f| f.strip_prefix(&dir).unwrap().display().to_string())
        .collect();
    assert_eq!(
        relative,
        [
            "date=2023-11-14/hour=22/flows-0.parquet",
            "date=2023-11-14/hour=23/flows-0.parquet",
            "date=__HIVE_DEFAULT_PARTITION__/hour=__HIVE_DEFAULT_PARTITION__/flows-0.parquet",
        ]
    );
    let mut rows = Vec::new();
    for file in &files {
        let reader = SerializedFileReader::new(std::fs::File::open(file).unwrap()).unwrap();
        for row in reader.get_row_iter(None).unwrap() {
            rows.push(row.unwrap().to_json_value());
        }
    }
    assert_eq!(rows.len(), 4);
    assert_eq!(rows[0]["src"], "shop/web");
    assert_eq!(rows[0]["policy"], "allow");
    assert_eq!(rows[0]["decided_by"], "NetworkPolicy shop/web-to-api");
    assert_eq!(rows[0]["mismatch"], false);
    assert_eq!(rows[1]["src"], "jobs/batch");
    assert_eq!(rows[1]["mismatch"], true);
    assert_eq!(rows[1]["port"], 8080);
    // ICMP: no port, no verdict.
    assert_eq!(rows[2]["protocol"], "ICMP");
    assert!(rows[2]["port"].is_null() && rows[2]["policy"].is_null());
    assert!(rows[3]["time"].is_null());

    // An independent reader: pyarrow, as Athena-style tools read the partitions.
    let script = format!(
        "import pyarrow.dataset as ds
t = ds.dataset({dir:?}, format='parquet', partitioning='hive').to_table().sort_by('time')
for r in t.to_pylist():
    print(r['date'], r['hour'], r['src'], r['dst'], r['protocol'], r['port'], r['policy'], r['mismatch'], r['time'] and r['time'].isoformat())
",
        dir = dir.display().to_string()
    );
    let output = std::process::Command::new("python3")
        .args(["-c", &script])
        .output()
        .expect("python3 (scripts/test installs pyarrow)");
    assert!(
        output.status.success(),
        "pyarrow could not read the partitions (scripts/test installs pyarrow): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines[..3],
        [
            "2023-11-14 22 shop/web shop/api TCP 8080 allow False 2023-11-14T22:13:20+00:00",
            "2023-11-14 23 jobs/batch shop/api TCP 8080 deny True 2023-11-14T23:13:20+00:00",
            "2023-11-14 23 jobs/batch shop/api ICMP None None False 2023-11-14T23:13:20+00:00",
        ],
        "{stdout}"
    );
    assert_eq!(lines.len(), 4, "{stdout}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A writer on a thread of its own (`on_a_thread`: the rows put together, encoded and
/// written there) writes the same files, byte for byte, as one that writes them itself: 150,000 judged flows
/// (three row groups of buffered rows) over three hour partitions and the partition of no
/// time, rows jumping between them; and its files come back sorted the same.
#[test]
fn a_writer_on_a_thread_makes_the_same_files() {
    let engine = engine();
    let base = std::env::temp_dir().join(format!("netfence-parquet-apart-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let mut checker = Checker::new(&engine, None);
    let mut text = String::new();
    for n in 0..150_000u32 {
        let src = ["10.0.0.10", "10.0.1.30", "192.0.2.7"][(n % 3) as usize];
        let start = 1_700_000_000 + (n % 7 % 3) * 3600;
        text.push_str(&format!(
            "2 1 eni-1 {src} 10.0.0.20 {} {} 6 1 1 {start} {} ACCEPT OK\n",
            10_000 + n % 50_000,
            8080 + n % 4,
            start + 60
        ));
    }
    let mut checked = Vec::new();
    read_bytes(
        text.as_bytes(),
        "t",
        &SourceFormat::Vpc(VpcFormat::default()),
        &mut ReadStats::default(),
        &mut |flow| {
            let mut flow = flow;
            if flow.src_port.is_some_and(|port| port % 1000 == 0) {
                flow.time = None;
            }
            if let Checked::Judged(row) = checker.check(&flow) {
                checked.push(row);
            }
        },
    )
    .unwrap();
    assert!(checked.len() > 140_000);
    let mut written = Vec::new();
    for apart in [false, true] {
        let dir = base.join(format!("apart-{apart}"));
        let writer = ParquetWriter::new(&dir).unwrap();
        let mut writer = match apart {
            true => writer.on_a_thread(&engine),
            false => writer,
        };
        for row in &checked {
            writer.write(&engine, row).unwrap();
        }
        let files = writer.finish().unwrap();
        let contents: Vec<(PathBuf, Vec<u8>)> = files
            .iter()
            .map(|f| {
                (
                    f.strip_prefix(&dir).unwrap().to_path_buf(),
                    std::fs::read(f).unwrap(),
                )
            })
            .collect();
        written.push(contents);
    }
    assert_eq!(
        written[0].len(),
        4,
        "{:?}",
        written[0].iter().map(|f| &f.0).collect::<Vec<_>>()
    );
    // Several row groups in the largest file.
    let largest = written[0].iter().max_by_key(|f| f.1.len()).unwrap();
    let reader = SerializedFileReader::new(bytes::Bytes::from(largest.1.clone())).unwrap();
    assert!(reader.metadata().num_row_groups() > 1);
    assert!(written[0] == written[1], "the files differ");
    std::fs::remove_dir_all(&base).unwrap();
}
