//! Renderers of `netfence tls`: a streamed table or JSON Lines, one connection per row, and
//! the summary by class.

use crate::commands::tls::Resolver;
use netfence_tls::{CaptureStats, Class, Record};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{self, Write};

/// The table's header.
pub fn header(out: &mut impl Write, resolved: bool) -> io::Result<()> {
    let (client, server) = match resolved {
        true => ("CLIENT (POD)", "SERVER (POD)"),
        false => ("CLIENT", "SERVER"),
    };
    writeln!(
        out,
        "{client:<30} {server:<30} {:<18} {:<7} {:<40} {:<24} ALPN",
        "CLASS", "VERSION", "CIPHER", "SNI"
    )
}

fn endpoint(address: std::net::SocketAddr, name: Option<String>) -> String {
    match name {
        Some(name) => format!("{name}:{}", address.port()),
        None => address.to_string(),
    }
}

/// One table row.
pub fn row(
    out: &mut impl Write,
    record: &Record,
    resolver: Option<&Resolver<'_>>,
) -> io::Result<()> {
    let client = endpoint(record.client, resolver.and_then(|r| r.pod(record.client)));
    let server = endpoint(
        record.server,
        resolver.and_then(|r| r.pod(record.server).or_else(|| r.service(record.server))),
    );
    let class = match (record.class, record.protocol) {
        (Class::Plaintext | Class::Unknown, Some(protocol)) => {
            format!("{} {protocol}", record.class.as_str())
        }
        (class, _) => class.as_str().to_string(),
    };
    writeln!(
        out,
        "{client:<30} {server:<30} {class:<18} {:<7} {:<40} {:<24} {}",
        record.version.map_or("-".into(), |v| v.name()),
        record.cipher_name().unwrap_or_else(|| "-".into()),
        record.sni.as_deref().unwrap_or("-"),
        record
            .alpn
            .as_ref()
            .filter(|a| !a.is_empty())
            .map_or("-".into(), |a| a.join(","))
    )
}

/// One JSON Lines record; keys in the contract's order, then the extras.
pub fn json(
    out: &mut impl Write,
    record: &Record,
    resolver: Option<&Resolver<'_>>,
) -> io::Result<()> {
    let text = |value: Option<String>| value.map_or(Value::Null, Value::String);
    let mut fields: Vec<(&str, Value)> = vec![
        ("client", Value::String(record.client.to_string())),
        ("server", Value::String(record.server.to_string())),
    ];
    if let Some(resolver) = resolver {
        fields.push(("client_pod", text(resolver.pod(record.client))));
        fields.push(("server_pod", text(resolver.pod(record.server))));
        fields.push(("server_service", text(resolver.service(record.server))));
    }
    fields.extend([
        ("class", Value::String(record.class.as_str().into())),
        ("version", text(record.version.map(|v| v.name()))),
        ("sni", text(record.sni.clone())),
        (
            "alpn",
            record.alpn.as_ref().map_or(Value::Null, |names| {
                Value::Array(names.iter().cloned().map(Value::String).collect())
            }),
        ),
        ("cipher", text(record.cipher_name())),
        (
            "client_certificate",
            record.client_certificate.map_or(Value::Null, Value::Bool),
        ),
        ("ja4", text(record.ja4.clone())),
        ("packets", Value::from(record.packets)),
        ("bytes", Value::from(record.bytes)),
        ("protocol", text(record.protocol.map(str::to_string))),
        ("alpn_chosen", text(record.alpn_chosen.clone())),
        (
            "certificate_requested",
            Value::Bool(record.certificate_requested),
        ),
        ("handshake_complete", Value::Bool(record.handshake_complete)),
        (
            "evidence",
            Value::Array(
                record
                    .evidence
                    .iter()
                    .map(|e| Value::String(e.to_string()))
                    .collect(),
            ),
        ),
    ]);
    out.write_all(b"{")?;
    for (index, (key, value)) in fields.iter().enumerate() {
        if index > 0 {
            out.write_all(b",")?;
        }
        serde_json::to_writer(&mut *out, key)?;
        out.write_all(b":")?;
        serde_json::to_writer(&mut *out, value)?;
    }
    out.write_all(b"}\n")
}

/// Counts for the text summary.
#[derive(Default)]
pub struct Summary {
    classes: BTreeMap<Class, u64>,
    protocols: BTreeMap<&'static str, u64>,
    packets: u64,
    tcp: u64,
    malformed: u64,
    /// Seconds spent reading.
    pub seconds: f64,
}

impl Summary {
    /// Count one connection.
    pub fn add(&mut self, record: &Record) {
        *self.classes.entry(record.class).or_default() += 1;
        if record.class == Class::Plaintext {
            *self
                .protocols
                .entry(record.protocol.unwrap_or("unrecognised"))
                .or_default() += 1;
        }
    }

    /// Count one file's frames.
    pub fn read(&mut self, stats: &CaptureStats) {
        self.packets += stats.packets;
        self.tcp += stats.tcp;
        self.malformed += stats.malformed;
    }

    /// Connections of `class`.
    pub fn count(&self, class: Class) -> u64 {
        self.classes.get(&class).copied().unwrap_or(0)
    }
}

/// The summary after the table.
pub fn summary(out: &mut impl Write, summary: &Summary, files: usize) -> io::Result<()> {
    let total: u64 = summary.classes.values().sum();
    let classes: Vec<String> = [
        Class::Plaintext,
        Class::Tls,
        Class::Mtls,
        Class::MtlsInferred,
        Class::Unknown,
    ]
    .into_iter()
    .map(|class| format!("{} {}", summary.count(class), class.as_str()))
    .collect();
    writeln!(out, "\n{total} connections: {}", classes.join(", "))?;
    if !summary.protocols.is_empty() {
        let protocols: Vec<String> = summary
            .protocols
            .iter()
            .map(|(name, count)| format!("{name} ×{count}"))
            .collect();
        writeln!(out, "plaintext: {}", protocols.join(", "))?;
    }
    writeln!(
        out,
        "{} packets ({} TCP, {} malformed) in {files} file(s), {:.2} s",
        summary.packets, summary.tcp, summary.malformed, summary.seconds
    )
}
