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
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

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
    /// For each field in record order, the slot of the values the reader keeps
    /// ([`SRCADDR`] …) or [`UNUSED`].
    roles: Vec<u8>,
    /// Which short way reads its lines.
    way: Way,
}

/// Which short way reads a format's lines ([`VpcFormat::fast_first_line`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Way {
    /// The default format ([`DEFAULT_FORMAT`]): [`default_first_line`].
    Default,
    /// The default fields first, in their order, then others, as in the custom formats an
    /// EKS cluster's flow log uses (the default fields, then `vpc-id` … `pkt-dstaddr`) and
    /// as AWS's CDK writes a format that adds fields to the default ones
    /// (`LogFormat.ALL_DEFAULT_FIELDS`, then the others): [`default_first_line_with_tail`].
    DefaultFirst(Tail),
    /// Any other format: the general splitter ([`split_first_line`]).
    General,
}

/// Where a format that starts with the default fields ([`Way::DefaultFirst`]) has the kept
/// fields that follow them, by their index in a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Tail {
    /// How many fields the format has: more than the default fourteen, at most all of
    /// [`FIELDS`].
    fields: u8,
    tcp_flags: Option<u8>,
    pkt_srcaddr: Option<u8>,
    pkt_dstaddr: Option<u8>,
}

/// The values a record's reader keeps, by slot.
const SRCADDR: usize = 0;
const DSTADDR: usize = 1;
const PKT_SRCADDR: usize = 2;
const PKT_DSTADDR: usize = 3;
const SRCPORT: usize = 4;
const DSTPORT: usize = 5;
const PROTOCOL: usize = 6;
const START: usize = 7;
const ACTION: usize = 8;
const LOG_STATUS: usize = 9;
const TCP_FLAGS: usize = 10;
const KEPT: usize = 11;
/// A field the reader only counts.
const UNUSED: u8 = u8::MAX;

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
        let mut roles = vec![UNUSED; fields.len()];
        for (slot, position) in [
            slots.srcaddr,
            slots.dstaddr,
            slots.pkt_srcaddr,
            slots.pkt_dstaddr,
            slots.srcport,
            slots.dstport,
            slots.protocol,
            slots.start,
            slots.action,
            slots.log_status,
            slots.tcp_flags,
        ]
        .into_iter()
        .enumerate()
        {
            if let Some(position) = position {
                roles[position] = slot as u8;
            }
        }
        let default_first = fields.len() >= DEFAULT_FIELDS
            && fields
                .iter()
                .take(DEFAULT_FIELDS)
                .enumerate()
                .all(|(n, field)| usize::from(field.0) == n);
        // At most all the fields (no field twice), so that the indexes fit a byte.
        let index = |position: Option<usize>| position.and_then(|at| u8::try_from(at).ok());
        let way = match (default_first, u8::try_from(fields.len())) {
            (true, _) if fields.len() == DEFAULT_FIELDS => Way::Default,
            (true, Ok(count)) => Way::DefaultFirst(Tail {
                fields: count,
                tcp_flags: index(slots.tcp_flags),
                pkt_srcaddr: index(slots.pkt_srcaddr),
                pkt_dstaddr: index(slots.pkt_dstaddr),
            }),
            _ => Way::General,
        };
        Ok(VpcFormat { fields, roles, way })
    }

    /// The fields, in record order.
    pub fn fields(&self) -> &[VpcField] {
        &self.fields
    }

    /// Read one record line (without its line end) the short way, when it is a record in
    /// the usual form: ASCII, starting with a digit, or with a hex letter or colon (an IPv6
    /// address first), so no CloudWatch time in front, as many fields as the format, a flow
    /// (no NODATA or SKIPDATA), and every read value plain (dotted quads or IPv6 addresses in
    /// their usual forms, unsigned decimal numbers, `ACCEPT`/`REJECT`). `None` for any other line: [`VpcFormat::record`] reads
    /// those, and reads every line this reads to the same flow ([`VpcRecord::flow`]).
    #[inline]
    pub fn fast_record(&self, line: &[u8]) -> Option<VpcRecord> {
        // A line feed inside `line` ends the first line short of `line`'s end: such a line
        // (a line end inside a record) is left to the general way.
        let (record, end) = self.fast_first_line(line)?;
        (end == line.len()).then_some(record)
    }

    /// The first line of `bytes` read the short way ([`VpcFormat::fast_record`]), and where
    /// that line ends: the index of its line feed, or `bytes.len()` when it has none. The
    /// line end is found in the same pass as the words, so that a reader need not look for
    /// it first.
    ///
    /// The default format's way is inlined into the caller (the reading loop), the general
    /// splitter's is not.
    #[inline(always)]
    pub(crate) fn fast_first_line(&self, bytes: &[u8]) -> Option<(VpcRecord, usize)> {
        let mut record = VpcRecord::FILLER;
        let end = self.fast_first_line_into(bytes, &mut record)?;
        Some((record, end))
    }

    /// [`VpcFormat::fast_first_line`] with the record written to `record` (anything, when
    /// `None` comes back), where the reader keeps it: a record made on the stack and copied
    /// there was written a field at a time and read back in wider words, which waited for
    /// the narrow stores to reach the cache (7.6 % of the reading loop's `perf` samples on
    /// that one load, docs/performance.md, session 29).
    #[inline(always)]
    pub(crate) fn fast_first_line_into(
        &self,
        bytes: &[u8],
        record: &mut VpcRecord,
    ) -> Option<usize> {
        let first = *bytes.first()?;
        // A version first: the format's own way. A custom format may start with an address
        // instead, and an IPv6 one may start with a hex letter or a colon: the splitter
        // reads such a line (a header line, whose words are field names and no addresses,
        // it leaves).
        let way = if first.is_ascii_digit() {
            self.way
        } else if first.is_ascii_hexdigit() || first == b':' {
            Way::General
        } else {
            return None;
        };
        match way {
            Way::Default => match default_first_line(bytes, record) {
                DefaultWay::Read(end) => return Some(end),
                DefaultWay::Refused => return None,
                DefaultWay::Other => {}
            },
            Way::DefaultFirst(tail) => match default_first_line_with_tail(bytes, tail, record) {
                DefaultWay::Read(end) => return Some(end),
                DefaultWay::Refused => return None,
                DefaultWay::Other => {}
            },
            Way::General => {}
        }
        let (read, end) = self.general_first_line(bytes)?;
        *record = read;
        Some(end)
    }

    /// [`VpcFormat::fast_first_line`] by the general splitter (any format).
    #[inline(never)]
    fn general_first_line(&self, bytes: &[u8]) -> Option<(VpcRecord, usize)> {
        let mut kept = [(0u32, 0u32); KEPT];
        let words = split_first_line(bytes, &self.roles, &mut kept)?;
        if words.count != self.fields.len() || bytes[..words.first_end].contains(&b'T') {
            return None;
        }
        Some((self.fast_values(&bytes[..words.end], &kept)?, words.end))
    }

    /// The values of a line whose kept words' bounds (by slot) are `kept`.
    #[inline(always)]
    fn fast_values(&self, line: &[u8], kept: &[(u32, u32); KEPT]) -> Option<VpcRecord> {
        let get = |slot: usize| kept_value(line, kept, slot);
        if let Some(b"NODATA" | b"SKIPDATA") = get(LOG_STATUS) {
            return None;
        }
        let address = |text: &[u8]| address_word(text, 0, text.len());
        let src = address(get(PKT_SRCADDR).or_else(|| get(SRCADDR))?)?;
        let dst = address(get(PKT_DSTADDR).or_else(|| get(DSTADDR))?)?;
        let protocol = small_number(get(PROTOCOL)?, 3, 255)? as u8;
        let mut record = VpcRecord {
            src,
            dst,
            src_port: None,
            dst_port: None,
            protocol,
            start: None,
            observed: None,
            tcp_flags: None,
            reply: Reply::Unknown,
        };
        if FlowProtocol::from_number(protocol).ported().is_some() {
            let port = |slot: usize| match get(slot) {
                None => Some(None),
                Some(text) => small_number(text, 5, 65535).map(|p| Some(p as u16)),
            };
            record.src_port = port(SRCPORT)?;
            record.dst_port = port(DSTPORT)?;
        }
        if let Some(start) = get(START) {
            record.start = Some(small_number(start, 12, FAST_START_MAX as u64)? as i64);
        }
        record.observed = match get(ACTION) {
            Some(b"ACCEPT") => Some(Observed::Allow),
            Some(b"REJECT") => Some(Observed::Deny),
            None => None,
            Some(_) => return None,
        };
        if let Some(flags) = get(TCP_FLAGS) {
            let flags = small_number(flags, 3, 255)? as u8;
            record.tcp_flags = Some(flags);
            record.reply = tcp_reply(protocol, flags);
        }
        Some(record)
    }

    /// Read one record. A record behind an RFC 3339 timestamp (a CloudWatch Logs export
    /// writes each event's ingestion time in front) is read without it.
    pub fn record(&self, line: &str) -> Result<Flow, Skip> {
        // Only the values the reader reads are kept (by slot); the others are counted. A
        // CloudWatch Logs export writes each event's ingestion time in front: such a first
        // word is read past.
        let mut kept = [""; KEPT];
        let mut count = 0usize;
        let mut leading_time = false;
        split_words(line, &mut |word| {
            if count == 0
                && !leading_time
                && word.contains('T')
                && crate::parse_time(word).is_some()
            {
                leading_time = true;
                return;
            }
            if let Some(&slot) = self.roles.get(count) {
                if let Some(value) = kept.get_mut(usize::from(slot)) {
                    *value = word;
                }
            }
            count += 1;
        });
        if count != self.fields.len() {
            return Err(malformed(format!(
                "{count} fields where the format has {}",
                self.fields.len()
            )));
        }
        // A slot the format lacks stays empty (no word is).
        let get = |slot: usize| Some(kept[slot]).filter(|v| !v.is_empty() && *v != "-");
        match get(LOG_STATUS) {
            Some("NODATA") => return Err(Skip::NoData),
            Some("SKIPDATA") => return Err(Skip::SkipData),
            _ => {}
        }
        let address = |packet: usize, interface: usize, what: &str| {
            let text = get(packet)
                .or_else(|| get(interface))
                .ok_or_else(|| malformed(format!("no {what} address")))?;
            parse_ip(text).ok_or_else(|| malformed(format!("{what} address is not an IP address")))
        };
        let src = address(PKT_SRCADDR, SRCADDR, "source")?;
        let dst = address(PKT_DSTADDR, DSTADDR, "destination")?;
        let number = get(PROTOCOL)
            .ok_or_else(|| malformed("no protocol"))?
            .parse::<u8>()
            .map_err(|_| malformed("protocol is not an IANA protocol number"))?;
        let protocol = FlowProtocol::from_number(number);
        let mut flow = Flow::new(src, dst, protocol);
        flow.sees_security_groups = true;
        if protocol.ported().is_some() {
            let port = |slot: usize, what: &str| {
                get(slot)
                    .map(|text| {
                        text.parse::<u16>()
                            .map_err(|_| malformed(format!("{what} port is not a port number")))
                    })
                    .transpose()
            };
            flow.src_port = port(SRCPORT, "source")?;
            flow.dst_port = port(DSTPORT, "destination")?;
        }
        if let Some(start) = get(START) {
            let seconds = start
                .parse::<i64>()
                .map_err(|_| malformed("start is not a time in Unix seconds"))?;
            flow.time = Some(
                jiff::Timestamp::from_second(seconds)
                    .map_err(|_| malformed("start is out of range"))?,
            );
        }
        flow.observed = match get(ACTION) {
            Some("ACCEPT") => Some(Observed::Allow),
            Some("REJECT") => Some(Observed::Deny),
            None => None,
            Some(_) => return Err(malformed("action is neither ACCEPT nor REJECT")),
        };
        if let Some(flags) = get(TCP_FLAGS) {
            let flags = flags
                .parse::<u8>()
                .map_err(|_| malformed("tcp-flags is not a number"))?;
            flow.tcp_flags = Some(flags);
            flow.reply = tcp_reply(number, flags);
        }
        Ok(flow)
    }
}

