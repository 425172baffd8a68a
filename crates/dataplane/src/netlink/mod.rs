//! Loading the netfence table by writing nf_tables transactions to the kernel over netlink
//! directly (one `NFNL_MSG_BATCH_BEGIN` … `END` batch per apply, update or flush), without
//! the `nft` tool: no script to parse and no ruleset to read back before each change.
//!
//! The expressions are those nft 1.0.6 generates for the same rule text (nftables
//! src/netlink_linearize.c, checked against `nft --debug=netlink`), and sets carry the
//! userdata nft reads to print them, so `nft list table inet netfence` shows the same table
//! after either path (tests/netlink.rs compares the two listings). Attribute numbers:
//! linux/include/uapi/linux/netfilter/nf_tables.h.
//!
//! - `socket`: the `NETLINK_NETFILTER` socket, opened inside a named network namespace;
//! - `wire`: message and attribute framing, batches, the kernel's answers;
//! - this module: tables, chains, sets, elements and rules as nf_tables messages, and the
//!   transactions [`apply`], [`update`] and [`flush`].

pub(crate) mod socket;
mod wire;

use crate::nft::DataplaneError;
use crate::render::{NamedSet, PodGuard, Ruleset, MAPS, TABLE};
use crate::rule::{
    AddressField, Element, ElementKind, Family, IcmpField, Match, NftRule, Operand, Verdict,
};
use std::collections::BTreeMap;
use std::net::IpAddr;
use wire::{Attrs, Batch, F_APPEND, F_CREATE};

// Message types (enum nf_tables_msg_types).
const NEWTABLE: u16 = 0;
const DELTABLE: u16 = 2;
const NEWCHAIN: u16 = 3;
const DELCHAIN: u16 = 5;
const NEWRULE: u16 = 6;
const DELRULE: u16 = 8;
const NEWSET: u16 = 9;
const DELSET: u16 = 11;
const NEWSETELEM: u16 = 12;
const DELSETELEM: u16 = 14;

// Registers: the verdict register and the first 16-byte data register.
const REG_VERDICT: u32 = 0;
const REG_1: u32 = 1;

// Verdict codes (NF_DROP, NF_ACCEPT, enum nft_verdicts).
const DROP: i32 = 0;
const ACCEPT: i32 = 1;
const JUMP: i32 = -3;
const GOTO: i32 = -4;
const RETURN: i32 = -5;

// enum nft_cmp_ops / nft_range_ops.
const CMP_EQ: u32 = 0;
const CMP_NEQ: u32 = 1;
const CMP_LTE: u32 = 3;
const CMP_GTE: u32 = 5;
const RANGE_NEQ: u32 = 1;

// Set flags and key types (nft's datatype numbers: src/datatype.h, enum datatypes).
const SET_ANONYMOUS: u32 = 0x1;
const SET_CONSTANT: u32 = 0x2;
const SET_INTERVAL: u32 = 0x4;
const SET_MAP: u32 = 0x8;
const TYPE_VERDICT_DATA: u32 = 0xffff_ff00;
const TYPE_IPADDR: u32 = 7;
const TYPE_IP6ADDR: u32 = 8;
const TYPE_INET_PROTOCOL: u32 = 12;
const TYPE_INET_SERVICE: u32 = 13;
const ELEM_INTERVAL_END: u32 = 0x1;

/// Set userdata as nft writes it (libnftnl's `NFTNL_UDATA_SET_*` TLVs, host-order values):
/// the key is big-endian (`KEYBYTEORDER` = 2).
const UDATA_KEY_BIG_ENDIAN: &[u8] = &[0, 4, 2, 0, 0, 0];
/// A verdict map's: big-endian key, data byte order and data-interval flag both 0.
const UDATA_VERDICT_MAP: &[u8] = &[0, 4, 2, 0, 0, 0, 1, 4, 0, 0, 0, 0, 6, 4, 0, 0, 0, 0];
/// An anonymous set of `meta l4proto` values: host-order key and its `typeof` (the meta
/// expression, key `NFT_META_L4PROTO`).
const UDATA_L4PROTO_SET: &[u8] = &[
    0, 4, 1, 0, 0, 0, 3, 14, 0, 4, 9, 0, 0, 0, 1, 6, 0, 4, 16, 0, 0, 0,
];
/// An element that opens an interval to the end of the key space (`NFTNL_UDATA_SET_ELEM_FLAGS`
/// = `NFTNL_SET_ELEM_F_INTERVAL_OPEN`).
const UDATA_INTERVAL_OPEN: &[u8] = &[1, 4, 1, 0, 0, 0];

/// The longest rule comment nft accepts (libnftnl's `NFTNL_UDATA_COMMENT_MAXLEN`; nft 1.0.6
/// says "comment too long, 128 characters maximum allowed"); longer ones are refused, as nft
/// refuses them.
const COMMENT_MAX: usize = 128;

/// Nested attributes carry a 16-bit length: element lists are split into messages below it.
const ELEMENTS_PER_MESSAGE_BYTES: usize = 48 * 1024;

