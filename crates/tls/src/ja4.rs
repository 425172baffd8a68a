//! JA4, FoxIO's TLS client fingerprint, of a ClientHello
//! (<https://github.com/FoxIO-LLC/ja4/blob/main/technical_details/JA4.md>):
//! `t` + version + `d`/`i` (SNI or not) + cipher count + extension count + ALPN's first and
//! last characters, then the truncated SHA-256 of the sorted cipher list, then that of the
//! sorted extension list (SNI and ALPN left out) `_` the signature algorithms in wire order.
//! GREASE values (RFC 8701) are ignored everywhere.

use sha2::{Digest, Sha256};

/// The fields of a ClientHello that JA4 (and netfence's record) read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientHello {
    /// `legacy_version` of the ClientHello body.
    pub legacy_version: u16,
    /// Cipher suites in wire order.
    pub ciphers: Vec<u16>,
    /// Extension types in wire order.
    pub extensions: Vec<u16>,
    /// The first host name of the server_name extension.
    pub sni: Option<String>,
    /// ALPN protocol names offered, in order.
    pub alpn: Vec<Vec<u8>>,
    /// supported_versions (extension 43) in order.
    pub supported_versions: Vec<u16>,
    /// signature_algorithms (extension 13) in order.
    pub signature_algorithms: Vec<u16>,
}

/// RFC 8701 GREASE values: 0x0A0A, 0x1A1A, … 0xFAFA.
pub fn is_grease(value: u16) -> bool {
    value & 0x0f0f == 0x0a0a && value >> 8 == value & 0xff
}

/// The `t13d1516h2_8daaf6152771_e5627efa2ab1` fingerprint of `hello` (over TCP).
pub fn ja4(hello: &ClientHello) -> String {
    let version = hello
        .supported_versions
        .iter()
        .copied()
        .filter(|v| !is_grease(*v))
        .max()
        .unwrap_or(hello.legacy_version);
    let version = match version {
        0x0304 => "13",
        0x0303 => "12",
        0x0302 => "11",
        0x0301 => "10",
        0x0300 => "s3",
        0x0002 | 0x0200 => "s2",
        0xfeff => "d1",
        0xfefd => "d2",
        0xfefc => "d3",
        _ => "00",
    };
    let sni = if hello.extensions.contains(&0x0000) {
        'd'
    } else {
        'i'
    };
    let ciphers: Vec<u16> = sorted_without_grease(&hello.ciphers, &[]);
    let extension_count = hello.extensions.iter().filter(|e| !is_grease(**e)).count();
    let cipher_count = hello.ciphers.iter().filter(|c| !is_grease(**c)).count();
    let alpn = alpn_code(hello.alpn.first().map(Vec::as_slice));
    let cipher_hash = truncated_hash(&hex_list(&ciphers));
    let extensions = sorted_without_grease(&hello.extensions, &[0x0000, 0x0010]);
    let extension_hash = if extensions.is_empty() {
        "000000000000".to_string()
    } else {
        let algorithms: Vec<u16> = hello
            .signature_algorithms
            .iter()
            .copied()
            .filter(|a| !is_grease(*a))
            .collect();
        let mut text = hex_list(&extensions);
        if !algorithms.is_empty() {
            text.push('_');
            text.push_str(&hex_list(&algorithms));
        }
        truncated_hash(&text)
    };
    format!(
        "t{version}{sni}{:02}{:02}{alpn}_{cipher_hash}_{extension_hash}",
        cipher_count.min(99),
        extension_count.min(99)
    )
}

/// The first and last characters of the first ALPN value; when either end is not an ASCII
/// letter or digit, the first and last characters of its hex form; `00` without one.
fn alpn_code(first: Option<&[u8]>) -> String {
    let Some((&head, rest)) = first.and_then(<[u8]>::split_first) else {
        return "00".into();
    };
    let tail = rest.last().copied().unwrap_or(head);
    if head.is_ascii_alphanumeric() && tail.is_ascii_alphanumeric() {
        format!("{}{}", head as char, tail as char)
    } else {
        let digits = b"0123456789abcdef";
        format!(
            "{}{}",
            digits[usize::from(head >> 4)] as char,
            digits[usize::from(tail & 0x0f)] as char
        )
    }
}

