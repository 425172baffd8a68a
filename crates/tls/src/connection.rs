//! The connection table: segments grouped by connection (client = the SYN's sender, else
//! the first sender), each direction reassembled and read until its handshake is known, and
//! one [`Record`] per connection handed out when it ends. The table is bounded; closed
//! connections leave it after a short linger (so their last ACKs still count), the oldest
//! open ones when it is full.

use crate::capture::Segment;
use crate::handshake::{Direction, Facts};
use crate::protocol::{self, Opening};
use crate::stream::Reassembly;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;

/// Istio's HBONE (15008) and inbound capture (15006) ports and Linkerd's inbound proxy port
/// (4143): TLS there is the mesh's mutual TLS (Istio "Ports used by Istio", Linkerd proxy
/// configuration reference).
pub const MESH_PORTS: [u16; 3] = [15008, 15006, 4143];

/// In TLS 1.3 a bare client Finished is one record of at most 4 + 48 (SHA-384) bytes, plus
/// the inner content type and a 16-byte AEAD tag: 69 (RFC 8446 §4.4.4, §5.2); an empty
/// Certificate coalesced with it adds 8. A client's first encrypted record longer than this
/// carries a Certificate with a certificate (and its CertificateVerify).
pub const BARE_FINISHED_MAX: usize = 128;

/// Bounds that keep memory flat.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Connections tracked at once; beyond, the oldest is reported and forgotten.
    pub connections: usize,
    /// Seconds (capture time) a closed connection waits for its last packets.
    pub linger: f64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            connections: 100_000,
            linger: 2.0,
        }
    }
}

/// A connection's class.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Class {
    /// The first payload is not TLS and reads as a clear-text protocol.
    Plaintext,
    /// TLS without a visible client certificate.
    Tls,
    /// TLS ≤ 1.2 with a client Certificate carrying at least one certificate.
    Mtls,
    /// TLS 1.3 (certificates encrypted) with evidence of mutual TLS.
    MtlsInferred,
    /// No payload, or nothing recognisable.
    Unknown,
}

impl Class {
    /// The contract's name (`plaintext`, `tls`, `mtls`, `mtls-inferred`, `unknown`).
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Plaintext => "plaintext",
            Class::Tls => "tls",
            Class::Mtls => "mtls",
            Class::MtlsInferred => "mtls-inferred",
            Class::Unknown => "unknown",
        }
    }
}

/// A negotiated protocol version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Version {
    /// SSL 3.0.
    Ssl3,
    /// TLS 1.0.
    Tls10,
    /// TLS 1.1.
    Tls11,
    /// TLS 1.2.
    Tls12,
    /// TLS 1.3.
    Tls13,
    /// Anything else (a draft, a private number).
    Other(u16),
}

impl Version {
    /// From the wire value.
    pub fn from_wire(value: u16) -> Self {
        match value {
            0x0300 => Version::Ssl3,
            0x0301 => Version::Tls10,
            0x0302 => Version::Tls11,
            0x0303 => Version::Tls12,
            0x0304 => Version::Tls13,
            other => Version::Other(other),
        }
    }

    /// The wire value.
    pub fn wire(self) -> u16 {
        match self {
            Version::Ssl3 => 0x0300,
            Version::Tls10 => 0x0301,
            Version::Tls11 => 0x0302,
            Version::Tls12 => 0x0303,
            Version::Tls13 => 0x0304,
            Version::Other(value) => value,
        }
    }

    /// `TLS1.0` … `TLS1.3`, `SSL3.0`, or `0x7f1c` for others.
    pub fn name(self) -> String {
        match self {
            Version::Ssl3 => "SSL3.0".into(),
            Version::Tls10 => "TLS1.0".into(),
            Version::Tls11 => "TLS1.1".into(),
            Version::Tls12 => "TLS1.2".into(),
            Version::Tls13 => "TLS1.3".into(),
            Version::Other(value) => format!("0x{value:04x}"),
        }
    }
}