/// What a `NEWSET` message declares (`NFTA_SET_*` attributes).
struct SetHeader<'a> {
    name: &'a str,
    /// `NFT_SET_*` flags.
    flags: u32,
    /// Key data type and length in bytes.
    key: (u32, u32),
    /// A map's data type and length (a verdict map: `TYPE_VERDICT_DATA`, 0).
    data: Option<(u32, u32)>,
    /// The element count of a constant set (`NFTA_SET_DESC_SIZE`).
    size: Option<u32>,
    /// nft's userdata TLVs.
    userdata: &'static [u8],
}

/// An address key: type and length.
fn address_key(v6: bool) -> (u32, u32) {
    if v6 {
        (TYPE_IP6ADDR, 16)
    } else {
        (TYPE_IPADDR, 4)
    }
}

/// What one message of a transaction is about, to name it when the kernel refuses it.
#[derive(Clone, Debug)]
enum Object {
    Table,
    Chain(String),
    Rule(String, usize),
    Set(String),
    Elements(String),
    ForwardRule(usize),
}

impl Object {
    fn describe(&self, ruleset: Option<&Ruleset>) -> String {
        let t = format!("inet {TABLE}");
        match self {
            Object::Table => format!("table {t}"),
            Object::Chain(name) => format!("chain {t} {name}"),
            Object::Rule(chain, index) => {
                let text = ruleset
                    .and_then(|r| r.chains.get(chain))
                    .and_then(|c| c.rules.get(*index))
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default();
                format!("rule {index} of chain {t} {chain}{text}")
            }
            Object::Set(name) => format!("set {t} {name}"),
            Object::Elements(name) => format!("elements of set {t} {name}"),
            Object::ForwardRule(index) => format!("rule {index} of chain {t} forward"),
        }
    }
}

struct Transaction {
    batch: Batch<Object>,
    next_set_id: u32,
    /// What cannot be sent as rendered (found while encoding), as `nft` would refuse it.
    refused: Option<String>,
    created: std::time::Instant,
}

fn table(a: &mut Attrs) {
    a.str(1, TABLE);
}

/// `NFTA_DATA_VALUE` inside `kind`.
fn data(a: &mut Attrs, kind: u16, value: &[u8]) {
    a.nest(kind, |a| a.bytes(1, value));
}

fn verdict_data(a: &mut Attrs, kind: u16, code: i32, chain: Option<&str>) {
    a.nest(kind, |a| {
        a.nest(2, |a| {
            a.u32(1, code as u32);
            if let Some(chain) = chain {
                a.str(2, chain);
            }
        })
    });
}

/// Expressions of one rule (`NFTA_RULE_EXPRESSIONS`), with the protocol context nft keeps
/// to decide which dependencies a match needs (src/payload.c: an `ip` match in an inet
/// table first checks `meta nfproto`, an `icmp` match `meta l4proto`).
struct Exprs<'a, 'b> {
    a: &'a mut Attrs<'b>,
    nfproto: Option<Family>,
    l4proto: Option<u8>,
}

impl Exprs<'_, '_> {
    fn expr(&mut self, name: &str, body: impl FnOnce(&mut Attrs)) {
        self.a.nest(1, |a| {
            a.str(1, name);
            a.nest(2, body);
        });
    }

    fn meta(&mut self, key: u32) {
        self.expr("meta", |a| {
            a.u32(2, key);
            a.u32(1, REG_1);
        });
    }

    fn cmp(&mut self, op: u32, value: &[u8]) {
        self.expr("cmp", |a| {
            a.u32(1, REG_1);
            a.u32(2, op);
            data(a, 3, value);
        });
    }

    fn payload(&mut self, base: u32, offset: u32, len: u32) {
        self.expr("payload", |a| {
            a.u32(1, REG_1);
            a.u32(2, base);
            a.u32(3, offset);
            a.u32(4, len);
        });
    }

    fn lookup(&mut self, set: &str, set_id: Option<u32>, inverted: bool, verdict: bool) {
        self.expr("lookup", |a| {
            a.str(1, set);
            a.u32(2, REG_1);
            if verdict {
                a.u32(3, REG_VERDICT);
            }
            if let Some(id) = set_id {
                a.u32(4, id);
            }
            if inverted {
                a.u32(5, 1);
            }
        });
    }

    fn immediate(&mut self, code: i32, chain: Option<&str>) {
        self.expr("immediate", |a| {
            a.u32(1, REG_VERDICT);
            verdict_data(a, 2, code, chain);
        });
    }

    fn counter(&mut self) {
        self.expr("counter", |a| {
            a.u64(1, 0);
            a.u64(2, 0);
        });
    }

    /// `log prefix "…" group N`: NFTA_LOG_GROUP is a big-endian u16 (nft_log.c's policy).
    fn log(&mut self, prefix: &str) {
        self.expr("log", |a| {
            a.bytes(1, &crate::rule::LOG_GROUP.to_be_bytes());
            a.str(2, prefix);
        });
    }

