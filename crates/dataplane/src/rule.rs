//! The structured form of a rendered nftables rule: match expressions, statements and a
//! verdict. Both outputs come from it: the nft text ([`std::fmt::Display`], what `nft -f` and
//! `netfence dataplane render` read) and the netlink expressions ([`crate::netlink`]), so the
//! two paths load the same ruleset.
//!
//! Only the forms the renderer produces exist here; each variant's text is the nft syntax the
//! renderer has always written.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The NFLOG group every `log` statement of the table sends to (`log prefix "…" group N`):
/// the agent reads it ([`crate::nflog`]) inside its network namespace; without the agent,
/// `tcpdump -i nflog:28262` shows the same packets. A group, not the kernel log: the kernel
/// log of a network namespace other than the first needs the root namespace's
/// `net.netfilter.nf_log_all_netns`, and it would carry only the prefix.
pub const LOG_GROUP: u16 = 28262;

/// The address family of a match (`ip` or `ip6`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    /// IPv4 (`ip`, `meta nfproto ipv4`).
    V4,
    /// IPv6 (`ip6`, `meta nfproto ipv6`).
    V6,
}

impl Family {
    /// The family of an address.
    pub fn of(ip: IpAddr) -> Family {
        if ip.is_ipv4() {
            Family::V4
        } else {
            Family::V6
        }
    }
}

/// Which address of the packet a match reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AddressField {
    /// `saddr`.
    Source,
    /// `daddr`.
    Destination,
}

/// What an element holds: its key type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ElementKind {
    /// `ipv4_addr`.
    V4,
    /// `ipv6_addr`.
    V6,
    /// `inet_service` (a transport port).
    Port,
}

impl ElementKind {
    /// The nft type name (`type …` of a set).
    pub fn type_name(self) -> &'static str {
        match self {
            ElementKind::V4 => "ipv4_addr",
            ElementKind::V6 => "ipv6_addr",
            ElementKind::Port => "inet_service",
        }
    }

    /// Key length in bytes.
    pub fn key_len(self) -> usize {
        match self {
            ElementKind::V4 => 4,
            ElementKind::V6 => 16,
            ElementKind::Port => 2,
        }
    }

    /// The largest value a key of this kind holds.
    pub fn max(self) -> u128 {
        match self {
            ElementKind::V4 => u128::from(u32::MAX),
            ElementKind::V6 => u128::MAX,
            ElementKind::Port => u128::from(u16::MAX),
        }
    }

    /// `value` as the key's bytes, in network byte order.
    pub fn bytes(self, value: u128) -> Vec<u8> {
        let all = value.to_be_bytes();
        all[16 - self.key_len()..].to_vec()
    }
}

/// One address, port, or inclusive range of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Element {
    /// What it holds.
    pub kind: ElementKind,
    /// First value.
    pub first: u128,
    /// Last value (equal to `first` for a single value).
    pub last: u128,
}

impl fmt::Display for Element {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |f: &mut fmt::Formatter<'_>, x: u128| match self.kind {
            ElementKind::V4 => write!(f, "{}", Ipv4Addr::from(x as u32)),
            ElementKind::V6 => write!(f, "{}", Ipv6Addr::from(x)),
            ElementKind::Port => write!(f, "{x}"),
        };
        show(f, self.first)?;
        if self.first != self.last {
            f.write_str("-")?;
            show(f, self.last)?;
        }
        Ok(())
    }
}

/// The right-hand side of a match: one element, or a named set of the table.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Operand {
    /// A literal address, port or range.
    Single(Element),
    /// `@name`.
    Set(String),
}

impl fmt::Display for Operand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Operand::Single(e) => e.fmt(f),
            Operand::Set(name) => write!(f, "@{name}"),
        }
    }
}

/// The ICMP header field a match reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IcmpField {
    /// `type`.
    Type,
    /// `code`.
    Code,
}

