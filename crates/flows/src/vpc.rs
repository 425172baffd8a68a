//! AWS VPC Flow Logs text records ("Flow log records" in the Amazon VPC user guide): space
//! separated values in the order of the flow log's format, `-` for a value that does not apply.
//! The default format is version 2's fourteen fields (`${version} ${account-id}
//! ${interface-id} ${srcaddr} ${dstaddr} ${srcport} ${dstport} ${protocol} ${packets} ${bytes}
//! ${start} ${end} ${action} ${log-status}`); custom formats name any fields of versions 2 to
//! 8, and files delivered to S3 start with a header line naming them. `log-status` NODATA and
//! SKIPDATA records carry no flow. `pkt-srcaddr`/`pkt-dstaddr` (v3) are the packet's own
//! addresses (behind a NAT gateway or for pods on secondary addresses) and win over
//! `srcaddr`/`dstaddr` when present and not `-`.

use crate::read::Line;
use crate::{malformed, Flow, FlowProtocol, Observed, Reply, Skip};
use std::fmt;
use std::net::IpAddr;

/// The fields of VPC Flow Logs versions 2 to 8, by their names in the user guide.
const FIELDS: &[(&str, u8)] = &[
    ("version", 2),
    ("account-id", 2),
    ("interface-id", 2),
    ("srcaddr", 2),
    ("dstaddr", 2),
    ("srcport", 2),
    ("dstport", 2),
    ("protocol", 2),
    ("packets", 2),
    ("bytes", 2),
    ("start", 2),
    ("end", 2),
    ("action", 2),
    ("log-status", 2),
    ("vpc-id", 3),
    ("subnet-id", 3),
    ("instance-id", 3),
    ("tcp-flags", 3),
    ("type", 3),
    ("pkt-srcaddr", 3),
    ("pkt-dstaddr", 3),
    ("region", 4),
    ("az-id", 4),
    ("sublocation-type", 4),
    ("sublocation-id", 4),
    ("pkt-src-aws-service", 5),
    ("pkt-dst-aws-service", 5),
    ("flow-direction", 5),
    ("traffic-path", 5),
    ("ecs-cluster-arn", 7),
    ("ecs-cluster-name", 7),
    ("ecs-container-instance-arn", 7),
    ("ecs-container-instance-id", 7),
    ("ecs-container-id", 7),
    ("ecs-second-container-id", 7),
    ("ecs-service-name", 7),
    ("ecs-task-definition-arn", 7),
    ("ecs-task-arn", 7),
    ("ecs-task-id", 7),
    ("reject-reason", 8),
];

/// The default format: version 2's fourteen fields.
pub const DEFAULT_FORMAT: &str = "${version} ${account-id} ${interface-id} ${srcaddr} ${dstaddr} ${srcport} ${dstport} ${protocol} ${packets} ${bytes} ${start} ${end} ${action} ${log-status}";

/// One field of a format: an index into the table of known fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VpcField(u8);

impl VpcField {
    /// The field called `name` (`srcaddr`; `src_addr`-style underscores are read as hyphens).
    pub fn named(name: &str) -> Option<Self> {
        let name = if name.contains('_') {
            std::borrow::Cow::Owned(name.replace('_', "-"))
        } else {
            std::borrow::Cow::Borrowed(name)
        };
        FIELDS
            .iter()
            .position(|(field, _)| *field == name)
            .and_then(|index| u8::try_from(index).ok())
            .map(VpcField)
    }

    /// The field's name as the user guide writes it.
    pub fn name(self) -> &'static str {
        FIELDS[usize::from(self.0)].0
    }

    /// The flow log version that introduced the field.
    pub fn version(self) -> u8 {
        FIELDS[usize::from(self.0)].1
    }
}