/// A VPC record read the short way ([`VpcFormat::fast_record`]): the values the check uses,
/// in 64 bytes, from which the whole [`Flow`] is made only when an output needs it
/// ([`VpcRecord::flow`]). Only records whose every read value is in its usual form (IPv4
/// dotted quads, IPv6 in its usual forms) are read so; any other line is read the general
/// way ([`VpcFormat::record`]), so that a malformed line keeps its reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VpcRecord {
    /// Source address (`pkt-srcaddr` when present and not `-`).
    pub src: IpAddr,
    /// Destination address (`pkt-dstaddr` when present and not `-`).
    pub dst: IpAddr,
    /// Source port, for protocols with ports.
    pub src_port: Option<u16>,
    /// Destination port, for protocols with ports.
    pub dst_port: Option<u16>,
    /// The IANA protocol number.
    pub protocol: u8,
    /// `start` in Unix seconds, within the range of [`jiff::Timestamp`].
    pub start: Option<i64>,
    /// `action`.
    pub observed: Option<Observed>,
    /// `tcp-flags`.
    pub tcp_flags: Option<u8>,
    /// From `tcp-flags`, as [`VpcFormat::record`] reads it.
    pub reply: Reply,
}

/// The latest `start` read the short way: year 8307, well inside [`jiff::Timestamp`]'s range
/// (later ones are read the general way, which says whether they are out of range).
const FAST_START_MAX: i64 = 200_000_000_000;

impl VpcRecord {
    /// A record that stands for none, where one is to be written.
    pub(crate) const FILLER: VpcRecord = VpcRecord {
        src: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        dst: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        src_port: None,
        dst_port: None,
        protocol: 0,
        start: None,
        observed: None,
        tcp_flags: None,
        reply: Reply::Unknown,
    };

    /// The record as [`VpcFormat::record`] reads it.
    pub fn flow(&self) -> Flow {
        let mut flow = Flow::new(self.src, self.dst, FlowProtocol::from_number(self.protocol));
        flow.sees_security_groups = true;
        flow.src_port = self.src_port;
        flow.dst_port = self.dst_port;
        flow.time = self.time();
        flow.observed = self.observed;
        flow.tcp_flags = self.tcp_flags;
        flow.reply = self.reply;
        flow
    }

    /// `start` as a time.
    pub fn time(&self) -> Option<jiff::Timestamp> {
        // In range by construction (at most FAST_START_MAX, not negative).
        self.start
            .and_then(|second| jiff::Timestamp::from_second(second).ok())
    }
}

/// Whether a record of `protocol` with `tcp-flags` `flags` is a reply: for TCP only. The
/// user guide: flags are OR-ed over the capture window, and ACK is only reported as part of
/// SYN-ACK (18). A record with SYN-ACK is the server's side of the connection (a reply); one
/// with SYN and no SYN-ACK opened it. Every way of reading a record asks this.
#[inline(always)]
fn tcp_reply(protocol: u8, flags: u8) -> Reply {
    if protocol != 6 {
        Reply::Unknown
    } else if flags & 0x10 != 0 {
        Reply::Yes
    } else if flags & 0x02 != 0 {
        Reply::No
    } else {
        Reply::Unknown
    }
}

/// The number of fields of the default format, which are the first fields of [`FIELDS`] in
/// that order.
const DEFAULT_FIELDS: usize = 14;

/// The kept word of `slot` in `line` (its bounds in `kept`), unless it is absent, empty or
/// `-`.
#[inline(always)]
fn kept_value<'l>(line: &'l [u8], kept: &[(u32, u32); KEPT], slot: usize) -> Option<&'l [u8]> {
    let (start, end) = *kept.get(slot)?;
    line.get(start as usize..end as usize)
        .filter(|v| !v.is_empty() && *v != b"-")
}

/// What [`default_first_line`] makes of a line.
enum DefaultWay {
    /// The record (written where it was asked), and the index of the line feed that ends it
    /// (or `bytes.len()`).
    Read(usize),
    /// A line the general splitter's short way refuses too: its first word holds a `T` (a
    /// CloudWatch time in front, read the general way).
    Refused,
    /// Any other line: left to the general splitter's short way.
    Other,
}

/// The first line of `bytes` read the short way in the default format's fixed order
/// ([`DEFAULT_FORMAT`]), field after field with one space between them, when every field is
/// in its plainest form: a version of digits, ASCII words for the fields the reader does not
/// keep, dotted quads, decimal numbers or `-`, `ACCEPT`/`REJECT`/`-`, and the line ends in a
/// line feed (CR LF, or the end of `bytes`) right after `log-status`. A line that ends within
/// its first 128 bytes has all its words' ends found at once, and each field is read from
/// its own ([`default_line_at_once`]). Any other is read word after word: the fields the
/// reader does not keep are only looked through for their end (from [`Stops`], the stops
/// of the line's first 128 bytes found at once, or eight bytes at a time past them); the
/// kept ones are read where they stand, and their reading finds their end. Every byte of the line
/// is looked at: an accepted line is ASCII, with exactly fourteen words, so that it reads
/// as [`VpcFormat::record`] reads it. `bytes` starts with a digit.
/// The record is written to `record` (anything, unless [`DefaultWay::Read`]).
#[inline(always)]
fn default_first_line(bytes: &[u8], record: &mut VpcRecord) -> DefaultWay {
    if let Some(way) = default_line_at_once(bytes, record) {
        return way;
    }
    let stops = Stops::<2>::of(bytes);
    let end = stops.word_end(bytes, 0);
    if let Some(way) = version_way(&bytes[..end]) {
        return way;
    }
    match default_fields(bytes, &stops, end, record) {
        Some(end) => DefaultWay::Read(end),
        None => DefaultWay::Other,
    }
}

/// What a line whose first word (the version) is `version` is left to, if it is not read
/// the default way: digits only, nor a CloudWatch time (refused), nor anything else.
#[inline(always)]
fn version_way(version: &[u8]) -> Option<DefaultWay> {
    if version.contains(&b'T') {
        Some(DefaultWay::Refused)
    } else if !version.iter().all(u8::is_ascii_digit) {
        Some(DefaultWay::Other)
    } else {
        None
    }
}

/// [`default_first_line`] of a line that ends within its first 128 bytes, read from its
/// words' ends found all at once ([`default_word_ends`]); `None` when they are not thirteen
/// single spaces and a line's end there (then the line is read word after word). With the
/// ends known, the fields do not wait for each other: word after word, each word's end
/// waits for the one before, and a line's fourteen make one long chain of loads (the
/// reading was bound by it, not by its instruction count; docs/performance.md, session 30).
#[inline(always)]
fn default_line_at_once(bytes: &[u8], record: &mut VpcRecord) -> Option<DefaultWay> {
    let ends = default_word_ends(bytes)?;
    // Word k is bytes[starts[k]..ends[k]].
    let mut starts = [0usize; 14];
    for (start, end) in starts.iter_mut().skip(1).zip(ends) {
        *start = end + 1;
    }
    if let Some(way) = version_way(bytes.get(..ends[0])?) {
        return Some(way);
    }
    Some(match default_words(bytes, &starts, &ends, record) {
        Some(end) => DefaultWay::Read(end),
        None => DefaultWay::Other,
    })
}

/// Where the words of a line are, found all at once.
trait WordBounds {
    /// Word k is `bytes[start..end]` for `(start, end) = self.word(k)`.
    fn word(&self, k: usize) -> (usize, usize);
}

/// Each word's start and end ([`default_line_at_once`]).
impl WordBounds for (&[usize; 14], &[usize; 14]) {
    #[inline(always)]
    fn word(&self, k: usize) -> (usize, usize) {
        (self.0[k], self.1[k])
    }
}

/// Each word's end ([`line_word_ends`]); a word starts past the end of the word before it
/// and its space. Read one at a time: the ends are written a byte at a time, and a wider
/// load of several of them waits until the writes reach the cache (a store-forwarding
/// stall; docs/performance.md, session 32).
impl WordBounds for [u8; 128] {
    #[inline(always)]
    fn word(&self, k: usize) -> (usize, usize) {
        let start = match k.checked_sub(1) {
            Some(before) => usize::from(self[before & 127]) + 1,
            None => 0,
        };
        (start, usize::from(self[k & 127]))
    }
}

/// The fields of a default-format line whose words are `bytes[starts[k]..ends[k]]`
/// ([`default_line_at_once`]), written to `record`, and the index of the line feed that
/// ends it (`record` is anything when `None`).
#[inline(always)]
fn default_words(
    bytes: &[u8],
    starts: &[usize; 14],
    ends: &[usize; 14],
    record: &mut VpcRecord,
) -> Option<usize> {
    let addresses = [(starts[3], ends[3]), (starts[4], ends[4])];
    default_values(bytes, &(starts, ends), addresses, record)?;
    line_feed_at(bytes, ends[13])
}

/// The record of the default fields, written to `record` (anything when `None`), whose
/// words are at `words` ([`WordBounds`]), each found not empty, with the source and
/// destination addresses from the words at `addresses` (`srcaddr` and `dstaddr`, or
/// `pkt-srcaddr` and `pkt-dstaddr`). The fields the reader does not keep (account-id,
/// interface-id, packets, bytes, end) are not looked at.
#[inline(always)]
fn default_values(
    bytes: &[u8],
    words: &impl WordBounds,
    addresses: [(usize, usize); 2],
    record: &mut VpcRecord,
) -> Option<()> {
    let [(src_start, src_end), (dst_start, dst_end)] = addresses;
    let src = address_word(bytes, src_start, src_end)?;
    let dst = address_word(bytes, dst_start, dst_end)?;
    let number = |k: usize, digits: usize, max: u64| {
        let (start, end) = words.word(k);
        optional_number(bytes, start, end, digits, max)
    };
    let src_port = number(5, 5, 65535)?;
    let dst_port = number(6, 5, 65535)?;
    let protocol = {
        let (start, end) = words.word(7);
        number_in(bytes, start, end, 3, 255)? as u8
    };
    let start = number(10, 12, FAST_START_MAX as u64)?;
    let text = |k: usize| {
        let (start, end) = words.word(k);
        bytes.get(start..end)
    };
    let observed = match text(12)? {
        b"ACCEPT" => Some(Observed::Allow),
        b"REJECT" => Some(Observed::Deny),
        b"-" => None,
        _ => return None,
    };
    // log-status, the last field: any word but NODATA and SKIPDATA (records with no flow).
    if let b"NODATA" | b"SKIPDATA" = text(13)? {
        return None;
    }
    write_default_record(
        record,
        [src, dst],
        [src_port, dst_port],
        protocol,
        start,
        observed,
    );
    Some(())
}