/// One match expression.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Match {
    /// `meta nfproto ipv4|ipv6`.
    NfProto(Family),
    /// `ip|ip6 saddr|daddr <operand>`.
    Address {
        /// `ip` or `ip6`.
        family: Family,
        /// Source or destination.
        field: AddressField,
        /// What it must be.
        value: Operand,
    },
    /// `meta l4proto [!=] <protocol>`.
    L4Proto {
        /// `!=`.
        negated: bool,
        /// The IP protocol number.
        protocol: u8,
    },
    /// `meta l4proto != { <protocols> }`.
    L4ProtoNotIn(Vec<u8>),
    /// `th dport [!=] <operand>`.
    DestinationPort {
        /// `!=`.
        negated: bool,
        /// What it must (not) be.
        value: Operand,
    },
    /// `icmp|icmpv6 type|code [!=] <value>`.
    Icmp {
        /// `icmpv6`.
        v6: bool,
        /// Type or code.
        field: IcmpField,
        /// `!=`.
        negated: bool,
        /// The value.
        value: u8,
    },
}

/// A protocol number as nft writes it: its name when nft knows one, else the number.
pub fn protocol_text(number: u8) -> String {
    match number {
        1 => "icmp".into(),
        6 => "tcp".into(),
        17 => "udp".into(),
        132 => "sctp".into(),
        other => other.to_string(),
    }
}

fn not(negated: bool) -> &'static str {
    if negated {
        "!= "
    } else {
        ""
    }
}

impl fmt::Display for Match {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Match::NfProto(Family::V4) => f.write_str("meta nfproto ipv4"),
            Match::NfProto(Family::V6) => f.write_str("meta nfproto ipv6"),
            Match::Address {
                family,
                field,
                value,
            } => {
                let family = match family {
                    Family::V4 => "ip",
                    Family::V6 => "ip6",
                };
                let field = match field {
                    AddressField::Source => "saddr",
                    AddressField::Destination => "daddr",
                };
                write!(f, "{family} {field} {value}")
            }
            Match::L4Proto { negated, protocol } => {
                write!(
                    f,
                    "meta l4proto {}{}",
                    not(*negated),
                    protocol_text(*protocol)
                )
            }
            Match::L4ProtoNotIn(protocols) => {
                let names: Vec<String> = protocols.iter().map(|p| protocol_text(*p)).collect();
                write!(f, "meta l4proto != {{ {} }}", names.join(", "))
            }
            Match::DestinationPort { negated, value } => {
                write!(f, "th dport {}{value}", not(*negated))
            }
            Match::Icmp {
                v6,
                field,
                negated,
                value,
            } => write!(
                f,
                "{} {} {}{value}",
                if *v6 { "icmpv6" } else { "icmp" },
                match field {
                    IcmpField::Type => "type",
                    IcmpField::Code => "code",
                },
                not(*negated)
            ),
        }
    }
}

/// What a rule does with a packet that matches.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// `return`.
    Return,
    /// `drop`.
    Drop,
    /// `goto <chain>`.
    Goto(String),
}

/// One rule: matches, then an optional counter and log, then an optional verdict and comment.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct NftRule {
    /// Match expressions, all of which must hold.
    pub matches: Vec<Match>,
    /// `counter`.
    pub counter: bool,
    /// `log prefix "<prefix>" group <LOG_GROUP>`.
    pub log: Option<String>,
    /// The verdict; `None` continues with the next rule (a Log rule).
    pub verdict: Option<Verdict>,
    /// `comment "<comment>"`.
    pub comment: Option<String>,
}

impl NftRule {
    /// A rule with only a verdict.
    pub fn verdict(verdict: Verdict) -> NftRule {
        NftRule {
            verdict: Some(verdict),
            ..NftRule::default()
        }
    }
}

impl fmt::Display for NftRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        let mut space = |f: &mut fmt::Formatter<'_>| {
            if !std::mem::take(&mut first) {
                f.write_str(" ")?;
            }
            Ok::<(), fmt::Error>(())
        };
        for m in &self.matches {
            space(f)?;
            m.fmt(f)?;
        }
        if self.counter {
            space(f)?;
            f.write_str("counter")?;
        }
        if let Some(prefix) = &self.log {
            space(f)?;
            write!(f, "log prefix \"{prefix}\" group {LOG_GROUP}")?;
        }
        if let Some(verdict) = &self.verdict {
            space(f)?;
            match verdict {
                Verdict::Return => f.write_str("return")?,
                Verdict::Drop => f.write_str("drop")?,
                Verdict::Goto(chain) => write!(f, "goto {chain}")?,
            }
        }
        if let Some(comment) = &self.comment {
            space(f)?;
            write!(f, "comment \"{comment}\"")?;
        }
        Ok(())
    }
}