    /// `ct state` masked with `mask`, not zero.
    fn ct_state(&mut self, mask: u32) {
        self.expr("ct", |a| {
            a.u32(2, 0);
            a.u32(1, REG_1);
        });
        self.expr("bitwise", |a| {
            a.u32(1, REG_1);
            a.u32(2, REG_1);
            a.u32(3, 4);
            data(a, 4, &mask.to_ne_bytes());
            data(a, 5, &[0; 4]);
        });
        self.cmp(CMP_NEQ, &[0; 4]);
    }

    fn nfproto(&mut self, family: Family) {
        if self.nfproto != Some(family) {
            self.meta(15);
            self.cmp(CMP_EQ, &[nfproto_number(family)]);
            self.nfproto = Some(family);
        }
    }

    /// Compare the loaded value with an operand.
    fn operand(&mut self, value: &Operand, negated: bool) {
        match value {
            Operand::Set(name) => self.lookup(name, None, negated, false),
            Operand::Single(e) if e.first == e.last => self.cmp(
                if negated { CMP_NEQ } else { CMP_EQ },
                &e.kind.bytes(e.first),
            ),
            Operand::Single(e) if negated => self.expr("range", |a| {
                a.u32(1, REG_1);
                a.u32(2, RANGE_NEQ);
                data(a, 3, &e.kind.bytes(e.first));
                data(a, 4, &e.kind.bytes(e.last));
            }),
            Operand::Single(e) => {
                self.cmp(CMP_GTE, &e.kind.bytes(e.first));
                self.cmp(CMP_LTE, &e.kind.bytes(e.last));
            }
        }
    }
}

fn nfproto_number(family: Family) -> u8 {
    match family {
        Family::V4 => 2,
        Family::V6 => 10,
    }
}

// enum nft_meta_keys.
const META_IIFNAME: u32 = 6;
const META_OIFNAME: u32 = 7;

/// The log prefix of the guard's drops (render.rs `PodGuard::rules`).
const GUARD_LOG_PREFIX: &str = "netfence new pod ";

const NETWORK_HEADER: u32 = 1;
const TRANSPORT_HEADER: u32 = 2;

impl Transaction {
    fn new() -> Transaction {
        Transaction {
            batch: Batch::new(),
            next_set_id: 1,
            refused: None,
            created: std::time::Instant::now(),
        }
    }

    fn new_table(&mut self) {
        self.batch.message(NEWTABLE, F_CREATE, Object::Table, |a| {
            table(a);
            a.u32(2, 0);
        });
    }

    fn del_table(&mut self) {
        self.batch.message(DELTABLE, 0, Object::Table, table);
    }

    fn new_chain(&mut self, name: &str) {
        self.batch
            .message(NEWCHAIN, F_CREATE, Object::Chain(name.into()), |a| {
                table(a);
                a.str(3, name);
            });
    }

    /// `chain forward { type filter hook forward priority filter; policy accept; }`
    fn new_forward_chain(&mut self) {
        self.batch
            .message(NEWCHAIN, F_CREATE, Object::Chain("forward".into()), |a| {
                table(a);
                a.str(3, "forward");
                a.str(7, "filter");
                a.u32(5, ACCEPT as u32);
                a.nest(4, |a| {
                    // NF_INET_FORWARD, priority `filter` (0).
                    a.u32(1, 2);
                    a.u32(2, 0);
                });
            });
    }

    fn del_chain(&mut self, name: &str) {
        self.batch
            .message(DELCHAIN, 0, Object::Chain(name.into()), |a| {
                table(a);
                a.str(3, name);
            });
    }

    /// `flush chain`: a rule deletion naming only the chain.
    fn flush_chain(&mut self, name: &str) {
        self.batch
            .message(DELRULE, 0, Object::Chain(name.into()), |a| {
                table(a);
                a.str(2, name);
            });
    }

    fn del_set(&mut self, name: &str) {
        self.batch
            .message(DELSET, 0, Object::Set(name.into()), |a| {
                table(a);
                a.str(2, name);
            });
    }

    /// The one `NEWSET` message every set, map and anonymous set is declared with; returns
    /// the set's transaction id, which its elements (and a rule's lookup) name it by.
    fn declare_set(&mut self, object: Object, set: SetHeader) -> u32 {
        let id = self.next_set_id;
        self.next_set_id += 1;
        self.batch.message(NEWSET, F_CREATE, object, |a| {
            table(a);
            a.str(2, set.name);
            a.u32(3, set.flags);
            a.u32(4, set.key.0);
            a.u32(5, set.key.1);
            if let Some((data_type, data_len)) = set.data {
                a.u32(6, data_type);
                a.u32(7, data_len);
            }
            a.u32(10, id);
            if let Some(size) = set.size {
                a.nest(9, |a| a.u32(1, size));
            }
            a.bytes(13, set.userdata);
        });
        id
    }