/// [`VpcFormat::fast_first_line`] in a format whose first fourteen fields are the default
/// ones in their order ([`Way::DefaultFirst`]), when the line ends within the first 256
/// bytes of `bytes` after single spaces: its words' ends found all at once
/// ([`line_word_ends`]), the default fields read as [`default_words`] reads them, then the
/// kept fields of the others (`tcp-flags`, and `pkt-srcaddr`/`pkt-dstaddr`, which win over
/// `srcaddr`/`dstaddr` unless `-`), as [`VpcFormat::fast_values`] reads them. Any other line
/// is left to the general splitter, which the default way beats by its fixed places: the
/// splitter hands each word's bounds to its slot and reads each kept value in a general way
/// (docs/performance.md, session 32). The record is written to `record` (anything, unless
/// [`DefaultWay::Read`]).
#[inline(always)]
fn default_first_line_with_tail(bytes: &[u8], tail: Tail, record: &mut VpcRecord) -> DefaultWay {
    let mut ends = [0u8; 128];
    let Some(count) = line_word_ends::<4>(bytes, &mut ends) else {
        return DefaultWay::Other;
    };
    if count != usize::from(tail.fields) {
        return DefaultWay::Other;
    }
    // Word k is ends.word(k); k is below `count`.
    if let Some(way) = version_way(&bytes[..ends.word(0).1]) {
        return way;
    }
    // The packet's addresses, unless `-`: then the interface's. The other is not read.
    let address = |packet: Option<u8>, interface: usize| match packet {
        Some(k) => match ends.word(k.into()) {
            (start, end) if end == start + 1 && bytes.get(start) == Some(&b'-') => {
                ends.word(interface)
            }
            word => word,
        },
        None => ends.word(interface),
    };
    let addresses = [address(tail.pkt_srcaddr, 3), address(tail.pkt_dstaddr, 4)];
    if default_values(bytes, &ends, addresses, record).is_none() {
        return DefaultWay::Other;
    }
    let Some(end) = line_feed_at(bytes, ends.word(count - 1).1) else {
        return DefaultWay::Other;
    };
    if let Some(k) = tail.tcp_flags {
        let (start, end) = ends.word(k.into());
        match optional_number(bytes, start, end, 3, 255) {
            Some(Some(flags)) => {
                record.tcp_flags = Some(flags as u8);
                record.reply = tcp_reply(record.protocol, flags as u8);
            }
            Some(None) => {}
            None => return DefaultWay::Other,
        }
    }
    DefaultWay::Read(end)
}

/// Where the line feed that ends a record whose last word ends at `at` is (the CR LF's line
/// feed, or the end of `bytes`), if it ends there.
#[inline(always)]
fn line_feed_at(bytes: &[u8], at: usize) -> Option<usize> {
    match bytes.get(at..)? {
        [] | [b'\n', ..] => Some(at),
        [b'\r', b'\n', ..] => Some(at + 1),
        _ => None,
    }
}

/// Write the record of a default-format line's values as read to `record`, field by field
/// (a record made whole and then copied there cost 14 instructions more, `cachegrind`):
/// ports only for a protocol that has them.
#[inline(always)]
fn write_default_record(
    record: &mut VpcRecord,
    [src, dst]: [IpAddr; 2],
    ports: [Option<u64>; 2],
    protocol: u8,
    start: Option<u64>,
    observed: Option<Observed>,
) {
    let ported = FlowProtocol::from_number(protocol).ported().is_some();
    let [src_port, dst_port] = ports.map(|port| port.filter(|_| ported).map(|port| port as u16));
    record.src = src;
    record.dst = dst;
    record.src_port = src_port;
    record.dst_port = dst_port;
    record.protocol = protocol;
    record.start = start.map(|start| start as i64);
    record.observed = observed;
    record.tcp_flags = None;
    record.reply = Reply::Unknown;
}

/// The address that is all of `bytes[start..end]`: a dotted quad ([`v4_at`]), or else IPv6
/// in its usual forms ([`v6_word`]; an IPv6-only EKS cluster's flow log holds only such
/// addresses). A dotted quad is tried first: every address of an IPv4 log is one, and an IPv6
/// address leaves [`v4_at`] within its first four bytes.
#[inline(always)]
fn address_word(bytes: &[u8], start: usize, end: usize) -> Option<IpAddr> {
    match v4_at(bytes, start) {
        Some((octets, at)) if at == end => Some(IpAddr::from(octets)),
        Some(_) => None,
        None => v6_address_word(bytes, start, end),
    }
}

/// The address that is the word at `at` ([`address_word`]), and where the word ends: a
/// dotted quad ends itself ([`v4_at`]); the end of any other word is read from `stops`.
#[inline(always)]
fn address_word_at<const N: usize>(
    bytes: &[u8],
    stops: &Stops<N>,
    at: usize,
) -> Option<(IpAddr, usize)> {
    if let Some((octets, end)) = v4_at(bytes, at) {
        return Some((IpAddr::from(octets), end));
    }
    v6_address_word_at(bytes, stops, at)
}

/// [`address_word_at`] of a word that is no dotted quad: not inlined into the reading loop,
/// which an IPv4 log keeps to the dotted quads (inlined, the IPv6 reader cost the default
/// format's records 90 instructions each, `cachegrind`).
#[inline(never)]
#[cold]
fn v6_address_word_at<const N: usize>(
    bytes: &[u8],
    stops: &Stops<N>,
    at: usize,
) -> Option<(IpAddr, usize)> {
    let end = stops.skip_word(bytes, at)?;
    Some((v6_address_word(bytes, at, end)?, end))
}

/// [`v6_word`] of `bytes[start..end]` as [`address_word`] hands it back; out of line, as
/// [`v6_address_word_at`].
#[inline(never)]
#[cold]
fn v6_address_word(bytes: &[u8], start: usize, end: usize) -> Option<IpAddr> {
    v6_word(bytes.get(start..end)?).map(IpAddr::V6)
}

/// The number that is all of `bytes[start..end]` ([`number_in`]), or `-` (no value).
#[inline(always)]
fn optional_number(
    bytes: &[u8],
    start: usize,
    end: usize,
    digits: usize,
    max: u64,
) -> Option<Option<u64>> {
    if end == start + 1 && bytes.get(start) == Some(&b'-') {
        return Some(None);
    }
    number_in(bytes, start, end, digits, max).map(Some)
}

/// Where the fourteen words of a default-format line end, when the line ends within the
/// first 128 bytes of `bytes` after thirteen single spaces and no empty word: the thirteen
/// spaces, then the byte that ends the line (the first stop, as [`word_stops`] says, that
/// is no space). `None` for any other line, and when `bytes` is shorter than 128 bytes.
#[inline(always)]
fn default_word_ends(bytes: &[u8]) -> Option<[usize; 14]> {
    let (stops, spaces) = stops_and_spaces::<2>(bytes)?;
    // The line's end: the first stop that is no space.
    let other = [stops[0] & !spaces[0], stops[1] & !spaces[1]];
    let line_end = if other[0] != 0 {
        other[0].trailing_zeros()
    } else if other[1] != 0 {
        64 + other[1].trailing_zeros()
    } else {
        return None;
    };
    // Below it, every stop is a space; with it, no two stops side by side (nor one first).
    let up_to = |word: u32| match line_end.checked_sub(64 * word) {
        Some(bits @ 0..64) => (2u64 << bits).wrapping_sub(1),
        Some(_) => u64::MAX,
        None => 0,
    };
    let low = stops[0] & up_to(0);
    let high = stops[1] & up_to(1);
    let side_by_side = (low & (low << 1 | 1)) | (high & (high << 1 | low >> 63));
    if side_by_side != 0 {
        return None;
    }
    // Each end in turn, the lowest stop left. Which half holds it is a branch, predicted:
    // on most lines of a log the first 64 bytes hold as many stops (choosing the half by
    // masks, with no branch, was slower; docs/performance.md, session 30).
    let (mut low, mut high) = (low, high);
    let mut ends = [0usize; 14];
    for end in &mut ends {
        if low != 0 {
            *end = low.trailing_zeros() as usize;
            low &= low - 1;
        } else {
            *end = 64 + high.trailing_zeros() as usize;
            high &= high.wrapping_sub(1);
        }
    }
    // Fourteen stops: the fourteenth is the line's end, the last of them (with fewer, the
    // halves ran out; with more, the line's end came later). Not counted with
    // `count_ones`: without `popcnt` (not in x86-64's baseline) that takes twenty
    // instructions.
    (ends[13] == line_end as usize).then_some(ends)
}

/// Where the words of a line end, found all at once, when the line ends within the first
/// 64 × N bytes of `bytes` (N at most 4) after single spaces and no empty word: the ends in
/// order in `ends`, the last the line's end (the first stop, as [`word_stops`] says, that is
/// no space), and how many words. `None` for any other line, and when `bytes` is shorter.
/// [`default_word_ends`] is this for the default format's fourteen words within 128 bytes.
/// The ends are written where the caller keeps them: an array of them handed back was
/// copied in wide loads, which waited for the byte stores (docs/performance.md, session 32).
#[inline(always)]
fn line_word_ends<const N: usize>(bytes: &[u8], ends: &mut [u8; 128]) -> Option<usize> {
    let (stops, spaces) = stops_and_spaces::<N>(bytes)?;
    // The line's end: the first stop that is no space.
    let line_end = (0..N).find_map(|k| {
        let other = stops[k] & !spaces[k];
        (other != 0).then(|| 64 * k + other.trailing_zeros() as usize)
    })?;
    // The stops up to the line's end, that one included; below it, every stop is a space,
    // and no two stops are side by side (nor one first: an empty first word).
    let mut upto = [0u64; N];
    let mut side_by_side = 0;
    let mut carry = 1;
    for (k, (upto, &stops)) in upto.iter_mut().zip(&stops).enumerate() {
        *upto = stops
            & match line_end.checked_sub(64 * k) {
                Some(bits @ 0..64) => (2u64 << bits).wrapping_sub(1),
                Some(_) => u64::MAX,
                None => 0,
            };
        side_by_side |= *upto & (*upto << 1 | carry);
        carry = *upto >> 63;
    }
    if side_by_side != 0 {
        return None;
    }
    // With no two side by side, at most 128 stops among 256 bytes: each has its place.
    let mut count = 0;
    for (k, &upto) in upto.iter().enumerate() {
        let mut bits = upto;
        while bits != 0 {
            if let Some(end) = ends.get_mut(count) {
                *end = (64 * k + bits.trailing_zeros() as usize) as u8;
            }
            count += 1;
            bits &= bits - 1;
        }
    }
    Some(count)
}

