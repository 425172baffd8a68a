//! The three readers on their documentation's own examples, plus malformed lines.

use netfence_flows::read::read_bytes;
use netfence_flows::{
    Flow, FlowProtocol, Observed, ObservedAt, ReadStats, Reply, SourceFormat, VpcFormat,
};
use std::io::Write;

fn read(format: &SourceFormat, text: &str) -> (Vec<Flow>, ReadStats) {
    let mut flows = Vec::new();
    let mut stats = ReadStats::default();
    read_bytes(text.as_bytes(), "test", format, &mut stats, &mut |f| {
        flows.push(f)
    })
    .unwrap();
    (flows, stats)
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn vpc() -> SourceFormat {
    SourceFormat::Vpc(VpcFormat::default())
}

fn skipped(stats: &ReadStats, reason: &str) -> u64 {
    stats
        .skipped
        .iter()
        .filter(|(skip, _)| skip.to_string() == reason)
        .map(|(_, n)| n)
        .sum()
}

// Amazon VPC user guide, "Flow log record examples": accepted and rejected traffic, no data
// and skipped records, IPv6 traffic (default format, version 2).
const VPC_DEFAULT_EXAMPLES: &str = "\
2 123456789010 eni-1235b8ca123456789 172.31.16.139 172.31.16.21 20641 22 6 20 4249 1418530010 1418530070 ACCEPT OK
2 123456789010 eni-1235b8ca123456789 172.31.9.69 172.31.9.12 49761 3389 6 20 4249 1418530010 1418530070 REJECT OK
2 123456789010 eni-1235b8ca123456789 - - - - - - - 1431280876 1431280934 - NODATA
2 123456789010 eni-11111111aaaaaaaaa - - - - - - - 1431280876 1431280934 - SKIPDATA
2 123456789010 eni-1235b8ca123456789 2001:db8:1234:a100:8d6e:3477:df66:f105 2001:db8:1234:a102:3304:8879:34cf:4071 34892 22 6 54 8855 1477913708 1477913820 ACCEPT OK
";

#[test]
fn vpc_default_format_examples() {
    let (flows, stats) = read(&vpc(), VPC_DEFAULT_EXAMPLES);
    assert_eq!((stats.read, stats.parsed), (5, 3));
    assert_eq!(skipped(&stats, "NODATA record"), 1);
    assert_eq!(skipped(&stats, "SKIPDATA record"), 1);
    assert_eq!(stats.malformed(), 0);
    let ssh = &flows[0];
    assert_eq!(ssh.src.to_string(), "172.31.16.139");
    assert_eq!(ssh.dst.to_string(), "172.31.16.21");
    assert_eq!((ssh.src_port, ssh.dst_port), (Some(20641), Some(22)));
    assert_eq!(ssh.protocol, FlowProtocol::Tcp);
    assert_eq!(ssh.observed, Some(Observed::Allow));
    // `time` is the capture window's start.
    assert_eq!(ssh.time.unwrap().to_string(), "2014-12-14T04:06:50Z");
    assert_eq!(flows[1].observed, Some(Observed::Deny));
    assert_eq!(flows[1].dst_port, Some(3389));
    assert!(flows[2].src.is_ipv6());
    assert_eq!(flows[2].dst_port, Some(22));
}

// The user guide's "TCP flag sequence" example: a custom format (as the S3 header line names
// it) with tcp-flags; 2 = SYN from the client, 18 = SYN-ACK from the server.
const VPC_TCP_FLAGS: &str = "\
version vpc-id subnet-id instance-id interface-id account-id type srcaddr dstaddr srcport dstport pkt-srcaddr pkt-dstaddr protocol bytes packets start end action tcp-flags log-status
3 vpc-abcdefab012345678 subnet-aaaaaaaa012345678 i-01234567890123456 eni-00123456789abcdef 123456789010 IPv4 52.213.180.42 10.0.0.62 43416 5001 52.213.180.42 10.0.0.62 6 568 8 1566848875 1566848933 ACCEPT 2 OK
3 vpc-abcdefab012345678 subnet-aaaaaaaa012345678 i-01234567890123456 eni-00123456789abcdef 123456789010 IPv4 10.0.0.62 52.213.180.42 5001 43416 10.0.0.62 52.213.180.42 6 376 7 1566848875 1566848933 ACCEPT 18 OK
";

#[test]
fn vpc_header_line_selects_fields_and_tcp_flags_mark_replies() {
    let (flows, stats) = read(&vpc(), VPC_TCP_FLAGS);
    assert_eq!((stats.read, stats.parsed), (2, 2), "{stats:?}");
    assert_eq!(flows[0].tcp_flags, Some(2));
    assert_eq!(flows[0].reply, Reply::No);
    assert_eq!(flows[0].dst_port, Some(5001));
    assert_eq!(flows[1].tcp_flags, Some(18));
    assert_eq!(flows[1].reply, Reply::Yes);
}

#[test]
fn vpc_custom_format_packet_addresses_win() {
    // After the user guide's NAT gateway example (instance 10.0.1.5 through NAT gateway
    // 10.0.0.220 to 203.0.113.5): on the NAT gateway's interface, srcaddr/dstaddr are the
    // interface's view, pkt-srcaddr/pkt-dstaddr the packet's own addresses.
    let format = VpcFormat::parse(
        "${interface-id} ${srcaddr} ${dstaddr} ${pkt-srcaddr} ${pkt-dstaddr} ${protocol} ${srcport} ${dstport} ${action}",
    )
    .unwrap();
    let text =
        "eni-1235b8ca123456789 10.0.1.5 10.0.0.220 10.0.1.5 203.0.113.5 6 49152 443 ACCEPT\n\
                eni-1235b8ca123456789 10.0.1.5 10.0.0.220 - - 6 49152 443 ACCEPT\n";
    let (flows, stats) = read(&SourceFormat::Vpc(format), text);
    assert_eq!(stats.parsed, 2);
    assert_eq!(flows[0].dst.to_string(), "203.0.113.5");
    // `-` packet addresses fall back to srcaddr/dstaddr.
    assert_eq!(flows[1].dst.to_string(), "10.0.0.220");
    // No start field: no time.
    assert_eq!(flows[0].time, None);
}

#[test]
fn vpc_format_forms_and_errors() {
    let dollar = VpcFormat::parse("${version} ${srcaddr} ${dstaddr} ${protocol}").unwrap();
    let bare = VpcFormat::parse("version srcaddr dstaddr protocol").unwrap();
    assert_eq!(dollar, bare);
    assert_eq!(
        dollar.to_string(),
        "${version} ${srcaddr} ${dstaddr} ${protocol}"
    );
    // v5 and v8 fields are known.
    assert!(VpcFormat::parse("srcaddr dstaddr protocol flow-direction reject-reason").is_ok());
    let unknown = VpcFormat::parse("srcaddr dstaddr protocol src-port").unwrap_err();
    assert!(unknown.to_string().contains("src-port"), "{unknown}");
    assert!(VpcFormat::parse("srcaddr dstaddr").is_err());
    assert!(VpcFormat::parse("").is_err());
}

#[test]
fn vpc_records_exported_from_cloudwatch_logs_keep_their_fields() {
    // `aws logs` exports and CloudWatch's S3 export put the event's timestamp first.
    let text = "2014-12-14T04:07:50.000Z 2 123456789010 eni-1235b8ca123456789 172.31.16.139 172.31.16.21 20641 22 6 20 4249 1418530010 1418530070 ACCEPT OK\n";
    let (flows, stats) = read(&vpc(), text);
    assert_eq!(stats.parsed, 1, "{stats:?}");
    // The record's own start is the flow's time, not the export's timestamp.
    assert_eq!(flows[0].time.unwrap().to_string(), "2014-12-14T04:06:50Z");
}

#[test]
fn vpc_malformed_lines_are_counted_with_their_line() {
    let text = "\
2 123456789010 eni-1 172.31.16.139 172.31.16.21 20641 22 6 20 4249 1418530010 1418530070 ACCEPT OK
2 123456789010 eni-1 172.31.16.139 172.31.16.21 20641 22 6 20 4249 1418530010 ACCEPT OK
2 123456789010 eni-1 not-an-ip 172.31.16.21 20641 22 6 20 4249 1418530010 1418530070 ACCEPT OK

2 123456789010 eni-1 172.31.16.139 172.31.16.21 20641 99999 6 20 4249 1418530010 1418530070 ACCEPT OK
2 123456789010 eni-1 172.31.16.139 172.31.16.21 20641 22 6 20 4249 1418530010 1418530070 MAYBE OK
";
    let (flows, stats) = read(&vpc(), text);
    assert_eq!(flows.len(), 1);
    assert_eq!(stats.read, 5);
    assert_eq!(stats.malformed(), 4);
    let lines: Vec<usize> = stats.examples.iter().map(|e| e.line).collect();
    assert_eq!(lines, vec![2, 3, 5, 6]);
    assert_eq!(
        stats.examples[0].reason.to_string(),
        "malformed: 13 fields where the format has 14"
    );
    assert_eq!(stats.examples[0].file, "test");
}

#[test]
fn vpc_gzip_is_read_like_plain_text() {
    let gz = gzip(VPC_DEFAULT_EXAMPLES.as_bytes());
    let mut plain = (Vec::new(), ReadStats::default());
    read_bytes(
        VPC_DEFAULT_EXAMPLES.as_bytes(),
        "t",
        &vpc(),
        &mut plain.1,
        &mut |f| plain.0.push(f),
    )
    .unwrap();
    let mut zipped = (Vec::new(), ReadStats::default());
    read_bytes(&gz, "t", &vpc(), &mut zipped.1, &mut |f| zipped.0.push(f)).unwrap();
    assert_eq!(plain, zipped);
}

/// A `.gz` cut short (a download or a copy that stopped) fails with the lines read before the
/// cut, and those lines' records are handed on and counted, in order, as the whole file's
/// first records.
#[test]
fn a_gzip_stream_cut_short_hands_on_what_came_before() {
    let text: String = (0..40_000u32)
        .map(|n| {
            format!(
                "2 123456789010 eni-1 10.0.{}.{} 10.0.0.20 {} 8080 6 1 40 {} 1700000060 ACCEPT OK\n",
                n / 250 % 250,
                n % 250,
                10_000 + n % 50_000,
                1_700_000_000 + n
            )
        })
        .collect();
    let gz = gzip(text.as_bytes());
    let mut whole = (Vec::new(), ReadStats::default());
    read_bytes(&gz, "t", &vpc(), &mut whole.1, &mut |f| whole.0.push(f)).unwrap();
    let mut cut = (Vec::new(), ReadStats::default());
    let error = read_bytes(
        &gz[..gz.len() * 3 / 5],
        "t.gz",
        &vpc(),
        &mut cut.1,
        &mut |f| cut.0.push(f),
    )
    .expect_err("a stream cut short is an error");
    let message = error.to_string();
    let lines: usize = message
        .strip_prefix("t.gz: after line ")
        .and_then(|rest| rest.split(':').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{message}"));
    // Some of the file, not all of it, and exactly the lines the error names.
    assert!(lines > 0 && lines < 40_000, "{message}");
    assert_eq!((cut.1.read, cut.1.parsed), (lines as u64, lines as u64));
    assert_eq!(cut.0[..], whole.0[..lines]);
}

// The shape of `hubble observe -o json` (cilium flow.proto, GetFlowsResponse): the Star Wars
// demo of the Cilium getting-started guide, xwing to deathstar dropped by policy, tiefighter
// to deathstar forwarded, and the reply.
const HUBBLE: &str = r#"{"flow":{"time":"2023-05-04T10:20:30.123456789Z","verdict":"DROPPED","drop_reason":133,"ethernet":{"source":"0a:58:0a:f4:00:0b","destination":"0a:58:0a:f4:00:0c"},"IP":{"source":"10.244.0.11","destination":"10.244.0.12","ipVersion":"IPv4"},"l4":{"TCP":{"source_port":41432,"destination_port":80,"flags":{"SYN":true}}},"source":{"ID":1234,"identity":5678,"namespace":"default","labels":["k8s:class=xwing","k8s:org=alliance"],"pod_name":"xwing"},"destination":{"ID":99,"identity":4321,"namespace":"default","labels":["k8s:class=deathstar","k8s:org=empire"],"pod_name":"deathstar-6fb5694d48-5hmds"},"Type":"L3_L4","node_name":"kind-worker","event_type":{"type":1,"sub_type":133},"traffic_direction":"INGRESS","drop_reason_desc":"POLICY_DENIED","Summary":"TCP Flags: SYN"},"node_name":"kind-worker","time":"2023-05-04T10:20:30.123456789Z"}
{"flow":{"time":"2023-05-04T10:20:31Z","verdict":"FORWARDED","IP":{"source":"10.244.0.13","destination":"10.244.0.12","ipVersion":"IPv4"},"l4":{"TCP":{"source_port":55000,"destination_port":80,"flags":{"SYN":true}}},"source":{"namespace":"default","pod_name":"tiefighter"},"destination":{"namespace":"default","pod_name":"deathstar-6fb5694d48-5hmds"},"Type":"L3_L4","traffic_direction":"INGRESS","is_reply":false},"node_name":"kind-worker","time":"2023-05-04T10:20:31Z"}
{"flow":{"time":"2023-05-04T10:20:31.5Z","verdict":"FORWARDED","IP":{"source":"10.244.0.12","destination":"10.244.0.13","ipVersion":"IPv4"},"l4":{"TCP":{"source_port":80,"destination_port":55000,"flags":{"SYN":true,"ACK":true}}},"traffic_direction":"INGRESS","is_reply":true},"node_name":"kind-worker"}
{"flow":{"time":"2023-05-04T10:20:32Z","verdict":"FORWARDED","IP":{"source":"fd00::1","destination":"fd00::2","ipVersion":"IPv6"},"l4":{"ICMPv6":{"type":128}}}}
{"lost_events":{"source":"HUBBLE_RING_BUFFER","num_events_lost":3,"cpu":null},"node_name":"kind-worker","time":"2023-05-04T10:20:33Z"}
"#;

#[test]
fn hubble_observe_json() {
    let (flows, stats) = read(&SourceFormat::Hubble, HUBBLE);
    assert_eq!((stats.read, stats.parsed), (5, 4), "{stats:?}");
    assert_eq!(skipped(&stats, "not a flow event"), 1);
    let xwing = &flows[0];
    assert_eq!(xwing.observed, Some(Observed::Deny));
    assert_eq!(xwing.dst_port, Some(80));
    assert_eq!(xwing.src_pod.as_ref().unwrap().name, "xwing");
    assert_eq!(xwing.reply, Reply::Unknown);
    assert_eq!(xwing.observed_at, Some(ObservedAt::Ingress));
    assert_eq!(
        xwing.time.unwrap().to_string(),
        "2023-05-04T10:20:30.123456789Z"
    );
    assert_eq!(flows[1].observed, Some(Observed::Allow));
    assert_eq!(flows[1].reply, Reply::No);
    assert_eq!(flows[2].reply, Reply::Yes);
    assert_eq!(flows[3].protocol, FlowProtocol::Other(58));
    assert_eq!(flows[3].dst_port, None);
}

/// A bare flow object (no `flow` wrapper) reads as the response holding it; strings with
/// JSON escapes read as their text; a response without a flow whose fields have another
/// shape is malformed, one with a known shape is no flow.
#[test]
fn hubble_bare_flows_and_escapes_read_as_the_responses() {
    let (wrapped, _) = read(&SourceFormat::Hubble, HUBBLE);
    let mut bare = String::new();
    for line in HUBBLE.lines() {
        let value: serde_json::Value = serde_json::from_str(line).unwrap();
        if let Some(flow) = value.get("flow") {
            bare.push_str(&flow.to_string());
            bare.push('\n');
        }
    }
    let (flows, stats) = read(&SourceFormat::Hubble, &bare);
    assert_eq!((stats.read, stats.parsed), (4, 4), "{stats:?}");
    assert_eq!(flows, wrapped);
    // `xwing` and the namespace `default` written with escapes, the address too.
    let escaped = HUBBLE
        .lines()
        .next()
        .unwrap()
        .replace("\"xwing\"", "\"x\\u0077ing\"")
        .replace("\"10.244.0.11\"", "\"10.244.0\\u002e11\"")
        .replace(
            "\"namespace\":\"default\"",
            "\"namespace\":\"def\\u0061ult\"",
        );
    assert!(escaped.contains("\\u0077"));
    let (flows, _) = read(&SourceFormat::Hubble, &escaped);
    assert_eq!(flows[..], wrapped[..1]);
    let text = "{\"lost_events\":{\"num_events_lost\":3},\"time\":5}\n{\"node_status\":{}}\n";
    let (flows, stats) = read(&SourceFormat::Hubble, text);
    assert!(flows.is_empty());
    assert_eq!(stats.malformed(), 1, "{stats:?}");
    assert_eq!(skipped(&stats, "not a flow event"), 1, "{stats:?}");
}

#[test]
fn hubble_malformed_lines() {
    let text = "not json\n[1,2]\n{\"flow\":{\"IP\":{\"source\":\"10.0.0.1\",\"destination\":\"nope\"},\"l4\":{\"TCP\":{}}}}\n{\"flow\":{\"IP\":{\"source\":\"10.0.0.1\",\"destination\":\"10.0.0.2\"},\"l4\":{\"TCP\":{\"destination_port\":\"x\"}}}}\n";
    let (flows, stats) = read(&SourceFormat::Hubble, text);
    assert!(flows.is_empty());
    assert_eq!(stats.malformed(), 4, "{stats:?}");
}

// The shape of the EKS user guide's network policy agent log line ("Troubleshooting Kubernetes
// network policies", Network policy logs), bare and as a CloudWatch export with the
// timestamp in front.
const NPA: &str = "\
Node: ip-192-168-87-155.us-west-2.compute.internal;SIP: 192.168.87.155;SPORT: 38971;DIP: 64.6.160.1;DPORT: 53;PROTOCOL: UDP;PolicyVerdict: ACCEPT
2024-03-01T12:00:00.123Z Node: ip-192-168-87-155.us-west-2.compute.internal;SIP: 192.168.87.155;SPORT: 41834;DIP: 192.168.70.24;DPORT: 8080;PROTOCOL: TCP;PolicyVerdict: DENY
Node: ip-192-168-87-155.us-west-2.compute.internal;SIP: 192.168.87.155;SPORT: 0;DIP: 192.168.70.24;DPORT: 0;PROTOCOL: ICMP;PolicyVerdict: ACCEPT
yesterday Node: x;SIP: 1.2.3.4;SPORT: 1;DIP: 1.2.3.5;DPORT: 2;PROTOCOL: TCP;PolicyVerdict: DENY
Node: x;SIP: 1.2.3.4;SPORT: 1;DIP: 1.2.3.5;DPORT: 2;PROTOCOL: TCP;PolicyVerdict: MAYBE
Node: x;SIP: 1.2.3.4;SPORT: 1;DPORT: 2;PROTOCOL: TCP;PolicyVerdict: DENY
";

#[test]
fn network_policy_agent_lines() {
    let (flows, stats) = read(&SourceFormat::Npa, NPA);
    assert_eq!((stats.read, stats.parsed), (6, 3), "{stats:?}");
    assert_eq!(stats.malformed(), 3);
    assert_eq!(flows[0].protocol, FlowProtocol::Udp);
    assert_eq!(flows[0].dst_port, Some(53));
    assert_eq!(flows[0].observed, Some(Observed::Allow));
    assert_eq!(flows[0].time, None);
    assert_eq!(flows[1].observed, Some(Observed::Deny));
    assert_eq!(
        flows[1].time.unwrap().to_string(),
        "2024-03-01T12:00:00.123Z"
    );
    assert_eq!(flows[2].protocol, FlowProtocol::Icmp);
    assert_eq!(flows[2].dst_port, None);
}

/// The short way finds each line's end in the same pass as its words: across buffer fills
/// of every size (lines straddling two fills), with other lines in between (a header, CRLF,
/// blank, malformed, not UTF-8, a CloudWatch time, no line feed at the end), it reads what
/// the general way reads, line numbers and counts included.
#[test]
fn the_short_way_reads_lines_across_buffer_fills_as_the_general_way() {
    struct General<'a>(&'a mut Vec<Flow>);
    impl netfence_flows::FlowSink for General<'_> {
        fn flow(&mut self, flow: Flow) {
            self.0.push(flow);
        }
        fn short_way(&self) -> bool {
            false
        }
    }
    let mut text = Vec::new();
    text.extend_from_slice(b"2 123456789010 eni-1 10.0.1.10 10.0.2.20 44321 443 6 10 840 1699999200 1699999260 ACCEPT OK\n");
    text.extend_from_slice(
        b"version srcaddr dstaddr srcport dstport protocol start action log-status tcp-flags\n",
    );
    text.extend_from_slice(b"2 10.0.1.10 10.0.2.20 44321 443 6 1699999200 ACCEPT OK 2\r\n");
    text.extend_from_slice(b"\n  \n2 10.0.1.11 10.0.2.21 53 53 17 1699999201 REJECT OK -\n");
    text.extend_from_slice(b"2 10.0.1.12 10.0.2.22 80 8080 6 1699999202 ACCEPT OK 18 extra\n");
    text.extend_from_slice(b"2 10.0.1.13 10.0.2.23 80 \xff 6 1699999202 ACCEPT OK 18\n");
    text.extend_from_slice(b"2 10.0.1.14\t10.0.2.24 1 2 6 1699999203 ACCEPT\x0cOK 19\n");
    text.extend_from_slice(b"2 10.0.1.15 10.0.2.25 1 2 6 1699999203 ACCEPT NODATA 19\n");
    text.extend_from_slice(
        b"2023-11-14T22:00:00Z 2 10.0.1.16 10.0.2.26 1 2 6 1699999204 ACCEPT OK 2\n",
    );
    for n in 0..20 {
        text.extend_from_slice(
            format!(
                "2 10.0.3.{n} 10.0.4.{n} {} 443 6 {} REJECT OK 2\n",
                40000 + n,
                1699999300 + n
            )
            .as_bytes(),
        );
    }
    text.extend_from_slice(b"2 10.0.1.17 10.0.2.27 1 2 6 1699999205 ACCEPT OK 2");
    let (mut expected, mut general_stats) = (Vec::new(), ReadStats::default());
    netfence_flows::read_stream_into(
        &text[..],
        "f.log",
        &vpc(),
        &mut general_stats,
        &mut General(&mut expected),
    )
    .unwrap();
    assert_eq!(general_stats.parsed, 26, "{general_stats:?}");
    for capacity in [1, 2, 7, 8, 9, 15, 16, 17, 31, 64, 100, 1 << 16] {
        let (mut flows, mut stats) = (Vec::new(), ReadStats::default());
        netfence_flows::read_stream_into(
            std::io::BufReader::with_capacity(capacity, &text[..]),
            "f.log",
            &vpc(),
            &mut stats,
            &mut |flow| flows.push(flow),
        )
        .unwrap();
        assert_eq!(flows, expected, "buffer of {capacity} bytes");
        assert_eq!(stats, general_stats, "buffer of {capacity} bytes");
    }
}