/// Why a `--vpc-format` (or a header line) is not a usable format.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VpcFormatError {
    /// A name that is no VPC Flow Logs field of versions 2 to 8.
    #[error("{0:?} is not a VPC flow log field (versions 2 to 8: version, srcaddr, dstaddr, srcport, dstport, protocol, start, action, log-status, tcp-flags, pkt-srcaddr, pkt-dstaddr, …)")]
    UnknownField(String),
    /// A field the check cannot do without.
    #[error("the format has no {0} field: flows cannot be read without it")]
    Missing(&'static str),
    /// A field named twice.
    #[error("field {0} is named twice")]
    Duplicate(&'static str),
    /// Nothing at all.
    #[error("the format names no fields")]
    Empty,
}

/// Where the fields the reader needs sit in a record.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Slots {
    srcaddr: Option<usize>,
    dstaddr: Option<usize>,
    pkt_srcaddr: Option<usize>,
    pkt_dstaddr: Option<usize>,
    srcport: Option<usize>,
    dstport: Option<usize>,
    protocol: Option<usize>,
    start: Option<usize>,
    action: Option<usize>,
    log_status: Option<usize>,
    tcp_flags: Option<usize>,
}

/// A record format: its fields in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VpcFormat {
    fields: Vec<VpcField>,
    slots: Slots,
}

impl Default for VpcFormat {
    fn default() -> Self {
        // The default format is made of known fields; parsing it cannot fail.
        match VpcFormat::parse(DEFAULT_FORMAT) {
            Ok(format) => format,
            Err(_) => unreachable!("the default format parses"),
        }
    }
}

impl fmt::Display for VpcFormat {
    /// AWS's `${field} …` form.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<String> = self
            .fields
            .iter()
            .map(|field| format!("${{{}}}", field.name()))
            .collect();
        f.write_str(&names.join(" "))
    }
}

impl VpcFormat {
    /// A format in AWS's `${version} ${srcaddr} …` form, or as bare names
    /// (`version srcaddr …`, as S3 header lines write it).
    ///
    /// ```
    /// let format = netfence_flows::VpcFormat::parse("${srcaddr} ${dstaddr} ${protocol}").unwrap();
    /// assert_eq!(format.fields().len(), 3);
    /// ```
    pub fn parse(text: &str) -> Result<Self, VpcFormatError> {
        let mut fields = Vec::new();
        for token in text.split_ascii_whitespace() {
            let name = token
                .strip_prefix("${")
                .and_then(|rest| rest.strip_suffix('}'))
                .unwrap_or(token);
            let field = VpcField::named(name)
                .ok_or_else(|| VpcFormatError::UnknownField(token.to_string()))?;
            if fields.contains(&field) {
                return Err(VpcFormatError::Duplicate(field.name()));
            }
            fields.push(field);
        }
        if fields.is_empty() {
            return Err(VpcFormatError::Empty);
        }
        let position = |name: &str| fields.iter().position(|field| field.name() == name);
        let slots = Slots {
            srcaddr: position("srcaddr"),
            dstaddr: position("dstaddr"),
            pkt_srcaddr: position("pkt-srcaddr"),
            pkt_dstaddr: position("pkt-dstaddr"),
            srcport: position("srcport"),
            dstport: position("dstport"),
            protocol: position("protocol"),
            start: position("start"),
            action: position("action"),
            log_status: position("log-status"),
            tcp_flags: position("tcp-flags"),
        };
        if slots.srcaddr.is_none() && slots.pkt_srcaddr.is_none() {
            return Err(VpcFormatError::Missing("srcaddr (or pkt-srcaddr)"));
        }
        if slots.dstaddr.is_none() && slots.pkt_dstaddr.is_none() {
            return Err(VpcFormatError::Missing("dstaddr (or pkt-dstaddr)"));
        }
        if slots.protocol.is_none() {
            return Err(VpcFormatError::Missing("protocol"));
        }
        Ok(VpcFormat { fields, slots })
    }

    /// The fields, in record order.
    pub fn fields(&self) -> &[VpcField] {
        &self.fields
    }