/// The stops ([`block_stops`]) and the spaces among the first 64 × N bytes of `bytes`, bit
/// n of word k for byte 64 k + n; `None` when `bytes` is shorter (or not on x86-64).
#[inline(always)]
fn stops_and_spaces<const N: usize>(bytes: &[u8]) -> Option<([u64; N], [u64; N])> {
    let (chunks, _) = bytes.get(..64 * N)?.as_chunks::<64>();
    let (mut stops, mut spaces) = ([0u64; N], [0u64; N]);
    for (chunk, (stops, spaces)) in chunks.iter().zip(stops.iter_mut().zip(&mut spaces)) {
        (*stops, *spaces) = chunk_stops_and_spaces(chunk)?;
    }
    Some((stops, spaces))
}

/// [`stops_and_spaces`] of 64 bytes, sixteen at a time.
#[inline(always)]
fn chunk_stops_and_spaces(chunk: &[u8; 64]) -> Option<(u64, u64)> {
    #[cfg(target_arch = "x86_64")]
    {
        use safe_arch::{
            cmp_eq_mask_i8_m128i, load_unaligned_m128i, move_mask_i8_m128i, set_splat_i8_m128i,
        };
        let (blocks, _) = chunk.as_chunks::<16>();
        let space = set_splat_i8_m128i(0x20);
        let (mut stops, mut spaces) = (0u64, 0u64);
        for (n, block) in blocks.iter().enumerate() {
            let v = load_unaligned_m128i(block);
            stops |= u64::from(block_stops(v)) << (16 * n);
            let is_space = move_mask_i8_m128i(cmp_eq_mask_i8_m128i(v, space)) as u16;
            spaces |= u64::from(is_space) << (16 * n);
        }
        Some((stops, spaces))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = chunk;
        None
    }
}

/// [`default_first_line`] after the version (digits), which ends at `at`; the record is
/// written to `record` when the line reads.
#[inline(always)]
fn default_fields(
    bytes: &[u8],
    stops: &Stops<2>,
    at: usize,
    record: &mut VpcRecord,
) -> Option<usize> {
    let skip_word = |bytes, at| stops.skip_word(bytes, at);
    let at = skip_word(bytes, space(bytes, at)?)?; // account-id
    let at = skip_word(bytes, space(bytes, at)?)?; // interface-id
    let (src, at) = address_word_at(bytes, stops, space(bytes, at)?)?;
    let (dst, at) = address_word_at(bytes, stops, space(bytes, at)?)?;
    let (src_port, at) = optional_number_word(bytes, stops, space(bytes, at)?, 5, 65535)?;
    let (dst_port, at) = optional_number_word(bytes, stops, space(bytes, at)?, 5, 65535)?;
    let (protocol, at) = number_word(bytes, stops, space(bytes, at)?, 3, 255)?;
    let at = skip_word(bytes, space(bytes, at)?)?; // packets
    let at = skip_word(bytes, space(bytes, at)?)?; // bytes
    let (start, at) =
        optional_number_word(bytes, stops, space(bytes, at)?, 12, FAST_START_MAX as u64)?;
    let at = skip_word(bytes, space(bytes, at)?)?; // end
    let at = space(bytes, at)?;
    // action, and the space after it. Which of the two actions is no branch: they come in
    // any order.
    let word = eight_bytes(bytes, at, b'\n') & 0x00ff_ffff_ffff_ffff;
    let (accept, reject) = (word == ACCEPT, word == REJECT);
    let (observed, at) = if accept | reject {
        (
            [Some(Observed::Allow), Some(Observed::Deny)][usize::from(reject)],
            at + 7,
        )
    } else if bytes.get(at..at + 2) == Some(b"- ") {
        (None, at + 2)
    } else {
        return None;
    };
    // log-status, the last field: any word but NODATA and SKIPDATA (records with no flow).
    let end = skip_word(bytes, at)?;
    if let b"NODATA" | b"SKIPDATA" = &bytes[at..end] {
        return None;
    }
    let end = line_feed_at(bytes, end)?;
    write_default_record(
        record,
        [src, dst],
        [src_port, dst_port],
        protocol as u8,
        start,
        observed,
    );
    Some(end)
}

/// For eight bytes `x`: the high bit of each byte that cannot be inside a plain word: ASCII
/// whitespace and other control bytes (at most 0x20, as in [`low_and_spaces`]) and non-ASCII
/// bytes (high bit set).
#[inline(always)]
fn word_stops(x: u64) -> u64 {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    const ABOVE_SPACE: u64 = 0x5f5f_5f5f_5f5f_5f5f;
    (!((x & LOW7) + ABOVE_SPACE) | x) & HIGH
}

/// The index of the first byte from `at` on that is no printable ASCII (see [`word_stops`]),
/// or `bytes.len()`; eight bytes at a time. `at` is at most `bytes.len()`.
#[inline(always)]
fn word_end(bytes: &[u8], mut at: usize) -> usize {
    loop {
        // Past the end of `bytes`, line feeds: a stop.
        let stops = word_stops(eight_bytes(bytes, at, b'\n'));
        if stops != 0 {
            return at + (stops.trailing_zeros() / 8) as usize;
        }
        at += 8;
    }
}

/// Where the words of a line's first bytes end, found for all of them at once: the bytes
/// [`word_stops`] stops at among the first `64 × N` bytes of a line (when it has that many),
/// sixteen at a time. A word's end is then its first stop, with no loop over its bytes; the
/// ends of the lengths a log's words take from record to record (addresses, counters) no
/// longer have a loop mispredict where it stops.
struct Stops<const N: usize> {
    /// Bit n of word k: byte 64 k + n is a stop.
    bits: [u64; N],
    /// How many bytes `bits` covers: 64 × N, or 0.
    known: usize,
}

impl<const N: usize> Stops<N> {
    #[inline(always)]
    fn of(bytes: &[u8]) -> Self {
        #[cfg(target_arch = "x86_64")]
        if let Some((blocks, _)) = bytes.get(..64 * N).map(<[u8]>::as_chunks::<16>) {
            let mut bits = [0u64; N];
            for (n, block) in blocks.iter().enumerate() {
                let stops = block_stops(safe_arch::load_unaligned_m128i(block));
                bits[n / 4] |= u64::from(stops) << (16 * (n % 4));
            }
            return Stops {
                bits,
                known: 64 * N,
            };
        }
        Stops {
            bits: [0; N],
            known: 0,
        }
    }

    /// [`word_end`]: from the known stops when `at` is among them and a stop follows it
    /// there, else eight bytes at a time.
    #[inline(always)]
    fn word_end(&self, bytes: &[u8], at: usize) -> usize {
        if at < self.known {
            let after = self.bits[at / 64] >> (at % 64);
            if after != 0 {
                return at + after.trailing_zeros() as usize;
            }
            for (k, &bits) in self.bits.iter().enumerate().skip(at / 64 + 1) {
                if bits != 0 {
                    return 64 * k + bits.trailing_zeros() as usize;
                }
            }
        }
        word_end(bytes, at.max(self.known))
    }

    /// The end of the word of printable ASCII that starts at `at` (at least one byte).
    #[inline(always)]
    fn skip_word(&self, bytes: &[u8], at: usize) -> Option<usize> {
        let end = self.word_end(bytes, at);
        (end > at).then_some(end)
    }
}

/// Past the one space at `at`, which must be there.
#[inline(always)]
fn space(bytes: &[u8], at: usize) -> Option<usize> {
    (bytes.get(at) == Some(&b' ')).then_some(at + 1)
}

/// The number that is the word at `at` ([`number_in`]), and where the word ends.
#[inline(always)]
fn number_word<const N: usize>(
    bytes: &[u8],
    stops: &Stops<N>,
    at: usize,
    digits: usize,
    max: u64,
) -> Option<(u64, usize)> {
    let end = stops.word_end(bytes, at);
    Some((number_in(bytes, at, end, digits, max)?, end))
}

/// [`number_word`], or `-` (no value).
#[inline(always)]
fn optional_number_word<const N: usize>(
    bytes: &[u8],
    stops: &Stops<N>,
    at: usize,
    digits: usize,
    max: u64,
) -> Option<(Option<u64>, usize)> {
    let end = stops.word_end(bytes, at);
    Some((optional_number(bytes, at, end, digits, max)?, end))
}

/// The decimal number that is all of `bytes[at..end]`: one digit at least, at most `digits`
/// (at most 16), at most `max`: what [`small_number`] reads from that slice. Eight digits at a time by bit
/// arithmetic ([`eight_digits`]): no loop over the digits, whose count changes from record
/// to record (ports, protocols): that loop's exit was about a fifth of the default way's
/// mispredicted branches in `cachegrind`'s count (docs/performance.md, session 28).
#[inline(always)]
fn number_in(bytes: &[u8], at: usize, end: usize, digits: usize, max: u64) -> Option<u64> {
    let len = end.checked_sub(at)?;
    if len == 0 || len > digits.min(16) {
        return None;
    }
    let value = match len.checked_sub(8) {
        None | Some(0) if end >= 8 => eight_digits(bytes, end, len)?,
        Some(high @ 1..) if end >= 16 => {
            eight_digits(bytes, end - 8, high)? * 100_000_000 + eight_digits(bytes, end, 8)?
        }
        // Too few bytes before `end` for the loads: digit by digit.
        _ => return small_number(bytes.get(at..end)?, digits, max),
    };
    (value <= max).then_some(value)
}

/// The value of the `len` decimal digits (1 to 8) that end at `end`, read from one load of
/// the eight bytes before `end` (the bytes before the digits taken as `0`); `None` when one
/// of them is no digit. `end` is at least 8.
#[inline(always)]
fn eight_digits(bytes: &[u8], end: usize, len: usize) -> Option<u64> {
    const ZEROS: u64 = 0x3030_3030_3030_3030;
    let window: [u8; 8] = bytes.get(end - 8..end)?.try_into().ok()?;
    // Little-endian: the digits are the high `len` bytes; the others become `0`.
    let keep = u64::MAX << (8 * (8 - len));
    let x = (u64::from_le_bytes(window) & keep) | (ZEROS & !keep);
    let d = x.wrapping_sub(ZEROS);
    // A byte below `0` sets its high bit in `d`, one above `9` in `d + 0x76`. (The lowest
    // such byte is always seen: no borrow or carry reaches it from the digits below it.)
    if (d.wrapping_add(0x7676_7676_7676_7676) | d) & HIGH != 0 {
        return None;
    }
    // Pairs, then fours, then the eight digits (as `fast_float` reads eight digits).
    let pairs = d.wrapping_mul(10).wrapping_add(d >> 8);
    const PAIRS: u64 = 0x0000_00ff_0000_00ff;
    let value = (pairs & PAIRS)
        .wrapping_mul(100 + (1_000_000 << 32))
        .wrapping_add(((pairs >> 16) & PAIRS).wrapping_mul(1 + (10_000 << 32)))
        >> 32;
    Some(value & 0xffff_ffff)
}

/// `ACCEPT ` and `REJECT ` as the low seven bytes of a little-endian word.
const ACCEPT: u64 = u64::from_le_bytes(*b"ACCEPT \0");
const REJECT: u64 = u64::from_le_bytes(*b"REJECT \0");

