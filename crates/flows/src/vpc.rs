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
        let line = match line.split_once(' ') {
            Some((first, rest)) if first.contains('T') && crate::parse_time(first).is_some() => {
                rest
            }
            _ => line,
        };
        // Up to 64 values on the stack: every known field fits.
        let mut values = [""; FIELDS.len()];
        let mut count = 0;
        for value in line.split_ascii_whitespace() {
            if count < values.len() {
                values[count] = value;
            }
            count += 1;
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
            text.parse::<IpAddr>()
                .map_err(|_| malformed(format!("{what} address is not an IP address")))
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