/// Why a TLS 1.3 connection is believed to be mutual TLS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Evidence {
    /// The client's first encrypted record is larger than a bare Finished
    /// (`BARE_FINISHED_MAX`): it carries a certificate. The record's length.
    ClientFlight(usize),
    /// The server port is a mesh's mTLS port (`MESH_PORTS`).
    MeshPort(u16),
    /// The client offered a mesh ALPN (Istio's `istio`, `istio-peer-exchange`, `istio-*`).
    MeshAlpn(String),
    /// The SNI is Istio's `outbound_.PORT_._.HOST` form or a SPIFFE id.
    MeshSni(String),
}

impl std::fmt::Display for Evidence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Evidence::ClientFlight(length) => write!(f, "client-flight:{length}"),
            Evidence::MeshPort(port) => write!(f, "mesh-port:{port}"),
            Evidence::MeshAlpn(alpn) => write!(f, "mesh-alpn:{alpn}"),
            Evidence::MeshSni(sni) => write!(f, "mesh-sni:{sni}"),
        }
    }
}

/// One TCP connection, classified.
#[derive(Clone, Debug)]
pub struct Record {
    /// The connection's opener.
    pub client: SocketAddr,
    /// The other end.
    pub server: SocketAddr,
    /// Its class.
    pub class: Class,
    /// The plaintext protocol when recognised (`http/1.x`, `http/2`, `dns`, `postgresql`, …),
    /// or the non-TLS encryption (`ssh`).
    pub protocol: Option<&'static str>,
    /// The negotiated version (ServerHello and supported_versions).
    pub version: Option<Version>,
    /// The negotiated cipher suite's number.
    pub cipher: Option<u16>,
    /// SNI of the ClientHello.
    pub sni: Option<String>,
    /// ALPN names the client offered, in order (None without a ClientHello).
    pub alpn: Option<Vec<String>>,
    /// The ALPN name the server chose.
    pub alpn_chosen: Option<String>,
    /// A client certificate was sent (TLS ≤ 1.2); None when not visible.
    pub client_certificate: Option<bool>,
    /// The server asked for a client certificate (TLS ≤ 1.2).
    pub certificate_requested: bool,
    /// JA4 of the ClientHello.
    pub ja4: Option<String>,
    /// Packets, both directions.
    pub packets: u64,
    /// TCP payload bytes, both directions (retransmissions included).
    pub bytes: u64,
    /// ClientHello, ServerHello and the client's last handshake flight were all seen.
    pub handshake_complete: bool,
    /// For [`Class::MtlsInferred`]: why.
    pub evidence: Vec<Evidence>,
    /// Capture time of the first packet (seconds since the epoch).
    pub start: f64,
}

impl Record {
    /// The cipher suite's IANA name (`TLS_AES_256_GCM_SHA384`), or `0xc0ff` when unknown.
    pub fn cipher_name(&self) -> Option<String> {
        self.cipher.map(cipher_name)
    }
}

/// The IANA name of cipher suite `id` (from `tls-parser`'s table of the IANA registry), or its
/// hex number.
pub fn cipher_name(id: u16) -> String {
    tls_parser::TlsCipherSuite::from_id(id)
        .map(|suite| suite.name.to_string())
        .unwrap_or_else(|| format!("0x{id:04x}"))
}

/// The key of a connection: its two ends, smaller first.
type Key = (SocketAddr, SocketAddr);

fn key(a: SocketAddr, b: SocketAddr) -> Key {
    if a <= b {
        (a, b)
    } else {
        (b, a)
    }
}

/// What the first payload said.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Undecided,
    Decided(Opening),
}

/// Where an in-band upgrade to TLS stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Upgrade {
    None,
    /// The client sent PostgreSQL's SSLRequest (or GSSENCRequest); the server's answer next.
    PostgresAsked,
    /// A MySQL server greeted; the client's SSL request (or its clear login) next.
    MysqlGreeted,
    /// The server agreed: TLS follows, for this protocol.
    Agreed(&'static str),
}

struct Connection {
    generation: u64,
    client: SocketAddr,
    server: SocketAddr,
    start: f64,
    packets: u64,
    bytes: u64,
    fin: [bool; 2],
    closed: bool,
    kind: Kind,
    /// An in-band upgrade to TLS under way or done.
    upgrade: Upgrade,
    /// Stream bytes seen before the opening could be decided (fewer than three).
    opening: Vec<u8>,
    streams: [Reassembly; 2],
    directions: [Direction; 2],
    facts: Facts,
}

