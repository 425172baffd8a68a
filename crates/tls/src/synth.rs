//! Captures built from scratch, for tests and benchmarks: a pcap writer, Ethernet/IP/TCP frames
//! (`etherparse`'s builder), and TLS handshake records (ClientHello, ServerHello, client
//! Certificate) with the fields netfence reads. Not a TLS implementation: the records carry
//! no key material that would verify.

use etherparse::{PacketBuilder, TcpHeader};
use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr};

/// Writes a little-endian pcap file (microsecond timestamps).
pub struct PcapWriter<W: Write> {
    out: W,
}

impl<W: Write> PcapWriter<W> {
    /// Write the file header with `linktype` (1: Ethernet, 101: raw IP, 113: SLL, 276: SLL2).
    pub fn new(mut out: W, linktype: u32) -> io::Result<Self> {
        out.write_all(&0xa1b2_c3d4_u32.to_le_bytes())?;
        out.write_all(&2u16.to_le_bytes())?;
        out.write_all(&4u16.to_le_bytes())?;
        out.write_all(&[0; 8])?;
        out.write_all(&262_144u32.to_le_bytes())?;
        out.write_all(&linktype.to_le_bytes())?;
        Ok(PcapWriter { out })
    }

    /// One frame captured at `time` (seconds).
    pub fn packet(&mut self, time: f64, frame: &[u8]) -> io::Result<()> {
        let seconds = time.trunc() as u32;
        let micros = (time.fract() * 1e6) as u32;
        let length = u32::try_from(frame.len()).unwrap_or(u32::MAX);
        self.out.write_all(&seconds.to_le_bytes())?;
        self.out.write_all(&micros.to_le_bytes())?;
        self.out.write_all(&length.to_le_bytes())?;
        self.out.write_all(&length.to_le_bytes())?;
        self.out.write_all(frame)
    }

    /// The writer back.
    pub fn into_inner(self) -> W {
        self.out
    }
}

/// TCP flags of a built segment.
#[derive(Clone, Copy, Debug, Default)]
pub struct Flags {
    /// SYN.
    pub syn: bool,
    /// ACK (with the acknowledgment number 0: netfence does not read it).
    pub ack: bool,
    /// FIN.
    pub fin: bool,
    /// RST.
    pub rst: bool,
}

/// An Ethernet frame with an IPv4 or IPv6 packet (as the two addresses are) carrying a TCP
/// segment.
pub fn tcp_frame(
    source: SocketAddr,
    destination: SocketAddr,
    sequence: u32,
    flags: Flags,
    payload: &[u8],
) -> Vec<u8> {
    let mut header = TcpHeader::new(source.port(), destination.port(), sequence, 64_240);
    header.syn = flags.syn;
    header.ack = flags.ack;
    header.fin = flags.fin;
    header.rst = flags.rst;
    header.psh = !payload.is_empty();
    let link = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
    let mut frame = Vec::with_capacity(payload.len() + 80);
    let written = match (source.ip(), destination.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => link
            .ipv4(s.octets(), d.octets(), 64)
            .tcp_header(header)
            .write(&mut frame, payload),
        (s, d) => link
            .ipv6(v6(s), v6(d), 64)
            .tcp_header(header)
            .write(&mut frame, payload),
    };
    // Writing to a Vec fails only on a payload larger than an IP packet; leave it empty
    // (a frame that decodes as malformed).
    if written.is_err() {
        frame.clear();
    }
    frame
}