/// The dotted-quad IPv4 address that starts at `at`, and where it ends (at the first byte
/// that is neither digit nor dot). Read as std reads one: four decimal octets of at most
/// three digits, no leading zeros, each at most 255 (`Ipv4Addr::from_str`,
/// library/core/src/net/parser.rs: `read_ipv4_addr`, `read_number` with `max_digits:
/// Some(3)` and leading zeros refused). Octet by octet, with no state carried between the
/// bytes: about half the instructions of a byte loop that tracks digits and dots.
#[inline(always)]
fn v4_at(bytes: &[u8], at: usize) -> Option<([u8; 4], usize)> {
    let digit = |at: usize| {
        bytes
            .get(at)
            .map(|b| b.wrapping_sub(b'0'))
            .filter(|&d| d <= 9)
    };
    let mut octets = [0u8; 4];
    let mut at = at;
    for (n, octet) in octets.iter_mut().enumerate() {
        if n > 0 {
            if bytes.get(at) != Some(&b'.') {
                return None;
            }
            at += 1;
        }
        let first = digit(at)?;
        let mut value = u32::from(first);
        at += 1;
        if let Some(second) = digit(at) {
            if first == 0 {
                return None; // a leading zero
            }
            value = value * 10 + u32::from(second);
            at += 1;
            if let Some(third) = digit(at) {
                value = value * 10 + u32::from(third);
                at += 1;
            }
        }
        *octet = u8::try_from(value).ok()?;
    }
    Some((octets, at))
}

/// A decimal number of at most `digits` digits and nothing else, at most `max`: what
/// `str::parse` reads too (it also takes a sign and more leading zeros: such values are left
/// to it).
#[inline]
fn small_number(bytes: &[u8], digits: usize, max: u64) -> Option<u64> {
    if bytes.is_empty() || bytes.len() > digits {
        return None;
    }
    let mut value = 0u64;
    for &b in bytes {
        let digit = b.wrapping_sub(b'0');
        if digit > 9 {
            return None;
        }
        value = value * 10 + u64::from(digit);
    }
    (value <= max).then_some(value)
}

/// Hand each word of `line` (split on runs of ASCII whitespace, as `split_ascii_whitespace`)
/// to `word`, in order.
fn split_words<'a>(line: &'a str, word: &mut impl FnMut(&'a str)) {
    // Split at ASCII whitespace: both ends of every word are char boundaries.
    split_bytes(line.as_bytes(), &mut |start, end| {
        word(line.get(start..end).unwrap_or_default())
    });
}

/// Hand the bounds `(start, end)` of each word of `bytes` (split on runs of ASCII whitespace,
/// as `split_ascii_whitespace`) to `word`, in order; whether every byte is ASCII. Eight bytes
/// at a time: a word of bit arithmetic marks the bytes at or below b' ' (the only ones that
/// can be ASCII whitespace), and only those are looked at.
#[inline]
fn split_bytes(bytes: &[u8], word: &mut impl FnMut(usize, usize)) -> bool {
    let mut start = 0;
    let mut high = 0u64;
    let mut separator = |at: usize, start: &mut usize| {
        if at > *start {
            word(*start, at);
        }
        *start = at + 1;
    };
    let mut offset = 0;
    while offset < bytes.len() {
        // The last bytes padded with a byte that is no separator.
        let x = eight_bytes(bytes, offset, b'x');
        high |= x;
        let (low, spaces) = low_and_spaces(x);
        let mut separators = spaces;
        let mut others = low & !spaces;
        // Rare: other control bytes, whitespace or not.
        while others != 0 {
            let bit = others & others.wrapping_neg();
            others &= others - 1;
            if bytes[offset + (bit.trailing_zeros() / 8) as usize].is_ascii_whitespace() {
                separators |= bit;
            }
        }
        while separators != 0 {
            let at = offset + (separators.trailing_zeros() / 8) as usize;
            separators &= separators - 1;
            separator(at, &mut start);
        }
        offset += 8;
    }
    separator(bytes.len(), &mut start);
    high & HIGH == 0
}

/// The high bit of every byte, for the eight-bytes-at-a-time splitters.
const HIGH: u64 = 0x8080_8080_8080_8080;

/// The eight bytes of `bytes` from `offset` as a little-endian word; past the end of `bytes`,
/// `pad` bytes.
#[inline(always)]
fn eight_bytes(bytes: &[u8], offset: usize, pad: u8) -> u64 {
    match bytes.get(offset..offset + 8) {
        Some(eight) => u64::from_le_bytes(eight.try_into().unwrap_or_default()),
        None => {
            let mut chunk = [pad; 8];
            for (to, from) in chunk
                .iter_mut()
                .zip(bytes.get(offset..).unwrap_or_default())
            {
                *to = *from;
            }
            u64::from_le_bytes(chunk)
        }
    }
}

/// For eight bytes `x`: the high bit of each byte that is below 0x80 and at most 0x20 (the
/// only bytes that can be ASCII whitespace), and of each byte that is b' '. `(b & 0x7f) +
/// 0x5f` reaches 0x80 from 0x21 on, with no carry into the next byte; `| x` drops bytes with
/// the high bit set; a space is zero after `^ SPACES`.
#[inline(always)]
fn low_and_spaces(x: u64) -> (u64, u64) {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    const ABOVE_SPACE: u64 = 0x5f5f_5f5f_5f5f_5f5f; // 0x21 + 0x5f = 0x80
    const SPACES: u64 = 0x2020_2020_2020_2020;
    let low = !(((x & LOW7) + ABOVE_SPACE) | x) & HIGH;
    let y = x ^ SPACES;
    let spaces = !(((y & LOW7) + LOW7) | y) & HIGH;
    (low, spaces)
}

/// The words of the first line of `bytes` found by [`split_first_line`].
struct FirstLine {
    /// The index of the line feed that ends the line, or `bytes.len()`.
    end: usize,
    /// How many words the line has.
    count: usize,
    /// Where the first word ends.
    first_end: usize,
}

/// Split the first line of `bytes` (up to its line feed, or all of `bytes`) into words as
/// [`split_bytes`] does, in the same pass that finds the line feed: the bounds of the word at
/// each position `n` go to `kept[roles[n]]` (when that is a slot). `None` when the line is not
/// ASCII, or is 4 GiB long or more (such a line is read the general way).
#[inline]
fn split_first_line(
    bytes: &[u8],
    roles: &[u8],
    kept: &mut [(u32, u32); KEPT],
) -> Option<FirstLine> {
    let mut count = 0usize;
    let mut first_end = 0usize;
    let end = split_line_bytes(bytes, &mut |start, end| {
        if count == 0 {
            first_end = end;
        }
        if let Some(&slot) = roles.get(count) {
            if let Some(value) = kept.get_mut(usize::from(slot)) {
                *value = (start as u32, end as u32);
            }
        }
        count += 1;
    })?;
    // Word bounds are kept as u32: a line of 4 GiB or more is left to the general way.
    u32::try_from(end).ok()?;
    Some(FirstLine {
        end,
        count,
        first_end,
    })
}

/// The stops ([`word_stops`]) among sixteen bytes, bit n for byte n: control bytes, the
/// space and bytes at or above 0x80.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn block_stops(v: safe_arch::m128i) -> u16 {
    use safe_arch::{cmp_gt_mask_i8_m128i, move_mask_i8_m128i, set_splat_i8_m128i};
    // Signed: bytes from 0x21 to 0x7f are above 0x20; the others (those at or above 0x80 are
    // negative) are not.
    !(move_mask_i8_m128i(cmp_gt_mask_i8_m128i(v, set_splat_i8_m128i(0x20))) as u16)
}

/// Which bytes of a step of [`split_line_bytes`] are spaces, at most 0x20 (ASCII whitespace
/// and other control bytes, spaces included) and not ASCII ([`split_step`] says how bits
/// stand for bytes).
struct ChunkMasks {
    spaces: u64,
    low: u64,
    high: u64,
}

impl ChunkMasks {
    /// Sixteen bytes a step with SSE2 (x86-64); `None` elsewhere.
    #[inline(always)]
    fn of(chunk: &[u8; 64]) -> Option<Self> {
        #[cfg(target_arch = "x86_64")]
        {
            use safe_arch::{
                cmp_eq_mask_i8_m128i, load_unaligned_m128i, move_mask_i8_m128i, set_splat_i8_m128i,
            };
            let (blocks, _) = chunk.as_chunks::<16>();
            let space = set_splat_i8_m128i(0x20);
            let mut masks = ChunkMasks {
                spaces: 0,
                low: 0,
                high: 0,
            };
            for (n, block) in blocks.iter().enumerate() {
                let v = load_unaligned_m128i(block);
                let bits = |mask: u16| u64::from(mask) << (16 * n);
                let high = move_mask_i8_m128i(v) as u16;
                masks.spaces |= bits(move_mask_i8_m128i(cmp_eq_mask_i8_m128i(v, space)) as u16);
                masks.low |= bits(block_stops(v) & !high);
                masks.high |= bits(high);
            }
            Some(masks)
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = chunk;
            None
        }
    }
}

/// [`split_bytes`] up to the first line feed of `bytes` (or its end), found in the same pass:
/// the index of that line feed (or `bytes.len()`), `None` when the line is not ASCII.
#[inline]
fn split_line_bytes(bytes: &[u8], word: &mut impl FnMut(usize, usize)) -> Option<usize> {
    let mut start = 0;
    let mut separator = |at: usize| {
        if at > start {
            word(start, at);
        }
        start = at + 1;
    };
    let mut non_ascii = false;
    let mut offset = 0;
    // Sixteen bytes at a time while 64 are there (a record of the EKS fields is about 180
    // bytes: three steps, where eight bytes at a time took 23).
    while let Some(chunk) = bytes
        .get(offset..offset + 64)
        .and_then(|chunk| <&[u8; 64]>::try_from(chunk).ok())
    {
        let Some(masks) = ChunkMasks::of(chunk) else {
            break; // not on x86-64: eight bytes at a time
        };
        if let Some(end) = split_step::<0>(bytes, offset, &masks, &mut non_ascii, &mut separator) {
            return (!non_ascii).then_some(end);
        }
        offset += 64;
    }
    loop {
        // The last bytes (none when `bytes` ends at a step) padded with line feeds: the end
        // of `bytes` ends the line, so that this step is the last.
        let x = eight_bytes(bytes, offset, b'\n');
        let (low, spaces) = low_and_spaces(x);
        let masks = ChunkMasks {
            spaces,
            low,
            high: x & HIGH,
        };
        if let Some(end) = split_step::<3>(bytes, offset, &masks, &mut non_ascii, &mut separator) {
            return (!non_ascii).then_some(end);
        }
        offset += 8;
    }
}