impl Connection {
    fn new(generation: u64, client: SocketAddr, server: SocketAddr, time: f64) -> Self {
        Connection {
            generation,
            client,
            server,
            start: time,
            packets: 0,
            bytes: 0,
            fin: [false; 2],
            closed: false,
            kind: Kind::Undecided,
            upgrade: Upgrade::None,
            opening: Vec::new(),
            streams: [Reassembly::default(), Reassembly::default()],
            directions: [Direction::new(true), Direction::new(false)],
            facts: Facts::default(),
        }
    }

    fn segment(&mut self, segment: &Segment<'_>) {
        let side = usize::from(segment.source != self.client);
        self.packets += 1;
        self.bytes += segment.payload.len() as u64;
        if segment.syn {
            self.streams[side].syn(segment.sequence);
        }
        if segment.fin {
            self.fin[side] = true;
        }
        if segment.rst || self.fin == [true, true] {
            self.closed = true;
        }
        let reading = !matches!(self.kind, Kind::Decided(_)) || self.directions[side].wants_more();
        if segment.payload.is_empty() || !reading {
            return;
        }
        let sequence = if segment.syn {
            segment.sequence.wrapping_add(1)
        } else {
            segment.sequence
        };
        // Bytes before the opening is decided are gathered and read after (rarely more than
        // one segment's worth); a TLS stream's go straight to its reader.
        let mut undecided: Vec<u8> = Vec::new();
        let Connection {
            streams,
            directions,
            facts,
            kind,
            ..
        } = self;
        let direction = &mut directions[side];
        streams[side].segment(sequence, segment.payload, &mut |bytes| match kind {
            Kind::Decided(Opening::Tls) => direction.feed(bytes, facts),
            Kind::Decided(_) => {}
            Kind::Undecided => undecided.extend_from_slice(bytes),
        });
        if !undecided.is_empty() {
            self.opening(side, &undecided);
        }
        let Connection {
            streams,
            directions,
            ..
        } = self;
        if streams[side].broken() {
            directions[side].stop();
        }
        let decided_other = matches!(self.kind, Kind::Decided(opening) if opening != Opening::Tls);
        for side in 0..2 {
            if decided_other || !self.directions[side].wants_more() {
                self.directions[side].stop();
                self.streams[side].clear();
            }
        }
    }

    /// Bytes of `side` before the connection's opening is decided: the first three decide
    /// it, except for in-band upgrades to TLS, whose clear-text preamble is stepped over
    /// (PostgreSQL's SSLRequest and the server's one-byte answer, protocol docs "SSL Session
    /// Encryption"; MySQL's greeting and the client's SSL request packet, "Protocol::SSLRequest").
    fn opening(&mut self, side: usize, bytes: &[u8]) {
        let mut bytes = bytes;
        match (self.upgrade, side) {
            (Upgrade::PostgresAsked, 1) => match bytes.first() {
                Some(b'S') => {
                    self.upgrade = Upgrade::Agreed("postgresql");
                    bytes = &bytes[1..];
                }
                Some(b'G') => {
                    self.kind = Kind::Decided(Opening::OtherEncrypted("postgresql-gssenc"));
                    return;
                }
                _ => {
                    self.kind = Kind::Decided(Opening::Plaintext(Some("postgresql")));
                    return;
                }
            },
            (Upgrade::MysqlGreeted, 0) => match protocol::mysql_ssl_request(bytes) {
                Some(length) => {
                    self.upgrade = Upgrade::Agreed("mysql");
                    bytes = &bytes[length..];
                }
                None => {
                    self.kind = Kind::Decided(Opening::Plaintext(Some("mysql")));
                    return;
                }
            },
            (Upgrade::PostgresAsked, _) | (Upgrade::MysqlGreeted, _) => {
                // The other side spoke again before the answer: no upgrade.
                let name = match self.upgrade {
                    Upgrade::PostgresAsked => "postgresql",
                    _ => "mysql",
                };
                self.kind = Kind::Decided(Opening::Plaintext(Some(name)));
                return;
            }
            _ => {}
        }
        self.opening.extend_from_slice(bytes);
        if self.opening.len() < 3 {
            return;
        }
        let opening = std::mem::take(&mut self.opening);
        let decided = protocol::classify(&opening, side == 0, self.server.port());
        let first = self.upgrade == Upgrade::None;
        match decided {
            Opening::Plaintext(Some("postgresql-sslrequest" | "postgresql-gssencrequest"))
                if first && side == 0 && opening.len() == 8 =>
            {
                self.upgrade = Upgrade::PostgresAsked;
            }
            Opening::Plaintext(Some("mysql")) if first && side == 1 => {
                self.upgrade = Upgrade::MysqlGreeted;
            }
            Opening::Tls => {
                self.kind = Kind::Decided(Opening::Tls);
                self.directions[side].feed(&opening, &mut self.facts);
            }
            other => self.kind = Kind::Decided(other),
        }
    }

