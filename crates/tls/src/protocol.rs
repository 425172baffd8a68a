//! What a connection's first payload is when it is not TLS: a few protocols named by their
//! opening bytes, printable text, or binary nobody can read (which may be encrypted by
//! something else, so it is not called plaintext).

/// What the first bytes of a stream say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Opening {
    /// A TLS record header (content type 20-23, version 3.x).
    Tls,
    /// A clear-text protocol, named when recognisable.
    Plaintext(Option<&'static str>),
    /// Encrypted by something other than TLS (SSH).
    OtherEncrypted(&'static str),
    /// Not recognisable.
    Unknown,
}

/// HTTP/2's connection preface (RFC 9113 §3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// HTTP/1.x request methods (RFC 9110 §9).
const METHODS: [&[u8]; 9] = [
    b"GET ",
    b"POST ",
    b"PUT ",
    b"HEAD ",
    b"DELETE ",
    b"OPTIONS ",
    b"PATCH ",
    b"CONNECT ",
    b"TRACE ",
];

/// Classify a stream's first bytes (`from_client`: the client sent them; `server_port`
/// helps DNS, whose messages have no magic).
pub fn classify(first: &[u8], from_client: bool, server_port: u16) -> Opening {
    if let [20..=23, 3, minor, ..] = first {
        if *minor <= 4 {
            return Opening::Tls;
        }
    }
    if first.starts_with(H2_PREFACE)
        || (first.len() < H2_PREFACE.len() && first.starts_with(b"PRI * HTTP/2"))
    {
        return Opening::Plaintext(Some("http/2"));
    }
    if METHODS.iter().any(|m| first.starts_with(m)) || first.starts_with(b"HTTP/1.") {
        return Opening::Plaintext(Some("http/1.x"));
    }
    if first.starts_with(b"SSH-") {
        return Opening::OtherEncrypted("ssh");
    }
    if let Some(name) = binary_protocol(first, from_client, server_port) {
        return Opening::Plaintext(Some(name));
    }
    let sample = &first[..first.len().min(256)];
    let printable = sample
        .iter()
        .filter(|b| b.is_ascii_graphic() || matches!(b, b' ' | b'\r' | b'\n' | b'\t'))
        .count();
    if !sample.is_empty() && printable * 10 >= sample.len() * 9 {
        return Opening::Plaintext(None);
    }
    Opening::Unknown
}

fn be16(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*bytes.get(at)?, *bytes.get(at + 1)?]))
}

fn be32(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes([
        *bytes.get(at)?,
        *bytes.get(at + 1)?,
        *bytes.get(at + 2)?,
        *bytes.get(at + 3)?,
    ]))
}

fn binary_protocol(first: &[u8], from_client: bool, server_port: u16) -> Option<&'static str> {
    if from_client {
        // PostgreSQL: a startup message is length, then protocol 3.0; SSLRequest and
        // GSSENCRequest are length 8 and codes 80877103 / 80877104 (protocol docs,
        // "Message Formats").
        match (be32(first, 0), be32(first, 4)) {
            (Some(8), Some(80_877_103)) => return Some("postgresql-sslrequest"),
            (Some(8), Some(80_877_104)) => return Some("postgresql-gssencrequest"),
            (Some(length), Some(0x0003_0000)) if (9..10_000).contains(&length) => {
                return Some("postgresql")
            }
            _ => {}
        }
        // DNS over TCP (RFC 1035 §4.2.2): a two-byte length, then a header with one question.
        if server_port == 53 || server_port == 5353 {
            if let (Some(length), Some(questions)) = (be16(first, 0), be16(first, 6)) {
                if length >= 12 && questions >= 1 {
                    return Some("dns");
                }
            }
        }
    } else {
        // MySQL's server greeting: a 3-byte length, sequence 0, protocol version 10.
        // MySQL's server greeting: a 3-byte length, sequence 0, protocol version 10, then the
        // server version string ("8.0.36").
        if first.len() > 5 && first[3] == 0 && first[4] == 10 && first[5].is_ascii_digit() {
            return Some("mysql");
        }
    }
    None
}

/// MySQL's SSL request (the client's reply to the greeting when it wants TLS): a 32-byte
/// packet, sequence 1, whose capability flags carry CLIENT_SSL (0x0800). Its length with the
/// 4-byte header when `bytes` starts with one.
pub fn mysql_ssl_request(bytes: &[u8]) -> Option<usize> {
    let flags = u32::from_le_bytes([
        *bytes.get(4)?,
        *bytes.get(5)?,
        *bytes.get(6)?,
        *bytes.get(7)?,
    ]);
    let header = bytes.get(..4)?;
    (header == [32, 0, 0, 1] && bytes.len() >= 36 && flags & 0x0800 != 0).then_some(36)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openings() {
        assert_eq!(classify(&[22, 3, 1, 0, 200, 1], true, 443), Opening::Tls);
        assert_eq!(classify(&[23, 3, 3, 0, 20], false, 443), Opening::Tls);
        assert_eq!(
            classify(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", true, 80),
            Opening::Plaintext(Some("http/1.x"))
        );
        assert_eq!(
            classify(H2_PREFACE, true, 80),
            Opening::Plaintext(Some("http/2"))
        );
        assert_eq!(
            classify(&[0, 0, 0, 8, 4, 0xd2, 0x16, 0x2f], true, 5432),
            Opening::Plaintext(Some("postgresql-sslrequest"))
        );
        assert_eq!(
            classify(
                &[0, 29, 0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, b'a', 0, 0, 1, 0, 1],
                true,
                53
            ),
            Opening::Plaintext(Some("dns"))
        );
        assert_eq!(
            classify(b"SSH-2.0-OpenSSH_9.2\r\n", false, 22),
            Opening::OtherEncrypted("ssh")
        );
        assert_eq!(
            classify(b"+OK ready\r\n", false, 110),
            Opening::Plaintext(None)
        );
        assert_eq!(
            classify(&[0x8f, 0x01, 0xfe, 0x77, 0x00, 0x13, 0x99], true, 9000),
            Opening::Unknown
        );
        // A TLS-looking type with a version that is not 3.x is not TLS.
        assert_eq!(classify(&[22, 9, 9], true, 443), Opening::Unknown);
    }
}