    /// A named interval set with its elements.
    fn new_set(&mut self, name: &str, set: &NamedSet) {
        let key_type = match set.kind {
            ElementKind::V4 => TYPE_IPADDR,
            ElementKind::V6 => TYPE_IP6ADDR,
            ElementKind::Port => TYPE_INET_SERVICE,
        };
        let id = self.declare_set(
            Object::Set(name.into()),
            SetHeader {
                name,
                flags: SET_INTERVAL,
                key: (key_type, set.kind.key_len() as u32),
                data: None,
                size: None,
                userdata: UDATA_KEY_BIG_ENDIAN,
            },
        );
        let elements = interval_elements(set.kind, &set.elements);
        self.elements(
            NEWSETELEM,
            name,
            Some(id),
            &elements,
            |a, (key, end, open)| {
                a.nest(1, |a| a.bytes(1, key));
                if *end {
                    a.u32(3, ELEM_INTERVAL_END);
                }
                if *open {
                    a.bytes(6, UDATA_INTERVAL_OPEN);
                }
            },
        );
    }

    /// `type ipv4_addr : verdict` (or ipv6), empty.
    fn new_map(&mut self, name: &str, v6: bool) {
        self.declare_set(
            Object::Set(name.into()),
            SetHeader {
                name,
                flags: SET_MAP,
                key: address_key(v6),
                data: Some((TYPE_VERDICT_DATA, 0)),
                size: None,
                userdata: UDATA_VERDICT_MAP,
            },
        );
    }

    /// Add (`NEWSETELEM`) or remove (`DELSETELEM`) map elements `address : jump chain`.
    fn map_elements(&mut self, kind: u16, map: &str, entries: &[(IpAddr, Option<&str>)]) {
        self.elements(kind, map, None, entries, |a, (ip, chain)| {
            a.nest(1, |a| a.bytes(1, &address_bytes(*ip)));
            if let Some(chain) = chain {
                verdict_data(a, 2, JUMP, Some(chain));
            }
        });
    }

    /// A plain (hash) set of addresses, `set known_v4 { type ipv4_addr; }`, with `addresses`.
    fn new_address_set(&mut self, name: &str, v6: bool, addresses: &[IpAddr]) {
        let id = self.declare_set(
            Object::Set(name.into()),
            SetHeader {
                name,
                flags: 0,
                key: address_key(v6),
                data: None,
                size: None,
                userdata: UDATA_KEY_BIG_ENDIAN,
            },
        );
        if !addresses.is_empty() {
            self.address_elements(NEWSETELEM, name, Some(id), addresses);
        }
    }

    /// Add (`NEWSETELEM`) or remove (`DELSETELEM`) addresses of a plain set.
    fn address_elements(
        &mut self,
        kind: u16,
        set: &str,
        set_id: Option<u32>,
        addresses: &[IpAddr],
    ) {
        self.elements(kind, set, set_id, addresses, |a, ip| {
            a.nest(1, |a| a.bytes(1, &address_bytes(*ip)));
        });
    }

    /// The guard's sets ([`PodGuard`]), in the order the script declares them: per family
    /// `known_…` (the node's pods), then `local_…` (its pod ranges) when it has any.
    fn guard_sets(&mut self, guard: &PodGuard) {
        for (family, v4) in [("v4", true), ("v6", false)] {
            let known: Vec<IpAddr> = guard
                .known
                .iter()
                .filter(|ip| ip.is_ipv4() == v4)
                .copied()
                .collect();
            self.new_address_set(&format!("known_{family}"), !v4, &known);
            let kind = if v4 { ElementKind::V4 } else { ElementKind::V6 };
            let local: Vec<Element> = guard
                .cidrs
                .iter()
                .filter(|c| matches!(c, ipnet::IpNet::V4(_)) == v4)
                .map(|c| Element {
                    kind,
                    first: address_value(c.network()),
                    last: address_value(c.broadcast()),
                })
                .collect();
            if !local.is_empty() {
                self.new_set(
                    &format!("local_{family}"),
                    &NamedSet {
                        kind,
                        elements: local,
                    },
                );
            }
        }
    }

    /// Element messages for `set`, as many as the attribute length limit needs.
    fn elements<E>(
        &mut self,
        kind: u16,
        set: &str,
        set_id: Option<u32>,
        elements: &[E],
        element: impl Fn(&mut Attrs, &E),
    ) {
        let mut rest = elements;
        while !rest.is_empty() {
            let mut taken = 0;
            let flags = if kind == NEWSETELEM { F_CREATE } else { 0 };
            self.batch
                .message(kind, flags, Object::Elements(set.into()), |a| {
                    table(a);
                    a.str(2, set);
                    if let Some(id) = set_id {
                        a.u32(4, id);
                    }
                    a.nest(3, |a| {
                        let start = a.len();
                        for e in rest {
                            if a.len() - start > ELEMENTS_PER_MESSAGE_BYTES {
                                break;
                            }
                            a.nest(1, |a| element(a, e));
                            taken += 1;
                        }
                    });
                });
            rest = &rest[taken..];
        }
    }

