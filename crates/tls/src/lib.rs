//! `netfence tls`: is the traffic in a packet capture encrypted? Each TCP connection of a pcap
//! or pcapng file is followed (reassembled enough to read its handshake) and classified:
//! plaintext (with the protocol when recognisable), TLS, mutual TLS (a client certificate
//! seen in TLS ≤ 1.2, inferred in TLS 1.3), with version, cipher, SNI, ALPN and JA4.
//!
//! Data flows one way: [`capture`] (file → TCP segments) → [`Analyzer`] (segments →
//! connections, bounded table) → [`Record`]s handed to the caller as connections end. Memory
//! is flat in the capture's size: the reader streams, the table holds at most
//! [`Limits::connections`] connections, and a connection keeps buffers only while its
//! handshake is being read.
//!
//! ```no_run
//! let mut records = Vec::new();
//! let stats = netfence_tls::analyze_file(
//!     std::path::Path::new("capture.pcap"),
//!     netfence_tls::Limits::default(),
//!     &mut |record| records.push(record),
//! )?;
//! # Ok::<(), netfence_tls::TlsError>(())
//! ```

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod capture;
mod connection;
mod handshake;
pub mod ja4;
pub mod protocol;
mod stream;
pub mod synth;

pub use capture::{CaptureStats, Segment};
pub use connection::{cipher_name, Analyzer, Class, Evidence, Limits, Record, Version};

use std::path::{Path, PathBuf};

/// Why a capture could not be read. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The file could not be opened.
    #[error("{}: {source}", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is empty.
    #[error("{}: empty file, not a pcap or pcapng capture", .0.display())]
    Empty(PathBuf),
    /// Neither a pcap nor a pcapng magic number.
    #[error("{}: not a pcap or pcapng capture (unknown magic number)", .0.display())]
    NotACapture(PathBuf),
    /// The file ends inside a record or block.
    #[error("{}: truncated: record {record} at byte {offset} is cut short by the end of the file", path.display())]
    Truncated {
        /// The file.
        path: PathBuf,
        /// The record's number (1-based, header blocks included).
        record: u64,
        /// Its byte offset.
        offset: u64,
    },
    /// A record or block that does not parse.
    #[error("{}: record {record} at byte {offset}: {detail}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The record's number (1-based, header blocks included).
        record: u64,
        /// Its byte offset.
        offset: u64,
        /// What is wrong.
        detail: String,
    },
    /// A link type this reader does not decode.
    #[error("{}: link type {linktype} is not supported (Ethernet, Linux cooked SLL and SLL2, raw IP and BSD loopback are)", path.display())]
    LinkType {
        /// The file.
        path: PathBuf,
        /// The pcap LINKTYPE_ number.
        linktype: i32,
    },
}

/// Read one capture and classify its connections: `sink` gets each connection's [`Record`]
/// when it ends (its FIN/RST plus a short linger, or eviction from a full table), the rest at
/// the end of the file in the order they began.
///
/// Records already handed to `sink` stay valid when an error ends the file early.
pub fn analyze_file(
    path: &Path,
    limits: Limits,
    sink: &mut dyn FnMut(Record),
) -> Result<CaptureStats, TlsError> {
    let file = std::fs::File::open(path).map_err(|source| TlsError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    analyze(
        path,
        std::io::BufReader::with_capacity(1 << 16, file),
        limits,
        sink,
    )
}

/// [`analyze_file`] on any reader (`path` names it in errors).
pub fn analyze(
    path: &Path,
    input: impl std::io::Read + Send,
    limits: Limits,
    sink: &mut dyn FnMut(Record),
) -> Result<CaptureStats, TlsError> {
    let mut analyzer = Analyzer::new(limits);
    let mut stats = CaptureStats::default();
    let result = capture::read(path, input, &mut stats, &mut |segment| {
        analyzer.push(segment, sink);
    });
    analyzer.finish(sink);
    result.map(|()| stats)
}