fn sorted_without_grease(values: &[u16], leave_out: &[u16]) -> Vec<u16> {
    let mut kept: Vec<u16> = values
        .iter()
        .copied()
        .filter(|v| !is_grease(*v) && !leave_out.contains(v))
        .collect();
    kept.sort_unstable();
    kept
}

fn hex_list(values: &[u16]) -> String {
    let texts: Vec<String> = values.iter().map(|v| format!("{v:04x}")).collect();
    texts.join(",")
}

/// The first 12 hex digits of SHA-256; twelve zeros for an empty list (the spec's rule).
fn truncated_hash(text: &str) -> String {
    if text.is_empty() {
        return "000000000000".into();
    }
    let digest = Sha256::digest(text.as_bytes());
    digest.iter().take(6).map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_list(text: &str) -> Vec<u16> {
        text.split(',')
            .map(|v| u16::from_str_radix(v, 16).unwrap())
            .collect()
    }

    /// The hashes of the raw lists the spec publishes (JA4.md, "Raw Output": JA4_r of its
    /// Chrome example): ciphers -> 8daaf6152771, extensions_algorithms -> e5627efa2ab1.
    #[test]
    fn spec_raw_lists_hash_to_the_published_values() {
        assert_eq!(
            truncated_hash(
                "002f,0035,009c,009d,1301,1302,1303,c013,c014,c02b,c02c,c02f,c030,cca8,cca9"
            ),
            "8daaf6152771"
        );
        assert_eq!(
            truncated_hash("0005,000a,000b,000d,0012,0015,0017,001b,0023,002b,002d,0033,4469,ff01_0403,0804,0401,0503,0805,0501,0806,0601"),
            "e5627efa2ab1"
        );
    }

    /// A whole fingerprint from a ClientHello in wire order: the JA4_ro (original order)
    /// published beside `t13d1516h2_8daaf6152771_d8a2da3f94cd` for a Chrome 143 client
    /// (browserleaks.com's output, FoxIO's field layout), with GREASE values added where
    /// Chrome puts them; they must not count.
    #[test]
    fn chrome_hello_in_wire_order_gives_the_published_fingerprint() {
        let mut ciphers = vec![0x5a5a];
        ciphers.extend(parse_list(
            "1301,1302,1303,c02b,c02f,c02c,c030,cca9,cca8,c013,c014,009c,009d,002f,0035",
        ));
        let mut extensions = vec![0x8a8a];
        extensions.extend(parse_list(
            "002d,0033,0010,fe0d,0017,44cd,0000,000b,000a,002b,ff01,0023,0012,0005,000d,001b",
        ));
        extensions.push(0x1a1a);
        let hello = ClientHello {
            legacy_version: 0x0303,
            ciphers,
            extensions,
            sni: Some("tls.browserleaks.com".into()),
            alpn: vec![b"h2".to_vec(), b"http/1.1".to_vec()],
            supported_versions: vec![0x3a3a, 0x0304, 0x0303],
            signature_algorithms: parse_list("0403,0804,0401,0503,0805,0501,0806,0601"),
        };
        assert_eq!(ja4(&hello), "t13d1516h2_8daaf6152771_d8a2da3f94cd");
    }

    #[test]
    fn no_sni_no_alpn_no_supported_versions() {
        let hello = ClientHello {
            legacy_version: 0x0303,
            ciphers: vec![0xc02f],
            extensions: vec![0x000d],
            signature_algorithms: vec![0x0403],
            ..ClientHello::default()
        };
        let fingerprint = ja4(&hello);
        assert!(fingerprint.starts_with("t12i010100_"), "{fingerprint}");
        let empty = ClientHello::default();
        assert_eq!(ja4(&empty), "t00i000000_000000000000_000000000000");
    }

    #[test]
    fn alpn_codes() {
        assert_eq!(alpn_code(Some(b"h2")), "h2");
        assert_eq!(alpn_code(Some(b"http/1.1")), "h1");
        assert_eq!(alpn_code(Some(b"h")), "hh");
        assert_eq!(alpn_code(Some(&[0xab, 0xcd])), "ad");
        assert_eq!(alpn_code(Some(b"")), "00");
        assert_eq!(alpn_code(None), "00");
    }

    #[test]
    fn grease() {
        assert!(is_grease(0x0a0a) && is_grease(0xfafa) && is_grease(0x3a3a));
        assert!(!is_grease(0x0a1a) && !is_grease(0x1301) && !is_grease(0x0000));
    }
}