    /// An anonymous constant set of protocol numbers (`{ tcp, udp }`), for the rule that
    /// follows; returns its transaction id.
    fn anonymous_protocols(&mut self, chain: &str, index: usize, protocols: &[u8]) -> u32 {
        let id = self.declare_set(
            Object::Rule(chain.into(), index),
            SetHeader {
                name: "__set%d",
                flags: SET_ANONYMOUS | SET_CONSTANT,
                key: (TYPE_INET_PROTOCOL, 1),
                data: None,
                size: Some(protocols.len() as u32),
                userdata: UDATA_L4PROTO_SET,
            },
        );
        let keys: Vec<u8> = protocols.to_vec();
        self.elements(NEWSETELEM, "__set%d", Some(id), &keys, |a, p| {
            a.nest(1, |a| a.bytes(1, &[*p]));
        });
        id
    }

    /// One rendered rule, appended to `chain`.
    fn rule(&mut self, chain: &str, index: usize, rule: &NftRule) {
        if let Some(comment) = rule.comment.as_ref().filter(|c| c.len() > COMMENT_MAX) {
            self.refused.get_or_insert_with(|| {
                format!(
                    "rule {index} of chain inet {TABLE} {chain}: comment of {} bytes, nft allows {COMMENT_MAX}: {comment}",
                    comment.len()
                )
            });
            return;
        }
        // Anonymous sets must exist before the rule that uses them.
        let anonymous: Vec<u32> = rule
            .matches
            .iter()
            .filter_map(|m| match m {
                Match::L4ProtoNotIn(protocols) => {
                    Some(self.anonymous_protocols(chain, index, protocols))
                }
                _ => None,
            })
            .collect();
        self.batch.message(
            NEWRULE,
            F_CREATE | F_APPEND,
            Object::Rule(chain.into(), index),
            |a| {
                table(a);
                a.str(2, chain);
                a.nest(4, |a| {
                    let mut e = Exprs {
                        a,
                        nfproto: None,
                        l4proto: None,
                    };
                    encode_rule(&mut e, rule, &anonymous);
                });
                if let Some(comment) = &rule.comment {
                    // NFTNL_UDATA_RULE_COMMENT, NUL-terminated.
                    let mut udata = vec![0u8, (comment.len() + 1) as u8];
                    udata.extend_from_slice(comment.as_bytes());
                    udata.push(0);
                    a.bytes(7, &udata);
                }
            },
        );
    }

    /// The forward chain's rules: conntrack, the guard's drops of unknown local pods (the
    /// script's `PodGuard::rules`, same order), then dispatch by address.
    fn forward_rules(&mut self, guard: Option<&PodGuard>) {
        let mut index = 0;
        let mut rule = |t: &mut Transaction, body: &dyn Fn(&mut Exprs)| {
            t.batch.message(
                NEWRULE,
                F_CREATE | F_APPEND,
                Object::ForwardRule(index),
                |a| {
                    table(a);
                    a.str(2, "forward");
                    a.nest(4, |a| {
                        body(&mut Exprs {
                            a,
                            nfproto: None,
                            l4proto: None,
                        })
                    });
                },
            );
            index += 1;
        };
        // ct state established,related accept
        rule(self, &|e| {
            e.ct_state(0x6);
            e.immediate(ACCEPT, None);
        });
        // ct state invalid counter drop
        rule(self, &|e| {
            e.ct_state(0x1);
            e.counter();
            e.immediate(DROP, None);
        });
        if let Some(guard) = guard {
            // `counter log prefix "netfence new pod " drop`
            let drop = |e: &mut Exprs| {
                e.counter();
                e.log(GUARD_LOG_PREFIX);
                e.immediate(DROP, None);
            };
            for family in [Family::V4, Family::V6] {
                let v4 = family == Family::V4;
                let name = if v4 { "v4" } else { "v6" };
                let (local, known) = (format!("local_{name}"), format!("known_{name}"));
                if guard
                    .cidrs
                    .iter()
                    .any(|c| matches!(c, ipnet::IpNet::V4(_)) == v4)
                {
                    // `ip saddr @local_v4 ip saddr != @known_v4 …`, then daddr.
                    for field in [AddressField::Source, AddressField::Destination] {
                        rule(self, &|e| {
                            address_payload(e, family, field);
                            e.lookup(&local, None, false, false);
                            address_payload(e, family, field);
                            e.lookup(&known, None, true, false);
                            drop(e);
                        });
                    }
                }
                for interface in &guard.interfaces {
                    // As the script writes it (quotes dropped).
                    let interface = interface.replace('"', "");
                    let value = match interface_bytes(&interface) {
                        Ok(value) => value,
                        Err(reason) => {
                            self.refused.get_or_insert_with(|| {
                                format!("pod interface \"{interface}\": {reason}")
                            });
                            continue;
                        }
                    };
                    // `iifname "veth*" ip saddr != @known_v4 …`, `oifname … ip daddr …`.
                    for (meta, field) in [
                        (META_IIFNAME, AddressField::Source),
                        (META_OIFNAME, AddressField::Destination),
                    ] {
                        rule(self, &|e| {
                            e.meta(meta);
                            e.cmp(CMP_EQ, &value);
                            address_payload(e, family, field);
                            e.lookup(&known, None, true, false);
                            drop(e);
                        });
                    }
                }
            }
        }
        for (map, field) in [
            ("egress_v4", AddressField::Source),
            ("egress_v6", AddressField::Source),
            ("ingress_v4", AddressField::Destination),
            ("ingress_v6", AddressField::Destination),
        ] {
            let family = if map.ends_with("v4") {
                Family::V4
            } else {
                Family::V6
            };
            rule(self, &|e| {
                address_payload(e, family, field);
                e.lookup(map, None, false, true);
            });
        }
    }
}