fn v6(address: IpAddr) -> [u8; 16] {
    match address {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

/// A TLS record: type, version 3.3 (3.1 for a ClientHello, as clients send), body.
pub fn record(content_type: u8, body: &[u8]) -> Vec<u8> {
    let minor = if body.first() == Some(&1) && content_type == 22 {
        1
    } else {
        3
    };
    let mut out = vec![content_type, 3, minor];
    out.extend_from_slice(&u16::try_from(body.len()).unwrap_or(u16::MAX).to_be_bytes());
    out.extend_from_slice(body);
    out
}

fn handshake(kind: u8, body: &[u8]) -> Vec<u8> {
    let length = body.len() as u32;
    let mut out = vec![
        kind,
        (length >> 16) as u8,
        (length >> 8) as u8,
        length as u8,
    ];
    out.extend_from_slice(body);
    out
}

fn extension(kind: u16, data: &[u8]) -> Vec<u8> {
    let mut out = kind.to_be_bytes().to_vec();
    out.extend_from_slice(&(data.len() as u16).to_be_bytes());
    out.extend_from_slice(data);
    out
}

fn u16_prefixed(data: &[u8]) -> Vec<u8> {
    let mut out = (data.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(data);
    out
}

fn alpn_extension(names: &[&str]) -> Vec<u8> {
    let mut list = Vec::new();
    for name in names {
        list.push(name.len() as u8);
        list.extend_from_slice(name.as_bytes());
    }
    extension(16, &u16_prefixed(&list))
}

/// A ClientHello handshake message (no record header) offering `ciphers`, with SNI (when
/// given), ALPN (when not empty), supported_versions `versions` (when not empty) and
/// signature_algorithms.
pub fn client_hello(
    sni: Option<&str>,
    alpn: &[&str],
    ciphers: &[u16],
    versions: &[u16],
) -> Vec<u8> {
    let mut body = vec![3, 3];
    body.extend_from_slice(&[0x11; 32]);
    body.push(0);
    let cipher_bytes: Vec<u8> = ciphers.iter().flat_map(|c| c.to_be_bytes()).collect();
    body.extend_from_slice(&u16_prefixed(&cipher_bytes));
    body.extend_from_slice(&[1, 0]);
    let mut extensions = Vec::new();
    if let Some(name) = sni {
        let mut entry = vec![0];
        entry.extend_from_slice(&u16_prefixed(name.as_bytes()));
        extensions.extend(extension(0, &u16_prefixed(&entry)));
    }
    extensions.extend(extension(13, &u16_prefixed(&[4, 3, 8, 4])));
    if !alpn.is_empty() {
        extensions.extend(alpn_extension(alpn));
    }
    if !versions.is_empty() {
        let mut list = vec![(versions.len() * 2) as u8];
        list.extend(versions.iter().flat_map(|v| v.to_be_bytes()));
        extensions.extend(extension(43, &list));
    }
    body.extend_from_slice(&u16_prefixed(&extensions));
    handshake(1, &body)
}

/// A ServerHello handshake message choosing `cipher`; `version` 0x0304 goes in
/// supported_versions (legacy version 1.2), others in the legacy field; `alpn` is the choice.
pub fn server_hello(version: u16, cipher: u16, alpn: Option<&str>) -> Vec<u8> {
    let legacy = version.min(0x0303);
    let mut body = legacy.to_be_bytes().to_vec();
    body.extend_from_slice(&[0x22; 32]);
    body.push(0);
    body.extend_from_slice(&cipher.to_be_bytes());
    body.push(0);
    let mut extensions = Vec::new();
    if version == 0x0304 {
        extensions.extend(extension(43, &0x0304u16.to_be_bytes()));
    }
    if let Some(name) = alpn {
        extensions.extend(alpn_extension(&[name]));
    }
    body.extend_from_slice(&u16_prefixed(&extensions));
    handshake(2, &body)
}

/// A TLS ≤ 1.2 Certificate handshake message with `count` (fake) certificates of `size` bytes.
pub fn certificate(count: usize, size: usize) -> Vec<u8> {
    let mut list = Vec::new();
    for _ in 0..count {
        list.extend_from_slice(&[(size >> 16) as u8, (size >> 8) as u8, size as u8]);
        list.extend(std::iter::repeat_n(0x30, size));
    }
    let length = list.len();
    let mut body = vec![(length >> 16) as u8, (length >> 8) as u8, length as u8];
    body.extend(list);
    handshake(11, &body)
}

/// A ServerHelloDone handshake message.
pub fn server_hello_done() -> Vec<u8> {
    handshake(14, &[])
}

/// A ClientKeyExchange handshake message (an opaque 32-byte ECDH point).
pub fn client_key_exchange() -> Vec<u8> {
    let mut body = vec![32];
    body.extend_from_slice(&[0x44; 32]);
    handshake(16, &body)
}

/// Builds one connection's frames in order: the three-way handshake, then each side's
/// payloads with correct sequence numbers, then FINs.
pub struct Conversation {
    /// The client's address.
    pub client: SocketAddr,
    /// The server's address.
    pub server: SocketAddr,
    sequence: [u32; 2],
    /// Frames built so far, each with the side that sent it (0: client).
    pub frames: Vec<(usize, Vec<u8>)>,
}

impl Conversation {
    /// SYN, SYN-ACK, ACK between `client` and `server`.
    pub fn open(client: SocketAddr, server: SocketAddr, isn: [u32; 2]) -> Self {
        let mut conversation = Conversation {
            client,
            server,
            sequence: [isn[0].wrapping_add(1), isn[1].wrapping_add(1)],
            frames: Vec::new(),
        };
        let syn = Flags {
            syn: true,
            ..Flags::default()
        };
        let syn_ack = Flags {
            syn: true,
            ack: true,
            ..Flags::default()
        };
        let ack = Flags {
            ack: true,
            ..Flags::default()
        };
        conversation
            .frames
            .push((0, tcp_frame(client, server, isn[0], syn, &[])));
        conversation
            .frames
            .push((1, tcp_frame(server, client, isn[1], syn_ack, &[])));
        conversation.frames.push((
            0,
            tcp_frame(client, server, isn[0].wrapping_add(1), ack, &[]),
        ));
        conversation
    }

    /// `side` (0: client) sends `payload`, cut into segments of at most `mss` bytes.
    pub fn send(&mut self, side: usize, payload: &[u8], mss: usize) {
        let (from, to) = self.ends(side);
        for chunk in payload.chunks(mss.max(1)) {
            let ack = Flags {
                ack: true,
                ..Flags::default()
            };
            self.frames
                .push((side, tcp_frame(from, to, self.sequence[side], ack, chunk)));
            self.sequence[side] = self.sequence[side].wrapping_add(chunk.len() as u32);
        }
    }

    /// Both sides send FIN (client first) and the client acknowledges.
    pub fn close(&mut self) {
        let fin = Flags {
            fin: true,
            ack: true,
            ..Flags::default()
        };
        for side in [0, 1] {
            let (from, to) = self.ends(side);
            self.frames
                .push((side, tcp_frame(from, to, self.sequence[side], fin, &[])));
            self.sequence[side] = self.sequence[side].wrapping_add(1);
        }
        let ack = Flags {
            ack: true,
            ..Flags::default()
        };
        let (from, to) = self.ends(0);
        self.frames
            .push((0, tcp_frame(from, to, self.sequence[0], ack, &[])));
    }

    fn ends(&self, side: usize) -> (SocketAddr, SocketAddr) {
        if side == 0 {
            (self.client, self.server)
        } else {
            (self.server, self.client)
        }
    }
}

/// A whole TLS 1.3 connection: ClientHello (SNI `sni`, ALPN h2 and http/1.1), ServerHello
/// (TLS_AES_128_GCM_SHA256), the client's encrypted flight of `client_flight` bytes, then
/// `data` bytes each way in application-data records, and the close.
pub fn tls13_conversation(
    client: SocketAddr,
    server: SocketAddr,
    sni: &str,
    client_flight: usize,
    data: usize,
) -> Conversation {
    let mut conversation = Conversation::open(client, server, [1000, 5000]);
    let hello = client_hello(
        Some(sni),
        &["h2", "http/1.1"],
        &[0x1301, 0x1302, 0xc02f],
        &[0x0304, 0x0303],
    );
    conversation.send(0, &record(22, &hello), 1448);
    let mut flight = record(22, &server_hello(0x0304, 0x1301, None));
    flight.extend(record(20, &[1]));
    flight.extend(record(23, &vec![0x55; 2000]));
    conversation.send(1, &flight, 1448);
    let mut answer = record(20, &[1]);
    answer.extend(record(23, &vec![0x66; client_flight]));
    conversation.send(0, &answer, 1448);
    for side in [0, 1] {
        let mut remaining = data;
        let mut payload = Vec::with_capacity(data + 64);
        while remaining > 0 {
            let length = remaining.min(16_000);
            payload.extend(record(23, &vec![0x77; length]));
            remaining -= length;
        }
        conversation.send(side, &payload, 1448);
    }
    conversation.close();
    conversation
}