/// One step of [`split_line_bytes`] over the bytes from `offset` that `masks` describe, byte n
/// by bit `n << SHIFT` (SHIFT 0: a bit a byte, from [`ChunkMasks::of`]; 3: each byte's high
/// bit, eight bytes in a word): each separator's index goes to `separator`, and, when the
/// line feed is among these bytes, its index is returned (after `separator` of it). Only the
/// bytes before the line feed belong to the line; `non_ascii` is set when one of them is not
/// ASCII. Bytes past the end of `bytes` read as line feeds.
#[inline(always)]
fn split_step<const SHIFT: u32>(
    bytes: &[u8],
    offset: usize,
    masks: &ChunkMasks,
    non_ascii: &mut bool,
    separator: &mut impl FnMut(usize),
) -> Option<usize> {
    let index = |bit: u32| offset + (bit >> SHIFT) as usize;
    let mut separators = masks.spaces;
    // The line feed (once a line) and other control bytes, whitespace or not.
    let mut others = masks.low & !masks.spaces;
    let mut line_feed = None;
    while others != 0 {
        let bit = others.trailing_zeros();
        others &= others - 1;
        match bytes.get(index(bit)).copied().unwrap_or(b'\n') {
            b'\n' => {
                line_feed = Some(bit);
                break;
            }
            byte if byte.is_ascii_whitespace() => separators |= 1 << bit,
            _ => {}
        }
    }
    // The bits below the line feed's: the bytes before it (with SHIFT 3, the line feed's
    // low seven bits too, which no mask sets).
    let before = line_feed.map_or(u64::MAX, |bit| (1u64 << bit) - 1);
    separators &= before;
    *non_ascii |= masks.high & before != 0;
    while separators != 0 {
        let bit = separators.trailing_zeros();
        separators &= separators - 1;
        separator(index(bit));
    }
    let end = index(line_feed?);
    separator(end);
    Some(end)
}

/// An address: dotted quads and IPv6 in its usual forms read by hand ([`address_word`]:
/// every record has two, and std's general parser is several times slower), any other IPv6
/// text by std. Same answers as `str::parse::<IpAddr>`.
pub(crate) fn parse_ip(text: &str) -> Option<IpAddr> {
    let bytes = text.as_bytes();
    if let Some(address) = address_word(bytes, 0, bytes.len()) {
        return Some(address);
    }
    // Read as IPv6 only: std's `IpAddr` reader tries IPv4 first, which no text with a colon
    // is.
    if bytes.contains(&b':') {
        return text.parse::<Ipv6Addr>().ok().map(IpAddr::V6);
    }
    None
}

/// What [`v6_word`] reads each byte as: its value as a hex digit (either case), [`V6_COLON`],
/// or [`V6_OTHER`] (a byte no usual form holds; a dotted quad at the end is std's to read).
/// One load where a digit's three ranges were three tests.
const V6_BYTES: [u8; 256] = {
    let mut classes = [V6_OTHER; 256];
    let mut b = 0;
    while b < 256 {
        classes[b] = match b as u8 {
            byte @ b'0'..=b'9' => byte - b'0',
            byte @ b'a'..=b'f' => byte - b'a' + 10,
            byte @ b'A'..=b'F' => byte - b'A' + 10,
            b':' => V6_COLON,
            _ => V6_OTHER,
        };
        b += 1;
    }
    classes
};
const V6_COLON: u8 = 16;
const V6_OTHER: u8 = 255;

