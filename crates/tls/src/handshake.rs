//! TLS records and handshake messages of one connection, read from each direction's
//! reassembled byte stream: records framed here (RFC 8446 §5.1), handshake messages
//! reassembled across records and parsed with `tls-parser`; extensions that the record and
//! JA4 need are read from their raw bytes (in wire order, GREASE included).

use crate::ja4::ClientHello;
use tls_parser::{TlsMessage, TlsMessageHandshake};

/// The most stream bytes buffered per direction while a handshake is read; a certificate
/// chain larger than this leaves the handshake unread (recorded as incomplete).
const MAX_BUFFER: usize = 256 << 10;
/// A TLS record's body is at most 2^14 + 2048 bytes (RFC 5246 §6.2.3, the ciphertext
/// bound); a larger length means this is not TLS.
const MAX_RECORD: usize = (1 << 14) + 2048;

/// Handshake facts gathered from both directions.
#[derive(Clone, Debug, Default)]
pub struct Facts {
    /// The client's (first) ClientHello.
    pub client_hello: Option<ClientHello>,
    /// The negotiated version: supported_versions of the ServerHello, else its version.
    pub version: Option<u16>,
    /// The negotiated cipher suite.
    pub cipher: Option<u16>,
    /// The ALPN protocol the server chose.
    pub alpn_chosen: Option<Vec<u8>>,
    /// A client Certificate message: with how many certificates.
    pub client_certificates: Option<usize>,
    /// The server asked for a client certificate (TLS ≤ 1.2, where it is visible).
    pub certificate_requested: bool,
    /// The client's ClientKeyExchange was seen (its flight before ChangeCipherSpec is over).
    pub client_key_exchange: bool,
    /// ChangeCipherSpec seen from the client and from the server.
    pub change_cipher_spec: [bool; 2],
    /// Length of the client's first encrypted record after the ServerHello (TLS 1.3: its
    /// first encrypted flight starts there).
    pub client_first_encrypted: Option<usize>,
    /// Handshake messages that `tls-parser` refused.
    pub malformed: u32,
}

/// Where one direction's reading stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Reading plaintext records.
    Clear,
    /// After ChangeCipherSpec: handshake records are encrypted.
    Encrypted,
    /// Nothing more to learn from this direction.
    Done,
}

/// One direction's record reader.
#[derive(Debug)]
pub struct Direction {
    from_client: bool,
    buffer: Vec<u8>,
    handshake: Vec<u8>,
    state: State,
}

impl Direction {
    /// A reader for the client's (`from_client`) or the server's stream.
    pub fn new(from_client: bool) -> Self {
        Direction {
            from_client,
            buffer: Vec::new(),
            handshake: Vec::new(),
            state: State::Clear,
        }
    }

    /// Whether this direction still wants stream bytes.
    pub fn wants_more(&self) -> bool {
        self.state != State::Done
    }

    /// Stop reading (a gap in the stream, or the connection is over); frees the buffers.
    pub fn stop(&mut self) {
        self.state = State::Done;
        self.buffer = Vec::new();
        self.handshake = Vec::new();
    }

    /// Read the next in-order bytes of this direction.
    pub fn feed(&mut self, bytes: &[u8], facts: &mut Facts) {
        if self.state == State::Done {
            return;
        }
        // Parse straight from `bytes` when nothing is buffered (the common case: a record
        // in one segment), else from the buffer.
        if self.buffer.is_empty() {
            let used = self.records(bytes, facts);
            if self.state != State::Done {
                self.buffer.extend_from_slice(&bytes[used..]);
            }
        } else {
            self.buffer.extend_from_slice(bytes);
            let buffer = std::mem::take(&mut self.buffer);
            let used = self.records(&buffer, facts);
            if self.state != State::Done {
                self.buffer = buffer;
                self.buffer.drain(..used);
            }
        }
        if self.buffer.len() > MAX_BUFFER {
            self.stop();
        }
    }