    /// Read one record. A record behind an RFC 3339 timestamp (a CloudWatch Logs export
    /// writes each event's ingestion time in front) is read without it.
    pub fn record(&self, line: &str) -> Result<Flow, Skip> {
        // Up to 64 values on the stack: every known field fits. Words are split by hand on
        // runs of ASCII whitespace (as `split_ascii_whitespace`, which was this function's
        // hot spot); a byte above b' ' is never whitespace, the common case tested first.
        let mut values = [""; FIELDS.len() + 1];
        let mut count = 0;
        let bytes = line.as_bytes();
        let space = |b: u8| b <= b' ' && b.is_ascii_whitespace();
        let mut i = 0;
        while i < bytes.len() {
            while i < bytes.len() && space(bytes[i]) {
                i += 1;
            }
            let start = i;
            while i < bytes.len() && !space(bytes[i]) {
                i += 1;
            }
            // Split at ASCII whitespace: both ends are char boundaries.
            push_word(
                &mut values,
                &mut count,
                line.get(start..i).unwrap_or_default(),
            );
        }
        // A CloudWatch Logs export writes each event's ingestion time in front.
        let mut values = &values[..count.min(values.len())];
        if values
            .first()
            .is_some_and(|first| first.contains('T') && crate::parse_time(first).is_some())
        {
            values = &values[1..];
            count -= 1;
        }
        if count != self.fields.len() {
            return Err(malformed(format!(
                "{count} fields where the format has {}",
                self.fields.len()
            )));
        }
        let get = |slot: Option<usize>| slot.map(|index| values[index]).filter(|v| *v != "-");
        match get(self.slots.log_status) {
            Some("NODATA") => return Err(Skip::NoData),
            Some("SKIPDATA") => return Err(Skip::SkipData),
            _ => {}
        }
        let address = |packet: Option<usize>, interface: Option<usize>, what: &str| {
            let text = get(packet)
                .or_else(|| get(interface))
                .ok_or_else(|| malformed(format!("no {what} address")))?;
            parse_ip(text).ok_or_else(|| malformed(format!("{what} address is not an IP address")))
        };
        let src = address(self.slots.pkt_srcaddr, self.slots.srcaddr, "source")?;
        let dst = address(self.slots.pkt_dstaddr, self.slots.dstaddr, "destination")?;
        let protocol = get(self.slots.protocol)
            .ok_or_else(|| malformed("no protocol"))?
            .parse::<u8>()
            .map(FlowProtocol::from_number)
            .map_err(|_| malformed("protocol is not an IANA protocol number"))?;
        let mut flow = Flow::new(src, dst, protocol);
        flow.sees_security_groups = true;
        if protocol.ported().is_some() {
            let port = |slot: Option<usize>, what: &str| {
                get(slot)
                    .map(|text| {
                        text.parse::<u16>()
                            .map_err(|_| malformed(format!("{what} port is not a port number")))
                    })
                    .transpose()
            };
            flow.src_port = port(self.slots.srcport, "source")?;
            flow.dst_port = port(self.slots.dstport, "destination")?;
        }
        if let Some(start) = get(self.slots.start) {
            let seconds = start
                .parse::<i64>()
                .map_err(|_| malformed("start is not a time in Unix seconds"))?;
            flow.time = Some(
                jiff::Timestamp::from_second(seconds)
                    .map_err(|_| malformed("start is out of range"))?,
            );
        }
        flow.observed = match get(self.slots.action) {
            Some("ACCEPT") => Some(Observed::Allow),
            Some("REJECT") => Some(Observed::Deny),
            None => None,
            Some(_) => return Err(malformed("action is neither ACCEPT nor REJECT")),
        };
        if let Some(flags) = get(self.slots.tcp_flags) {
            let flags = flags
                .parse::<u8>()
                .map_err(|_| malformed("tcp-flags is not a number"))?;
            flow.tcp_flags = Some(flags);
            // The user guide: flags are OR-ed over the capture window, and ACK is only
            // reported as part of SYN-ACK (18). A record with SYN-ACK is the server's side of
            // the connection (a reply); one with SYN and no SYN-ACK opened it.
            if protocol == FlowProtocol::Tcp {
                flow.reply = if flags & 0x10 != 0 {
                    Reply::Yes
                } else if flags & 0x02 != 0 {
                    Reply::No
                } else {
                    Reply::Unknown
                };
            }
        }
        Ok(flow)
    }
}

/// Keep a non-empty word of a record (counting all of them, keeping what fits).
fn push_word<'a>(values: &mut [&'a str], count: &mut usize, word: &'a str) {
    if !word.is_empty() {
        if let Some(slot) = values.get_mut(*count) {
            *slot = word;
        }
        *count += 1;
    }
}