/// The IPv6 address that is all of `word`, in its usual written forms: eight groups of one to
/// four hex digits (either case) between single colons, or fewer than eight with one `::`
/// standing for the zero groups left out (at least one, as std reads it). `None` for
/// anything else, such as an address that ends in a dotted quad (`::ffff:10.0.0.1`), a group
/// of five digits, a second `::` or a zone: those are left to std, which reads them or says
/// they are none. Where this reads an address, std reads the same one (`Ipv6Addr::from_str`,
/// library/core/src/net/parser.rs: `read_ipv6_addr`, groups by `read_number(16, Some(4),
/// true)`, `::` then at most `8 - (head + 1)` more groups); the property tests below hold it
/// to that.
///
/// One pass over the word's bytes (its end is known), each byte's class from one table
/// ([`V6_BYTES`]); the groups are shifted into one `u128` as they end, so no array of groups
/// is moved about.
#[inline]
fn v6_word(word: &[u8]) -> Option<Ipv6Addr> {
    // The groups ended so far (each shifted in from the right) and how many, the group
    // being read and its digits, and how many groups stood before `::` (NO_GAP: none yet).
    const NO_GAP: usize = usize::MAX;
    let mut read = 0u128;
    let mut count = 0usize;
    let mut group = 0u32;
    let mut digits = 0u32;
    let mut gap = NO_GAP;
    let n = word.len();
    let mut i = 0;
    if let [b':', b':', ..] = word {
        gap = 0;
        i = 2;
    }
    while i < n {
        let class = V6_BYTES[usize::from(word[i])];
        if class < 16 {
            if digits == 4 {
                return None;
            }
            group = group << 4 | u32::from(class);
            digits += 1;
            i += 1;
            continue;
        }
        // Only a colon ends a group; a colon with no group before it is a third colon (or a
        // leading single one).
        if class != V6_COLON || digits == 0 || count == 8 {
            return None;
        }
        read = read << 16 | u128::from(group);
        count += 1;
        (group, digits) = (0, 0);
        i += 1;
        if i < n && word[i] == b':' {
            if gap != NO_GAP {
                return None;
            }
            gap = count;
            i += 1;
        } else if i == n {
            // A single colon at the end.
            return None;
        }
    }
    if digits > 0 {
        if count == 8 {
            return None;
        }
        read = read << 16 | u128::from(group);
        count += 1;
    } else if gap == NO_GAP {
        // The empty word (the loop leaves every other word without a group at its end only
        // right after `::`).
        return None;
    }
    let address = match gap {
        NO_GAP if count == 8 => read,
        before if before != NO_GAP && count <= 7 => {
            // The groups after `::` stay where they are (the low bits); those before it
            // move up past the zero groups `::` stands for.
            let after_bits = 16 * (count - before) as u32;
            let after = read & ((1u128 << after_bits) - 1);
            let head = (read >> after_bits)
                .checked_shl(16 * (8 - before) as u32)
                .unwrap_or(0);
            head | after
        }
        _ => return None,
    };
    Some(Ipv6Addr::from(address))
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

    /// The format the file's records are read with the short way
    /// ([`VpcFormat::fast_first_line_into`], [`VpcFormat::fast_record`]); `None` after a
    /// header line that names no usable format (the general way reports each line).
    #[inline(always)]
    pub(crate) fn format(&self) -> Option<&VpcFormat> {
        self.format.as_ref().ok()
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
    use std::net::Ipv6Addr;

    /// IPv6 addresses for the reading tests: the usual forms first (as an IPv6 EKS cluster's
    /// flow log holds them), then odd ones: `-`, forms std reads that the short way leaves to
    /// it, and texts that are no address.
    const V6_ADDRESSES: &[&str] = &[
        "fd00:10::a00:18e6",
        "2600:1f14:abc:de00::5",
        "::",
        "FE80:0:0:0:0:0:0:1",
        "-",
        "::ffff:1.2.3.4",
        "1:2:3:4:5:6:7::",
        "0001:0db8::",
        "1::2::3",
        "12345::1",
        "fe80::1%eth0",
        "1:2:3:4:5:6:7:8:9",
        ":1",
        "::1.2.3.4",
        "g::1",
        "1.2.3.4",
    ];

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
            "255.255.255.2555",
            "1.2.3.04",
            "00.1.2.3",
            "1.2.3.4x",
            "1.2.3.+4",
            "1.2.3.4.",
            "9.99.199.255",
            "1.2.3.256",
            "2001:db8::1",
            "1:2:3:4:5:6:7:8",
            "1:2:3:4:5:6:7:8:9",
            "1:2:3:4:5:6:7",
            "1::2::3",
            "12345::",
            "1:2:3:4:5:6:7::",
            "::1:2:3:4:5:6:7",
            "::1:2:3:4:5:6:7:8",
            "1:2:3:4::5:6:7:8",
            ":::",
            ":1",
            "1:",
            "1::",
            "FFFF::",
            "0000:0000::",
            "::1.2.3.4",
            "::ffff:1.2.3.04",
            "1:2:3:4:5:6:1.2.3.4",
            "fe80::1%1",
            ":1::2",
            ":1:2:3:4:5:6:7:8",
            "1:::2",
            "1::::2",
            "1::2:",
            "::1:",
            "1:2::3:4:",
            "1::2:3",
            "::",
            ":",
        ] {
            assert_eq!(parse_ip(text), text.parse().ok(), "{text:?}");
        }
    }

    /// The default way reads or leaves each of these lines as the general splitter's short
    /// way does, alone or followed by another record (so that 128 bytes are there, `Stops`).
    #[test]
    fn the_default_way_reads_odd_lines_as_the_splitter_does() {
        let format = super::VpcFormat::default();
        let splitter = super::VpcFormat {
            way: super::Way::General,
            ..format.clone()
        };
        let plain = "2 123456789010 eni-1235b8ca123456789 172.31.16.139 172.31.16.21 20641 22 6 20 4249 1418530010 1418530070 ACCEPT OK";
        let mut lines = vec![
            plain.to_string(),
            plain.replace(" 20641 ", " - "),
            plain.replace(" 20641 ", " -- "),
            plain.replace(" 20641 ", " -5 "),
            plain.replace(" 22 ", " 022 "),
            plain.replace(" 20 4249 ", " 20  "),
            plain.replace(" 20 4249 ", " 20\t4249 "),
            plain.replace("123456789010 ", ""),
            plain.replace("2 1234", "  1234"),
            plain.replace(" OK", " NODATA"),
            plain.replace(" OK", " SKIPDATA"),
            plain.replace(" OK", " NODATAX"),
            plain.replace(" OK", " OK "),
            plain.replace(" OK", ""),
            plain.replace(" OK", " "),
            plain.replace("ACCEPT", "-"),
            plain.replace("ACCEPT", "--"),
            plain.replace("ACCEPT", "ACCEPTED"),
            plain.replace(" 6 ", " 17 "),
            plain.replace(" 6 ", " 1 "),
            plain.replace(" 6 ", " 256 "),
            plain.replace(" 1418530010 ", " - "),
            plain.replace(" 1418530010 ", " 200000000001 "),
            plain.replace("172.31.16.139", "172.31.16.1399"),
            plain.replace("172.31.16.139", "é.31.16.139"),
            plain.replace("eni-1235b8ca123456789", "eni-1235b8ca123456789\x01"),
            format!("{plain} extra"),
            // Lines whose end falls at and around byte 128.
            plain.replace("eni-1235b8ca123456789", &"e".repeat(27)),
            plain.replace("eni-1235b8ca123456789", &"e".repeat(28)),
            plain.replace("eni-1235b8ca123456789", &"e".repeat(29)),
            plain.replace("eni-1235b8ca123456789", &"e".repeat(60)),
        ];
        lines.push(lines[0].replacen("2 ", "2023-11-14T22:00:00Z ", 1));
        for line in &lines {
            for end in ["\n", "\r\n", "\r", ""] {
                // A rest with no stop up to a line feed at byte 128: a line a word short
                // must not be read on into it.
                let filler = "x".repeat(128usize.saturating_sub(line.len() + end.len()));
                for next in ["", plain, &filler] {
                    let bytes = format!("{line}{end}{next}\n").into_bytes();
                    assert_eq!(
                        format.fast_first_line(&bytes),
                        splitter.fast_first_line(&bytes),
                        "{line:?}{end:?}{next:?}"
                    );
                }
            }
        }
        // The plain line is read the default way, alone or followed by another.
        for bytes in [format!("{plain}\n"), format!("{plain}\n{plain}\n")] {
            assert!(matches!(
                super::default_first_line(bytes.as_bytes(), &mut { super::VpcRecord::FILLER }),
                super::DefaultWay::Read(..)
            ));
        }
    }

    /// The default fields' way with a tail reads or leaves each of these lines as the general
    /// splitter's short way does: the EKS fields' line with its words' spaces falling on
    /// every byte up to 256 (a word grown a byte at a time), each space doubled or made a
    /// tab, a word fewer or more, a word emptied, each line end, alone or followed by
    /// another record.
    #[test]
    fn the_default_fields_way_with_a_tail_reads_odd_lines_as_the_splitter_does() {
        let format = super::VpcFormat::parse(&format!(
            "{} vpc-id subnet-id instance-id tcp-flags type pkt-srcaddr pkt-dstaddr",
            super::DEFAULT_FORMAT
        ))
        .expect("a format");
        let super::Way::DefaultFirst(tail) = format.way else {
            panic!(
                "the EKS fields are read the default fields' way: {:?}",
                format.way
            );
        };
        let splitter = super::VpcFormat {
            way: super::Way::General,
            ..format.clone()
        };
        let plain = "2 123456789010 eni-1235b8ca123456789 10.0.24.230 10.0.24.143 32768 443 6 20 \
                     4249 1418530010 1418530070 ACCEPT OK vpc-0a1b2c3d subnet-0a1b2c3d4e5f67890 \
                     i-0123456789abcdef0 3 IPv4 10.0.24.230 10.0.24.143";
        let (mut read, mut compared) = (0, 0);
        for grown in 0..80 {
            let line = plain.replace(
                "eni-1235b8ca123456789",
                &format!("eni-{}", "a".repeat(grown)),
            );
            let spaces: Vec<usize> = line.match_indices(' ').map(|(at, _)| at).collect();
            let words: Vec<&str> = line.split(' ').collect();
            let mut lines = vec![line.clone(), format!("{line} 1")];
            lines.push(line[..*spaces.last().unwrap()].to_string());
            for &at in &spaces {
                lines.push(format!("{}  {}", &line[..at], &line[at + 1..]));
                lines.push(format!("{}\t{}", &line[..at], &line[at + 1..]));
            }
            // Each word emptied, its spaces kept: as many stops as the format has words, one
            // word too few.
            for k in 1..words.len() {
                let mut emptied = words.clone();
                emptied[k] = "";
                lines.push(emptied.join(" "));
            }
            for (n, line) in lines.iter().enumerate() {
                for end in ["\n", "\r\n", "\r", ""] {
                    for next in ["", plain] {
                        let bytes = format!("{line}{end}{next}\n").into_bytes();
                        let expected = splitter.fast_first_line(&bytes);
                        assert_eq!(
                            format.fast_first_line(&bytes),
                            expected,
                            "{line:?}{end:?}{next:?}"
                        );
                        compared += 1;
                        let way = super::default_first_line_with_tail(&bytes, tail, &mut {
                            super::VpcRecord::FILLER
                        });
                        if let super::DefaultWay::Read(_) = way {
                            read += 1;
                        }
                        // The line as AWS writes it, ending within 256 bytes there, is read
                        // this way.
                        let within = line.len() < 256 && bytes.len() >= 256;
                        if n == 0 && end.ends_with('\n') && within {
                            assert!(matches!(way, super::DefaultWay::Read(_)), "{line}");
                            assert!(expected.is_some(), "{line}");
                        }
                    }
                }
            }
        }
        assert!(
            read > 0 && read < compared,
            "{read} of {compared} read this way"
        );
    }

    /// The default format's own short way is taken for the default fields in their order,
    /// however the format is written (a header line's bare names), and for no other format;
    /// the default fields' way with a tail for those fields first and others after them.
    #[test]
    fn the_default_way_is_for_the_default_fields_in_order() {
        use super::{Tail, Way};
        let names = super::DEFAULT_FORMAT.replace(['$', '{', '}'], "");
        let tail = |fields, tcp_flags, pkt_srcaddr, pkt_dstaddr| {
            Way::DefaultFirst(Tail {
                fields,
                tcp_flags,
                pkt_srcaddr,
                pkt_dstaddr,
            })
        };
        let all = super::FIELDS
            .iter()
            .map(|(name, _)| *name)
            .collect::<Vec<_>>();
        for (text, way) in [
            (super::DEFAULT_FORMAT, Way::Default),
            (names.as_str(), Way::Default),
            (
                &names.replace("srcport dstport", "dstport srcport"),
                Way::General,
            ),
            (
                &format!("{names} tcp-flags"),
                tail(15, Some(14), None, None),
            ),
            (
                &format!(
                    "{names} vpc-id subnet-id instance-id tcp-flags type pkt-srcaddr pkt-dstaddr"
                ),
                tail(21, Some(17), Some(19), Some(20)),
            ),
            (
                &format!("{names} pkt-dstaddr region"),
                tail(16, None, None, Some(14)),
            ),
            (&all.join(" "), tail(40, Some(17), Some(19), Some(20))),
            (&format!("tcp-flags {names}"), Way::General),
            (
                "version srcaddr dstaddr srcport dstport protocol",
                Way::General,
            ),
        ] {
            let format = super::VpcFormat::parse(text).expect("a format");
            assert_eq!(format.way, way, "{text}");
        }
        assert_eq!(super::VpcFormat::default().way, Way::Default);
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
        /// The splitter finds the words `split_ascii_whitespace` finds, over any characters
        /// (control bytes that are not whitespace, multi-byte UTF-8) and lengths across the
        /// eight-byte steps.
        #[test]
        fn words_split_as_std_splits_them(line in "[ -~\t\n\x0b\x0c\r\x01\x1fé]{0,40}") {
            let mut words = Vec::new();
            super::split_words(&line, &mut |word| words.push(word));
            prop_assert_eq!(words, line.split_ascii_whitespace().collect::<Vec<_>>());
        }

        /// The one-pass splitter of the short way finds the first line's end and its words as
        /// std does, and refuses a first line that is not ASCII (lines long enough for its
        /// 64-byte steps too).
        #[test]
        fn the_first_line_splits_as_std_splits_it(line in "[ -~\t\n\x0b\x0c\r\x01\x1fé]{0,200}") {
            let roles: Vec<u8> = (0..super::KEPT as u8).collect();
            let mut kept = [(0u32, 0u32); super::KEPT];
            let first = line.split('\n').next().unwrap_or_default();
            match super::split_first_line(line.as_bytes(), &roles, &mut kept) {
                None => prop_assert!(!first.is_ascii()),
                Some(split) => {
                    prop_assert!(first.is_ascii());
                    prop_assert_eq!(split.end, first.len());
                    let words: Vec<(u32, u32)> = first
                        .split_ascii_whitespace()
                        .map(|word| {
                            let start = word.as_ptr() as usize - line.as_ptr() as usize;
                            (start as u32, (start + word.len()) as u32)
                        })
                        .collect();
                    prop_assert_eq!(split.count, words.len());
                    prop_assert_eq!(split.first_end, words.first().map_or(0, |w| w.1 as usize));
                    let n = words.len().min(super::KEPT);
                    prop_assert_eq!(&kept[..n], &words[..n]);
                }
            }
        }

        #[test]
        fn the_fast_address_parser_agrees_with_std(text in "[0-9.:a-f]{0,17}") {
            prop_assert_eq!(parse_ip(&text), text.parse().ok());
        }

        /// Where the IPv6 reader reads an address, std reads the same address from the same
        /// bytes; and the whole text reads as std reads it. Texts made of groups, colons,
        /// dots and dotted quads, valid and not, and every prefix of each.
        #[test]
        fn the_ipv6_reader_reads_what_std_reads(
            pieces in proptest::collection::vec(prop::sample::select(vec![
                "0", "1", "1f", "abc", "ABCD", "0db8", "12345", "g", ":", ":", ":", "::", ".",
                "1.2.3.4", "255.0.0.1", "01.2.3.4", " ",
            ]), 0..20),
        ) {
            let text = pieces.concat();
            for end in 0..=text.len() {
                if let Some(address) = super::v6_word(&text.as_bytes()[..end]) {
                    prop_assert_eq!(text[..end].parse::<Ipv6Addr>().ok(), Some(address), "{}", &text[..end]);
                }
            }
            prop_assert_eq!(parse_ip(&text), text.parse().ok(), "{}", text);
        }

        /// Every IPv6 address reads back by itself, as std writes it (zeros compressed) and
        /// written out whole (eight groups, leading zeros or not, either case), unless std
        /// writes it with a dotted quad (`::ffff:1.2.3.4`, left to std).
        #[test]
        fn every_ipv6_address_reads_back(
            groups in any::<[u16; 8]>(),
            zeros in 0usize..8,
            run in 0usize..9,
            upper in any::<bool>(),
            padded in any::<bool>(),
        ) {
            let mut groups = groups;
            for group in groups.iter_mut().skip(zeros).take(run) {
                *group = 0;
            }
            let address = Ipv6Addr::from(groups);
            let text = address.to_string();
            let read = super::v6_word(text.as_bytes());
            if text.contains('.') {
                prop_assert_eq!(read, None);
            } else {
                prop_assert_eq!(read, Some(address), "{}", text);
            }
            let whole = groups
                .map(|g| if padded { format!("{g:04x}") } else { format!("{g:x}") })
                .join(":");
            let whole = if upper { whole.to_uppercase() } else { whole };
            prop_assert_eq!(super::v6_word(whole.as_bytes()), Some(address));
        }

        /// A line read the short way reads to the flow the general way reads it to; and the
        /// usual records (plain values) are read the short way.
        #[test]
        fn the_short_way_reads_what_the_general_way_reads(
            values in proptest::collection::vec(0usize..1000, 21),
            format in 0usize..4,
            plain in any::<bool>(),
            v6 in any::<bool>(),
            separator in prop::sample::select(vec![" ", " ", "\t", "  "]),
        ) {
            let format = super::VpcFormat::parse([
                super::DEFAULT_FORMAT,
                "version srcaddr dstaddr srcport dstport protocol start action log-status tcp-flags pkt-srcaddr pkt-dstaddr",
                "srcaddr dstaddr protocol dstport",
                // The EKS fields (the bench's custom format).
                "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status vpc-id subnet-id instance-id tcp-flags type pkt-srcaddr pkt-dstaddr",
            ][format]).unwrap();
            // For each field, its usual values first, then odd ones that std still reads or
            // that are malformed.
            let pool = |name: &str| -> &'static [&'static str] {
                match name {
                    "srcaddr" | "dstaddr" | "pkt-srcaddr" | "pkt-dstaddr" if v6 => V6_ADDRESSES,
                    "srcaddr" | "dstaddr" | "pkt-srcaddr" | "pkt-dstaddr" => &[
                        "10.0.1.10", "192.0.2.1", "0.0.0.0", "255.255.255.255", "-",
                        "256.1.1.1", "01.2.3.4", "fe80::1", "1.2.3", "::ffff:1.2.3.4", "é.1.1.1",
                    ],
                    "srcport" | "dstport" => &[
                        "8080", "0", "65535", "-", "65536", "+80", "0080", "000000000080",
                        "8o", "99999",
                    ],
                    "protocol" => &["6", "17", "132", "1", "58", "0", "-", "+6", "006", "256", "tcp", "0006"],
                    "start" => &[
                        "1699999200", "0", "-", "+1699999200", "-5", "200000000000",
                        "200000000001", "253402207200", "999999999999999999999", "1.5",
                        "01699999200",
                    ],
                    "action" => &["ACCEPT", "REJECT", "-", "accept", "DROP"],
                    "log-status" => &["OK", "NODATA", "SKIPDATA", "-", "ok"],
                    "tcp-flags" => &["2", "18", "19", "0", "-", "256", "+2", "x", "002"],
                    "version" => &["2", "5", "2023-11-14T22:00:00Z", "T", "-"],
                    _ => &["123456789010", "eni-1", "-", "1"],
                }
            };
            let words: Vec<&str> = format
                .fields()
                .iter()
                .zip(&values)
                .map(|(field, &pick)| {
                    let pool = pool(field.name());
                    // Plain lines take the first half of each pool (usual values) only.
                    let n = if plain { pool.len().div_ceil(2).min(4) } else { pool.len() };
                    pool[pick % n]
                })
                .collect();
            let line = words.join(separator);
            let general = format.record(&line);
            // The reader's way, on a buffer that goes on past the line: the same answer, and
            // the line's end (a long rest: the first 256 bytes are there, `Stops`).
            let long = "2 123456789010 eni-1 10.0.1.10 ".repeat(10);
            for (end, next) in [("\n", ""), ("\n", "1 2 3"), ("\r\n", "é\n"), ("", ""), ("\n", &long)] {
                let buffer = format!("{line}{end}{next}");
                let first = format.fast_first_line(buffer.as_bytes());
                let expected = format.fast_record(line.as_bytes()).map(|record| {
                    (record, line.len() + end.len().saturating_sub(1))
                });
                prop_assert_eq!(first, expected, "{:?}", buffer);
            }
            // A word more, and the line is no record of the format.
            let longer = format!("{line} 1\n");
            prop_assert_eq!(format.fast_first_line(longer.as_bytes()), None);
            match format.fast_record(line.as_bytes()) {
                Some(record) => {
                    prop_assert_eq!(general, Ok(record.flow()), "{}", line);
                }
                None => {
                    // Only lines with an unusual value are left to the general way.
                    let unusual = line.contains(['+', 'T']) || line.contains("DATA");
                    prop_assert!(
                        !(plain && general.is_ok() && !unusual),
                        "a usual record left to the general way: {}", line
                    );
                }
            }
        }

        /// The default format's own short way, and the default fields' way with a tail (the
        /// EKS fields' format), read a line to what the general splitter's short way reads it
        /// to (which the test above holds to the general way), refuse only lines that one
        /// refuses too, and read the usual record. Lines are made of plain and odd values,
        /// then one byte is changed, put in or taken out anywhere.
        #[test]
        fn the_default_way_reads_what_the_splitter_reads(
            values in proptest::collection::vec(0usize..1000, 21),
            tailed in any::<bool>(),
            plain in any::<bool>(),
            v6 in any::<bool>(),
            edit in 0usize..4,
            at in 0usize..280,
            byte in prop::sample::select(vec![
                b' ', b'\t', b'\n', b'\r', b'\x0c', b'\x01', b'T', b'-', b'.', b'0', b'9', b'x',
                b':', b'a', b'F', 0xc3, 0xa9, 0x80, 0xff,
            ]),
            end in prop::sample::select(vec!["", "\n", "\r\n", "\n1 2", "\r", " \n"]),
            padded in any::<bool>(),
        ) {
            const TAIL: &str = "vpc-id subnet-id instance-id tcp-flags type pkt-srcaddr pkt-dstaddr";
            let format = if tailed {
                super::VpcFormat::parse(&format!("{} {TAIL}", super::DEFAULT_FORMAT)).unwrap()
            } else {
                super::VpcFormat::default()
            };
            let splitter = super::VpcFormat { way: super::Way::General, ..format.clone() };
            let pkt: &[&str] = if v6 {
                V6_ADDRESSES
            } else {
                &["10.0.24.230", "-", "192.0.2.1", "256.1.1.1", "fe80::1", "1.2.3", "01.2.3.4"]
            };
            let (src, dst): (&[&str], &[&str]) = if v6 {
                (V6_ADDRESSES, V6_ADDRESSES)
            } else {
                (
                    &["10.0.1.10", "192.0.2.1", "0.0.0.0", "255.255.255.255", "-", "256.1.1.1",
                      "01.2.3.4", "fe80::1", "1.2.3", "1.2.3.4.5", "1.2.3.4x"],
                    &["172.31.16.21", "10.0.0.1", "1.1.1.1", "-", "10.0.0.256", "10.0.0", "1..2.3"],
                )
            };
            let pools: [&[&str]; 21] = [
                &["2", "5", "10", "2023-11-14T22:00:00Z", "T", "-", "2x", "+2"],
                &["123456789010", "1", "-", "eni-1", "é"],
                &["eni-1235b8ca123456789", "eni-x", "-", "1", "aé"],
                src,
                dst,
                &["8080", "0", "65535", "-", "65536", "+80", "0080", "000000000080", "8o", "99999", "--"],
                &["22", "443", "-", "123456", "x", "-1"],
                &["6", "17", "1", "132", "58", "0", "-", "+6", "006", "256", "tcp", "0006"],
                &["20", "1", "-", "x"],
                &["4249", "0", "-", "1é"],
                &["1418530010", "0", "-", "+1699999200", "-5", "200000000000", "200000000001",
                  "999999999999999999999", "1.5", "01699999200"],
                &["1418530070", "-", "x"],
                &["ACCEPT", "REJECT", "-", "accept", "DROP", "ACCEPTED", "-x"],
                &["OK", "NODATA", "SKIPDATA", "-", "ok", "NODATAX"],
                // The EKS fields after the default ones.
                &["vpc-0a1b2c3d", "-", "vpc-é"],
                &["subnet-0a1b2c3d4e5f67890", "-"],
                &["i-0123456789abcdef0", "-", "i"],
                &["2", "18", "3", "-", "0", "19", "256", "+2", "002", "x"],
                &["IPv4", "-", "IPv6"],
                pkt,
                pkt,
            ];
            let words: Vec<&str> = pools
                .iter()
                .zip(&values)
                .take(format.fields().len())
                .map(|(pool, &pick)| {
                    let n = if plain { pool.len().div_ceil(2).min(3) } else { pool.len() };
                    pool[pick % n]
                })
                .collect();
            let line = words.join(" ");
            // Padded: another record after the line, so that the first 128 bytes (256 with
            // the tail) are there: the words' stops found for all of them at once.
            let padding = if !padded {
                String::new()
            } else {
                let record = "2 123456789010 eni-1235b8ca123456789 172.31.16.139 172.31.16.21 \
                              20641 22 6 20 4249 1418530010 1418530070 ACCEPT OK";
                let tail = " vpc-0a1b2c3d subnet-0a1b2c3d4e5f67890 i-0123456789abcdef0 3 IPv4 \
                            172.31.16.139 172.31.16.21";
                format!("\n{record}{}\n", if tailed { tail } else { "" })
            };
            let mut bytes = format!("{line}{end}{padding}").into_bytes();
            let at = at % (bytes.len() + 1);
            match edit {
                1 if at < bytes.len() => bytes[at] = byte,
                2 => bytes.insert(at, byte),
                3 if at < bytes.len() => {
                    bytes.remove(at);
                }
                _ => {}
            }
            let expected = splitter.fast_first_line(&bytes);
            prop_assert_eq!(format.fast_first_line(&bytes), expected, "{:?}", bytes);
            let way = |record: &mut super::VpcRecord| match format.way {
                super::Way::DefaultFirst(tail) => {
                    super::default_first_line_with_tail(&bytes, tail, record)
                }
                _ => super::default_first_line(&bytes, record),
            };
            if bytes.first().is_some_and(u8::is_ascii_digit) {
                let mut record = super::VpcRecord::FILLER;
                match way(&mut record) {
                    super::DefaultWay::Read(end) => {
                        prop_assert_eq!(Some((record, end)), expected);
                    }
                    super::DefaultWay::Refused => prop_assert_eq!(None, expected),
                    super::DefaultWay::Other => {}
                }
            }
            // A plain line as AWS writes it is read this way (with the tail, when the first
            // 256 bytes are there).
            if plain && edit == 0 && !matches!(end, "\r" | " \n") && (padded || !tailed) {
                prop_assert!(matches!(
                    way(&mut { super::VpcRecord::FILLER }),
                    super::DefaultWay::Read(..)
                ) || expected.is_none(), "{}", line);
            }
        }

        /// The words' ends found from the stops of a line's first bytes are where the word
        /// reader finds them eight bytes at a time.
        #[test]
        fn stops_end_words_where_the_word_reader_ends_them(
            bytes in proptest::collection::vec(
                prop::sample::select(vec![b' ', b'\n', b'\t', b'\x01', b'\x7f', b'!', b'a', b'0', 0x80, 0xff]),
                0..300,
            ),
            at in 0usize..300,
        ) {
            let at = at.min(bytes.len());
            let expected = super::word_end(&bytes, at);
            prop_assert_eq!(super::Stops::<2>::of(&bytes).word_end(&bytes, at), expected);
            prop_assert_eq!(super::Stops::<3>::of(&bytes).word_end(&bytes, at), expected);
        }

        /// The number reader of known length reads a run of digits as `str::parse` does,
        /// within its limits, and nothing else, wherever it sits and whatever follows it.
        #[test]
        fn numbers_of_known_length_read_as_std_reads_them(
            text in "[0-9 /:]{0,9}[0-9]{0,18}[ .x/:\n-]?[0-9]{0,3}",
            at in 0usize..12,
            len in 0usize..20,
            digits in 1usize..16,
            max in prop::sample::select(vec![255u64, 65535, 200_000_000_000, u64::MAX]),
        ) {
            let bytes = text.as_bytes();
            let at = at.min(bytes.len());
            let end = (at + len).min(bytes.len());
            let word = &text[at..end];
            let expected = (!word.is_empty()
                && word.len() <= digits
                && word.bytes().all(|b| b.is_ascii_digit()))
            .then(|| word.parse::<u64>().ok())
            .flatten()
            .filter(|&value| value <= max);
            prop_assert_eq!(super::number_in(bytes, at, end, digits, max), expected);
        }

        #[test]
        fn every_ipv4_address_reads_back(a: u8, b: u8, c: u8, d: u8) {
            let text = format!("{a}.{b}.{c}.{d}");
            prop_assert_eq!(parse_ip(&text), text.parse().ok());
        }
    }
}
