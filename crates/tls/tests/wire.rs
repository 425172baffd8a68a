//! Captures made for real: two network namespaces joined by a veth pair (IPv4 and IPv6),
//! `openssl s_server`/`s_client` and a plain HTTP server and curl inside them, tcpdump
//! writing Ethernet, Linux cooked (SLL and SLL2, `-i any`) captures, editcap a pcapng copy.
//! netfence's reading of every connection is checked against what each exchange is, and
//! against tshark's dissection (version, cipher, SNI, ALPN) of the same file.
//!
//! Needs root, iproute2, openssl, tcpdump, tshark (editcap), python3 and curl; `scripts/test`
//! installs them. Everything runs inside namespaces this test creates and deletes (also when
//! it fails); the root namespace is not touched.

use netfence_tls::{Class, Evidence, Limits, Record, Version};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The namespaces, processes and files of one run; dropping it ends the processes it started
/// (by their ids) and deletes the namespaces and files.
struct Lab {
    client: String,
    server: String,
    dir: PathBuf,
    children: Vec<Child>,
}

impl Drop for Lab {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        for namespace in [&self.client, &self.server] {
            let _ = Command::new("ip")
                .args(["netns", "del", namespace])
                .status();
        }
        // NETFENCE_KEEP_CAPTURES=1 keeps the files to look at.
        if std::env::var_os("NETFENCE_KEEP_CAPTURES").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn run(program: &str, args: &[&str]) {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e} (scripts/test installs the tools)"));
    assert!(
        output.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn wait_for(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Lab {
    fn new() -> Lab {
        let id = std::process::id();
        let dir = std::env::temp_dir().join(format!("netfence-tls-wire-{id}"));
        std::fs::create_dir_all(&dir).unwrap();
        let lab = Lab {
            client: format!("nftls-{id}-c"),
            server: format!("nftls-{id}-s"),
            dir,
            children: Vec::new(),
        };
        run("ip", &["netns", "add", &lab.client]);
        run("ip", &["netns", "add", &lab.server]);
        run(
            "ip",
            &[
                "link",
                "add",
                "nftls-c",
                "netns",
                &lab.client,
                "type",
                "veth",
                "peer",
                "name",
                "nftls-s",
                "netns",
                &lab.server,
            ],
        );
        for (namespace, device, v4, v6) in [
            (&lab.client, "nftls-c", "10.77.0.1/24", "fd77::1/64"),
            (&lab.server, "nftls-s", "10.77.0.2/24", "fd77::2/64"),
        ] {
            run("ip", &["-n", namespace, "addr", "add", v4, "dev", device]);
            run(
                "ip",
                &["-n", namespace, "addr", "add", v6, "dev", device, "nodad"],
            );
            run("ip", &["-n", namespace, "link", "set", device, "up"]);
            run("ip", &["-n", namespace, "link", "set", "lo", "up"]);
        }
        lab
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn spawn(&mut self, namespace: &str, args: &[&str], stderr: Option<&Path>) -> u32 {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", namespace])
            .args(args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        match stderr {
            Some(path) => command.stderr(std::fs::File::create(path).unwrap()),
            None => command.stderr(Stdio::null()),
        };
        let child = command.spawn().unwrap_or_else(|e| panic!("{args:?}: {e}"));
        let pid = child.id();
        self.children.push(child);
        pid
    }

    fn listening(&self, port: u16) -> bool {
        let output = Command::new("ip")
            .args(["netns", "exec", &self.server, "ss", "-Hltn"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout).contains(&format!(":{port} "))
    }

    /// Start a capture; returns once tcpdump says it listens.
    fn tcpdump(&mut self, namespace: &str, args: &[&str], file: &str) -> u32 {
        let log = self.path(&format!("{file}.log"));
        let out = self.path(file);
        let mut all = vec![
            "tcpdump",
            "--immediate-mode",
            // A 16 MiB ring (KiB) so that a loaded machine does not drop packets.
            "-B",
            "16384",
            "-U",
            "-w",
            out.to_str().unwrap(),
        ];
        all.extend_from_slice(args);
        let namespace = namespace.to_string();
        let pid = self.spawn(&namespace, &all, Some(&log));
        wait_for("tcpdump", || {
            std::fs::read_to_string(&log).is_ok_and(|t| t.contains("listening on"))
        });
        pid
    }

    /// Stop a capture (SIGINT: tcpdump flushes and exits), wait for it, and check that the
    /// kernel dropped nothing (its last words).
    fn stop(&mut self, pid: u32, file: &str) {
        run("kill", &["-INT", &pid.to_string()]);
        let child = self.children.iter_mut().find(|c| c.id() == pid).unwrap();
        wait_for("tcpdump to exit", || child.try_wait().unwrap().is_some());
        let log = std::fs::read_to_string(self.path(&format!("{file}.log"))).unwrap();
        assert!(
            log.contains("\n0 packets dropped by kernel"),
            "{file}: tcpdump lost packets (machine overloaded?): {log}"
        );
    }

    /// Wait until every server this lab started has exited (each serves one connection),
    /// then until the capture files stop growing.
    fn settle(&mut self, servers: &[u32], files: &[&str]) {
        for pid in servers {
            let child = self.children.iter_mut().find(|c| c.id() == *pid).unwrap();
            wait_for("a server to finish its connection", || {
                child.try_wait().unwrap().is_some()
            });
        }
        let size = |lab: &Lab| -> Vec<u64> {
            files
                .iter()
                .map(|f| std::fs::metadata(lab.path(f)).map_or(0, |m| m.len()))
                .collect()
        };
        let mut last = size(self);
        let mut stable_since = Instant::now();
        wait_for("the captures to settle", || {
            let now = size(self);
            if now != last {
                last = now;
                stable_since = Instant::now();
            }
            stable_since.elapsed() > Duration::from_millis(300)
        });
    }

    /// Run a client to the end (at most 10 s), with `input` on its stdin.
    fn client(&self, args: &[&str], input: &[u8]) {
        let status = self.client_status(args, input);
        assert!(status.success(), "{args:?}: {status}");
    }

    /// Run a client to the end (at most 10 s); its exit status.
    fn client_status(&self, args: &[&str], input: &[u8]) -> std::process::ExitStatus {
        let mut child = Command::new("timeout")
            .args(["10", "ip", "netns", "exec", &self.client])
            .args(args)
            .current_dir(&self.dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input).unwrap();
        child.wait().unwrap()
    }
}

/// One exchange: the server's port and flags, the client's flags, what netfence must say.
struct Case {
    port: u16,
    server: &'static [&'static str],
    client: &'static [&'static str],
    ipv6: bool,
    sni: &'static str,
}

const CASES: &[Case] = &[
    // TLS 1.2, no client certificate asked.
    Case {
        port: 4431,
        server: &["-tls1_2"],
        client: &["-tls1_2"],
        ipv6: false,
        sni: "tls12.test",
    },
    // TLS 1.2, client certificate required and sent.
    Case {
        port: 4432,
        server: &["-tls1_2", "-Verify", "1", "-CAfile", "client.pem"],
        client: &["-tls1_2", "-cert", "client.pem", "-key", "client.key"],
        ipv6: false,
        sni: "mtls12.test",
    },
    // TLS 1.2, certificate requested, the client has none: an empty Certificate message.
    Case {
        port: 4433,
        server: &["-tls1_2", "-verify", "1", "-CAfile", "client.pem"],
        client: &["-tls1_2"],
        ipv6: false,
        sni: "empty12.test",
    },
    // TLS 1.3 without client certificate.
    Case {
        port: 4434,
        server: &["-tls1_3"],
        client: &["-tls1_3"],
        ipv6: false,
        sni: "tls13.test",
    },
    // TLS 1.3 with a client certificate (encrypted: inferred from the client's flight).
    Case {
        port: 4435,
        server: &["-tls1_3", "-Verify", "1", "-CAfile", "client.pem"],
        client: &["-tls1_3", "-cert", "client.pem", "-key", "client.key"],
        ipv6: false,
        sni: "mtls13.test",
    },
    // TLS 1.3, certificate requested, none sent.
    Case {
        port: 4438,
        server: &["-tls1_3", "-verify", "1", "-CAfile", "client.pem"],
        client: &["-tls1_3"],
        ipv6: false,
        sni: "empty13.test",
    },
    // ALPN h2 (TLS 1.3: the server's choice is in EncryptedExtensions, not visible).
    Case {
        port: 4436,
        server: &["-alpn", "h2"],
        client: &["-alpn", "h2,http/1.1"],
        ipv6: false,
        sni: "h2.test",
    },
    // ALPN h2 in TLS 1.2: the choice is in the ServerHello.
    Case {
        port: 4439,
        server: &["-alpn", "h2"],
        client: &["-tls1_2", "-alpn", "h2,http/1.1"],
        ipv6: false,
        sni: "h2-12.test",
    },
    // IPv6.
    Case {
        port: 4437,
        server: &["-6"],
        client: &[],
        ipv6: true,
        sni: "v6.test",
    },
];

const HTTP_PORT: u16 = 8080;
/// A second plain HTTP server, for an HTTP/2 cleartext (prior knowledge) client: python's
/// server answers HTTP/1 and the exchange fails, but the client's preface is on the wire.
const H2C_PORT: u16 = 8082;

fn make_certificates(lab: &Lab) {
    for name in ["server", "client"] {
        run(
            "openssl",
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-days",
                "2",
                "-subj",
                &format!("/CN={name}.test"),
                "-keyout",
                lab.path(&format!("{name}.key")).to_str().unwrap(),
                "-out",
                lab.path(&format!("{name}.pem")).to_str().unwrap(),
            ],
        );
    }
}

/// Run every exchange with captures on; returns the capture files.
fn exchanges(lab: &mut Lab) {
    make_certificates(lab);
    let server = lab.server.clone();
    let client = lab.client.clone();
    let mut servers = Vec::new();
    for case in CASES {
        let port = case.port.to_string();
        let mut args = vec![
            "openssl",
            "s_server",
            "-accept",
            &port,
            "-cert",
            "server.pem",
            "-key",
            "server.key",
            "-naccept",
            "1",
            "-www",
        ];
        args.extend_from_slice(case.server);
        servers.push(lab.spawn(&server, &args, None));
    }
    lab.spawn(
        &server,
        &[
            "/usr/bin/python3",
            "-m",
            "http.server",
            "--bind",
            "10.77.0.2",
            &HTTP_PORT.to_string(),
        ],
        None,
    );
    lab.spawn(
        &server,
        &[
            "/usr/bin/python3",
            "-m",
            "http.server",
            "--bind",
            "10.77.0.2",
            &H2C_PORT.to_string(),
        ],
        None,
    );
    for port in CASES.iter().map(|c| c.port).chain([HTTP_PORT, H2C_PORT]) {
        wait_for(&format!("a listener on {port}"), || lab.listening(port));
    }
    let ethernet = lab.tcpdump(&server, &["-i", "nftls-s"], "eth.pcap");
    let sll = lab.tcpdump(&client, &["-i", "any", "-y", "LINUX_SLL"], "sll.pcap");
    let sll2 = lab.tcpdump(&client, &["-i", "any", "-y", "LINUX_SLL2"], "sll2.pcap");
    lab.client(
        &[
            "curl",
            "-s",
            "--max-time",
            "5",
            &format!("http://10.77.0.2:{HTTP_PORT}/"),
        ],
        b"",
    );
    let h2c = format!("http://10.77.0.2:{H2C_PORT}/");
    lab.client_status(
        &[
            "curl",
            "-s",
            "--max-time",
            "5",
            "--http2-prior-knowledge",
            &h2c,
        ],
        b"",
    );
    for case in CASES {
        let target = if case.ipv6 {
            format!("[fd77::2]:{}", case.port)
        } else {
            format!("10.77.0.2:{}", case.port)
        };
        let mut args = vec![
            "openssl",
            "s_client",
            "-connect",
            &target,
            "-servername",
            case.sni,
        ];
        args.extend_from_slice(case.client);
        lab.client(&args, b"GET / HTTP/1.0\r\n\r\n");
    }
    // Let the last FINs and ACKs reach the captures.
    lab.settle(&servers, &["eth.pcap", "sll.pcap", "sll2.pcap"]);
    for (pid, file) in [
        (ethernet, "eth.pcap"),
        (sll, "sll.pcap"),
        (sll2, "sll2.pcap"),
    ] {
        lab.stop(pid, file);
    }
    run(
        "editcap",
        &[
            "-F",
            "pcapng",
            lab.path("eth.pcap").to_str().unwrap(),
            lab.path("eth.pcapng").to_str().unwrap(),
        ],
    );
}

fn analyze(path: &Path) -> Vec<Record> {
    let mut records = Vec::new();
    netfence_tls::analyze_file(path, Limits::default(), &mut |r| records.push(r))
        .unwrap_or_else(|e| panic!("{e}"));
    records
}

fn linktype(path: &Path) -> u32 {
    let bytes = std::fs::read(path).unwrap();
    u32::from_le_bytes([bytes[20], bytes[21], bytes[22], bytes[23]])
}

/// tshark's reading of one connection: from the ClientHello (SNI, ALPN) and the ServerHello
/// (cipher, version), keyed by the client's port.
#[derive(Debug, Default)]
struct Dissected {
    sni: String,
    alpn: String,
    cipher: String,
    version: String,
    /// JA4 computed here from tshark's ClientHello fields, following FoxIO's JA4.md step by
    /// step (an independent, plain reading of the spec).
    ja4: String,
}

/// JA4 from tshark's comma-separated ClientHello fields (hex `0x1301` values; extension types
/// in decimal). OpenSSL sends no GREASE, but it is dropped as the spec says.
fn reference_ja4(
    ciphers: &str,
    extensions: &str,
    algorithms: &str,
    supported: &str,
    legacy: &str,
    alpn: &str,
) -> String {
    use sha2::{Digest, Sha256};
    let hex = |v: &str| u16::from_str_radix(v.trim_start_matches("0x"), 16).unwrap();
    let decimal = |v: &str| v.parse::<u16>().unwrap();
    let list = |text: &str, parse: &dyn Fn(&str) -> u16| -> Vec<u16> {
        text.split(',')
            .filter(|v| !v.is_empty())
            .map(parse)
            .filter(|v| !(v & 0x0f0f == 0x0a0a && v >> 8 == v & 0xff))
            .collect()
    };
    let ciphers = list(ciphers, &hex);
    let extensions = list(extensions, &decimal);
    let algorithms = list(algorithms, &hex);
    let versions = list(supported, &hex);
    let version = versions
        .iter()
        .copied()
        .max()
        .unwrap_or_else(|| hex(legacy));
    let version = match version {
        0x0304 => "13",
        0x0303 => "12",
        0x0302 => "11",
        0x0301 => "10",
        _ => "00",
    };
    let sni = if extensions.contains(&0) { "d" } else { "i" };
    let first = alpn.split(',').next().unwrap_or("");
    let alpn = match (first.chars().next(), first.chars().last()) {
        (Some(a), Some(b)) => format!("{a}{b}"),
        _ => "00".to_string(),
    };
    let hash = |items: Vec<String>, tail: &str| -> String {
        if items.is_empty() {
            return "000000000000".to_string();
        }
        let text = items.join(",") + tail;
        let digest = Sha256::digest(text.as_bytes());
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        hex[..12].to_string()
    };
    let mut sorted_ciphers: Vec<String> = ciphers.iter().map(|c| format!("{c:04x}")).collect();
    sorted_ciphers.sort();
    let mut sorted_extensions: Vec<String> = extensions
        .iter()
        .filter(|e| **e != 0 && **e != 16)
        .map(|e| format!("{e:04x}"))
        .collect();
    sorted_extensions.sort();
    let algorithms: Vec<String> = algorithms.iter().map(|a| format!("{a:04x}")).collect();
    let tail = match algorithms.is_empty() {
        true => String::new(),
        false => format!("_{}", algorithms.join(",")),
    };
    format!(
        "t{version}{sni}{:02}{:02}{alpn}_{}_{}",
        ciphers.len().min(99),
        extensions.len().min(99),
        hash(sorted_ciphers, ""),
        hash(sorted_extensions, &tail)
    )
}

fn tshark(path: &Path) -> BTreeMap<u16, Dissected> {
    let mut args: Vec<String> = vec!["-r".into(), path.to_str().unwrap().into()];
    for case in CASES {
        args.push("-d".into());
        args.push(format!("tcp.port=={},tls", case.port));
    }
    for field in [
        "-Y",
        "tls.handshake.type == 1 || tls.handshake.type == 2",
        "-T",
        "fields",
        "-E",
        "occurrence=a",
        "-E",
        "aggregator=,",
        "-e",
        "tcp.srcport",
        "-e",
        "tcp.dstport",
        "-e",
        "tls.handshake.type",
        "-e",
        "tls.handshake.extensions_server_name",
        "-e",
        "tls.handshake.extensions_alpn_str",
        "-e",
        "tls.handshake.ciphersuite",
        "-e",
        "tls.handshake.version",
        "-e",
        "tls.handshake.extensions.supported_version",
        "-e",
        "tls.handshake.extension.type",
        "-e",
        "tls.handshake.sig_hash_alg",
    ] {
        args.push(field.into());
    }
    let output = Command::new("tshark").args(&args).output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut connections: BTreeMap<u16, Dissected> = BTreeMap::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let fields: Vec<&str> = line.split('\t').collect();
        let [source, destination, types, sni, alpn, cipher, version, supported, extensions, algorithms] =
            fields[..]
        else {
            panic!("tshark line {line:?}");
        };
        let types: Vec<&str> = types.split(',').collect();
        if types.contains(&"1") {
            let entry = connections.entry(source.parse().unwrap()).or_default();
            entry.sni = sni.to_string();
            entry.alpn = alpn.to_string();
            entry.ja4 = reference_ja4(cipher, extensions, algorithms, supported, version, alpn);
        }
        if types.contains(&"2") {
            let entry = connections.entry(destination.parse().unwrap()).or_default();
            entry.cipher = cipher.to_string();
            // supported_versions' selected version wins over the legacy field (RFC 8446
            // §4.2.1), as netfence reads it.
            entry.version = if supported.is_empty() {
                version.to_string()
            } else {
                supported.to_string()
            };
        }
    }
    connections
}

fn check_cases(records: &[Record], file: &str) {
    let by_port = |port: u16| -> &Record {
        let found: Vec<&Record> = records.iter().filter(|r| r.server.port() == port).collect();
        assert_eq!(
            found.len(),
            1,
            "{file}: connections to port {port}: {found:#?}"
        );
        found[0]
    };
    let http = by_port(HTTP_PORT);
    assert_eq!(http.class, Class::Plaintext, "{file}: {http:#?}");
    assert_eq!(http.protocol, Some("http/1.x"));
    assert_eq!((http.version, http.ja4.as_deref()), (None, None));
    let h2c = by_port(H2C_PORT);
    assert_eq!(
        (h2c.class, h2c.protocol),
        (Class::Plaintext, Some("http/2")),
        "{file}: {h2c:#?}"
    );
    for case in CASES {
        let record = by_port(case.port);
        let context = format!("{file}: port {}: {record:#?}", case.port);
        assert_eq!(record.sni.as_deref(), Some(case.sni), "{context}");
        assert!(record.handshake_complete, "{context}");
        assert!(record.packets >= 8 && record.bytes > 500, "{context}");
        let ja4 = record.ja4.as_deref().unwrap_or_default();
        let expected_class = match case.port {
            4432 => Class::Mtls,
            4435 => Class::MtlsInferred,
            _ => Class::Tls,
        };
        assert_eq!(record.class, expected_class, "{context}");
        match case.client.contains(&"-tls1_2") {
            true => {
                assert_eq!(record.version, Some(Version::Tls12), "{context}");
                assert!(ja4.starts_with("t12d"), "{context}");
                assert_eq!(
                    record.client_certificate,
                    Some(case.port == 4432),
                    "{context}"
                );
                let requested = case.server.contains(&"-CAfile");
                assert_eq!(record.certificate_requested, requested, "{context}");
            }
            false => {
                assert_eq!(record.version, Some(Version::Tls13), "{context}");
                assert!(ja4.starts_with("t13d"), "{context}");
                assert_eq!(record.client_certificate, None, "{context}");
            }
        }
        let flight = record
            .evidence
            .iter()
            .any(|e| matches!(e, Evidence::ClientFlight(_)));
        assert_eq!(flight, case.port == 4435, "{context}");
        if case.client.contains(&"-alpn") {
            assert_eq!(
                record.alpn,
                Some(vec!["h2".to_string(), "http/1.1".to_string()])
            );
            assert!(ja4[..10].ends_with("h2"), "{context}");
        } else {
            assert_eq!(record.alpn, Some(vec![]), "{context}");
            assert!(ja4[..10].ends_with("00"), "{context}");
        }
        let chosen = (case.port == 4439).then_some("h2");
        assert_eq!(record.alpn_chosen.as_deref(), chosen, "{context}");
        assert_eq!(record.client.ip().is_ipv6(), case.ipv6, "{context}");
    }
    assert_eq!(records.len(), CASES.len() + 2, "{file}: {records:#?}");
}

#[test]
fn real_captures_read_as_the_exchanges_were_and_as_tshark_reads_them() {
    let mut lab = Lab::new();
    exchanges(&mut lab);
    assert_eq!(linktype(&lab.path("eth.pcap")), 1, "Ethernet");
    assert_eq!(linktype(&lab.path("sll.pcap")), 113, "LINUX_SLL");
    assert_eq!(linktype(&lab.path("sll2.pcap")), 276, "LINUX_SLL2");
    let mut all = BTreeMap::new();
    for file in ["eth.pcap", "eth.pcapng", "sll.pcap", "sll2.pcap"] {
        let records = analyze(&lab.path(file));
        check_cases(&records, file);
        // tshark, the peer: every TLS connection's version, cipher, SNI and ALPN.
        let dissected = tshark(&lab.path(file));
        let tls: Vec<&Record> = records.iter().filter(|r| r.version.is_some()).collect();
        assert_eq!(tls.len(), dissected.len(), "{file}: {dissected:#?}");
        for record in tls {
            let theirs = &dissected[&record.client.port()];
            let context = format!("{file}: {record:#?} / tshark {theirs:#?}");
            let version = record.version.map(|v| format!("0x{:04x}", v.wire()));
            assert_eq!(
                version.as_deref(),
                Some(theirs.version.as_str()),
                "{context}"
            );
            let cipher = u16::from_str_radix(theirs.cipher.trim_start_matches("0x"), 16).unwrap();
            assert_eq!(record.cipher, Some(cipher), "{context}");
            assert_eq!(
                record.cipher_name(),
                Some(netfence_tls::cipher_name(cipher))
            );
            assert!(
                record.cipher_name().unwrap().starts_with("TLS_"),
                "{context}"
            );
            assert_eq!(record.sni.as_deref().unwrap_or(""), theirs.sni, "{context}");
            assert_eq!(
                record.alpn.as_ref().unwrap().join(","),
                theirs.alpn,
                "{context}"
            );
            assert_eq!(
                record.ja4.as_deref(),
                Some(theirs.ja4.as_str()),
                "{context}"
            );
        }
        all.insert(file, records);
    }
    // The same connections whatever the link layer or file format; the pcapng copy holds the
    // same packets, and both cooked captures were taken at the same point (same counts).
    // Across capture points only the handshake is compared: a point may miss or repeat a
    // packet the other saw (the last ACK as tcpdump stops, a retransmission).
    let summary = |records: &[Record], counts: bool| -> Vec<String> {
        let mut lines: Vec<String> = records
            .iter()
            .map(|r| {
                format!(
                    "{} {} {:?} {:?} {:?} {:?} {:?} {:?} {} {}",
                    r.client,
                    r.server,
                    r.class,
                    r.version,
                    r.cipher,
                    r.sni,
                    r.alpn,
                    r.ja4,
                    if counts { r.bytes } else { 0 },
                    if counts { r.packets } else { 0 }
                )
            })
            .collect();
        lines.sort();
        lines
    };
    assert_eq!(
        summary(&all["eth.pcap"], true),
        summary(&all["eth.pcapng"], true)
    );
    assert_eq!(
        summary(&all["sll.pcap"], true),
        summary(&all["sll2.pcap"], true)
    );
    assert_eq!(
        summary(&all["eth.pcap"], false),
        summary(&all["sll.pcap"], false)
    );
}