    /// Read whole records from `data`; returns the bytes used.
    fn records(&mut self, data: &[u8], facts: &mut Facts) -> usize {
        let mut at = 0;
        while self.state != State::Done {
            let Some(header) = data.get(at..at + 5) else {
                break;
            };
            let (kind, major, length) = (
                header[0],
                header[1],
                usize::from(u16::from_be_bytes([header[3], header[4]])),
            );
            if !(20..=24).contains(&kind) || major != 3 || length > MAX_RECORD {
                self.stop();
                break;
            }
            let Some(body) = data.get(at + 5..at + 5 + length) else {
                break;
            };
            at += 5 + length;
            self.record(kind, body, facts);
        }
        at
    }

    fn record(&mut self, kind: u8, body: &[u8], facts: &mut Facts) {
        let side = usize::from(!self.from_client);
        match (kind, self.state) {
            // change_cipher_spec: what follows from this side is encrypted, except in TLS
            // 1.3, where it is a compatibility no-op (RFC 8446 §5, appendix D.4).
            (20, _) => {
                facts.change_cipher_spec[side] = true;
                let tls13 = facts.version == Some(0x0304);
                if tls13 {
                    return;
                }
                if self.from_client || facts.version.is_some() {
                    self.state = State::Encrypted;
                }
                // TLS ≤ 1.2: everything visible was before it (the encrypted Finished follows).
                if facts.version.is_some() {
                    self.stop();
                }
            }
            (22, State::Clear) => {
                self.handshake.extend_from_slice(body);
                self.messages(facts);
            }
            // application_data: in TLS 1.3 the handshake after ServerHello travels in these.
            (23, _) => {
                if self.from_client && facts.version.is_some() {
                    facts.client_first_encrypted.get_or_insert(body.len());
                }
                self.stop();
            }
            // An encrypted Finished, an alert or a heartbeat: nothing more to read.
            _ => {}
        }
    }

    /// Parse every complete handshake message in the handshake buffer.
    fn messages(&mut self, facts: &mut Facts) {
        let mut at = 0;
        while let Some(header) = self.handshake.get(at..at + 4) {
            let length =
                usize::from(header[1]) << 16 | usize::from(header[2]) << 8 | usize::from(header[3]);
            let Some(message) = self.handshake.get(at..at + 4 + length) else {
                break;
            };
            at += 4 + length;
            let done = self.message(message, facts);
            if done {
                self.stop();
                return;
            }
        }
        self.handshake.drain(..at);
        if self.handshake.len() > MAX_BUFFER {
            self.stop();
        }
    }

    /// One handshake message; true when this direction has nothing more to show.
    fn message(&self, message: &[u8], facts: &mut Facts) -> bool {
        let parsed = match tls_parser::parse_tls_message_handshake(message) {
            Ok((_, TlsMessage::Handshake(handshake))) => handshake,
            _ => {
                facts.malformed += 1;
                return false;
            }
        };
        match (self.from_client, parsed) {
            (true, TlsMessageHandshake::ClientHello(hello)) => {
                if facts.client_hello.is_none() {
                    let mut fields = ClientHello {
                        legacy_version: hello.version.0,
                        ciphers: hello.ciphers.iter().map(|c| c.0).collect(),
                        ..ClientHello::default()
                    };
                    client_extensions(hello.ext.unwrap_or_default(), &mut fields);
                    facts.client_hello = Some(fields);
                }
                false
            }
            (false, TlsMessageHandshake::ServerHello(hello)) => {
                facts.cipher = Some(hello.cipher.0);
                let (selected, alpn) = server_extensions(hello.ext.unwrap_or_default());
                facts.version = Some(selected.unwrap_or(hello.version.0));
                facts.alpn_chosen = alpn;
                // TLS 1.3: everything after the ServerHello is encrypted.
                facts.version == Some(0x0304)
            }
            (true, TlsMessageHandshake::Certificate(certificates)) => {
                facts.client_certificates = Some(certificates.cert_chain.len());
                false
            }
            (false, TlsMessageHandshake::CertificateRequest(_)) => {
                facts.certificate_requested = true;
                false
            }
            (true, TlsMessageHandshake::ClientKeyExchange(_)) => {
                facts.client_key_exchange = true;
                false
            }
            _ => false,
        }
    }
}

