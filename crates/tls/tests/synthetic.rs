//! Captures built byte by byte (`netfence_tls::synth`): TCP reassembly under reordering,
//! retransmission and segmentation, the bounded connection table, and damaged files (clear
//! errors naming the file and record, never a panic).

use netfence_tls::synth::{self, Conversation, PcapWriter};
use netfence_tls::{analyze, Class, Limits, Record, TlsError, Version};
use proptest::prelude::*;
use std::net::SocketAddr;
use std::path::Path;

fn capture(frames: &[Vec<u8>]) -> Vec<u8> {
    let mut writer = PcapWriter::new(Vec::new(), 1).unwrap();
    for (index, frame) in frames.iter().enumerate() {
        writer
            .packet(1_700_000_000.0 + index as f64 * 0.001, frame)
            .unwrap();
    }
    writer.into_inner()
}

fn read(bytes: &[u8]) -> (Vec<Record>, Result<netfence_tls::CaptureStats, TlsError>) {
    let mut records = Vec::new();
    let result = analyze(Path::new("test.pcap"), bytes, Limits::default(), &mut |r| {
        records.push(r)
    });
    (records, result)
}

fn address(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

/// A TLS 1.2 mutual-TLS handshake whose ClientHello and client Certificate span several
/// segments.
fn mtls12(mss: usize) -> Conversation {
    let mut c = Conversation::open(
        address("10.0.0.1:40000"),
        address("10.0.0.2:443"),
        [u32::MAX - 10, 7],
    );
    let hello = synth::client_hello(Some("api.test"), &["http/1.1"], &[0xc02f, 0xc030], &[]);
    c.send(0, &synth::record(22, &hello), mss);
    let mut server = synth::record(22, &synth::server_hello(0x0303, 0xc02f, Some("http/1.1")));
    server.extend(synth::record(22, &synth::certificate(1, 900)));
    server.extend(synth::record(22, &synth::server_hello_done()));
    c.send(1, &server, mss);
    let mut client = synth::record(22, &synth::certificate(2, 1500));
    client.extend(synth::record(22, &synth::client_key_exchange()));
    client.extend(synth::record(20, &[1]));
    client.extend(synth::record(22, &[0x99; 40]));
    c.send(0, &client, mss);
    let mut server = synth::record(20, &[1]);
    server.extend(synth::record(22, &[0x98; 40]));
    c.send(1, &server, mss);
    c.send(0, &synth::record(23, &[0x77; 300]), mss);
    c.close();
    c
}

fn check_mtls12(records: &[Record]) {
    assert_eq!(records.len(), 1, "{records:#?}");
    let r = &records[0];
    assert_eq!(r.class, Class::Mtls, "{r:#?}");
    assert_eq!(r.version, Some(Version::Tls12));
    assert_eq!(
        r.cipher_name().as_deref(),
        Some("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256")
    );
    assert_eq!(r.sni.as_deref(), Some("api.test"));
    assert_eq!(r.alpn_chosen.as_deref(), Some("http/1.1"));
    assert_eq!(r.client_certificate, Some(true));
    assert!(r.handshake_complete, "{r:#?}");
    assert_eq!(r.client, address("10.0.0.1:40000"));
}

#[test]
fn handshake_split_across_segments_is_reassembled() {
    for mss in [7, 100, 1448] {
        let frames: Vec<Vec<u8>> = mtls12(mss).frames.into_iter().map(|(_, f)| f).collect();
        let (records, result) = read(&capture(&frames));
        result.unwrap();
        check_mtls12(&records);
        assert_eq!(records[0].packets as usize, frames.len());
    }
}

#[test]
fn reordered_and_retransmitted_segments_are_reassembled() {
    let frames: Vec<Vec<u8>> = mtls12(50).frames.into_iter().map(|(_, f)| f).collect();
    // Swap neighbours after the three-way handshake and send every fifth frame twice.
    let mut shuffled = frames[..3].to_vec();
    for pair in frames[3..].chunks(2) {
        for frame in pair.iter().rev() {
            shuffled.push(frame.clone());
        }
    }
    let mut with_copies = Vec::new();
    for (index, frame) in shuffled.into_iter().enumerate() {
        if index % 5 == 4 {
            with_copies.push(frame.clone());
        }
        with_copies.push(frame);
    }
    let (records, result) = read(&capture(&with_copies));
    result.unwrap();
    check_mtls12(&records);
}

#[test]
fn the_capture_starting_after_the_syn_still_reads_the_client_first() {
    let frames: Vec<Vec<u8>> = mtls12(1448)
        .frames
        .into_iter()
        .skip(3)
        .map(|(_, f)| f)
        .collect();
    let (records, result) = read(&capture(&frames));
    result.unwrap();
    check_mtls12(&records);
}

#[test]
fn tls13_client_flight_size_decides_mtls_inferred() {
    for (flight, expected) in [
        (53, Class::Tls),
        (69, Class::Tls),
        (1500, Class::MtlsInferred),
    ] {
        let c = synth::tls13_conversation(
            address("10.0.0.1:1234"),
            address("10.0.0.2:8443"),
            "a.test",
            flight,
            100,
        );
        let frames: Vec<Vec<u8>> = c.frames.into_iter().map(|(_, f)| f).collect();
        let (records, result) = read(&capture(&frames));
        result.unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!(
            records[0].class, expected,
            "flight {flight}: {:#?}",
            records[0]
        );
        assert_eq!(records[0].version, Some(Version::Tls13));
        assert_eq!(records[0].client_certificate, None);
        assert_eq!(records[0].alpn, Some(vec!["h2".into(), "http/1.1".into()]));
    }
    // A mesh port is evidence on its own.
    let c = synth::tls13_conversation(
        address("[fd00::1]:1234"),
        address("[fd00::2]:15008"),
        "a.test",
        53,
        10,
    );
    let frames: Vec<Vec<u8>> = c.frames.into_iter().map(|(_, f)| f).collect();
    let (records, _) = read(&capture(&frames));
    assert_eq!(records[0].class, Class::MtlsInferred, "{:#?}", records[0]);
    assert_eq!(records[0].server, address("[fd00::2]:15008"));
}

#[test]
fn plaintext_and_empty_connections() {
    let mut http = Conversation::open(address("10.0.0.1:5000"), address("10.0.0.2:80"), [1, 2]);
    http.send(0, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 1448);
    http.send(1, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 1448);
    http.close();
    let mut silent = Conversation::open(address("10.0.0.1:5001"), address("10.0.0.2:80"), [1, 2]);
    silent.close();
    let frames: Vec<Vec<u8>> = http
        .frames
        .into_iter()
        .chain(silent.frames)
        .map(|(_, f)| f)
        .collect();
    let (records, result) = read(&capture(&frames));
    result.unwrap();
    assert_eq!(records.len(), 2);
    assert_eq!(
        (records[0].class, records[0].protocol),
        (Class::Plaintext, Some("http/1.x"))
    );
    assert_eq!(records[0].bytes, 27 + 38);
    assert_eq!((records[1].class, records[1].bytes), (Class::Unknown, 0));
}

#[test]
fn the_table_is_bounded_and_every_connection_is_reported() {
    // 300 connections interleaved (all open before any closes), a table of 16.
    let conversations: Vec<Conversation> = (0..300u16)
        .map(|i| {
            synth::tls13_conversation(
                address(&format!("10.0.1.{}:{}", i % 200 + 1, 2000 + i)),
                address("10.0.0.2:443"),
                "x.test",
                60,
                10,
            )
        })
        .collect();
    let mut frames = Vec::new();
    let longest = conversations.iter().map(|c| c.frames.len()).max().unwrap();
    for step in 0..longest {
        for c in &conversations {
            if let Some((_, frame)) = c.frames.get(step) {
                frames.push(frame.clone());
            }
        }
    }
    let bytes = capture(&frames);
    let mut analyzer = netfence_tls::Analyzer::new(Limits {
        connections: 16,
        linger: 2.0,
    });
    let mut records = Vec::new();
    let mut most = 0;
    let mut stats = netfence_tls::CaptureStats::default();
    netfence_tls::capture::read(
        Path::new("t.pcap"),
        &bytes[..],
        &mut stats,
        &mut |segment| {
            analyzer.push(segment, &mut |r| records.push(r));
            most = most.max(analyzer.tracked());
        },
    )
    .unwrap();
    analyzer.finish(&mut |r| records.push(r));
    assert!(most <= 16, "{most}");
    // Evicted connections are reported early (partial); their later packets open no new
    // record unless they carry payload (then the sender reads as the client).
    let clients: std::collections::BTreeSet<SocketAddr> =
        records.iter().map(|r| r.client).collect();
    for i in 0..300u16 {
        assert!(
            clients.contains(&address(&format!("10.0.1.{}:{}", i % 200 + 1, 2000 + i))),
            "{i}"
        );
    }
}

#[test]
fn damaged_files_give_errors_that_name_the_file_and_record() {
    let frames: Vec<Vec<u8>> = mtls12(1448).frames.into_iter().map(|(_, f)| f).collect();
    let good = capture(&frames);
    let message = |bytes: &[u8]| read(bytes).1.unwrap_err().to_string();
    assert_eq!(
        message(b""),
        "test.pcap: empty file, not a pcap or pcapng capture"
    );
    assert_eq!(
        message(b"GET / HTTP/1.1\r\n\r\n and more text to fill a header"),
        "test.pcap: not a pcap or pcapng capture (unknown magic number)"
    );
    let cut = message(&good[..good.len() - 10]);
    assert!(cut.starts_with("test.pcap: truncated: record "), "{cut}");
    let mut other_link = good.clone();
    other_link[20] = 147; // LINKTYPE_USER0
    assert_eq!(
        message(&other_link),
        "test.pcap: link type 147 is not supported (Ethernet, Linux cooked SLL and SLL2, raw IP and BSD loopback are)"
    );
    // Records of connections already read are still handed out before the error.
    let (records, result) = read(&good[..good.len() - 10]);
    assert!(result.is_err());
    assert_eq!(records.len(), 1);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Any cut, any corrupted bytes, any garbage: a result or an error, never a panic.
    #[test]
    fn damaged_captures_never_panic(cut in 0usize..6000, flips in proptest::collection::vec((0usize..6000, any::<u8>()), 0..20), garbage in proptest::collection::vec(any::<u8>(), 0..300)) {
        let frames: Vec<Vec<u8>> = mtls12(200).frames.into_iter().map(|(_, f)| f).collect();
        let mut bytes = capture(&frames);
        for (at, value) in flips {
            let len = bytes.len();
            bytes[at % len] = value;
        }
        bytes.truncate(cut.max(1));
        let _ = read(&bytes);
        let mut tail = capture(&frames);
        tail.extend_from_slice(&garbage);
        let _ = read(&tail);
        let _ = read(&garbage);
    }

    /// Random payloads in a well-formed capture (TLS-looking or not): never a panic.
    #[test]
    fn random_payloads_never_panic(payloads in proptest::collection::vec((any::<bool>(), proptest::collection::vec(any::<u8>(), 0..400)), 1..12), tls in any::<bool>()) {
        let mut c = Conversation::open(address("10.0.0.1:1"), address("10.0.0.2:2"), [0, 0]);
        for (side, mut payload) in payloads {
            if tls && payload.len() > 5 {
                payload[0] = 22;
                payload[1] = 3;
            }
            c.send(usize::from(side), &payload, 100);
        }
        c.close();
        let frames: Vec<Vec<u8>> = c.frames.into_iter().map(|(_, f)| f).collect();
        let (records, result) = read(&capture(&frames));
        prop_assert!(result.is_ok());
        prop_assert_eq!(records.len(), 1);
    }
}

/// PostgreSQL and MySQL upgrade to TLS in band: the clear preamble (SSLRequest and the
/// server's `S`; the server's greeting and the client's SSL request) is not plaintext
/// traffic. Refused upgrades stay plaintext.
#[test]
fn in_band_upgrades_to_tls_are_tls() {
    let hello = synth::record(
        22,
        &synth::client_hello(Some("db.test"), &[], &[0x1301], &[0x0304]),
    );
    let server_hello = synth::record(22, &synth::server_hello(0x0304, 0x1301, None));
    let greeting = b"\x4a\x00\x00\x00\x0a8.0.36\x00\x01\x00\x00\x00abcdefgh\x00\xff\xff\xff\x02\x00\xff\xdf\x15\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00ijklmnopqrst\x00mysql_native_password\x00";
    let mut ssl_request = vec![32, 0, 0, 1];
    ssl_request.extend_from_slice(&0x0000_0a85u32.to_le_bytes()); // CLIENT_SSL among others
    ssl_request.extend_from_slice(&[0; 28]);
    /// (side, bytes) sent in order, then the expected class and protocol.
    type Case = (Vec<(usize, Vec<u8>)>, Class, Option<&'static str>);
    let cases: Vec<Case> = vec![
        (
            vec![
                (0, vec![0, 0, 0, 8, 4, 0xd2, 0x16, 0x2f]),
                (1, b"S".to_vec()),
                (0, hello.clone()),
                (1, server_hello.clone()),
            ],
            Class::Tls,
            Some("postgresql"),
        ),
        (
            vec![
                (0, vec![0, 0, 0, 8, 4, 0xd2, 0x16, 0x2f]),
                (1, b"N".to_vec()),
                (
                    0,
                    b"\x00\x00\x00\x29\x00\x03\x00\x00user\x00app\x00database\x00shop\x00\x00"
                        .to_vec(),
                ),
            ],
            Class::Plaintext,
            Some("postgresql"),
        ),
        (
            vec![
                (1, greeting.to_vec()),
                (0, [ssl_request.clone(), hello.clone()].concat()),
                (1, server_hello.clone()),
            ],
            Class::Tls,
            Some("mysql"),
        ),
        (
            vec![
                (1, greeting.to_vec()),
                (
                    0,
                    b"\x30\x00\x00\x01\x85\xa6\x03\x00\x00\x00\x00\x01\x21\x00\x00\x00root"
                        .to_vec(),
                ),
            ],
            Class::Plaintext,
            Some("mysql"),
        ),
    ];
    for (index, (exchanges, class, protocol)) in cases.into_iter().enumerate() {
        let mut c = Conversation::open(address("10.0.0.1:40000"), address("10.0.0.2:5432"), [1, 2]);
        for (side, bytes) in &exchanges {
            c.send(*side, bytes, 1448);
        }
        c.close();
        let frames: Vec<Vec<u8>> = c.frames.into_iter().map(|(_, f)| f).collect();
        let (records, result) = read(&capture(&frames));
        result.unwrap();
        assert_eq!(
            (records[0].class, records[0].protocol),
            (class, protocol),
            "case {index}: {:#?}",
            records[0]
        );
        if class == Class::Tls {
            assert_eq!(records[0].sni.as_deref(), Some("db.test"));
            assert_eq!(records[0].version, Some(Version::Tls13));
        }
    }
}