mod arbitrary_input {
    use super::*;
    use proptest::prelude::*;

    /// Lines that look almost right: fragments of each format joined at random.
    fn fragment() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("2 123456789010 eni-1 10.0.0.1 10.0.0.2 1 80 6 1 1 1418530010 1418530070 ACCEPT OK".to_string()),
            Just("version srcaddr dstaddr protocol".to_string()),
            Just("srcaddr dstaddr".to_string()),
            Just("{\"flow\":{\"IP\":{\"source\":\"10.0.0.1\",\"destination\":\"::1\"},\"l4\":{\"UDP\":{\"destination_port\":53}}}}".to_string()),
            Just("Node: n;SIP: 10.0.0.1;DIP: 10.0.0.2;PROTOCOL: 6;PolicyVerdict: DENY".to_string()),
            Just("-".to_string()),
            Just(";".to_string()),
            Just("\u{1f}\u{8b}".to_string()),
            "[ -~]{0,40}",
            any::<u64>().prop_map(|n| n.to_string()),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        /// No input panics a reader, and every non-empty, non-header line is counted once:
        /// as a flow or as a skip.
        #[test]
        fn readers_never_panic_and_count_every_line(
            lines in proptest::collection::vec(proptest::collection::vec(fragment(), 1..4), 0..12),
            format in 0..3usize,
        ) {
            let text: String = lines.iter().map(|parts| parts.join(" ") + "\n").collect();
            let format = match format {
                0 => vpc(),
                1 => SourceFormat::Hubble,
                _ => SourceFormat::Npa,
            };
            let mut stats = ReadStats::default();
            let mut flows = 0u64;
            read_bytes(text.as_bytes(), "fuzz", &format, &mut stats, &mut |_| flows += 1).unwrap();
            prop_assert_eq!(flows, stats.parsed);
            prop_assert_eq!(stats.read, stats.parsed + stats.skipped_total());
        }
    }
}