/// Walk an extension block: `(type, data)` pairs in wire order; stops at the first
/// malformed one.
fn extensions(mut block: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        let (head, rest) = block.split_at_checked(4)?;
        let kind = u16::from_be_bytes([head[0], head[1]]);
        let length = usize::from(u16::from_be_bytes([head[2], head[3]]));
        let (data, rest) = rest.split_at_checked(length)?;
        block = rest;
        Some((kind, data))
    })
}

/// A list of u16 after a length prefix of `prefix` bytes.
fn u16_list(data: &[u8], prefix: usize) -> Vec<u16> {
    data.get(prefix..)
        .unwrap_or_default()
        .chunks_exact(2)
        .map(|pair| u16::from_be_bytes([pair[0], pair[1]]))
        .collect()
}

/// ALPN's `ProtocolNameList` (RFC 7301 §3.1): a u16 length, then u8-prefixed names.
fn alpn_names(data: &[u8]) -> Vec<Vec<u8>> {
    let mut names = Vec::new();
    let mut rest = data.get(2..).unwrap_or_default();
    while let Some((&length, tail)) = rest.split_first() {
        let Some((name, tail)) = tail.split_at_checked(usize::from(length)) else {
            break;
        };
        names.push(name.to_vec());
        rest = tail;
    }
    names
}

/// The first `host_name` of server_name (RFC 6066 §3).
fn server_name(data: &[u8]) -> Option<String> {
    let mut rest = data.get(2..)?;
    while rest.len() >= 3 {
        let kind = rest[0];
        let length = usize::from(u16::from_be_bytes([rest[1], rest[2]]));
        let name = rest.get(3..3 + length)?;
        if kind == 0 {
            return Some(String::from_utf8_lossy(name).into_owned());
        }
        rest = &rest[3 + length..];
    }
    None
}

fn client_extensions(block: &[u8], hello: &mut ClientHello) {
    for (kind, data) in extensions(block) {
        hello.extensions.push(kind);
        match kind {
            0 => hello.sni = server_name(data),
            13 => hello.signature_algorithms = u16_list(data, 2),
            16 => hello.alpn = alpn_names(data),
            43 => hello.supported_versions = u16_list(data, 1),
            _ => {}
        }
    }
}

/// supported_versions' selected version and the chosen ALPN name of a ServerHello.
fn server_extensions(block: &[u8]) -> (Option<u16>, Option<Vec<u8>>) {
    let (mut version, mut alpn) = (None, None);
    for (kind, data) in extensions(block) {
        match kind {
            43 => version = u16_list(data, 0).first().copied(),
            16 => alpn = alpn_names(data).into_iter().next(),
            _ => {}
        }
    }
    (version, alpn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extension_walk_stops_at_a_cut_extension() {
        let block = [0, 0, 0, 1, 9, 0, 16, 0, 9, 1];
        let found: Vec<(u16, Vec<u8>)> = extensions(&block).map(|(k, d)| (k, d.to_vec())).collect();
        assert_eq!(found, vec![(0, vec![9])]);
    }

    #[test]
    fn alpn_and_sni_lists() {
        assert_eq!(
            alpn_names(&[0, 12, 2, b'h', b'2', 8, b'h', b't', b't', b'p', b'/', b'1', b'.', b'1']),
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        );
        assert_eq!(alpn_names(&[0, 5, 9, b'x']), Vec::<Vec<u8>>::new());
        assert_eq!(
            server_name(&[0, 6, 0, 0, 3, b'a', b'.', b'b']),
            Some("a.b".into())
        );
        assert_eq!(server_name(&[0, 6, 0, 0, 9, b'a']), None);
    }
}