/// An address: dotted-quad IPv4 read by hand (every record has two, and std's general parser
/// is several times slower), anything else by std. Same answers as `str::parse::<IpAddr>`:
/// four decimal octets of at most three digits, no leading zeros, each at most 255.
fn parse_ip(text: &str) -> Option<IpAddr> {
    let bytes = text.as_bytes();
    if bytes.len() <= 15 && !bytes.contains(&b':') {
        let mut octets = [0u8; 4];
        let mut parts = bytes.split(|&b| b == b'.');
        for octet in &mut octets {
            let part = parts.next()?;
            if part.is_empty() || part.len() > 3 || (part.len() > 1 && part[0] == b'0') {
                return None;
            }
            let mut value = 0u16;
            for &digit in part {
                if !digit.is_ascii_digit() {
                    return None;
                }
                value = value * 10 + u16::from(digit - b'0');
            }
            *octet = u8::try_from(value).ok()?;
        }
        return parts.next().is_none().then(|| IpAddr::from(octets));
    }
    text.parse().ok()
}

/// Whether `line` is a header line: every word a field name (S3 text files start with one).
fn header(line: &str) -> Option<Result<VpcFormat, VpcFormatError>> {
    // Every field name starts with a lowercase letter; records start with a number, `-`, a
    // CloudWatch timestamp or an id (`eni-…`, not a field name): most lines end here.
    if !line
        .trim_start()
        .as_bytes()
        .first()
        .is_some_and(u8::is_ascii_lowercase)
    {
        return None;
    }
    let mut words = line.split_ascii_whitespace();
    let first = words.next()?;
    if VpcField::named(first).is_none() || !words.all(|word| VpcField::named(word).is_some()) {
        return None;
    }
    Some(VpcFormat::parse(line))
}

/// The format in force while reading one file: the configured one, until a header line names
/// the file's own.
pub(crate) struct FileState {
    format: Result<VpcFormat, VpcFormatError>,
}

impl FileState {
    /// Reading a new file with the configured format.
    pub(crate) fn new(format: VpcFormat) -> Self {
        FileState { format: Ok(format) }
    }

    /// One line of the file.
    pub(crate) fn line(&mut self, line: &str) -> Line {
        if let Some(format) = header(line) {
            self.format = format;
            return Line::Header;
        }
        match &self.format {
            Ok(format) => match format.record(line) {
                Ok(flow) => Line::Flow(flow),
                Err(skip) => Line::Skip(skip),
            },
            Err(error) => Line::Skip(malformed(format!("the file's header line: {error}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_ip;
    use proptest::prelude::*;

    #[test]
    fn the_fast_address_parser_agrees_with_std_on_edge_cases() {
        for text in [
            "10.0.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "256.0.0.1",
            "01.2.3.4",
            "1.2.3",
            "1.2.3.4.5",
            "1..2.3",
            "1.2.3.",
            ".1.2.3",
            "1.2.3.4 ",
            "a.b.c.d",
            "1.2.3.-4",
            "::1",
            "fe80::1",
            "::ffff:10.0.0.1",
            "",
            "-",
            "1000.1.1.1",
            "1.2.3.0400",
        ] {
            assert_eq!(parse_ip(text), text.parse().ok(), "{text:?}");
        }
    }

    /// Fields split the same on single spaces (the fast path) and on any runs of ASCII
    /// whitespace (the general path).
    #[test]
    fn records_read_alike_whatever_whitespace_separates_fields() {
        let words = "2 123456789010 eni-1235b8ca123456789 172.31.16.139 172.31.16.21 20641 22 6 20 4249 1418530010 1418530070 ACCEPT OK";
        let format = super::VpcFormat::default();
        let expected = format.record(words).expect("the AWS example reads");
        for separator in ["  ", "\t", " \t ", "\x0c", " \r "] {
            let line = words.split(' ').collect::<Vec<_>>().join(separator);
            let flow = format.record(&line).expect("reads");
            assert_eq!(format!("{flow:?}"), format!("{expected:?}"), "{line:?}");
        }
        let padded = format!("  {words}   ");
        assert_eq!(
            format!("{:?}", format.record(&padded).expect("reads")),
            format!("{expected:?}")
        );
        assert!(format.record(&format!("{words} extra")).is_err());
    }

    proptest! {
        #[test]
        fn the_fast_address_parser_agrees_with_std(text in "[0-9.:a-f]{0,17}") {
            prop_assert_eq!(parse_ip(&text), text.parse().ok());
        }

        #[test]
        fn every_ipv4_address_reads_back(a: u8, b: u8, c: u8, d: u8) {
            let text = format!("{a}.{b}.{c}.{d}");
            prop_assert_eq!(parse_ip(&text), text.parse().ok());
        }
    }
}