/// An address as a key, in network byte order.
fn address_bytes(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    }
}

fn address_value(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// What `iifname`/`oifname` compares with for an interface name as nft 1.0.6 reads it
/// (nftables src/evaluate.c `expr_evaluate_string`): a trailing `*` is a prefix match
/// (the bytes before it, no terminator); a trailing `\*` is the name with its backslashes
/// removed; anything else is the name itself. Whole names are compared as `IFNAMSIZ` (16)
/// zero-padded bytes. nft refuses an empty name, a lone `*` and a name of 16 bytes or more.
fn interface_bytes(name: &str) -> Result<Vec<u8>, String> {
    const IFNAMSIZ: usize = 16;
    let bytes = name.as_bytes();
    if bytes.is_empty() {
        return Err("Empty string is not allowed".into());
    }
    if bytes.len() >= IFNAMSIZ {
        return Err(format!("String exceeds maximum length of {IFNAMSIZ}"));
    }
    let padded = |value: Vec<u8>| {
        let mut value = value;
        value.resize(IFNAMSIZ, 0);
        value
    };
    match bytes {
        [b'*'] => Err("All-wildcard strings are not supported".into()),
        [.., b'\\', b'*'] => Ok(padded(
            bytes.iter().copied().filter(|b| *b != b'\\').collect(),
        )),
        [prefix @ .., b'*'] => Ok(prefix.to_vec()),
        _ => Ok(padded(bytes.to_vec())),
    }
}

/// `ip|ip6 saddr|daddr`: the family check, then the address loaded into register 1.
fn address_payload(e: &mut Exprs, family: Family, field: AddressField) {
    e.nfproto(family);
    let (offset, len) = match (family, field) {
        (Family::V4, AddressField::Source) => (12, 4),
        (Family::V4, AddressField::Destination) => (16, 4),
        (Family::V6, AddressField::Source) => (8, 16),
        (Family::V6, AddressField::Destination) => (24, 16),
    };
    e.payload(NETWORK_HEADER, offset, len);
}

fn encode_rule(e: &mut Exprs, rule: &NftRule, anonymous: &[u32]) {
    let mut anonymous = anonymous.iter();
    let mut i = 0;
    while i < rule.matches.len() {
        match &rule.matches[i] {
            Match::NfProto(family) => {
                e.meta(15);
                e.cmp(CMP_EQ, &[nfproto_number(*family)]);
                e.nfproto = Some(*family);
            }
            Match::Address {
                family,
                field,
                value,
            } => {
                address_payload(e, *family, *field);
                e.operand(value, false);
            }
            Match::L4Proto { negated, protocol } => {
                e.meta(16);
                e.cmp(if *negated { CMP_NEQ } else { CMP_EQ }, &[*protocol]);
                if !negated {
                    e.l4proto = Some(*protocol);
                }
            }
            Match::L4ProtoNotIn(_) => {
                e.meta(16);
                let id = anonymous.next().copied();
                e.lookup("__set%d", id, true, false);
            }
            Match::DestinationPort { negated, value } => {
                e.payload(TRANSPORT_HEADER, 2, 2);
                e.operand(value, *negated);
            }
            Match::Icmp {
                v6,
                field,
                negated,
                value,
            } => {
                let protocol = if *v6 { 58 } else { 1 };
                if e.l4proto != Some(protocol) {
                    e.nfproto(if *v6 { Family::V6 } else { Family::V4 });
                    e.meta(16);
                    e.cmp(CMP_EQ, &[protocol]);
                    e.l4proto = Some(protocol);
                }
                // nft merges `type T code C` (adjacent equalities of one header) into one
                // two-byte comparison (src/rule.c payload merging).
                if let (
                    IcmpField::Type,
                    false,
                    Some(Match::Icmp {
                        v6: next_v6,
                        field: IcmpField::Code,
                        negated: false,
                        value: code,
                    }),
                ) = (field, negated, rule.matches.get(i + 1))
                {
                    if next_v6 == v6 {
                        e.payload(TRANSPORT_HEADER, 0, 2);
                        e.cmp(CMP_EQ, &[*value, *code]);
                        i += 2;
                        continue;
                    }
                }
                let offset = match field {
                    IcmpField::Type => 0,
                    IcmpField::Code => 1,
                };
                e.payload(TRANSPORT_HEADER, offset, 1);
                e.cmp(if *negated { CMP_NEQ } else { CMP_EQ }, &[*value]);
            }
        }
        i += 1;
    }
    if rule.counter {
        e.counter();
    }
    if let Some(prefix) = &rule.log {
        e.log(prefix);
    }
    match &rule.verdict {
        Some(Verdict::Return) => e.immediate(RETURN, None),
        Some(Verdict::Drop) => e.immediate(DROP, None),
        Some(Verdict::Goto(chain)) => e.immediate(GOTO, Some(chain)),
        None => {}
    }
}

/// Interval set elements as nft sends them (src/segtree.c): each range is its start and,
/// unless it runs to the end of the key space, an end element one past its last value; a
/// leading end element at zero when the first range does not start there; a range that
/// runs to the end is marked open.
fn interval_elements(kind: ElementKind, elements: &[Element]) -> Vec<(Vec<u8>, bool, bool)> {
    let mut sorted: Vec<&Element> = elements.iter().collect();
    sorted.sort_by_key(|e| (e.first, e.last));
    let mut out = Vec::with_capacity(elements.len() * 2 + 1);
    if sorted.first().is_some_and(|e| e.first != 0) {
        out.push((kind.bytes(0), true, false));
    }
    let max = kind.max();
    for e in sorted {
        let open = e.last == max;
        out.push((kind.bytes(e.first), false, open));
        if !open {
            out.push((kind.bytes(e.last + 1), true, false));
        }
    }
    out
}

/// Send a transaction and wait for the kernel's answer; the first refused message, named.
fn commit(
    t: Transaction,
    netns: Option<&str>,
    ruleset: Option<&Ruleset>,
) -> Result<(), DataplaneError> {
    if let Some(reason) = t.refused {
        return Err(DataplaneError::Failed {
            command: format!(
                "nftables netlink transaction{}",
                netns
                    .map(|n| format!(" in network namespace {n}"))
                    .unwrap_or_default()
            ),
            stderr: reason,
        });
    }
    let started = std::time::Instant::now();
    let t_created = t.created;
    let (datagram, objects) = t.batch.finish();
    let failed = |e: std::io::Error| {
        DataplaneError::Other(format!(
            "nftables netlink transaction{}: {e}",
            netns
                .map(|n| format!(" in network namespace {n}"))
                .unwrap_or_default()
        ))
    };
    let mut socket = socket::Socket::open(netns).map_err(failed)?;
    socket.send(&datagram).map_err(failed)?;
    let sent = started.elapsed();
    let errors = wire::read_answers(&mut socket, objects.len() as u32).map_err(failed)?;
    if std::env::var_os("NETFENCE_NETLINK_TRACE").is_some() {
        eprintln!(
            "netlink: encoded in {:?}: {} messages, {} bytes; socket+send {:?}, answer {:?}",
            started - t_created,
            objects.len(),
            datagram.len(),
            sent,
            started.elapsed() - sent
        );
    }
    let Some(first) = errors.first() else {
        return Ok(());
    };
    let object = match first.seq {
        0 => "the batch".to_string(),
        n => objects
            .get(n as usize - 1)
            .map(|o| o.describe(ruleset))
            .unwrap_or_else(|| format!("message {n}")),
    };
    let reason = std::io::Error::from_raw_os_error(first.errno);
    Err(DataplaneError::Failed {
        command: format!(
            "nftables netlink transaction{}",
            netns
                .map(|n| format!(" in network namespace {n}"))
                .unwrap_or_default()
        ),
        stderr: format!(
            "the kernel refused {object}: {reason}{}{}",
            first
                .message
                .as_ref()
                .map(|m| format!(" ({m})"))
                .unwrap_or_default(),
            match errors.len() {
                1 => String::new(),
                n => format!("; {} more errors in the same transaction", n - 1),
            }
        ),
    })
}

/// Load the ruleset in one transaction, replacing any previous netfence table (the table is
/// created, deleted and created again, as `nft -f` does with the script's first lines).
pub fn apply(ruleset: &Ruleset, netns: Option<&str>) -> Result<(), DataplaneError> {
    let mut t = Transaction::new();
    t.new_table();
    t.del_table();
    t.new_table();
    for (name, set) in &ruleset.sets {
        t.new_set(name, set);
    }
    if let Some(guard) = &ruleset.guard {
        t.guard_sets(guard);
    }
    for (map, addr_type) in MAPS {
        t.new_map(map, addr_type == "ipv6_addr");
    }
    t.new_forward_chain();
    // Every chain first: rules jump to one another.
    for name in ruleset.chains.keys() {
        t.new_chain(name);
    }
    for (name, chain) in &ruleset.chains {
        for (index, rule) in chain.rules.iter().enumerate() {
            t.rule(name, index, rule);
        }
    }
    for (map, _) in MAPS {
        if let Some(entries) = ruleset.maps.get(map).filter(|e| !e.is_empty()) {
            let entries: Vec<(IpAddr, Option<&str>)> = entries
                .iter()
                .map(|(ip, chain)| (*ip, Some(chain.as_str())))
                .collect();
            t.map_elements(NEWSETELEM, map, &entries);
        }
    }
    t.forward_rules(ruleset.guard.as_ref());
    commit(t, netns, Some(ruleset))
}

/// Walk two sorted maps together: every key of either, with its value in each (a linear
/// merge, rather than one lookup per key: at 20,000 chains the lookups were most of an
/// update's time).
fn join<'a, K: Ord, A, B>(
    a: &'a BTreeMap<K, A>,
    b: &'a BTreeMap<K, B>,
) -> impl Iterator<Item = (&'a K, Option<&'a A>, Option<&'a B>)> {
    let (mut a, mut b) = (a.iter().peekable(), b.iter().peekable());
    std::iter::from_fn(move || match (a.peek(), b.peek()) {
        (None, None) => None,
        (Some(_), None) => a.next().map(|(k, v)| (k, Some(v), None)),
        (None, Some(_)) => b.next().map(|(k, v)| (k, None, Some(v))),
        (Some((ka, _)), Some((kb, _))) => match ka.cmp(kb) {
            std::cmp::Ordering::Less => a.next().map(|(k, v)| (k, Some(v), None)),
            std::cmp::Ordering::Greater => b.next().map(|(k, v)| (k, None, Some(v))),
            std::cmp::Ordering::Equal => {
                let (k, va) = a.next()?;
                let (_, vb) = b.next()?;
                Some((k, Some(va), Some(vb)))
            }
        },
    })
}