/// The flows and stats of reading `path`, the malformed lines' file names left out (a FIFO
/// and a file of the same bytes have different names).
fn read_path_named_apart(path: &std::path::Path, format: &SourceFormat) -> (Vec<Flow>, ReadStats) {
    let mut flows = Vec::new();
    let mut stats = ReadStats::default();
    netfence_flows::read_path(path, format, &mut stats, &mut |f| flows.push(f)).unwrap();
    for example in &mut stats.examples {
        example.file.clear();
    }
    (flows, stats)
}

/// A FIFO (`--vpc <(zcat …)`, or `/dev/stdin` on a pipe) cannot go back to its start once its
/// first bytes said what it holds: it reads as a regular file of the same bytes, in text,
/// gzip and Parquet, and for Hubble. The writer hands over its first bytes one at a time, so
/// that the reader's first reads may come back short.
#[test]
fn a_fifo_reads_as_a_file_of_the_same_bytes() {
    let dir = std::env::temp_dir().join(format!("netfence-fifo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let text = format!("{VPC_DEFAULT_EXAMPLES}garbage\n");
    let parquet = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/vpc.parquet"),
    )
    .unwrap();
    let inputs = [
        ("text", vpc(), text.as_bytes().to_vec()),
        ("gzip", vpc(), gzip(text.as_bytes())),
        ("parquet", vpc(), parquet),
        ("hubble", SourceFormat::Hubble, HUBBLE.as_bytes().to_vec()),
    ];
    for (name, format, bytes) in inputs {
        let file = dir.join(format!("{name}.file"));
        std::fs::write(&file, &bytes).unwrap();
        let fifo = dir.join(format!("{name}.fifo"));
        let _ = std::fs::remove_file(&fifo);
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success(), "mkfifo {}", fifo.display());
        let writer = std::thread::spawn({
            let fifo = fifo.clone();
            move || {
                // Opening a FIFO to write waits for its reader.
                let mut out = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
                for byte in &bytes[..3] {
                    out.write_all(&[*byte]).unwrap();
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                out.write_all(&bytes[3..]).unwrap();
            }
        });
        let from_fifo = read_path_named_apart(&fifo, &format);
        writer.join().unwrap();
        let from_file = read_path_named_apart(&file, &format);
        assert!(from_file.1.parsed > 0, "{name}: {:?}", from_file.1);
        assert_eq!(from_fifo, from_file, "{name}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