    fn record(self) -> Record {
        let facts = self.facts;
        let kind = match (self.kind, self.upgrade) {
            (Kind::Decided(opening), _) => opening,
            (Kind::Undecided, Upgrade::PostgresAsked) => {
                Opening::Plaintext(Some("postgresql-sslrequest"))
            }
            (Kind::Undecided, Upgrade::MysqlGreeted) => Opening::Plaintext(Some("mysql")),
            (Kind::Undecided, _) if self.opening.is_empty() => Opening::Unknown,
            (Kind::Undecided, _) => protocol::classify(&self.opening, true, self.server.port()),
        };
        let version = facts.version.map(Version::from_wire);
        let hello = facts.client_hello.as_ref();
        let tls13 = version == Some(Version::Tls13);
        let client_certificate = match (version, facts.client_certificates) {
            (Some(Version::Tls13) | None, _) => None,
            (Some(_), Some(count)) => Some(count > 0),
            (Some(_), None) if facts.client_key_exchange => Some(false),
            (Some(_), None) => None,
        };
        let alpn: Option<Vec<String>> = hello.map(|h| {
            h.alpn
                .iter()
                .map(|name| String::from_utf8_lossy(name).into_owned())
                .collect()
        });
        let mut evidence = Vec::new();
        if tls13 {
            if let Some(length) = facts.client_first_encrypted {
                if length > BARE_FINISHED_MAX {
                    evidence.push(Evidence::ClientFlight(length));
                }
            }
            if MESH_PORTS.contains(&self.server.port()) {
                evidence.push(Evidence::MeshPort(self.server.port()));
            }
            for name in alpn.iter().flatten() {
                if name == "istio" || name.starts_with("istio-") {
                    evidence.push(Evidence::MeshAlpn(name.clone()));
                }
            }
            if let Some(sni) = hello.and_then(|h| h.sni.as_ref()) {
                if sni.starts_with("outbound_.") || sni.starts_with("spiffe://") {
                    evidence.push(Evidence::MeshSni(sni.clone()));
                }
            }
        }
        let class = match kind {
            Opening::Plaintext(_) => Class::Plaintext,
            Opening::Tls if client_certificate == Some(true) => Class::Mtls,
            Opening::Tls if !evidence.is_empty() => Class::MtlsInferred,
            Opening::Tls => Class::Tls,
            Opening::OtherEncrypted(_) | Opening::Unknown => Class::Unknown,
        };
        let upgraded = match self.upgrade {
            Upgrade::Agreed(name) => Some(name),
            _ => None,
        };
        let protocol = match kind {
            Opening::Plaintext(name) => name,
            Opening::OtherEncrypted(name) => Some(name),
            Opening::Tls | Opening::Unknown => upgraded,
        };
        let handshake_complete = hello.is_some()
            && version.is_some()
            && if tls13 {
                facts.client_first_encrypted.is_some()
            } else {
                facts.change_cipher_spec == [true, true]
            };
        Record {
            client: self.client,
            server: self.server,
            class,
            protocol,
            version,
            cipher: facts.cipher,
            sni: hello.and_then(|h| h.sni.clone()),
            alpn,
            alpn_chosen: facts
                .alpn_chosen
                .as_ref()
                .map(|name| String::from_utf8_lossy(name).into_owned()),
            client_certificate,
            certificate_requested: facts.certificate_requested,
            ja4: hello.map(crate::ja4::ja4),
            packets: self.packets,
            bytes: self.bytes,
            handshake_complete,
            evidence,
            start: self.start,
        }
    }
}

