//! `netfence tls`: packet captures read by `netfence_tls`, one record per TCP connection
//! streamed to stdout as connections end (a capture does not fit in memory); with `-f`,
//! addresses resolved to pods and Services and the observations judged by the audit's
//! NF-WIRE checks.

use super::*;
use netfence_audit::{Report, Suppressions, WireObservation};
use netfence_engine::Engine;
use netfence_tls::{Class, Limits, Record};
use std::collections::BTreeMap;
use std::net::SocketAddr;

/// `-o` of `tls`.
#[derive(Clone, Copy, ValueEnum)]
pub enum TlsFormat {
    /// A table, then a summary by class (and the findings with -f).
    Text,
    /// JSON Lines, one connection per line (`client`, `server`, `client_pod`, `server_pod`,
    /// `class`, `version`, `sni`, `alpn`, `cipher`, `client_certificate`, `ja4`, `packets`,
    /// `bytes`, and `protocol`, `alpn_chosen`, `certificate_requested`,
    /// `handshake_complete`, `evidence`).
    Json,
}

/// The arguments of `netfence tls`.
#[derive(Args)]
pub struct TlsArgs {
    /// pcap or pcapng files (tcpdump -w, ksniff, Wireshark), read in order; `-` reads stdin,
    /// so `tcpdump -U -w - | netfence tls -` reports connections as they end.
    #[arg(required = true, value_name = "CAPTURE")]
    pub captures: Vec<PathBuf>,
    #[command(flatten)]
    pub inputs: OptionalInputs,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = TlsFormat::Text)]
    pub output: TlsFormat,
    /// Exit 1 when any connection is plaintext.
    #[arg(long)]
    pub fail_on_plaintext: bool,
    /// With -f: write the NF-WIRE findings to FILE, as `netfence audit -o json` does, or as
    /// SARIF when FILE ends in `.sarif`.
    #[arg(long, value_name = "FILE", requires = "files")]
    pub findings: Option<PathBuf>,
}

/// What `-f` says about an address.
pub struct Resolver<'e> {
    engine: &'e Engine,
}

impl Resolver<'_> {
    /// `ns/pod` of the pod that owns `address`.
    pub fn pod(&self, address: SocketAddr) -> Option<String> {
        let inventory = self.engine.inventory();
        inventory
            .pod_by_ip(address.ip())
            .map(|id| inventory.pods()[id].key())
    }

    /// `ns/svc/name` of the Service whose cluster IP is `address`.
    pub fn service(&self, address: SocketAddr) -> Option<String> {
        self.engine
            .inventory()
            .services
            .iter()
            .find(|s| s.cluster_ips.contains(&address.ip()))
            .map(|s| format!("{}/svc/{}", s.namespace, s.name))
    }
}

/// Observations aggregated by (server, plaintext, version): bounded by the distinct servers,
/// not the connections.
#[derive(Default)]
struct Observations {
    by_server: BTreeMap<(SocketAddr, bool, Option<u16>), WireObservation>,
}

impl Observations {
    fn add(&mut self, record: &Record) {
        let plaintext = record.class == Class::Plaintext;
        let version = record.version.map(|v| v.wire());
        if !plaintext && version.is_none() {
            return;
        }
        self.by_server
            .entry((record.server, plaintext, version))
            .and_modify(|o| o.connections += 1)
            .or_insert_with(|| WireObservation {
                server: record.server,
                client: record.client,
                connections: 1,
                plaintext,
                protocol: record.protocol.map(str::to_string),
                version,
            });
    }
}

/// `netfence tls` (its help text is on [`crate::Command`]).
pub fn tls(args: TlsArgs) -> Result<u8, Failure> {
    let stdin = |paths: &[PathBuf]| paths.iter().any(|p| p.as_os_str() == "-");
    if stdin(&args.captures) && stdin(&args.inputs.files) {
        return Err(Failure::input(
            "stdin (`-`) can be the capture or the manifests (-f), not both",
        ));
    }
    let engine = match args.inputs.files.is_empty() && !args.inputs.cluster.cluster {
        true => None,
        false => Some(inputs::load(&args.inputs.into())?),
    };
    let resolver = engine.as_ref().map(|engine| Resolver { engine });
    let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    let text = matches!(args.output, TlsFormat::Text);
    let mut written: std::io::Result<()> = Ok(());
    // The table's header waits for the first row (or the summary), so that a capture that
    // cannot be read prints an error and nothing else.
    let mut header = text;
    let mut summary = crate::render_tls::Summary::default();
    let mut observations = Observations::default();
    let started = std::time::Instant::now();
    for path in &args.captures {
        // From stdin (a live capture), each record is flushed as it comes.
        let live = path.as_os_str() == "-";
        let mut sink = |record: Record| {
            summary.add(&record);
            observations.add(&record);
            if header && written.is_ok() {
                header = false;
                written = crate::render_tls::header(&mut out, resolver.is_some());
            }
            if written.is_ok() {
                written = match text {
                    true => crate::render_tls::row(&mut out, &record, resolver.as_ref()),
                    false => crate::render_tls::json(&mut out, &record, resolver.as_ref()),
                };
                if live && written.is_ok() {
                    written = out.flush();
                }
            }
        };
        let stats = if live {
            netfence_tls::analyze(path, std::io::stdin(), Limits::default(), &mut sink)
        } else {
            netfence_tls::analyze_file(path, Limits::default(), &mut sink)
        }
        .map_err(|e| Failure::input(e.to_string()))?;
        summary.read(&stats);
        if let Err(error) = &written {
            return Err(io_failure(std::io::Error::new(
                error.kind(),
                error.to_string(),
            )));
        }
    }
    let report = engine.as_ref().map(|engine| {
        let observations: Vec<WireObservation> = observations.by_server.into_values().collect();
        netfence_audit::wire_audit(engine, &Suppressions::default(), &observations)
    });
    if text {
        if header {
            crate::render_tls::header(&mut out, resolver.is_some()).map_err(io_failure)?;
        }
        summary.seconds = started.elapsed().as_secs_f64();
        crate::render_tls::summary(&mut out, &summary, args.captures.len()).map_err(io_failure)?;
        if let Some(report) = &report {
            render::audit_text(&mut out, report, false).map_err(io_failure)?;
        }
    }
    out.flush().map_err(io_failure)?;
    if let (Some(path), Some(report)) = (&args.findings, &report) {
        write_findings(path, report)?;
    }
    Ok(u8::from(
        args.fail_on_plaintext && summary.count(Class::Plaintext) > 0,
    ))
}

fn write_findings(path: &std::path::Path, report: &Report) -> Result<(), Failure> {
    let failure = |e: std::io::Error| Failure::input(format!("--findings {}: {e}", path.display()));
    let file = std::fs::File::create(path).map_err(failure)?;
    let mut file = std::io::BufWriter::new(file);
    let sarif = path.extension().is_some_and(|e| e == "sarif");
    match sarif {
        true => render::audit_sarif(&mut file, report),
        false => render::audit_json(&mut file, report),
    }
    .and_then(|()| file.flush())
    .map_err(failure)
}