/// Turn the loaded `previous` ruleset into `next` in one transaction, touching only the sets,
/// chains and map elements that differ (the same steps, in the same order, as
/// [`Ruleset::update_script`]). Returns whether anything had to change.
pub fn update(
    previous: &Ruleset,
    next: &Ruleset,
    netns: Option<&str>,
) -> Result<bool, DataplaneError> {
    // The guard's ranges or interfaces changed (or it came or went): the forward chain
    // changes, so the table is replaced, still in one transaction (as `update_script`).
    match (&previous.guard, &next.guard) {
        (None, None) => {}
        (Some(old), Some(new)) if old.cidrs == new.cidrs && old.interfaces == new.interfaces => {}
        _ => return apply(next, netns).map(|_| true),
    }
    let mut t = Transaction::new();
    let mut gone_sets = Vec::new();
    for (name, old, new) in join(&previous.sets, &next.sets) {
        match (old, new) {
            (None, Some(set)) => t.new_set(name, set),
            (Some(_), None) => gone_sets.push(name),
            _ => {}
        }
    }
    let mut gone_chains = Vec::new();
    let mut to_fill = Vec::new();
    for (name, old, new) in join(&previous.chains, &next.chains) {
        match (old, new) {
            (None, Some(chain)) => {
                // New chains first: rules of one new chain may jump to another.
                t.new_chain(name);
                to_fill.push((name, chain, false));
            }
            (Some(old), Some(chain)) if old.digest != chain.digest => {
                to_fill.push((name, chain, true))
            }
            (Some(_), None) => gone_chains.push(name),
            _ => {}
        }
    }
    for (name, chain, flush) in to_fill {
        if flush {
            t.flush_chain(name);
        }
        for (index, rule) in chain.rules.iter().enumerate() {
            t.rule(name, index, rule);
        }
    }
    let empty = BTreeMap::new();
    for (map, _) in MAPS {
        let old = previous.maps.get(map).unwrap_or(&empty);
        let new = next.maps.get(map).unwrap_or(&empty);
        let (mut removed, mut added) = (Vec::new(), Vec::new());
        for (ip, was, is) in join(old, new) {
            if was != is {
                if was.is_some() {
                    removed.push((*ip, None));
                }
                if let Some(chain) = is {
                    added.push((*ip, Some(chain.as_str())));
                }
            }
        }
        if !removed.is_empty() {
            t.map_elements(DELSETELEM, map, &removed);
        }
        if !added.is_empty() {
            t.map_elements(NEWSETELEM, map, &added);
        }
    }
    // A new pod becomes known in the transaction that installs its chains (above).
    if let (Some(old), Some(new)) = (&previous.guard, &next.guard) {
        for (family, v4) in [("v4", true), ("v6", false)] {
            let of = |ips: std::collections::btree_set::Difference<IpAddr>| -> Vec<IpAddr> {
                ips.filter(|ip| ip.is_ipv4() == v4).copied().collect()
            };
            let set = format!("known_{family}");
            for (kind, addresses) in [
                (DELSETELEM, of(old.known.difference(&new.known))),
                (NEWSETELEM, of(new.known.difference(&old.known))),
            ] {
                if !addresses.is_empty() {
                    t.address_elements(kind, &set, None, &addresses);
                }
            }
        }
    }
    // Chains jump to one another: empty every chain that goes before deleting any.
    for name in &gone_chains {
        t.flush_chain(name);
    }
    for name in &gone_chains {
        t.del_chain(name);
    }
    for name in gone_sets {
        t.del_set(name);
    }
    if t.batch.is_empty() {
        return Ok(false);
    }
    commit(t, netns, Some(next)).map(|_| true)
}

/// Remove the netfence table; nothing else. Removing an absent table is not an error.
pub fn flush(netns: Option<&str>) -> Result<(), DataplaneError> {
    let mut t = Transaction::new();
    t.new_table();
    t.del_table();
    commit(t, netns, None)
}