/// Segments in, [`Record`]s out.
pub struct Analyzer {
    limits: Limits,
    table: HashMap<Key, Connection>,
    /// Keys in the order their connections began (with their generation; stale entries are
    /// skipped and compacted away).
    order: VecDeque<(Key, u64)>,
    /// Closed connections in the order they closed, with the time.
    closed: VecDeque<(Key, u64, f64)>,
    generation: u64,
}

impl Analyzer {
    /// An empty table.
    pub fn new(limits: Limits) -> Self {
        Analyzer {
            limits: Limits {
                connections: limits.connections.max(1),
                ..limits
            },
            table: HashMap::new(),
            order: VecDeque::new(),
            closed: VecDeque::new(),
            generation: 0,
        }
    }

    /// Connections currently tracked.
    pub fn tracked(&self) -> usize {
        self.table.len()
    }

    /// One segment; records of connections that ended go to `sink`.
    pub fn push(&mut self, segment: &Segment<'_>, sink: &mut dyn FnMut(Record)) {
        self.expire(segment.time, sink);
        let key = key(segment.source, segment.destination);
        let reopened = segment.syn
            && !segment.ack
            && self
                .table
                .get(&key)
                .is_some_and(|c| c.closed || c.client != segment.source);
        if reopened {
            self.emit(key, sink);
        }
        if !self.table.contains_key(&key) {
            // A stray ACK of a connection already reported opens nothing.
            if !segment.syn && segment.payload.is_empty() {
                return;
            }
            if self.table.len() >= self.limits.connections {
                self.evict_oldest(sink);
            }
            let (client, server) = if segment.syn && segment.ack {
                (segment.destination, segment.source)
            } else {
                (segment.source, segment.destination)
            };
            self.generation += 1;
            self.order.push_back((key, self.generation));
            self.table.insert(
                key,
                Connection::new(self.generation, client, server, segment.time),
            );
            self.compact();
        }
        let Some(connection) = self.table.get_mut(&key) else {
            return;
        };
        let was_closed = connection.closed;
        connection.segment(segment);
        if connection.closed && !was_closed {
            self.closed
                .push_back((key, connection.generation, segment.time));
        }
    }

    /// Every connection still tracked, in the order they began.
    pub fn finish(&mut self, sink: &mut dyn FnMut(Record)) {
        while let Some((key, generation)) = self.order.pop_front() {
            if self
                .table
                .get(&key)
                .is_some_and(|c| c.generation == generation)
            {
                self.emit(key, sink);
            }
        }
        self.closed.clear();
    }

    fn emit(&mut self, key: Key, sink: &mut dyn FnMut(Record)) {
        if let Some(connection) = self.table.remove(&key) {
            sink(connection.record());
        }
    }

    /// Report closed connections whose linger is over.
    fn expire(&mut self, now: f64, sink: &mut dyn FnMut(Record)) {
        while let Some(&(key, generation, time)) = self.closed.front() {
            if now - time < self.limits.linger {
                break;
            }
            self.closed.pop_front();
            if self
                .table
                .get(&key)
                .is_some_and(|c| c.generation == generation)
            {
                self.emit(key, sink);
            }
        }
    }

    fn evict_oldest(&mut self, sink: &mut dyn FnMut(Record)) {
        while let Some((key, generation)) = self.order.pop_front() {
            if self
                .table
                .get(&key)
                .is_some_and(|c| c.generation == generation)
            {
                self.emit(key, sink);
                return;
            }
        }
    }

    /// Drop stale entries of `order` when they outnumber live ones (amortised O(1)).
    fn compact(&mut self) {
        if self.order.len() > 2 * self.table.len() + 1024 {
            let table = &self.table;
            self.order.retain(|(key, generation)| {
                table.get(key).is_some_and(|c| c.generation == *generation)
            });
        }
        if self.closed.len() > 2 * self.table.len() + 1024 {
            let table = &self.table;
            self.closed.retain(|(key, generation, _)| {
                table.get(key).is_some_and(|c| c.generation == *generation)
            });
        }
    }
}
