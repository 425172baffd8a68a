//! Enrichment and checking: each flow's addresses become endpoints at the flow's time (the
//! pods history first, then the inventory's real pod addresses, then the pod the log itself
//! names), replies are set aside, and the connection is judged by the engine, once per
//! distinct (source, destination, protocol, port): flows repeat, verdicts are cached.

use crate::classes::ClassOutcomes;
use crate::history::{History, Holder};
use crate::{Flow, FlowProtocol, FlowSink, Observed, ObservedAt, PodHint, Reply, VpcRecord};
use jiff::Timestamp;
use netfence_engine::{ConnectionClass, Endpoint, Engine, PolicyId, Verdict, VerdictIndex};
use netfence_model::aws::{pod_security_groups, AwsInput, SgDirection, SgSide};
use netfence_model::net::FastMap;
use netfence_model::{PodId, Protocol};
use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Arc;

/// At most this many verdicts are cached; past it the cache starts again, so that memory stays
/// bounded when a log holds millions of distinct connections (a port scan).
pub const MAX_CACHED_VERDICTS: usize = 1 << 20;

/// Cache `value` under `key`, starting the cache again when it holds
/// [`MAX_CACHED_VERDICTS`] entries (every cache of the checker is bounded the same way).
fn remember<K: std::hash::Hash + Eq, V>(cache: &mut FastMap<K, V>, key: K, value: V) {
    if cache.len() >= MAX_CACHED_VERDICTS {
        cache.clear();
    }
    cache.insert(key, value);
}

/// What policy says of a flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Judgement {
    /// Policy allows the connection.
    Allow,
    /// Policy denies the connection.
    Deny,
}

impl Judgement {
    /// `allow` or `deny`.
    pub fn as_str(self) -> &'static str {
        match self {
            Judgement::Allow => "allow",
            Judgement::Deny => "deny",
        }
    }
}

/// A flow mapped to endpoints and judged.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckedFlow {
    /// When the flow was seen.
    pub time: Option<Timestamp>,
    /// The source endpoint at that time.
    pub src: Endpoint,
    /// The destination endpoint at that time (a Service's cluster IP stays an address; the
    /// verdict is then the one through the Service).
    pub dst: Endpoint,
    /// The protocol.
    pub protocol: FlowProtocol,
    /// The destination port, for protocols with ports.
    pub port: Option<u16>,
    /// What the log says happened.
    pub observed: Option<Observed>,
    /// What policy says; `None` when the engine cannot judge the flow (a protocol without
    /// ports, which no TCP/UDP/SCTP model covers, or a ported flow with no port).
    pub policy: Option<Judgement>,
    /// The deciding policy as `Kind namespace/name` (`Kind name` when cluster-scoped); `None`
    /// when no policy decided (no policy selects either side).
    pub decided_by: Option<Arc<str>>,
    /// Observed allow and policy deny, or observed deny and policy allow. A flow observed at
    /// the source's egress ([`ObservedAt::Egress`]) is compared with the egress side alone.
    pub mismatch: bool,
}

/// A mismatch row and how many flows it stands for ([`Checker::counting`]).
pub type CountedRow = (CheckedFlow, u64);

/// The outcome of checking one flow.
#[derive(Clone, Debug, PartialEq)]
pub enum Checked {
    /// A reply: not judged as a connection.
    Reply,
    /// A connection, judged.
    Judged(CheckedFlow),
}

/// Counts kept while checking.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckStats {
    /// Flows judged (replies excluded).
    pub judged: u64,
    /// Replies set aside.
    pub replies: u64,
    /// Flows the engine cannot judge (protocol without ports, or no port).
    pub not_judged: u64,
    /// Mismatches.
    pub mismatches: u64,
    /// Flows whose address the history gives to a pod the inputs do not have (judged as the
    /// bare address).
    pub history_pods_missing: u64,
    /// Explanations the engine was asked for: one per distinct connection class between two
    /// pods (see [`ConnectionClass`]), one per distinct connection otherwise.
    pub verdicts: u64,
    /// Flows the security groups deny (with `--aws-security-groups`, VPC records only).
    pub security_group_denials: u64,
}

impl CheckStats {
    /// Add `other`'s counts to these.
    pub fn merge(&mut self, other: &CheckStats) {
        self.judged += other.judged;
        self.replies += other.replies;
        self.not_judged += other.not_judged;
        self.mismatches += other.mismatches;
        self.history_pods_missing += other.history_pods_missing;
        self.verdicts += other.verdicts;
        self.security_group_denials += other.security_group_denials;
    }
}

/// The other side of a connection as the engine is asked about it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Target {
    Endpoint(Endpoint),
    /// A Service by its index in the inventory.
    Service(usize),
}

/// An end of a connection as the decisions' cache knows it: a pod, a Service, or the segment
/// of the address space an address lies in (between two of the engine's cuts,
/// [`Engine::list_cuts`]: every CIDR a rule peer names, with its exceptions,
/// every network set's, and the nodes' addresses when a peer is the nodes). An address is
/// never a policy's subject, and a rule peer matches it by those CIDRs, network sets and
/// node addresses only (`Engine::peer_is`), so two addresses of one segment are decided
/// alike, by the same policy: the engine's connection list takes its external ranges from
/// the same cuts. Traffic to and from the Internet names a new address nearly every record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum DecisionEnd {
    Pod(PodId),
    Service(usize),
    /// (IPv6, segment index).
    Segment(bool, usize),
}

#[derive(Clone)]
struct Decision {
    allowed: bool,
    /// Whether the source's egress allows (true when the source is no pod).
    egress_allowed: bool,
    decided_by: Option<Arc<str>>,
}

/// (source, destination, protocol, port, IPv4): an address family's "anywhere" differs.
type GroupKey = (Endpoint, Endpoint, Protocol, u16, bool);

/// The security groups in the verdict path: which groups each endpoint's network interface
/// carries, and the verdicts already computed.
struct SecurityGroups {
    input: AwsInput,
    /// By pod id: the SecurityGroupPolicy groups, when one matches the pod.
    pod_groups: Vec<Option<Vec<String>>>,
    /// The nodes' groups: pods without their own groups use their node's interface.
    node_groups: Vec<String>,
    node_addresses: HashSet<IpAddr>,
    /// The deciding group text when denied; `None` inside when the groups allow or nothing
    /// was judged.
    cache: FastMap<GroupKey, Option<Arc<str>>>,
}

impl SecurityGroups {
    /// The groups on the interface `endpoint` sends from (empty: none known, not judged).
    fn groups(&self, endpoint: Endpoint) -> &[String] {
        match endpoint {
            // A pod without its own groups uses its node's interface (VPC CNI secondary
            // addresses; a host-network pod is the node).
            Endpoint::Pod(id) => self
                .pod_groups
                .get(id.index())
                .and_then(Option::as_deref)
                .unwrap_or(&self.node_groups),
            Endpoint::Address(ip) if self.node_addresses.contains(&ip) => &self.node_groups,
            Endpoint::Address(_) => &[],
        }
    }

    /// `Some(deciding group text)` when the groups drop a new connection.
    fn deny(
        &mut self,
        (src, src_ip): (Endpoint, IpAddr),
        (dst, dst_ip): (Endpoint, IpAddr),
        protocol: Protocol,
        port: u16,
    ) -> Option<Arc<str>> {
        let key = (src, dst, protocol, port, src_ip.is_ipv4());
        if let Some(cached) = self.cache.get(&key) {
            return cached.clone();
        }
        let verdict = self.input.connection(
            SgSide {
                groups: self.groups(src),
                address: src_ip,
            },
            SgSide {
                groups: self.groups(dst),
                address: dst_ip,
            },
            protocol,
            port,
        );
        let denied = match verdict {
            Some(Err(denial)) => Some(Arc::from(format!(
                "SecurityGroup {} ({})",
                denial.groups.join(","),
                match denial.direction {
                    SgDirection::Outbound => "outbound",
                    SgDirection::Inbound => "inbound",
                }
            ))),
            Some(Ok(())) | None => None,
        };
        remember(&mut self.cache, key, denied.clone());
        denied
    }
}

/// A flow judged by [`Checker::judge`]: the endpoints and the verdict, without the row's
/// copies ([`Checker::checked`] makes the row).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Judged {
    /// The source endpoint at the flow's time.
    pub src: Endpoint,
    /// The destination endpoint at the flow's time.
    pub dst: Endpoint,
    /// The destination port, for protocols with ports.
    pub port: Option<u16>,
    /// The outcome's index in the checker's table; `None` when not judged.
    outcome: Option<u32>,
    /// Whether what was observed differs from what policy says.
    pub mismatch: bool,
}

/// What a connection comes to: the verdict (security groups included) and who decided.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Outcome {
    allowed: bool,
    egress_allowed: bool,
    group_denied: bool,
    decided_by: Option<Arc<str>>,
}

/// An outcome as the outcome table holds it, in 8 bytes (a table of 100,000 outcomes stays
/// in the CPU's second-level cache): the verdict bits ([`ALLOWED`], [`EGRESS_ALLOWED`],
/// [`GROUP_DENIED`], [`PENDING`]) and the deciding policy's name (0: none, else 1 + its
/// index in [`Checker::names`]). [`PENDING`]: only the verdict is known (from the engine's
/// [`VerdictIndex`], for a connection class between two pods); the egress side and the
/// deciding policy are asked of the engine when a mismatch or a row needs them
/// ([`Checker::settle`], for the connection at hand: every connection of the class gets the
/// same explanation, [`ConnectionClass`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Stored {
    bits: u8,
    name: u32,
}

/// After this many explanations a checker takes verdicts between pods from the engine's
/// [`VerdictIndex`] (a bit test, once its port class is filled) and asks the engine for the
/// explanation only when a mismatch or a row needs it: filling a port class costs about as
/// much as a few thousand explanations (docs/performance.md, verdict lookups), so a log of
/// few connections never pays for it.
pub const EXPLAIN_ALL_BEFORE: u64 = 4096;

/// [`Resolved::outcome`] of a flow the engine cannot judge.
const NOT_JUDGED: u32 = u32::MAX;
/// [`Resolved::src`]/[`Resolved::dst`] of an endpoint that is no pod (the flow's address).
const NO_POD: u32 = u32::MAX;
/// [`Resolved::src_ports_len`] when the source pod declares more ports than are kept.
const MANY_PORTS: u8 = 3;

/// What the check works out from a flow's addresses, protocol and destination port: the
/// per-record rest (reply or not, mismatch or not) is [`Checker::apply`]'s.
#[derive(Clone, Copy, Debug, Default)]
struct Resolved {
    /// The source pod, or [`NO_POD`].
    src: u32,
    /// The destination pod, or [`NO_POD`].
    dst: u32,
    /// Addresses the pods history gives to a pod the inputs do not have (0 to 2).
    missing: u8,
    /// Whether the destination declares the port (a pod's container port or a Service's).
    dst_serves: bool,
    /// The source pod's declared ports of the flow's protocol, up to two.
    src_ports: [u16; 2],
    /// How many of them, or [`MANY_PORTS`].
    src_ports_len: u8,
    /// The outcome's index, or [`NOT_JUDGED`].
    outcome: u32,
    /// The outcome's verdict bits ([`ALLOWED`], [`EGRESS_ALLOWED`], [`GROUP_DENIED`],
    /// [`PENDING`]) as it was when resolved (or, in the front cache, when a VPC record's
    /// check explained it), so that a cached connection is judged without reading the
    /// outcome table (an outcome pending then may be explained since: its verdict stays, its
    /// egress side is read from the table).
    verdict: u8,
    /// The connection class between two pods whose outcome this is, when it was looked up
    /// just now (not kept in the front cache): [`Checker::settle`] puts the explanation in
    /// the class's entry too, so that the class's later connections need not read the
    /// outcome table to learn that it is no longer pending.
    class: Option<ConnectionClass>,
}

/// [`Resolved::verdict`]: policy and groups allow.
const ALLOWED: u8 = 1;
/// [`Resolved::verdict`]: the source's egress allows.
const EGRESS_ALLOWED: u8 = 2;
/// [`Resolved::verdict`]: the security groups deny.
const GROUP_DENIED: u8 = 4;
/// [`Resolved::verdict`]: the outcome's explanation was pending.
const PENDING: u8 = 8;

impl Outcome {
    fn verdict_bits(&self) -> u8 {
        (u8::from(self.allowed) * ALLOWED)
            | (u8::from(self.egress_allowed) * EGRESS_ALLOWED)
            | (u8::from(self.group_denied) * GROUP_DENIED)
    }
}

/// Whether what was observed disagrees with what policy says (`allowed`); nothing observed
/// disagrees with nothing.
#[inline(always)]
fn disagrees(observed: Option<Observed>, allowed: bool) -> bool {
    matches!(
        (observed, allowed),
        (Some(Observed::Allow), false) | (Some(Observed::Deny), true)
    )
}

/// Whether `port` is among a source pod's declared ports as [`Resolved`] keeps them
/// (`len` of `ports`, or [`MANY_PORTS`]); `None` when the pod declares more than are kept,
/// and must be asked.
#[inline(always)]
fn kept_port(ports: &[u16; 2], len: u8, port: Option<u16>) -> Option<bool> {
    match (len, port) {
        (MANY_PORTS, _) => None,
        (_, None) => Some(false),
        (len, Some(port)) => Some(ports[..usize::from(len)].contains(&port)),
    }
}

fn pod_slot(endpoint: Endpoint) -> u32 {
    match endpoint {
        Endpoint::Pod(id) => u32::try_from(id.index()).unwrap_or(NO_POD),
        Endpoint::Address(_) => NO_POD,
    }
}

fn endpoint_of(slot: u32, ip: IpAddr) -> Endpoint {
    match slot {
        NO_POD => Endpoint::Address(ip),
        id => Endpoint::Pod(PodId::new(id as usize)),
    }
}

/// An outcome's index and verdict bits in one `u32`: the index in the low [`OUTCOME_BITS`]
/// (all set for [`NOT_JUDGED`]), the verdict in the four bits above. The low bits of
/// [`FrontSlot::packed`], and a class's entry in [`Checker::class_outcomes`], so that a new
/// connection of a known class is resolved without a second, dependent load from the outcome
/// table (its bits may say pending for an outcome explained since, as a front cache entry's
/// may: [`Resolved::verdict`]; an explanation asked for a connection looked up the long way
/// is put in its class's entry, [`Resolved::class`]).
#[derive(Clone, Copy, Debug)]
struct PackedOutcome(u32);

impl PackedOutcome {
    /// How many low bits it takes.
    const BITS: u32 = VERDICT_SHIFT + 4;

    /// `None` when `index` does not fit (past [`OUTCOME_BITS`], which the outcome table's
    /// bound rules out).
    fn new(index: u32, verdict: u8) -> Option<PackedOutcome> {
        let index = match index {
            NOT_JUDGED => OUTCOME_NONE,
            index if index < OUTCOME_NONE => index,
            _ => return None,
        };
        Some(PackedOutcome(
            index | (u32::from(verdict & 0xf) << VERDICT_SHIFT),
        ))
    }

    /// The one held in the low [`PackedOutcome::BITS`] of `word`.
    fn in_low_bits(word: u32) -> PackedOutcome {
        PackedOutcome(word & ((1 << Self::BITS) - 1))
    }

    /// Whether there is an outcome (the index is not [`NOT_JUDGED`]).
    #[inline(always)]
    fn judged(self) -> bool {
        self.0 & OUTCOME_NONE != OUTCOME_NONE
    }

    /// The outcome's index, or [`NOT_JUDGED`].
    fn index(self) -> u32 {
        match self.0 & OUTCOME_NONE {
            OUTCOME_NONE => NOT_JUDGED,
            index => index,
        }
    }

    fn verdict(self) -> u8 {
        ((self.0 >> VERDICT_SHIFT) & 0xf) as u8
    }
}

/// A front cache key: both IPv4 addresses (or both IPv6 addresses' ids, [`AddressIds`]), and
/// (port, protocol, whether the addresses are ids, security groups seen, 1). The zero key is
/// no flow's (the low bit of `rest` is always set), so it marks a free slot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct FrontKey {
    /// Source and destination (u32 halves, not one u64: the key stays 4-aligned, so that a
    /// slot is 32 bytes and a set one cache line).
    addresses: [u32; 2],
    rest: u32,
}

/// A front cache entry: the key, its [`Resolved`] packed in 16 bytes, and the connection's
/// mismatches not handed on yet ([`Checker::counting`]). The
/// tally sits in the slot, so that a record's check touches the set's cache line and no
/// other.
#[derive(Clone, Copy, Debug, Default)]
struct FrontSlot {
    key: FrontKey,
    src: u32,
    dst: u32,
    src_ports: [u16; 2],
    /// [`Resolved::outcome`] and `verdict` ([`PackedOutcome`]), then `missing` (2 bits),
    /// `dst_serves` (1) and `src_ports_len` (2).
    packed: u32,
    tally: u32,
}

/// The bits of [`FrontSlot::packed`] that hold the outcome's index; all set: not judged.
const OUTCOME_BITS: u32 = 21;
const OUTCOME_NONE: u32 = (1 << OUTCOME_BITS) - 1;
/// Where [`Resolved::verdict`] starts in [`FrontSlot::packed`].
const VERDICT_SHIFT: u32 = OUTCOME_BITS;
// Every outcome index fits (the outcome table starts again at `MAX_CACHED_VERDICTS`).
const _: () = assert!(MAX_CACHED_VERDICTS < OUTCOME_NONE as usize);

impl FrontSlot {
    /// The slot of `key` holding `resolved` (no tally); `None` when it does not fit (an
    /// outcome index past [`OUTCOME_BITS`], which the outcome table's bound rules out).
    fn new(key: FrontKey, resolved: &Resolved) -> Option<FrontSlot> {
        let rest = PackedOutcome::BITS;
        let packed = PackedOutcome::new(resolved.outcome, resolved.verdict)?.0
            | (u32::from(resolved.missing.min(3)) << rest)
            | (u32::from(resolved.dst_serves) << (rest + 2))
            | (u32::from(resolved.src_ports_len.min(MANY_PORTS)) << (rest + 3));
        Some(FrontSlot {
            key,
            src: resolved.src,
            dst: resolved.dst,
            src_ports: resolved.src_ports,
            packed,
            tally: 0,
        })
    }

    /// The [`Resolved`] the slot holds.
    #[inline]
    fn resolved(&self) -> Resolved {
        let outcome = self.outcome();
        Resolved {
            src: self.src,
            dst: self.dst,
            missing: self.missing(),
            dst_serves: self.dst_serves(),
            src_ports: self.src_ports,
            src_ports_len: self.src_ports_len(),
            outcome: outcome.index(),
            verdict: outcome.verdict(),
            class: None,
        }
    }

    /// [`Resolved::outcome`] and [`Resolved::verdict`].
    #[inline(always)]
    fn outcome(&self) -> PackedOutcome {
        PackedOutcome::in_low_bits(self.packed)
    }

    /// The `bits` of `packed` from `shift` on above the outcome.
    #[inline(always)]
    fn field(&self, shift: u32, bits: u32) -> u8 {
        ((self.packed >> (PackedOutcome::BITS + shift)) & ((1 << bits) - 1)) as u8
    }

    /// [`Resolved::missing`].
    #[inline(always)]
    fn missing(&self) -> u8 {
        self.field(0, 2)
    }

    /// [`Resolved::dst_serves`].
    #[inline(always)]
    fn dst_serves(&self) -> bool {
        self.field(2, 1) != 0
    }

    /// [`Resolved::src_ports_len`].
    #[inline(always)]
    fn src_ports_len(&self) -> u8 {
        self.field(3, 2)
    }
}

/// The words of a [`FrontSlot`] as the front cache holds it: the key's three, `src`,
/// `dst`, `src_ports` (low half first), `packed` and `tally`.
const SLOT_WORDS: usize = 8;
/// The words of a set of the front cache: 2 slots of 32 bytes, one cache line.
const SET_WORDS: usize = SLOT_WORDS * WAYS;
/// Where `packed` and `tally` sit among a slot's words.
const PACKED_WORD: usize = 6;
const TALLY_WORD: usize = 7;

// A slot of 32 bytes, a set of one cache line (with a u64 in the key, slots were 40 bytes:
// sets of 4 would have touched three lines).
const _: () = assert!(std::mem::size_of::<FrontSlot>() == 4 * SLOT_WORDS);
const _: () = assert!(4 * SET_WORDS == 64);

impl FrontSlot {
    /// The slot whose words start `words` (the zero words: a free slot).
    #[inline(always)]
    fn from_words(words: &[u32; SLOT_WORDS]) -> FrontSlot {
        FrontSlot {
            key: FrontKey {
                addresses: [words[0], words[1]],
                rest: words[2],
            },
            src: words[3],
            dst: words[4],
            src_ports: [words[5] as u16, (words[5] >> 16) as u16],
            packed: words[PACKED_WORD],
            tally: words[TALLY_WORD],
        }
    }

    /// The slot's words ([`FrontSlot::from_words`]).
    #[inline(always)]
    fn words(&self) -> [u32; SLOT_WORDS] {
        let [a, b, rest] = self.key.words();
        [
            a,
            b,
            rest,
            self.src,
            self.dst,
            u32::from(self.src_ports[0]) | (u32::from(self.src_ports[1]) << 16),
            self.packed,
            self.tally,
        ]
    }
}

/// Way `way`'s words in `set`.
#[inline(always)]
fn way_words(set: &[u32; SET_WORDS], way: usize) -> &[u32; SLOT_WORDS] {
    let (ways, _) = set.as_chunks::<SLOT_WORDS>();
    &ways[way]
}

/// The way of `set` that holds `key`.
#[inline(always)]
fn way_of(set: &[u32; SET_WORDS], key: FrontKey) -> Option<usize> {
    let (ways, _) = set.as_chunks::<SLOT_WORDS>();
    let key = key.words();
    ways.iter().position(|w| [w[0], w[1], w[2]] == key)
}

/// The first free way of `set`: its key's last word is 0 (a key's never is, [`FrontKey::new`]).
fn way_free(set: &[u32; SET_WORDS]) -> Option<usize> {
    let (ways, _) = set.as_chunks::<SLOT_WORDS>();
    ways.iter().position(|w| w[2] == 0)
}

impl FrontKey {
    /// The key's words, as a slot's first three ([`FrontSlot::words`]).
    #[inline(always)]
    fn words(&self) -> [u32; 3] {
        [self.addresses[0], self.addresses[1], self.rest]
    }

    /// `addresses`: both IPv4 addresses, or both IPv6 addresses' ids (`ids`). `protocol`:
    /// 0 for TCP, 1 for UDP, 2 for SCTP.
    #[inline]
    fn new(
        addresses: [u32; 2],
        ids: bool,
        protocol: u32,
        port: u16,
        sees_security_groups: bool,
    ) -> Self {
        FrontKey {
            addresses,
            rest: (u32::from(port) << 16)
                | (protocol << 8)
                | (u32::from(ids) << FRONT_KEY_IDS)
                | (u32::from(sees_security_groups) << 1)
                | 1,
        }
    }

    /// Whether the key's addresses are IPv6 addresses' ids.
    fn ids(&self) -> bool {
        self.rest & (1 << FRONT_KEY_IDS) != 0
    }
}

/// An IPv6 address's high and low 64 bits.
#[inline(always)]
fn halves(address: std::net::Ipv6Addr) -> (u64, u64) {
    let bits = u128::from(address);
    ((bits >> 64) as u64, bits as u64)
}

/// The place of `word` among `2^bits` (`bits` from 1 to 64): the high bits of `word` times
/// 2^64 over the golden ratio (Fibonacci hashing; the product's high bits depend on every
/// bit of `word`, so words that differ in their low bits alone spread).
#[inline(always)]
fn fibonacci_place(word: u64, bits: u32) -> usize {
    (word.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - bits)) as usize
}

/// The bit of [`FrontKey::rest`] that says its addresses are IPv6 addresses' ids.
const FRONT_KEY_IDS: u32 = 2;

/// The most IPv6 addresses given ids ([`AddressIds`]): 1,048,576 (48 MiB of table and 16 MiB
/// of addresses). A connection with an address met past them is looked up the long way
/// each time.
const MAX_ADDRESS_IDS: usize = 1 << 20;

/// The places [`AddressIds`] starts with, as a power of two.
const FIRST_ID_BITS: u32 = 10;

/// Ids for IPv6 addresses, so that a connection between them has a front cache key of the
/// size of an IPv4 one (two addresses of 16 bytes would make a slot of 56 bytes, and a set of
/// two ways two cache lines). An address gets its id when a connection of it is first looked
/// up the long way; the front cache's keys are read through [`AddressIds::id`] only, which
/// has none for an address met for the first time (that record goes the long way).
///
/// An open-addressed table of its own, not a `FastMap`: a record's key asks for two ids
/// twice (once to ask for its set, once to judge), and a hit here is one multiplication,
/// one slot read and one comparison of two words, where the map's probe (groups of control
/// bytes, their masks) took about 50 instructions (`cachegrind`, docs/performance.md).
#[derive(Default)]
struct AddressIds {
    /// `2^bits` places, at most half of them taken; an address's search starts at
    /// [`AddressIds::place`] and goes on to the next place until its own or a free one.
    slots: Vec<IdSlot>,
    /// log2 of the number of places (0 before the first id).
    bits: u32,
    /// The address of each id.
    addresses: Vec<std::net::Ipv6Addr>,
}

/// A place of [`AddressIds`]: an address's two halves and its id plus one (0: free).
#[derive(Clone, Copy, Default)]
struct IdSlot {
    halves: (u64, u64),
    id: u32,
}

impl AddressIds {
    /// Where the search for an address starts: its halves folded into one word and placed
    /// by [`fibonacci_place`] (addresses of one prefix differ in their last bytes only).
    #[inline(always)]
    fn place(halves: (u64, u64), bits: u32) -> usize {
        // `bits` is at least FIRST_ID_BITS when there are places.
        fibonacci_place(halves.1 ^ halves.0.rotate_left(32), bits)
    }

    /// The id of `address`, if it has one.
    #[inline]
    fn id(&self, address: std::net::Ipv6Addr) -> Option<u32> {
        if self.bits == 0 {
            return None;
        }
        let halves = halves(address);
        let mask = self.slots.len() - 1;
        let mut at = Self::place(halves, self.bits);
        loop {
            let slot = self.slots.get(at)?;
            if slot.id == 0 {
                return None;
            }
            if slot.halves == halves {
                return Some(slot.id - 1);
            }
            at = (at + 1) & mask;
        }
    }

    /// Give `address` an id, if it has none and there are fewer than [`MAX_ADDRESS_IDS`].
    fn give(&mut self, address: IpAddr) {
        let IpAddr::V6(address) = address else {
            return;
        };
        if self.addresses.len() >= MAX_ADDRESS_IDS || self.id(address).is_some() {
            return;
        }
        // At most half the places taken: a search meets few others before a free place.
        if 2 * (self.addresses.len() + 1) > self.slots.len() {
            self.grow();
        }
        // Below MAX_ADDRESS_IDS, so within u32 (one more too).
        let id = self.addresses.len() as u32;
        self.put(halves(address), id);
        self.addresses.push(address);
    }

    /// Twice the places (or the first ones), every id put again.
    fn grow(&mut self) {
        self.bits = match self.bits {
            0 => FIRST_ID_BITS,
            bits => bits + 1,
        };
        self.slots = vec![IdSlot::default(); 1 << self.bits];
        let addresses = std::mem::take(&mut self.addresses);
        for (id, &address) in addresses.iter().enumerate() {
            // Below MAX_ADDRESS_IDS.
            self.put(halves(address), id as u32);
        }
        self.addresses = addresses;
    }

    /// Put `halves` with `id` in the first free place from its own (there is one: at most
    /// half are taken).
    fn put(&mut self, halves: (u64, u64), id: u32) {
        let mask = self.slots.len() - 1;
        let mut at = Self::place(halves, self.bits);
        while self.slots[at].id != 0 {
            at = (at + 1) & mask;
        }
        self.slots[at] = IdSlot { halves, id: id + 1 };
    }

    /// The address of `id`.
    fn address(&self, id: u32) -> Option<std::net::Ipv6Addr> {
        self.addresses.get(id as usize).copied()
    }

    /// The key addresses of a connection from `src` to `dst`: both IPv4 addresses, or both
    /// IPv6 addresses' ids (and true); `None` when an IPv6 address has no id, or for one of
    /// each (not cached).
    #[inline(always)]
    fn key_addresses(&self, src: IpAddr, dst: IpAddr) -> Option<([u32; 2], bool)> {
        if let (IpAddr::V4(src), IpAddr::V4(dst)) = (src, dst) {
            return Some(([u32::from(src), u32::from(dst)], false));
        }
        self.v6_key_addresses(src, dst)
    }

    /// [`AddressIds::key_addresses`] of any pair but two IPv4 addresses: not inlined into
    /// the reading loop, which an IPv4 log keeps to its own.
    #[inline(never)]
    fn v6_key_addresses(&self, src: IpAddr, dst: IpAddr) -> Option<([u32; 2], bool)> {
        match (src, dst) {
            (IpAddr::V6(src), IpAddr::V6(dst)) => Some(([self.id(src)?, self.id(dst)?], true)),
            _ => None,
        }
    }
}

/// The values of a flow [`Checker::apply`] reads, from a [`Flow`] or a [`VpcRecord`].
struct Facts {
    src: IpAddr,
    dst: IpAddr,
    protocol: FlowProtocol,
    src_port: Option<u16>,
    dst_port: Option<u16>,
    reply: Reply,
    observed: Option<Observed>,
    observed_at: Option<ObservedAt>,
}

impl Facts {
    #[inline]
    fn of(flow: &Flow) -> Self {
        Facts {
            src: flow.src,
            dst: flow.dst,
            protocol: flow.protocol,
            src_port: flow.src_port,
            dst_port: flow.dst_port,
            reply: flow.reply,
            observed: flow.observed,
            observed_at: flow.observed_at,
        }
    }

    /// The facts of [`VpcRecord::flow`].
    #[inline]
    fn of_vpc(record: &VpcRecord) -> Self {
        Facts {
            src: record.src,
            dst: record.dst,
            protocol: FlowProtocol::from_number(record.protocol),
            src_port: record.src_port,
            dst_port: record.dst_port,
            reply: record.reply,
            observed: record.observed,
            observed_at: None,
        }
    }
}

/// The values of a flow [`Checker::resolve`] reads, from a [`Flow`] or a [`VpcRecord`].
struct Query<'f> {
    src: IpAddr,
    dst: IpAddr,
    protocol: FlowProtocol,
    dst_port: Option<u16>,
    /// Read only with a pods history.
    time: Option<Timestamp>,
    src_pod: Option<&'f PodHint>,
    dst_pod: Option<&'f PodHint>,
    sees_security_groups: bool,
    /// What the class pass found for the flow (a VPC record's, without a pods history).
    prepared: Option<Prepared>,
}

/// What the class pass found for a record of the batch being judged
/// ([`Checker::preload_classes`]): the pods that own its addresses, and their connection's
/// class on the record's protocol and port, as [`Checker::resolve`] would look them up
/// (without a pods history, and without pod names from the log, which VPC records lack).
#[derive(Clone, Copy, Debug)]
struct Prepared {
    src: Option<PodId>,
    dst: Option<PodId>,
    class: Option<ConnectionClass>,
}

/// What the class pass found for each record of a batch, by its place in the batch.
type PreparedBatch = [Option<Prepared>; crate::read::BATCH];

impl<'f> Query<'f> {
    fn of(flow: &'f Flow) -> Self {
        Query {
            src: flow.src,
            dst: flow.dst,
            protocol: flow.protocol,
            dst_port: flow.dst_port,
            time: flow.time,
            src_pod: flow.src_pod.as_ref(),
            dst_pod: flow.dst_pod.as_ref(),
            sees_security_groups: flow.sees_security_groups,
            prepared: None,
        }
    }

    /// The query of [`VpcRecord::flow`], its time made only when `timed` (a pods history
    /// reads it).
    fn of_vpc(record: &VpcRecord, timed: bool) -> Self {
        Query {
            src: record.src,
            dst: record.dst,
            protocol: FlowProtocol::from_number(record.protocol),
            dst_port: record.dst_port,
            time: if timed { record.time() } else { None },
            src_pod: None,
            dst_pod: None,
            sees_security_groups: true,
            prepared: None,
        }
    }
}

/// Which judged flows need their outcome explained (the egress side and the deciding policy)
/// when the verdict came from the index alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Explain {
    /// Every one: the caller may ask for any row ([`Checker::judge`]).
    Always,
    /// The mismatches only (and flows observed at the egress, whose comparison needs it).
    Mismatches,
}

/// Which rows [`Checker::judging`] hands on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rows {
    /// Every judged flow's (JSON, CSV, Parquet outputs).
    All,
    /// The mismatches' only (the summary and the mismatch groups).
    Mismatches,
}

/// Where [`Judging`] hands its rows.
enum RowSink<'c> {
    /// Each row ([`Checker::judging`]).
    Rows(&'c mut dyn FnMut(&CheckedFlow)),
    /// Mismatch rows with a count of flows, a batch at a time ([`Checker::counting`]).
    Counted(&'c mut dyn FnMut(&[CountedRow])),
}

/// How many counted rows [`Checker::counting`] hands on at once (fewer only when reading
/// ends): a consumer can then ask for all their places in its tables before it updates
/// the first ([`crate::MismatchGroups::add_rows`]).
const COUNTED_BATCH: usize = 32;

/// A [`FlowSink`] that judges what it is handed ([`Checker::judging`],
/// [`Checker::counting`]).
pub struct Judging<'c, 'e> {
    checker: &'c mut Checker<'e>,
    rows: Rows,
    sink: RowSink<'c>,
}

impl Judging<'_, '_> {
    /// Rows for every flow need every explanation; rows for mismatches, theirs only.
    fn explain(&self) -> Explain {
        match self.rows {
            Rows::All => Explain::Always,
            Rows::Mismatches => Explain::Mismatches,
        }
    }

    fn hand_on(&mut self, row: CheckedFlow) {
        match &mut self.sink {
            RowSink::Rows(sink) => sink(&row),
            RowSink::Counted(_) => self.checker.counted.push((row, 1)),
        }
    }

    /// Hand on the counted rows (of connections that left the front cache, and mismatches
    /// counted once) when a batch is there.
    #[inline]
    fn hand_on_batch(&mut self) {
        if self.checker.counted.len() >= COUNTED_BATCH {
            self.hand_on_counted();
        }
    }

    /// `records` more records looked up in the front cache; then
    /// [`Checker::grow_front_if_outgrown`], with this sink's.
    fn looked_up(&mut self, records: usize) {
        self.checker.front.looked_up += records as u64;
        match &mut self.sink {
            RowSink::Counted(sink) => self.checker.grow_front_if_outgrown(&mut **sink),
            RowSink::Rows(_) => self.checker.grow_front_if_outgrown(&mut |_| {}),
        }
    }

    /// Hand on the counted rows.
    fn hand_on_counted(&mut self) {
        match &mut self.sink {
            RowSink::Counted(sink) => sink(&self.checker.counted),
            // None are counted for a sink of rows.
            RowSink::Rows(_) => {}
        }
        self.checker.counted.clear();
    }

    /// Judge `record` (with what the class pass found for it, if anything) and hand on its
    /// row as [`FlowSink::vpc_record`] says.
    #[inline]
    fn judge_vpc_record(&mut self, record: &VpcRecord, prepared: Option<Prepared>) {
        let counting = matches!(self.sink, RowSink::Counted(_));
        if self.rows == Rows::Mismatches && self.checker.judge_front_hit(record, counting) {
            return;
        }
        if self.rows == Rows::All {
            if let Some(row) = self.checker.front_hit_row(record) {
                if let Some(row) = row {
                    self.hand_on(row);
                }
                self.hand_on_batch();
                return;
            }
        }
        let explain = self.explain();
        if let Some((judged, at)) = self.checker.judge_record(record, explain, prepared) {
            if counting && judged.mismatch {
                // A connection held in the front cache counts its mismatches there, handed
                // on as one row when it leaves; any other mismatch is handed on now.
                if !at.is_some_and(|at| self.checker.front.tally(at)) {
                    let row = self.checker.checked_vpc(record, &judged);
                    self.hand_on(row);
                }
            } else if judged.mismatch || self.rows == Rows::All {
                let row = self.checker.checked_vpc(record, &judged);
                self.hand_on(row);
            }
        }
        self.hand_on_batch();
    }
}

impl FlowSink for Judging<'_, '_> {
    fn flow(&mut self, flow: Flow) {
        let explain = self.explain();
        if let Some(judged) = self.checker.judge_flow(&flow, explain) {
            if judged.mismatch || self.rows == Rows::All {
                let row = self.checker.checked(&flow, &judged);
                self.hand_on(row);
            }
        }
        self.hand_on_batch();
        self.looked_up(1);
    }

    /// Each record's front cache set is loaded before any record is judged: the loads of
    /// the batch overlap, where one record after another would wait for each in turn.
    fn vpc_records(&mut self, records: &[VpcRecord]) {
        let prepared = self.checker.prepare_vpc(records);
        if self.rows == Rows::All {
            self.checker.touch_front_outcomes(records);
        }
        for (at, record) in records.iter().enumerate() {
            self.judge_vpc_record(record, prepared.get(at).copied().flatten());
        }
        self.looked_up(records.len());
    }

    #[inline]
    fn vpc_record(&mut self, record: &VpcRecord) {
        self.judge_vpc_record(record, None);
        self.looked_up(1);
    }
}

impl Drop for Judging<'_, '_> {
    /// The counted mismatches not handed on yet are handed on: reading ends here.
    fn drop(&mut self) {
        self.hand_on_counted();
        if let RowSink::Counted(sink) = &mut self.sink {
            self.checker.take_counted(&mut **sink);
        }
    }
}

/// How many sets on [`Checker::take_counted`] asks for while it reads one.
const TAKE_AHEAD: usize = 16;

/// Ways per set of the front cache.
const WAYS: usize = 2;
/// Sets of the front cache, as a power of two: 2^18 sets of 2 ways, 524,288 connections,
/// 16 MiB, mismatch tallies included (and 8 MiB of time spans with a pods history). A set
/// is one cache line: a record asks for one line and waits for one, where sets of 4 ways
/// (2^16 of them, 8 MiB) were two lines, and a batch's 32 prefetches outran the core's
/// outstanding misses (+4 to +7 % at 100,000 connections drawn at random, level along a
/// service graph; docs/performance.md, session 25). Connections leave a set of 2 more
/// often: 100,000 connections drawn at random took 116,400 long-way lookups per million
/// records, against 112,800 with 2^16 sets of 4 (counted). With 2^15 sets of 4, they left
/// and came back often enough to nearly double the long-way lookups (about 190,000), and
/// each return of a mismatching connection hands on a row again.
const SET_BITS: u32 = 18;

/// The front cache grows to this many sets (as a power of two), eight times at a time, when
/// the connections it meets outgrow it ([`FrontCache::outgrown`]): 2^21 sets of 2 ways,
/// 4,194,304 connections, 128 MiB (and 64 MiB of time spans with a pods history). A log of
/// more connections than the cache holds had nearly every record go the long way: each
/// connection left the cache before it came again (1,000,000 random pod pairs, ten times:
/// 1.7 M records a CPU-second against 5 M with 100,000; docs/performance.md, session 31).
/// At 2^20 sets those 1,000,000 connections still met three or more to a set in about one
/// set of fourteen, and took 2,640,000 long-way lookups over the ten times; at 2^21,
/// 2,080,000, and the check 0.90 of the time; grown eight times at a time (from 2^18 sets
/// to 2^21 at once, where four times at a time had them meet 2^20 sets for half the log),
/// 0.89 of that (docs/performance.md, session 37).
const MAX_SET_BITS: u32 = 21;

/// A set-associative cache of [`Resolved`] by [`FrontKey`]: a connection seen again costs
/// one hash of 12 bytes and a look at one set (one cache line), not two address lookups, a
/// class lookup and a verdict lookup. Bounded: it grows with the connections met, at most
/// to [`MAX_SET_BITS`] ([`Checker::grow_front_if_outgrown`]), not with the input. A
/// miss is looked up the long way and put in a free way of its set, or else in its last
/// way (the entry there leaves); an entry met again moves up a way ([`FrontCache::insert`]).
/// Each entry holds over the whole seconds `[lo, hi)` (the pods history can give an address
/// to another pod at another time); those spans sit apart, made and read only once an
/// entry's span is bounded (with a pods history). The mismatch tallies
/// ([`Checker::counting`]) sit in the slots ([`FrontSlot::tally`]).
struct FrontCache {
    /// The sets, [`SET_WORDS`] words each from `base` on (so that each set is one cache
    /// line), made when the first entry goes in. Allocated zeroed (every slot free), so
    /// that the operating system maps the pages of the sets that are used, as they are
    /// used: a checker that meets few connections does not write 16 MiB first.
    words: Vec<u32>,
    base: usize,
    /// How many sets `words` holds (0 before the first entry).
    sets: usize,
    /// The `[lo, hi)` of each slot, when some entry's span is bounded.
    spans: Vec<[(i64, i64); WAYS]>,
    /// The sets where some slot has a tally (once or more each), or `None` when that list
    /// would be longer than the cache: every set.
    tallied_sets: Option<Vec<u32>>,
    /// log2 of the number of sets.
    set_bits: u32,
    /// Records looked up, and entries put in, since the cache was made or its count last
    /// started again ([`FrontCache::outgrown`]).
    looked_up: u64,
    inserted: u64,
}

/// Where an entry sits in the front cache: set and way.
type SlotAt = (usize, usize);

/// What [`Checker::front_hit`] makes of a record.
enum FrontHit {
    /// Not to be judged from the front cache: the long way.
    Long,
    /// A reply by its source's declared port (counted).
    Reply,
    /// The entry of its connection.
    Entry(EntryHit),
}

/// A record's front cache entry ([`FrontHit::Entry`]): the entry, where it sits, its
/// verdict bits, and whether the record disagrees with them.
struct EntryHit {
    slot: FrontSlot,
    at: SlotAt,
    verdict: u8,
    mismatch: bool,
}

impl FrontCache {
    fn new(set_bits: u32) -> Self {
        FrontCache {
            words: Vec::new(),
            base: 0,
            sets: 0,
            spans: Vec::new(),
            tallied_sets: Some(Vec::new()),
            set_bits,
            looked_up: 0,
            inserted: 0,
        }
    }

    /// Whether the connections met outgrow the cache: over the last records looked up
    /// (twice as many as it holds entries), more than a quarter missed it and went in, so
    /// connections leave before they come again; or, sooner, a cache-full of entries went in
    /// within such a run (more than half of it missed). Checked between batches; the counts
    /// start again at the end of each run. A cache that holds its connections misses a
    /// connection's first record, and where a set meets a third connection: at 100,000
    /// connections drawn at random, about 2 % of the records after the first million.
    fn outgrown(&mut self) -> bool {
        let slots = (WAYS as u64) << self.set_bits;
        if self.inserted > slots {
            (self.looked_up, self.inserted) = (0, 0);
            return true;
        }
        if self.looked_up < 2 * slots {
            return false;
        }
        let outgrown = self.inserted * 4 > self.looked_up;
        (self.looked_up, self.inserted) = (0, 0);
        outgrown
    }

    /// Every entry (with its span and its tally) of this cache, set after set, its ways in
    /// the order they go in again to keep their order ([`FrontCache::insert`] fills the
    /// free ways first): the first first.
    fn entries(&self) -> impl Iterator<Item = (FrontSlot, i64, i64)> + '_ {
        (0..self.sets).flat_map(move |at| {
            let set = self.set_words(at).copied().unwrap_or([0; SET_WORDS]);
            let spans = self.spans.get(at).copied();
            (0..WAYS).filter_map(move |way| {
                let slot = FrontSlot::from_words(way_words(&set, way));
                let (lo, hi) = spans.map_or((i64::MIN, i64::MAX), |spans| spans[way]);
                // The zero key marks a free slot.
                (slot.key != FrontKey::default()).then_some((slot, lo, hi))
            })
        })
    }

    fn set(&self, key: FrontKey) -> usize {
        let addresses = (u64::from(key.addresses[0]) << 32) | u64::from(key.addresses[1]);
        fibonacci_place(
            addresses ^ u64::from(key.rest).rotate_left(29),
            self.set_bits,
        )
    }

    /// The words of set `at`.
    #[inline(always)]
    fn set_words(&self, at: usize) -> Option<&[u32; SET_WORDS]> {
        let from = self.base + at * SET_WORDS;
        self.words.get(from..from + SET_WORDS)?.try_into().ok()
    }

    #[inline(always)]
    fn set_words_mut(&mut self, at: usize) -> Option<&mut [u32; SET_WORDS]> {
        let from = self.base + at * SET_WORDS;
        self.words.get_mut(from..from + SET_WORDS)?.try_into().ok()
    }

    /// What `key` resolved to at `second` (a whole second of its flow's time, read only
    /// with time spans), and where it sits.
    #[inline]
    fn get(&self, key: FrontKey, second: i64) -> Option<(Resolved, SlotAt)> {
        self.entry(key, second)
            .map(|(slot, at)| (slot.resolved(), at))
    }

    /// The entry of `key` over `second` ([`FrontCache::get`]), and where it sits.
    #[inline(always)]
    fn entry(&self, key: FrontKey, second: i64) -> Option<(FrontSlot, SlotAt)> {
        let at = self.set(key);
        let set = self.set_words(at)?;
        let way = way_of(set, key)?;
        if let Some(spans) = self.spans.get(at) {
            let (lo, hi) = spans[way];
            if !(lo <= second && second < hi) {
                // A key is in a set once at most: no other way holds it.
                return None;
            }
        }
        Some((FrontSlot::from_words(way_words(set, way)), (at, way)))
    }

    /// Ask for the set of `key` (its cache line, tallies included), so that a later
    /// [`FrontCache::get`] of `key` finds it in the CPU's cache. On x86-64 a prefetch
    /// (`prefetcht0`), which retires at once: a batch's sets arrive while its first records
    /// are judged, where loads had the batch wait for the slowest (+8 % check and +16 %
    /// `-o text` at 100,000 connections along a service graph, docs/performance.md).
    /// Elsewhere a word of the line is loaded (kept from being optimised away).
    #[inline]
    fn touch(&self, key: FrontKey) {
        self.touch_set(self.set(key));
    }

    /// Ask for set `at` ([`FrontCache::touch`]).
    #[inline]
    fn touch_set(&self, at: usize) {
        let Some(set) = self.set_words(at) else {
            return;
        };
        // A set is one cache line (64-byte aligned).
        #[cfg(target_arch = "x86_64")]
        safe_arch::prefetch_t0(&set[0]);
        #[cfg(not(target_arch = "x86_64"))]
        std::hint::black_box(set[0]);
    }

    /// The entries of set `at` that have a tally (`None` for the others).
    #[inline]
    fn tallied(&self, at: usize) -> [Option<FrontSlot>; WAYS] {
        let set = self.set_words(at);
        std::array::from_fn(|way| {
            set.map(|set| FrontSlot::from_words(way_words(set, way)))
                .filter(|slot| slot.tally > 0)
        })
    }

    /// Put `slot` in the set of its key: in the way of the same key's entry (over another
    /// span) if there is one, else in a free way, else in the last way; where it went, and
    /// the entry that leaves the cache, when it has mismatches not handed on, with their
    /// count. A new entry takes the last way, not the first, and moves up a way only when it
    /// is met again ([`FrontCache::promote`]): a log lists its connections in about the
    /// same order each aggregation interval, and where a set meets three of them in turn, a
    /// new entry put first (the set's last leaving) pushed out the one met next, so that
    /// each of the three missed every time. Put in the last way, one of them stays in the
    /// first and only the others miss.
    fn insert(&mut self, slot: FrontSlot, lo: i64, hi: i64) -> (SlotAt, Option<(FrontSlot, u32)>) {
        let key = slot.key;
        if self.sets == 0 {
            let sets = 1usize << self.set_bits;
            // A set's words more, to start the first set on a cache line. Zeroed memory
            // (`calloc`): pages are mapped as sets are first used.
            self.words = vec![0u32; (sets + 1) * SET_WORDS];
            let words_past_line = (self.words.as_ptr() as usize % 64) / 4;
            self.base = (SET_WORDS - words_past_line) % SET_WORDS;
            self.sets = sets;
        }
        if (lo, hi) != (i64::MIN, i64::MAX) && self.spans.is_empty() {
            self.spans = vec![[(i64::MIN, i64::MAX); WAYS]; 1 << self.set_bits];
        }
        let at = self.set(key);
        let Some(set) = self.set_words_mut(at) else {
            return ((at, 0), None);
        };
        // A key once per set: an entry for the same key (another time span) is replaced.
        let way = way_of(set, key)
            .or_else(|| way_free(set))
            .unwrap_or(WAYS - 1);
        let leaving = FrontSlot::from_words(way_words(set, way));
        set[way * SLOT_WORDS..(way + 1) * SLOT_WORDS].copy_from_slice(&slot.words());
        if let Some(spans) = self.spans.get_mut(at) {
            spans[way] = (lo, hi);
        }
        self.inserted += 1;
        (
            (at, way),
            (leaving.tally > 0).then_some((leaving, leaving.tally)),
        )
    }

    /// The entry at `at`, just met again, moved up a way (swapped with the entry there,
    /// spans and tallies with them); where it is now. Entries met again gather in the
    /// first ways, and the last way takes the new ones ([`FrontCache::insert`]).
    #[inline(always)]
    fn promote(&mut self, (at, way): SlotAt) -> SlotAt {
        if way == 0 {
            return (at, way);
        }
        let Some(set) = self.set_words_mut(at) else {
            return (at, way);
        };
        let (before, this) = set.split_at_mut(way * SLOT_WORDS);
        before[(way - 1) * SLOT_WORDS..].swap_with_slice(&mut this[..SLOT_WORDS]);
        if let Some(spans) = self.spans.get_mut(at) {
            spans.swap(way - 1, way);
        }
        (at, way - 1)
    }

    /// Put the verdict bits of the entry at `at` in place (its outcome was explained since).
    #[inline]
    fn set_verdict(&mut self, (at, way): SlotAt, verdict: u8) {
        if let Some(packed) = self
            .set_words_mut(at)
            .and_then(|set| set.get_mut(way * SLOT_WORDS + PACKED_WORD))
        {
            *packed =
                (*packed & !(0xf << VERDICT_SHIFT)) | (u32::from(verdict & 0xf) << VERDICT_SHIFT);
        }
    }

    /// Count a mismatch of the entry at `at` (handed on later, [`FrontCache::take_tallies`]):
    /// false when it was not counted (no such entry, or its count is full), to be handed on
    /// now.
    #[inline]
    fn tally(&mut self, at: SlotAt) -> bool {
        if self.tally_of(at).is_none_or(|tally| *tally == u32::MAX) {
            return false;
        }
        self.tally_when(at, true);
        true
    }

    /// [`FrontCache::tally`] when `mismatch`, with no branch on it but a rare one (the
    /// entry's first tally): whether a record mismatches changes from record to record in
    /// no order a predictor can learn, and each branch on it mispredicted. The entry at `at`
    /// has a tally short of full.
    #[inline(always)]
    fn tally_when(&mut self, at: SlotAt, mismatch: bool) {
        let Some(tally) = self.tally_of(at) else {
            return;
        };
        let first = (*tally == 0) & mismatch;
        *tally += u32::from(mismatch);
        if first {
            self.note_tallied(at.0);
        }
    }

    /// The tally of the entry at `at`: the field itself (not through `set_words_mut`),
    /// apart from `tallied_sets`; `None` past the cache's sets or ways.
    #[inline(always)]
    fn tally_of(&mut self, (at, way): SlotAt) -> Option<&mut u32> {
        if at >= self.sets || way >= WAYS {
            return None;
        }
        self.words
            .get_mut(self.base + at * SET_WORDS + way * SLOT_WORDS + TALLY_WORD)
    }

    /// Set `at` has a tally now where it had none ([`FrontCache::tallied_sets`]).
    fn note_tallied(&mut self, at: usize) {
        if let Some(tallied) = &mut self.tallied_sets {
            tallied.push(u32::try_from(at).unwrap_or(u32::MAX));
            if tallied.len() > self.sets {
                self.tallied_sets = None;
            }
        }
    }

    /// The sets that may hold tallies, in the cache's order (read one after the other); the
    /// list starts again.
    fn take_tallied_sets(&mut self) -> Vec<u32> {
        let all = 0..u32::try_from(self.sets).unwrap_or(u32::MAX);
        let mut sets = self
            .tallied_sets
            .replace(Vec::new())
            .unwrap_or_else(|| all.collect());
        sets.sort_unstable();
        // A set is listed once per slot that started a tally.
        sets.dedup();
        sets
    }

    /// The entries of set `at` with mismatches not handed on, with their count (0: none);
    /// their tallies start again.
    fn take_tallies(&mut self, at: usize) -> Option<[(FrontSlot, u32); WAYS]> {
        let set = self.set_words_mut(at)?;
        let taken = std::array::from_fn(|way| {
            let slot = FrontSlot::from_words(way_words(set, way));
            (slot, slot.tally)
        });
        for way in 0..WAYS {
            set[way * SLOT_WORDS + TALLY_WORD] = 0;
        }
        Some(taken)
    }

    fn clear(&mut self) {
        self.words = Vec::new();
        self.sets = 0;
        self.spans = Vec::new();
        self.tallied_sets = Some(Vec::new());
    }
}

/// Checks flows against one engine.
pub struct Checker<'e> {
    engine: &'e Engine,
    /// The engine's address and class index: pod addresses by hash, and the connection
    /// classes that let one explanation serve every connection of a class.
    index: VerdictIndex<'e>,
    history: Option<History>,
    services_by_address: FastMap<IpAddr, usize>,
    cache: FastMap<(DecisionEnd, DecisionEnd, Protocol, u16), Decision>,
    /// The engine's cuts of the address space ([`DecisionEnd::Segment`]).
    cuts: netfence_model::net::AddressCuts,
    /// Decisions between two pods, per connection class.
    class_cache: FastMap<ConnectionClass, Decision>,
    policy_names: FastMap<PolicyId, Arc<str>>,
    security_groups: Option<SecurityGroups>,
    /// What a connection resolved to, by its raw (addresses, protocol, port), in front of
    /// every other lookup.
    front: FrontCache,
    /// The most sets (log2) the front cache grows to.
    front_max_bits: u32,
    /// Whether the front cache is used (always, but for the tests that compare).
    front_enabled: bool,
    /// The ids of the IPv6 addresses in the front cache's keys.
    address_ids: AddressIds,
    /// Counted mismatches of connections that left the front cache, to be handed on
    /// ([`Checker::counting`]).
    counted: Vec<CountedRow>,
    /// The outcomes (verdict, deciding policy), which the front cache points into: one per
    /// connection class between pods, and one per distinct outcome otherwise.
    outcomes: Vec<Stored>,
    outcome_index: FastMap<Outcome, u32>,
    /// The deciding policies' names of [`Stored::name`], each once by its address (the
    /// checker makes one name per policy; kept here, so that an address stays its own).
    names: Vec<Arc<str>>,
    name_index: FastMap<usize, u32>,
    /// Each deciding policy's [`Stored::name`], by id ([`Checker::name_of_policy`]).
    policy_name_at: FastMap<PolicyId, u32>,
    /// Every pod's declared (protocol, port)s, pod after pod: pod `id`'s from
    /// `declared_starts[id]` to `declared_starts[id + 1]`.
    declared_ports: Vec<(Protocol, u16)>,
    declared_starts: Vec<u32>,
    /// The outcome of each connection class between two pods not denied by security
    /// groups (explained, or [`PENDING`]), as [`PackedOutcome`]s.
    class_outcomes: ClassOutcomes,
    /// Connections looked up the long way (not in the front cache) since the last batch was
    /// preloaded ([`Checker::preload_vpc`]).
    long_ways: u64,
    /// Eight times the long ways per batch, averaged over the last batches (each batch
    /// weighs an eighth): whether a batch's class outcomes are asked for ahead.
    long_ways_per_batch: u64,
    /// Explanations asked so far (not reset by [`Checker::take_stats`]).
    explained: u64,
    /// Verdicts come from the index after this many explanations ([`EXPLAIN_ALL_BEFORE`]).
    explain_all_before: u64,
    stats: CheckStats,
}

impl<'e> Checker<'e> {
    /// A checker over `engine`, with an optional pods history. Pod addresses resolve through
    /// the inventory's address index (real addresses only: a synthetic address was invented
    /// by the loader, and a host-network pod's address is its node's); the cluster-IP index
    /// is built once here.
    pub fn new(engine: &'e Engine, history: Option<History>) -> Self {
        let inventory = engine.inventory();
        let mut services_by_address = FastMap::default();
        for (index, service) in inventory.services.iter().enumerate() {
            for ip in &service.cluster_ips {
                services_by_address.entry(*ip).or_insert(index);
            }
        }
        let mut declared_ports = Vec::new();
        let mut declared_starts = vec![0u32];
        for pod in inventory.pods() {
            declared_ports.extend(pod.ports.iter().map(|p| (p.protocol, p.port)));
            declared_starts.push(u32::try_from(declared_ports.len()).unwrap_or(u32::MAX));
        }
        Checker {
            engine,
            index: engine.verdict_index(),
            declared_ports,
            declared_starts,
            history,
            services_by_address,
            cache: FastMap::default(),
            cuts: engine.list_cuts(),
            class_cache: FastMap::default(),
            policy_names: FastMap::default(),
            security_groups: None,
            front: FrontCache::new(SET_BITS),
            front_max_bits: MAX_SET_BITS,
            front_enabled: true,
            address_ids: AddressIds::default(),
            counted: Vec::new(),
            outcomes: Vec::new(),
            outcome_index: FastMap::default(),
            names: Vec::new(),
            name_index: FastMap::default(),
            policy_name_at: FastMap::default(),
            class_outcomes: ClassOutcomes::new(),
            long_ways: 0,
            long_ways_per_batch: 0,
            explained: 0,
            explain_all_before: EXPLAIN_ALL_BEFORE,
            stats: CheckStats::default(),
        }
    }

    /// Put the security groups in the verdict path (DESIGN: "a connection must pass the
    /// security groups and the pod policy"): for flows whose log sees them
    /// ([`Flow::sees_security_groups`]), a connection the groups drop is judged `deny` with
    /// `decided_by` naming the groups. A pod matched by a SecurityGroupPolicy uses those
    /// groups; other pods and the nodes use the nodes' groups
    /// ([`AwsInput::node_interface_groups`]); addresses outside the cluster carry none. A
    /// flow to a Service's cluster IP is not judged by groups (the node rewrites it to a
    /// backend before it leaves).
    pub fn with_security_groups(mut self, input: AwsInput) -> Self {
        let inventory = self.engine.inventory();
        let pod_groups = pod_security_groups(inventory)
            .by_pod
            .into_iter()
            .map(|groups| groups.map(|g| g.groups))
            .collect();
        let node_addresses = inventory
            .nodes
            .iter()
            .flat_map(|node| node.addresses.iter().copied())
            .collect();
        self.security_groups = Some(SecurityGroups {
            node_groups: input.node_interface_groups(),
            input,
            pod_groups,
            node_addresses,
            cache: FastMap::default(),
        });
        self
    }

    /// The same checker without its front cache: every flow looked up the long way. For
    /// tests that compare the two.
    #[doc(hidden)]
    pub fn without_front_cache(mut self) -> Self {
        self.front_enabled = false;
        self
    }

    /// The same checker with a front cache of 4 sets (8 connections) that grows to 64 sets
    /// at most: connections leave it often, and it grows while reading. For tests of what
    /// happens then.
    #[doc(hidden)]
    pub fn with_small_front_cache(mut self) -> Self {
        self.front = FrontCache::new(2);
        self.front_max_bits = 6;
        self
    }

    /// How many sets the front cache has (log2). For tests of its growth.
    #[doc(hidden)]
    pub fn front_cache_bits(&self) -> u32 {
        self.front.set_bits
    }

    /// Make the front cache eight times larger (up to [`Checker::front_max_bits`]) when the
    /// connections met outgrow it ([`FrontCache::outgrown`]). Its entries move into the
    /// larger cache with their spans and counted mismatches, so that the connections met
    /// are not looked up again: where they were dropped, a log of a million connections
    /// seen again and again went the long way once to fill the small cache and once more to
    /// fill the large one (docs/performance.md, session 32). The larger cache's set of an
    /// entry starts with the bits of its set here, so no entry evicts another; one that did
    /// would have its counted mismatches handed to `sink` (a counting sink's; with a sink of
    /// rows none are counted). Between batches only: no place in the cache is held then.
    fn grow_front_if_outgrown(&mut self, sink: &mut dyn FnMut(&[CountedRow])) {
        if self.front.set_bits >= self.front_max_bits || !self.front.outgrown() {
            return;
        }
        let bits = (self.front.set_bits + 3).min(self.front_max_bits);
        let small = std::mem::replace(&mut self.front, FrontCache::new(bits));
        let mut left = Vec::new();
        for (slot, lo, hi) in small.entries() {
            if let (_, Some((leaving, count))) = self.front.insert(slot, lo, hi) {
                left.push((self.slot_row(&leaving), u64::from(count)));
            }
            if slot.tally > 0 {
                self.front.note_tallied(self.front.set(slot.key));
            }
        }
        // Moved, not met: the counts of the larger cache start at zero.
        (self.front.looked_up, self.front.inserted) = (0, 0);
        if !left.is_empty() {
            sink(&left);
        }
    }

    /// The same checker, taking verdicts from the index after `explanations` explanations
    /// instead of [`EXPLAIN_ALL_BEFORE`] (0: from the start). For tests that compare.
    #[doc(hidden)]
    pub fn explain_all_before(mut self, explanations: u64) -> Self {
        self.explain_all_before = explanations;
        self
    }

    /// The counts so far.
    pub fn stats(&self) -> &CheckStats {
        &self.stats
    }

    /// The counts so far, and start counting again from zero (the caches stay): one input's
    /// counts when a checker reads several.
    pub fn take_stats(&mut self) -> CheckStats {
        std::mem::take(&mut self.stats)
    }

    /// The endpoint `ip` was at `time`.
    pub fn endpoint(
        &mut self,
        ip: IpAddr,
        time: Option<Timestamp>,
        hint: Option<&PodHint>,
    ) -> Endpoint {
        let inventory = self.engine.inventory();
        if let Some(history) = &self.history {
            match history.holder(ip, time) {
                Holder::Pod(tenure) => {
                    return match inventory.pod_by_key(&tenure.namespace, &tenure.name) {
                        Some(id) => Endpoint::Pod(id),
                        None => {
                            self.stats.history_pods_missing += 1;
                            Endpoint::Address(ip)
                        }
                    };
                }
                Holder::Nobody => return Endpoint::Address(ip),
                Holder::NotListed => {}
            }
        }
        if let Some(id) = self.index.pod_by_ip(ip) {
            return Endpoint::Pod(id);
        }
        hint.and_then(|hint| inventory.pod_by_key(&hint.namespace, &hint.name))
            .map_or(Endpoint::Address(ip), Endpoint::Pod)
    }

    /// Whether `endpoint` is a pod that declares `port` for `protocol` (a server port).
    fn serves(&self, endpoint: Endpoint, protocol: Protocol, port: Option<u16>) -> bool {
        let (Endpoint::Pod(id), Some(port)) = (endpoint, port) else {
            return false;
        };
        self.declared(id).contains(&(protocol, port))
    }

    /// The ports pod `id` declares (from the checker's flat copy: one short slice, where
    /// the pod's own list sits behind two pointers in a large record).
    fn declared(&self, id: PodId) -> &[(Protocol, u16)] {
        let bounds = |at: usize| self.declared_starts.get(at).map(|&s| s as usize);
        match (bounds(id.index()), bounds(id.index() + 1)) {
            (Some(start), Some(end)) => self.declared_ports.get(start..end).unwrap_or_default(),
            _ => &[],
        }
    }

    /// Map one flow to endpoints and judge it.
    pub fn check(&mut self, flow: &Flow) -> Checked {
        match self.judge(flow) {
            Some(judged) => Checked::Judged(self.checked(flow, &judged)),
            None => Checked::Reply,
        }
    }

    /// Map one flow to endpoints and judge it, as [`Checker::check`] does (the same counts),
    /// without building a [`CheckedFlow`]: `None` for a reply. Callers that need the whole
    /// row ask [`Checker::checked`] for it; callers that count (`flows check`'s summary) need
    /// only [`Judged::mismatch`].
    pub fn judge(&mut self, flow: &Flow) -> Option<Judged> {
        self.judge_flow(flow, Explain::Always)
    }

    fn judge_flow(&mut self, flow: &Flow, explain: Explain) -> Option<Judged> {
        if flow.reply == Reply::Yes {
            self.stats.replies += 1;
            return None;
        }
        let key = self.front_key(flow).or_else(|| {
            self.give_ids(flow.src, flow.dst);
            self.front_key(flow)
        });
        let (resolved, _) = self.front_or_resolve(key, || Query::of(flow));
        self.apply(&Facts::of(flow), &resolved, explain)
    }

    /// Give the IPv6 addresses among `src` and `dst` their ids ([`AddressIds`]), for a flow
    /// that has no front cache key: an address met for the first time has none, and its
    /// connection has a key only from now on. Asked only where the key is missing, so that
    /// a cached connection's addresses are not looked up twice.
    fn give_ids(&mut self, src: IpAddr, dst: IpAddr) {
        self.address_ids.give(src);
        self.address_ids.give(dst);
    }

    /// The front cache's answer for `key`, else the flow `query` makes resolved and kept in
    /// the front cache over the seconds it holds for; and where it sits in the front cache.
    #[inline]
    fn front_or_resolve<'f>(
        &mut self,
        key: Option<(FrontKey, i64)>,
        query: impl FnOnce() -> Query<'f>,
    ) -> (Resolved, Option<SlotAt>) {
        if let Some((resolved, at)) = key.and_then(|(key, second)| self.front.get(key, second)) {
            return (resolved, Some(self.front.promote(at)));
        }
        self.long_ways += 1;
        let (resolved, span) = self.resolve(&query());
        let slot = key.and_then(|(key, _)| FrontSlot::new(key, &resolved));
        if let (Some(slot), Some((lo, hi))) = (slot, span) {
            let (at, leaving) = self.front.insert(slot, lo, hi);
            if let Some((leaving, count)) = leaving {
                // Its counted mismatches are handed on before its outcome can go.
                self.counted
                    .push((self.slot_row(&leaving), u64::from(count)));
            }
            return (resolved, Some(at));
        }
        (resolved, None)
    }

    /// The row of a mismatch of the front cache entry `slot` (a VPC record's, without its
    /// time), as [`Checker::checked_vpc`] makes it: the key's addresses, protocol and port,
    /// the entry's endpoints and outcome, and what was observed as the opposite of the
    /// verdict (a VPC record is compared with the verdict itself, not with one side).
    fn slot_row(&self, slot: &FrontSlot) -> CheckedFlow {
        let resolved = &slot.resolved();
        let [src, dst] = slot.key.addresses.map(|a| match slot.key.ids() {
            false => IpAddr::V4(a.into()),
            // Every key's id was given before its key was made.
            true => self
                .address_ids
                .address(a)
                .map_or(IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED), IpAddr::V6),
        });
        let protocol = match (slot.key.rest >> 8) & 0xff {
            0 => FlowProtocol::Tcp,
            1 => FlowProtocol::Udp,
            _ => FlowProtocol::Sctp,
        };
        let observed = match resolved.verdict & ALLOWED {
            0 => Observed::Allow,
            _ => Observed::Deny,
        };
        let judged = Judged {
            src: endpoint_of(resolved.src, src),
            dst: endpoint_of(resolved.dst, dst),
            port: Some((slot.key.rest >> 16) as u16),
            outcome: Some(resolved.outcome),
            mismatch: true,
        };
        self.row(None, protocol, Some(observed), &judged)
    }

    /// [`Checker::judge`] of a VPC record read the short way (the same answers and counts as
    /// of [`VpcRecord::flow`]): a connection in the front cache is judged from the record's
    /// values alone; any other is made into its flow and looked up the long way.
    #[inline]
    pub fn judge_vpc(&mut self, record: &VpcRecord) -> Option<Judged> {
        self.judge_record(record, Explain::Always, None)
            .map(|(judged, _)| judged)
    }

    /// [`Checker::judge_vpc`], and where the record's connection sits in the front cache;
    /// `prepared`: what the class pass found for the record ([`Checker::prepare_vpc`]),
    /// which the long way then does not look up again.
    #[inline]
    fn judge_record(
        &mut self,
        record: &VpcRecord,
        explain: Explain,
        prepared: Option<Prepared>,
    ) -> Option<(Judged, Option<SlotAt>)> {
        if record.reply == Reply::Yes {
            self.stats.replies += 1;
            return None;
        }
        let key = self.vpc_front_key(record).or_else(|| {
            self.give_ids(record.src, record.dst);
            self.vpc_front_key(record)
        });
        // What `judge_flow` does with the record's flow, without making it.
        let timed = self.history.is_some();
        let (resolved, at) = self.front_or_resolve(key, || Query {
            prepared,
            ..Query::of_vpc(record, timed)
        });
        let judged = self.apply(&Facts::of_vpc(record), &resolved, explain)?;
        if let Some(at) = at {
            // `apply` explained a pending outcome (a VPC record is compared with the verdict
            // itself: only a mismatch or a row asks): the entry's bits say so from now on,
            // so that the connection's later records do not read the outcome table again.
            if resolved.verdict & PENDING != 0 && (judged.mismatch || explain == Explain::Always) {
                let bits = self.verdict_bits(resolved.outcome);
                self.front.set_verdict(at, bits);
            }
        }
        Some((judged, at))
    }

    /// What the front cache entry of `record`'s connection says of it, when the entry alone
    /// can say it as the long way would ([`Checker::apply`]): [`FrontHit::Reply`] (counted)
    /// for a reply by its source's declared port, else the entry, where it sits, its verdict
    /// bits and whether the record disagrees with them (nothing counted yet).
    /// [`FrontHit::Long`] (nothing done) for any other record: not in the front cache, with
    /// a pods history (time spans), a reply by its TCP flags, not judged, or a source that
    /// declares more ports than the entry keeps. The fields are read from the slot's words
    /// as needed, not its whole `Resolved`: no [`Resolved`], [`Facts`] nor [`Judged`] is
    /// made (an eighth of a record's instructions at 100,000 connections,
    /// docs/performance.md, session 29).
    #[inline(always)]
    fn front_hit(&mut self, record: &VpcRecord) -> FrontHit {
        if self.history.is_some() || record.reply == Reply::Yes {
            return FrontHit::Long;
        }
        let Some((key, second)) = self.vpc_front_key(record) else {
            return FrontHit::Long;
        };
        let Some((slot, at)) = self.front.entry(key, second) else {
            return FrontHit::Long;
        };
        // No address is missing from the inputs without a history.
        let outcome = slot.outcome();
        if !outcome.judged() || slot.missing() != 0 {
            return FrontHit::Long;
        }
        // `apply`: with no TCP flags to say, a flow from a port the source declares to one
        // the destination does not is the server answering.
        if record.reply == Reply::Unknown && !slot.dst_serves() {
            match kept_port(&slot.src_ports, slot.src_ports_len(), record.src_port) {
                // The pod is asked the long way.
                None => return FrontHit::Long,
                Some(true) => {
                    self.stats.replies += 1;
                    return FrontHit::Reply;
                }
                Some(false) => {}
            }
        }
        let verdict = outcome.verdict();
        FrontHit::Entry(EntryHit {
            slot,
            at,
            verdict,
            // A VPC record is compared with the verdict itself (`apply`, not at the egress).
            mismatch: disagrees(record.observed, verdict & ALLOWED != 0),
        })
    }

    /// Count a record judged from its front cache entry ([`Checker::front_hit`]) as
    /// [`Checker::apply`] counts it, and move the entry up a way; where it is now.
    #[inline(always)]
    fn count_front_hit(&mut self, at: SlotAt, verdict: u8, mismatch: bool) -> SlotAt {
        self.stats.judged += 1;
        self.stats.security_group_denials += u64::from(verdict & GROUP_DENIED != 0);
        self.stats.mismatches += u64::from(mismatch);
        self.front.promote(at)
    }

    /// [`Checker::judge_record`] of a record whose connection is in the front cache, for a
    /// sink that is handed mismatches only, when nothing is to be handed on: the record is a
    /// reply by its source's declared port, or no mismatch, or a mismatch the entry counts
    /// (`counting`, [`Checker::counting`]). The same counts as the long way, from the
    /// entry's words alone ([`Checker::front_hit`]). False (nothing done) for any other
    /// record: one [`Checker::front_hit`] leaves to the long way, a mismatch of an outcome
    /// still pending (it is explained the long way) or one to be handed on now.
    #[inline(always)]
    fn judge_front_hit(&mut self, record: &VpcRecord, counting: bool) -> bool {
        let EntryHit {
            slot,
            at,
            verdict,
            mismatch,
        } = match self.front_hit(record) {
            FrontHit::Long => return false,
            FrontHit::Reply => return true,
            FrontHit::Entry(hit) => hit,
        };
        // One branch, seldom taken (`&` and `|`, not `&&` and `||`, which branch on each).
        if mismatch & (!counting | (verdict & PENDING != 0) | (slot.tally == u32::MAX)) {
            return false;
        }
        let at = self.count_front_hit(at, verdict, mismatch);
        self.front.tally_when(at, mismatch);
        true
    }

    /// [`Checker::judge_record`] and [`Checker::checked_vpc`] of a record whose connection
    /// is in the front cache, for a sink that is handed every row ([`Rows::All`]): its row
    /// made from the entry's words ([`Checker::front_hit`]), with the same counts; `Some(None)`
    /// for a reply (counted, no row). `None` (nothing done) for a record
    /// [`Checker::front_hit`] leaves to the long way, and for an outcome still pending (the
    /// long way explains it, for the row's deciding policy).
    #[inline(always)]
    fn front_hit_row(&mut self, record: &VpcRecord) -> Option<Option<CheckedFlow>> {
        let hit = match self.front_hit(record) {
            FrontHit::Long => return None,
            FrontHit::Reply => return Some(None),
            FrontHit::Entry(hit) => hit,
        };
        let EntryHit {
            slot,
            at,
            verdict,
            mismatch,
        } = hit;
        if verdict & PENDING != 0 {
            return None;
        }
        self.count_front_hit(at, verdict, mismatch);
        // `apply`'s judgement: the key's protocol has ports, and its record a port.
        let judged = Judged {
            src: endpoint_of(slot.src, record.src),
            dst: endpoint_of(slot.dst, record.dst),
            port: record.dst_port,
            outcome: Some(slot.outcome().index()),
            mismatch,
        };
        Some(Some(self.checked_vpc(record, &judged)))
    }

    /// Ask for the front cache sets of `records` (a batch about to be judged) at once, so
    /// that their loads overlap (`FrontCache::touch`); judging them then finds the sets in
    /// the CPU's cache. When of late a quarter or more of a batch's connections were looked
    /// up the long way, also ask for the class outcome slots of this batch's connections
    /// that are not in the front cache (`Checker::preload_classes`); when fewer, the
    /// classes met are few enough to stay in the CPU's cache, and asking costs more than it
    /// saves. Changes no answer.
    #[inline]
    pub fn preload_vpc(&mut self, records: &[VpcRecord]) {
        self.prepare_vpc(records);
    }

    /// [`Checker::preload_vpc`], and what the class pass found for each record, by its
    /// place in `records` (none when the pass did not run or passed the record over), for
    /// [`Checker::judge_record`].
    #[inline]
    fn prepare_vpc(&mut self, records: &[VpcRecord]) -> PreparedBatch {
        for record in records {
            if let Some((key, _)) = self.vpc_front_key(record) {
                self.front.touch(key);
            }
        }
        let last = std::mem::take(&mut self.long_ways);
        self.long_ways_per_batch = self.long_ways_per_batch - self.long_ways_per_batch / 8 + last;
        if self.long_ways_per_batch * 4 >= 8 * records.len() as u64 {
            self.preload_classes(records)
        } else {
            [None; crate::read::BATCH]
        }
    }

    /// Look up the pods and the connection class of each record's connection that is not
    /// in the front cache (its set was asked for just before), and return them for the
    /// long way (by the record's place in `records`, the first [`crate::read::BATCH`]); ask for each class's [`Checker::class_outcomes`] slot,
    /// then, those slots read, for the outcomes they point to ([`Checker::outcomes`], read
    /// for the explanation and for a row). Each step first asks for the memory of every
    /// record's lookup, then reads it: the loads of the batch overlap, where each new
    /// connection would wait for its own in turn. Only for pods found by address (with a
    /// pods history an address's pod depends on the time: nothing is kept). Changes no
    /// answer.
    fn preload_classes(&self, records: &[VpcRecord]) -> PreparedBatch {
        let mut prepared = [None; crate::read::BATCH];
        if self.history.is_some() {
            return prepared;
        }
        let records = records.get(..crate::read::BATCH).unwrap_or(records);
        let mut missed = [None; crate::read::BATCH];
        for (record, missed) in records.iter().zip(&mut missed) {
            let Some((key, second)) = self.vpc_front_key(record) else {
                continue;
            };
            if self.front.get(key, second).is_some() {
                continue;
            }
            if let (Some(protocol), Some(port)) = (
                FlowProtocol::from_number(record.protocol).ported(),
                record.dst_port,
            ) {
                for address in [record.src, record.dst] {
                    if let IpAddr::V4(address) = address {
                        crate::prefetch(self.index.address_home(address));
                    }
                }
                *missed = Some((protocol, port));
            }
        }
        for ((record, missed), prepared) in records.iter().zip(missed).zip(&mut prepared) {
            *prepared = missed.map(|(protocol, port)| {
                let addresses = (record.src, record.dst);
                let (src, dst, class) = self.index.connection_of_ips(addresses, protocol, port);
                if let Some(class) = &class {
                    self.class_outcomes.prefetch(class);
                }
                Prepared { src, dst, class }
            });
        }
        for found in prepared.iter().flatten() {
            if let Some(word) = found.class.and_then(|c| self.class_outcomes.get(&c)) {
                self.touch_outcome(PackedOutcome(word).index());
            }
        }
        prepared
    }

    /// Ask for the outcome of each record's front cache entry ([`Checker::touch_outcome`]),
    /// once the sets asked for by [`Checker::prepare_vpc`] are read: every row of a
    /// connection in the front cache reads its outcome (for the deciding policy's name),
    /// and those reads, one record after another, each waited for its own. Changes nothing.
    #[inline]
    fn touch_front_outcomes(&self, records: &[VpcRecord]) {
        if self.history.is_some() {
            return;
        }
        for record in records {
            if let Some((key, second)) = self.vpc_front_key(record) {
                if let Some((slot, _)) = self.front.entry(key, second) {
                    self.touch_outcome(slot.outcome().index());
                }
            }
        }
    }

    /// Ask for outcome `index` ([`Checker::outcomes`]), so that a later read finds it in the
    /// CPU's cache: on x86-64 a prefetch; elsewhere nothing. Changes nothing.
    #[inline]
    fn touch_outcome(&self, index: u32) {
        crate::prefetch(self.outcomes.get(index as usize));
    }

    /// The row of a judged flow (`judged` from [`Checker::judge`] on the same `flow`).
    pub fn checked(&self, flow: &Flow, judged: &Judged) -> CheckedFlow {
        self.row(flow.time, flow.protocol, flow.observed, judged)
    }

    /// The row of a judged VPC record (`judged` from [`Checker::judge_vpc`] on the same
    /// `record`): [`Checker::checked`] of its flow.
    pub fn checked_vpc(&self, record: &VpcRecord, judged: &Judged) -> CheckedFlow {
        self.row(
            record.time(),
            FlowProtocol::from_number(record.protocol),
            record.observed,
            judged,
        )
    }

    /// A sink for the readers ([`crate::read_path_into`]) that judges every flow and hands
    /// `sink` the row of every judged flow ([`Rows::All`]) or of the mismatches only
    /// ([`Rows::Mismatches`]); replies are counted, not handed on. VPC records read the short
    /// way are judged without their whole flow being made, unless a row is handed on.
    pub fn judging<'c>(
        &'c mut self,
        rows: Rows,
        sink: &'c mut dyn FnMut(&CheckedFlow),
    ) -> Judging<'c, 'e> {
        Judging {
            checker: self,
            rows,
            sink: RowSink::Rows(sink),
        }
    }

    /// A sink for the readers, as [`Checker::judging`] with [`Rows::Mismatches`], that hands
    /// `sink` mismatch rows with a count of flows each, `COUNTED_BATCH` (32) at a time (the
    /// last batch shorter), for consumers that add mismatches up (`flows check`'s mismatch
    /// groups): the mismatches of a VPC record's connection held in the front cache are
    /// counted there and handed on as one row (the same values, no time) when the
    /// connection leaves the front cache, or when the sink is dropped (after the input is
    /// read); any other mismatch is handed on in the next batch, with a count of one. Every
    /// mismatch is counted once; the rows come in no set order (a consumer adds them up
    /// whatever their order). Nothing is done per mismatch but a count in the slot
    /// the record's check has just read: counting into a consumer's structure as the log is
    /// read (its first row handed on at once) cost 15 % of the whole check where most of
    /// 100,000 connections mismatch (docs/performance.md).
    pub fn counting<'c>(&'c mut self, sink: &'c mut dyn FnMut(&[CountedRow])) -> Judging<'c, 'e> {
        // Tallies left by an earlier sink (none: each sink hands its own on when dropped).
        self.take_counted(&mut |_| {});
        self.counted.clear();
        Judging {
            checker: self,
            rows: Rows::Mismatches,
            sink: RowSink::Counted(sink),
        }
    }

    /// Hand the front cache's counted mismatches to `sink`, as rows with their counts. The
    /// sets are read one after another, each tallied entry's outcome too (for its row): so
    /// that they do not wait for each in turn, the set [`TAKE_AHEAD`] places on is asked
    /// for, and the outcomes of the one half as far on (asked for before, so in the CPU's
    /// cache by then).
    fn take_counted(&mut self, sink: &mut dyn FnMut(&[CountedRow])) {
        let sets = self.front.take_tallied_sets();
        let mut batch = Vec::with_capacity(COUNTED_BATCH);
        for (n, &at) in sets.iter().enumerate() {
            if let Some(&ahead) = sets.get(n + TAKE_AHEAD) {
                self.front.touch_set(ahead as usize);
            }
            if let Some(&near) = sets.get(n + TAKE_AHEAD / 2) {
                self.touch_tallied_outcomes(near as usize);
            }
            for (slot, count) in self.front.take_tallies(at as usize).into_iter().flatten() {
                if count > 0 {
                    batch.push((self.slot_row(&slot), u64::from(count)));
                }
            }
            if batch.len() + WAYS > COUNTED_BATCH {
                sink(&batch);
                batch.clear();
            }
        }
        if !batch.is_empty() {
            sink(&batch);
        }
    }

    /// Ask for the outcomes of set `at`'s tallied entries ([`Checker::take_counted`]).
    /// Changes nothing.
    #[inline]
    fn touch_tallied_outcomes(&self, at: usize) {
        for slot in self.front.tallied(at).into_iter().flatten() {
            self.touch_outcome(PackedOutcome::in_low_bits(slot.packed).index());
        }
    }

    fn row(
        &self,
        time: Option<Timestamp>,
        protocol: FlowProtocol,
        observed: Option<Observed>,
        judged: &Judged,
    ) -> CheckedFlow {
        let outcome = judged
            .outcome
            .and_then(|index| self.outcomes.get(index as usize));
        CheckedFlow {
            time,
            src: judged.src,
            dst: judged.dst,
            protocol,
            port: judged.port,
            observed,
            policy: outcome.map(|o| {
                if o.bits & ALLOWED != 0 {
                    Judgement::Allow
                } else {
                    Judgement::Deny
                }
            }),
            decided_by: outcome.and_then(|o| self.name(o.name)),
            mismatch: judged.mismatch,
        }
    }

    /// The front cache's key of `flow` and its time in whole seconds, when the flow can be
    /// cached: both addresses IPv4, or both IPv6 with ids ([`AddressIds`]), a protocol with
    /// ports and a destination port, no pod named by the log, and (with a pods history, where
    /// the time matters) a time in whole seconds.
    fn front_key(&self, flow: &Flow) -> Option<(FrontKey, i64)> {
        if !self.front_enabled {
            return None;
        }
        let (addresses, ids) = self.address_ids.key_addresses(flow.src, flow.dst)?;
        let protocol = match flow.protocol {
            FlowProtocol::Tcp => 0,
            FlowProtocol::Udp => 1,
            FlowProtocol::Sctp => 2,
            _ => return None,
        };
        let port = flow.dst_port?;
        if flow.src_pod.is_some() || flow.dst_pod.is_some() {
            return None;
        }
        let second = match (&self.history, flow.time) {
            (None, _) => 0,
            (Some(_), Some(time)) if time.subsec_nanosecond() == 0 => time.as_second(),
            (Some(_), _) => return None,
        };
        Some((
            FrontKey::new(addresses, ids, protocol, port, flow.sees_security_groups),
            second,
        ))
    }

    /// [`Checker::front_key`] of a VPC record's flow, from the record.
    #[inline(always)]
    fn vpc_front_key(&self, record: &VpcRecord) -> Option<(FrontKey, i64)> {
        if !self.front_enabled {
            return None;
        }
        let protocol = match record.protocol {
            6 => 0,
            17 => 1,
            132 => 2,
            _ => return None,
        };
        let port = record.dst_port?;
        let second = match (&self.history, record.start) {
            (None, _) => 0,
            (Some(_), Some(second)) => second,
            (Some(_), None) => return None,
        };
        let (addresses, ids) = self.address_ids.key_addresses(record.src, record.dst)?;
        Some((FrontKey::new(addresses, ids, protocol, port, true), second))
    }

    /// Everything `check` works out from the flow's addresses, protocol and destination port
    /// (and its time, through the pods history), and the whole seconds over which that holds
    /// (`None` without a time to bound it).
    fn resolve(&mut self, flow: &Query<'_>) -> (Resolved, Option<(i64, i64)>) {
        let missing_before = self.stats.history_pods_missing;
        let (src, dst) = match flow.prepared {
            Some(prepared) => {
                let endpoint =
                    |pod: Option<PodId>, ip| pod.map_or(Endpoint::Address(ip), Endpoint::Pod);
                (
                    endpoint(prepared.src, flow.src),
                    endpoint(prepared.dst, flow.dst),
                )
            }
            None => (
                self.endpoint(flow.src, flow.time, flow.src_pod),
                self.endpoint(flow.dst, flow.time, flow.dst_pod),
            ),
        };
        let missing = self.stats.history_pods_missing - missing_before;
        self.stats.history_pods_missing = missing_before;
        let span = match (&self.history, flow.time) {
            (None, _) => Some((i64::MIN, i64::MAX)),
            (Some(history), Some(time)) => {
                let (a, b) = (
                    history.steady(flow.src, time),
                    history.steady(flow.dst, time),
                );
                let ceil = |t: Timestamp| t.as_second() + i64::from(t.subsec_nanosecond() > 0);
                let lo = a.0.max(b.0).map_or(i64::MIN, ceil);
                let hi = match (a.1, b.1) {
                    (Some(x), Some(y)) => Some(x.min(y)),
                    (x, y) => x.or(y),
                };
                Some((lo, hi.map_or(i64::MAX, ceil)))
            }
            (Some(_), None) => None,
        };
        let service = match dst {
            Endpoint::Address(ip) => self.services_by_address.get(&ip).copied(),
            Endpoint::Pod(_) => None,
        };
        let ported = flow.protocol.ported();
        let mut resolved = Resolved {
            src: pod_slot(src),
            dst: pod_slot(dst),
            missing: u8::try_from(missing).unwrap_or(u8::MAX),
            dst_serves: false,
            src_ports: [0; 2],
            src_ports_len: 0,
            outcome: NOT_JUDGED,
            verdict: 0,
            class: None,
        };
        let Some(protocol) = ported else {
            return (resolved, span);
        };
        resolved.dst_serves = self.serves(dst, protocol, flow.dst_port)
            || service.is_some_and(|index| {
                self.engine.inventory().services[index]
                    .ports
                    .iter()
                    .any(|p| p.protocol == protocol && Some(p.port) == flow.dst_port)
            });
        if let Endpoint::Pod(id) = src {
            for &(declared_protocol, declared_port) in self.declared(id) {
                if declared_protocol == protocol {
                    if let Some(slot) = resolved
                        .src_ports
                        .get_mut(usize::from(resolved.src_ports_len))
                    {
                        *slot = declared_port;
                    }
                    resolved.src_ports_len =
                        resolved.src_ports_len.saturating_add(1).min(MANY_PORTS);
                }
            }
        }
        let Some(port) = flow.dst_port else {
            return (resolved, span);
        };
        // A Service's cluster IP is judged through the Service; the groups see the backends.
        let target = service.map_or(Target::Endpoint(dst), Target::Service);
        let group_denial = match (&mut self.security_groups, target) {
            (Some(groups), Target::Endpoint(dst)) if flow.sees_security_groups => {
                groups.deny((src, flow.src), (dst, flow.dst), protocol, port)
            }
            _ => None,
        };
        // Between two pods: one outcome per connection class, explained, or (once many
        // explanations were asked) the verdict from the index, the explanation when needed.
        if let (Endpoint::Pod(a), Target::Endpoint(Endpoint::Pod(b)), None) =
            (src, target, &group_denial)
        {
            let class = match flow.prepared {
                Some(prepared) => prepared.class,
                None => self.index.connection_class(a, b, protocol, port),
            };
            if let Some(class) = class {
                (resolved.outcome, resolved.verdict) =
                    self.class_outcome(class, (a, b), protocol, port);
                resolved.class = Some(class);
                return (resolved, span);
            }
        }
        let decision = self.decide(src, target, protocol, port);
        // The groups sit on the interface, before the pod's policy on the way in and after
        // it on the way out; either dropping the connection drops it. When both deny, the
        // groups are named: they are what a VPC record's REJECT reports.
        let outcome = Outcome {
            allowed: decision.allowed && group_denial.is_none(),
            egress_allowed: decision.egress_allowed,
            group_denied: group_denial.is_some(),
            decided_by: group_denial.or(decision.decided_by),
        };
        resolved.outcome = self.intern(outcome);
        resolved.verdict = self.verdict_bits(resolved.outcome);
        (resolved, span)
    }

    /// The outcome of a connection class between two pods (no security group denies it):
    /// explained, or once [`Checker::explain_all_before`] explanations were asked, the
    /// verdict from the index with the explanation pending (one outcome per class): its
    /// index and verdict bits.
    fn class_outcome(
        &mut self,
        class: ConnectionClass,
        (src, dst): (PodId, PodId),
        protocol: Protocol,
        port: u16,
    ) -> (u32, u8) {
        if let Some(word) = self.class_outcomes.get(&class) {
            let outcome = PackedOutcome(word);
            return (outcome.index(), outcome.verdict());
        }
        let index = if self.explained >= self.explain_all_before
            && !self.class_cache.contains_key(&class)
        {
            let allowed =
                self.index
                    .allowed(Endpoint::Pod(src), Endpoint::Pod(dst), protocol, port);
            // The egress side is not known until explained (`settle`).
            let bits = (u8::from(allowed) * (ALLOWED | EGRESS_ALLOWED)) | PENDING;
            self.push_outcome(Stored { bits, name: 0 })
        } else {
            let decision = self.decide(
                Endpoint::Pod(src),
                Target::Endpoint(Endpoint::Pod(dst)),
                protocol,
                port,
            );
            self.intern(Outcome {
                allowed: decision.allowed,
                egress_allowed: decision.egress_allowed,
                group_denied: false,
                decided_by: decision.decided_by,
            })
        };
        let verdict = self.verdict_bits(index);
        if let Some(outcome) = PackedOutcome::new(index, verdict) {
            // Bounded like the other caches; cleared with the outcome table it points into.
            if self.class_outcomes.len() >= MAX_CACHED_VERDICTS {
                self.class_outcomes.clear();
            }
            self.class_outcomes.insert(class, outcome.0);
        }
        (index, verdict)
    }

    fn verdict_bits(&self, index: u32) -> u8 {
        self.outcomes
            .get(index as usize)
            .map_or(0, |stored| stored.bits)
    }

    /// The deciding policy's name of [`Stored::name`] `name`.
    fn name(&self, name: u32) -> Option<Arc<str>> {
        let at = usize::try_from(name.checked_sub(1)?).ok()?;
        self.names.get(at).cloned()
    }

    /// The [`Stored::name`] of `decided_by` (its address, kept in [`Checker::names`]).
    fn name_of(&mut self, decided_by: Option<Arc<str>>) -> u32 {
        let Some(name) = decided_by else {
            return 0;
        };
        let address = Arc::as_ptr(&name).cast::<u8>() as usize;
        if let Some(&at) = self.name_index.get(&address) {
            return at;
        }
        self.names.push(name);
        let at = u32::try_from(self.names.len()).unwrap_or(u32::MAX);
        self.name_index.insert(address, at);
        at
    }

    /// Ask the engine for the explanation of outcome `index` when it is pending, and put it
    /// in place (the front cache's entries point to it by index). The index reads it from
    /// the side rows of the connection's classes ([`VerdictIndex::decide`]: one walk per
    /// subject class and port class, shared by every connection class it meets), so it is
    /// asked again rather than remembered per class. The connection asked about is the
    /// flow's at hand (`resolved`'s pods, `protocol`, `port`): a pending outcome is one
    /// connection class's, whose connections all get the same explanation
    /// ([`ConnectionClass`]).
    fn settle(
        &mut self,
        index: u32,
        resolved: &Resolved,
        protocol: Option<Protocol>,
        port: Option<u16>,
    ) {
        let pending = self.verdict_bits(index) & PENDING != 0;
        if !pending || resolved.src == NO_POD || resolved.dst == NO_POD {
            return;
        }
        let (src, dst) = (
            PodId::new(resolved.src as usize),
            PodId::new(resolved.dst as usize),
        );
        let (Some(protocol), Some(port)) = (protocol, port) else {
            return;
        };
        self.stats.verdicts += 1;
        self.explained += 1;
        let deciding = self.index.decide(src, dst, protocol, port);
        let name = self.name_of_policy(deciding.policy);
        if let Some(stored) = self.outcomes.get_mut(index as usize) {
            // The index answers as the engine does (engine tests/lookup.rs).
            debug_assert_eq!(stored.bits & ALLOWED != 0, deciding.allowed);
            let bits = (u8::from(deciding.allowed) * ALLOWED)
                | (u8::from(deciding.egress_allowed) * EGRESS_ALLOWED);
            *stored = Stored { bits, name };
            // The connection's class (when it was looked up just now) says so from now on.
            if let (Some(class), Some(outcome)) = (resolved.class, PackedOutcome::new(index, bits))
            {
                self.class_outcomes.update(&class, outcome.0);
            }
        }
    }

    /// The [`Stored::name`] of policy `id` (0 for none), remembered by id until the outcome
    /// table starts again.
    fn name_of_policy(&mut self, id: Option<PolicyId>) -> u32 {
        let Some(id) = id else {
            return 0;
        };
        if let Some(&at) = self.policy_name_at.get(&id) {
            return at;
        }
        let name = self.policy_name(Some(id));
        let at = self.name_of(name);
        self.policy_name_at.insert(id, at);
        at
    }

    /// The index of `outcome` in the outcome table (bounded like the caches: when full, it
    /// starts again, and so does the front cache, whose entries point into it).
    fn intern(&mut self, outcome: Outcome) -> u32 {
        if let Some(&index) = self.outcome_index.get(&outcome) {
            return index;
        }
        let bits = outcome.verdict_bits();
        // The name of a table that starts again is that table's.
        let index = self.push_outcome(Stored::default());
        let name = self.name_of(outcome.decided_by.clone());
        if let Some(stored) = self.outcomes.get_mut(index as usize) {
            *stored = Stored { bits, name };
        }
        self.outcome_index.insert(outcome, index);
        index
    }

    /// Add `stored` to the table (when full, the table starts again, and so do the front
    /// cache, the names and the maps that point into it).
    fn push_outcome(&mut self, stored: Stored) -> u32 {
        if self.outcomes.len() >= MAX_CACHED_VERDICTS {
            // The front cache's counted mismatches first: their rows read the outcomes.
            let mut counted = std::mem::take(&mut self.counted);
            self.take_counted(&mut |rows| counted.extend_from_slice(rows));
            self.counted = counted;
            self.outcomes.clear();
            self.outcome_index.clear();
            self.names.clear();
            self.name_index.clear();
            self.policy_name_at.clear();
            self.class_outcomes.clear();
            self.front.clear();
        }
        let index = u32::try_from(self.outcomes.len()).unwrap_or(NOT_JUDGED - 1);
        self.outcomes.push(stored);
        index
    }

    /// The per-flow part of the check, from what [`Checker::resolve`] worked out.
    #[inline]
    fn apply(&mut self, flow: &Facts, resolved: &Resolved, explain: Explain) -> Option<Judged> {
        self.stats.history_pods_missing += u64::from(resolved.missing);
        let src = endpoint_of(resolved.src, flow.src);
        let ported = flow.protocol.ported();
        if let (Some(protocol), Reply::Unknown) = (ported, flow.reply) {
            // The log does not say which side opened the connection: the side whose port a
            // pod declares is the server, so a flow from a declared port to an undeclared one
            // is the server answering.
            if !resolved.dst_serves && self.src_serves(resolved, src, protocol, flow.src_port) {
                self.stats.replies += 1;
                return None;
            }
        }
        self.stats.judged += 1;
        let mut judged = Judged {
            src,
            dst: endpoint_of(resolved.dst, flow.dst),
            port: flow.dst_port.filter(|_| ported.is_some()),
            outcome: None,
            mismatch: false,
        };
        let index = resolved.outcome;
        if index == NOT_JUDGED {
            self.stats.not_judged += 1;
            return Some(judged);
        }
        judged.outcome = Some(index);
        let bits = resolved.verdict;
        let mut pending = bits & PENDING != 0;
        let at_egress = flow.observed_at == Some(ObservedAt::Egress);
        if pending && (explain == Explain::Always || at_egress) {
            // Settling puts the explanation in place: the index still holds.
            self.settle(index, resolved, ported, flow.dst_port);
            pending = false;
        }
        if bits & GROUP_DENIED != 0 {
            self.stats.security_group_denials += 1;
        }
        let compared = match (at_egress, bits & PENDING != 0) {
            // Explained since it was cached: the egress side from the table.
            (true, true) => self
                .outcomes
                .get(index as usize)
                .is_some_and(|stored| stored.bits & EGRESS_ALLOWED != 0),
            (true, false) => bits & EGRESS_ALLOWED != 0,
            (false, _) => bits & ALLOWED != 0,
        };
        judged.mismatch = disagrees(flow.observed, compared);
        if judged.mismatch {
            self.stats.mismatches += 1;
            if pending {
                self.settle(index, resolved, ported, flow.dst_port);
            }
        }
        Some(judged)
    }

    /// Whether the source pod declares `port` (from the ports kept in `resolved`, or from
    /// the pod when it declares more than fit there).
    fn src_serves(
        &self,
        resolved: &Resolved,
        src: Endpoint,
        protocol: Protocol,
        port: Option<u16>,
    ) -> bool {
        kept_port(&resolved.src_ports, resolved.src_ports_len, port)
            .unwrap_or_else(|| self.serves(src, protocol, port))
    }

    fn decide(&mut self, src: Endpoint, target: Target, protocol: Protocol, port: u16) -> Decision {
        // Two pods: one explanation per connection class (the engine's classes: pods every
        // policy treats alike, ports every port condition treats alike).
        if let (Endpoint::Pod(a), Target::Endpoint(Endpoint::Pod(b))) = (src, target) {
            if let Some(class) = self.index.connection_class(a, b, protocol, port) {
                if let Some(decision) = self.class_cache.get(&class) {
                    return decision.clone();
                }
                let decision = self.explain(src, target, protocol, port);
                remember(&mut self.class_cache, class, decision.clone());
                return decision;
            }
        }
        let end = |endpoint: Endpoint| match endpoint {
            Endpoint::Pod(id) => DecisionEnd::Pod(id),
            Endpoint::Address(ip) => {
                let (v6, segment) = self.cuts.segment(ip);
                DecisionEnd::Segment(v6, segment)
            }
        };
        let key = (
            end(src),
            match target {
                Target::Endpoint(dst) => end(dst),
                Target::Service(index) => DecisionEnd::Service(index),
            },
            protocol,
            port,
        );
        if let Some(decision) = self.cache.get(&key) {
            return decision.clone();
        }
        let decision = self.explain(src, target, protocol, port);
        remember(&mut self.cache, key, decision.clone());
        decision
    }

    /// `Kind namespace/name` of a policy, made once per policy.
    fn policy_name(&mut self, id: Option<PolicyId>) -> Option<Arc<str>> {
        let id = id?;
        if let Some(name) = self.policy_names.get(&id) {
            return Some(Arc::clone(name));
        }
        let policy = self.engine.policy(id)?;
        let name: Arc<str> = Arc::from(format!("{} {}", policy.kind, policy.name));
        self.policy_names.insert(id, Arc::clone(&name));
        Some(name)
    }

    /// Ask the engine (not cached).
    fn explain(
        &mut self,
        src: Endpoint,
        target: Target,
        protocol: Protocol,
        port: u16,
    ) -> Decision {
        self.stats.verdicts += 1;
        self.explained += 1;
        match target {
            Target::Endpoint(dst) => {
                let decision = self.engine.decide(src, dst, protocol, port);
                Decision {
                    allowed: decision.allowed,
                    egress_allowed: decision.egress.allowed,
                    decided_by: self.policy_name(decision.deciding_policy()),
                }
            }
            Target::Service(index) => {
                let service = &self.engine.inventory().services[index];
                let answer = self
                    .engine
                    .explain_via_service(src, service, protocol, port);
                let allowed = answer.allowed();
                // Denied: the first backend that denies says why; allowed: the first backend.
                let decider = answer
                    .backends
                    .iter()
                    .find(|backend| backend.verdict.allowed == allowed);
                // Egress is judged per backend (the destination after kube-proxy's rewrite).
                let egress_allowed = answer.backends.iter().all(|b| b.verdict.egress.allowed);
                Decision {
                    allowed,
                    egress_allowed,
                    decided_by: self
                        .policy_name(decider.and_then(|backend| backend.verdict.deciding_policy())),
                }
            }
        }
    }
}

/// The policy that decided a verdict (see [`Verdict::deciding_policy`]), as `Kind
/// namespace/name` (`Kind name` when cluster-scoped). `None` when no policy decided either
/// side.
pub fn decided_by(engine: &Engine, verdict: &Verdict) -> Option<String> {
    verdict
        .deciding_policy()
        .and_then(|id| engine.policy(id))
        .map(|policy| format!("{} {}", policy.kind, policy.name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(r: &Resolved) -> (u32, u32, u8, bool, [u16; 2], u8, u32, u8) {
        (
            r.src,
            r.dst,
            r.missing,
            r.dst_serves,
            r.src_ports,
            r.src_ports_len,
            r.outcome,
            r.verdict,
        )
    }

    /// Every IPv6 address given an id keeps it through the table's growth, and no two share
    /// one: addresses of one prefix that differ in their last bytes (as an EKS cluster's
    /// pods' do), of other prefixes, and in their high half only; IPv4 addresses and a second
    /// gift take none; past `MAX_ADDRESS_IDS` no address gets one.
    #[test]
    fn address_ids_are_kept_and_distinct() {
        use std::net::Ipv6Addr;
        let mut ids = AddressIds::default();
        assert_eq!(ids.id(Ipv6Addr::LOCALHOST), None);
        let addresses: Vec<Ipv6Addr> = (0u128..6_000)
            .map(|n| Ipv6Addr::from(0xfd00_0010_0000_0000_0000_0000_0a00_0000 | n))
            .chain((0u128..3_000).map(|n| Ipv6Addr::from(0x2001_0db8 << 96 | n << 64 | 1)))
            .chain((0u128..100).map(|n| Ipv6Addr::from(n << 112 | 0xffff)))
            .collect();
        for (n, &address) in addresses.iter().enumerate() {
            ids.give(IpAddr::V6(address));
            ids.give(IpAddr::V6(address));
            ids.give(IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, n as u8)));
            assert_eq!(ids.id(address), Some(n as u32));
        }
        for (n, &address) in addresses.iter().enumerate() {
            assert_eq!(ids.id(address), Some(n as u32), "{address}");
            assert_eq!(ids.address(n as u32), Some(address));
        }
        assert_eq!(ids.addresses.len(), addresses.len());
        assert_eq!(ids.id(Ipv6Addr::LOCALHOST), None);
        assert!(2 * ids.addresses.len() <= ids.slots.len());

        let mut full = AddressIds::default();
        for n in 0..MAX_ADDRESS_IDS as u128 + 10 {
            full.give(IpAddr::V6(Ipv6Addr::from(n)));
        }
        assert_eq!(full.addresses.len(), MAX_ADDRESS_IDS);
        assert_eq!(
            full.id(Ipv6Addr::from(MAX_ADDRESS_IDS as u128 - 1)),
            Some(MAX_ADDRESS_IDS as u32 - 1)
        );
        assert_eq!(full.id(Ipv6Addr::from(MAX_ADDRESS_IDS as u128)), None);
    }

    /// A front cache slot gives back the values it was made from, at every field's limits,
    /// and a new verdict changes the verdict alone.
    #[test]
    fn a_slot_keeps_what_it_was_given() {
        let key = FrontKey::new([0x0a00_0001, 0x0a00_0002], false, 2, 65535, true);
        for outcome in [0, 1, 4096, OUTCOME_NONE - 1, NOT_JUDGED] {
            for (missing, dst_serves, len, verdict) in [
                (0, false, 0, 0),
                (2, true, MANY_PORTS, 15),
                (1, false, 2, PENDING | ALLOWED),
            ] {
                let resolved = Resolved {
                    src: NO_POD,
                    dst: 7,
                    missing,
                    dst_serves,
                    src_ports: [65535, 1],
                    src_ports_len: len,
                    outcome,
                    verdict,
                    class: None,
                };
                let slot = FrontSlot::new(key, &resolved).expect("fits");
                assert_eq!(fields(&slot.resolved()), fields(&resolved));
                let mut cache = FrontCache::new(2);
                let at = cache.set(key);
                let (place, left) = cache.insert(slot, i64::MIN, i64::MAX);
                assert!(place == (at, 0) && left.is_none());
                cache.set_verdict((at, 0), EGRESS_ALLOWED);
                let (again, _) = cache.get(key, 0).expect("cached");
                let changed = Resolved {
                    verdict: EGRESS_ALLOWED,
                    ..resolved
                };
                assert_eq!(fields(&again), fields(&changed));
            }
        }
        // An index past the slot's bits is not cached (the outcome table never reaches it).
        let too_far = Resolved {
            outcome: OUTCOME_NONE,
            ..Resolved::default()
        };
        assert!(FrontSlot::new(key, &too_far).is_none());
    }

    /// Two keys and a third of one set (by destination port) of a cache of 4 sets.
    fn three_keys_of_one_set(cache: &FrontCache) -> [FrontKey; 3] {
        let first = FrontKey::new([0x0a00_0001, 0x0a00_0002], false, 0, 1, true);
        let at = cache.set(first);
        let same_set: Vec<FrontKey> = (2..=u16::MAX)
            .map(|port| FrontKey::new([0x0a00_0001, 0x0a00_0002], false, 0, port, true))
            .filter(|&key| cache.set(key) == at)
            .take(2)
            .collect();
        let [second, third] = same_set[..] else {
            panic!("two more keys of one set among 65,534 ports");
        };
        [first, second, third]
    }

    /// A slot of `key` whose outcome is `outcome`.
    fn slot_of(key: FrontKey, outcome: u32) -> FrontSlot {
        let resolved = Resolved {
            outcome,
            ..Resolved::default()
        };
        FrontSlot::new(key, &resolved).expect("fits")
    }

    /// The sets start on cache lines; new keys fill the free ways, then take the last (a key
    /// put in again takes its own way, not another); an entry met again moves up a way with
    /// its tally; the one that leaves comes back with its tally, and tallies are taken from
    /// the way they were counted in.
    #[test]
    fn a_set_keeps_the_keys_met_again_on_one_cache_line() {
        let mut cache = FrontCache::new(2);
        let [first, second, third] = three_keys_of_one_set(&cache);
        let at = cache.set(first);
        let put = |cache: &mut FrontCache, key, outcome| {
            let (place, left) = cache.insert(slot_of(key, outcome), i64::MIN, i64::MAX);
            (place, left.map(|(left, n)| (left.key, n)))
        };
        let outcome = |cache: &FrontCache, key| cache.get(key, 0).map(|(r, _)| r.outcome);
        assert_eq!(outcome(&cache, first), None, "an empty cache holds nothing");
        assert_eq!(put(&mut cache, first, 1), ((at, 0), None));
        assert_eq!((cache.words.as_ptr() as usize + 4 * cache.base) % 64, 0);
        assert!(cache.tally((at, 0)));
        assert_eq!(put(&mut cache, second, 2), ((at, 1), None));
        // `first`, put in again, replaces itself (its tally leaves with it).
        assert_eq!(put(&mut cache, first, 3), ((at, 0), Some((first, 1))));
        assert_eq!(outcome(&cache, first), Some(3));
        assert_eq!(outcome(&cache, second), Some(2));
        assert!(cache.tally((at, 1)));
        assert!(cache.tally((at, 1)));
        // A third key takes the last way: `second` (two mismatches) leaves, `first` stays.
        assert_eq!(put(&mut cache, third, 4), ((at, 1), Some((second, 2))));
        assert_eq!(outcome(&cache, second), None);
        assert_eq!(outcome(&cache, first), Some(3));
        assert_eq!(outcome(&cache, third), Some(4));
        assert!(cache.tally((at, 1)));
        // `third`, met again, moves up with its tally; `first` goes down, and is next to go.
        assert_eq!(cache.promote((at, 1)), (at, 0));
        assert_eq!(cache.promote((at, 0)), (at, 0), "the first way is the top");
        assert_eq!(cache.get(third, 0).map(|(_, place)| place), Some((at, 0)));
        assert!(cache.tally((at, 1)));
        let taken = cache.take_tallies(at).expect("a set");
        assert_eq!(
            taken.map(|(slot, n)| (slot.key, n)),
            [(third, 1), (first, 1)]
        );
        assert_eq!(cache.take_tallied_sets(), vec![at as u32]);
        assert_eq!(put(&mut cache, second, 5), ((at, 1), None));
        assert_eq!(outcome(&cache, first), None);
        assert_eq!(outcome(&cache, third), Some(4));
    }

    /// Three connections of one set met in turn, round after round (as a log lists the same
    /// connections each aggregation interval): one of them stays in the cache, and only the
    /// other two miss each round. With each new entry put first (the last leaving), every
    /// one of the three missed every round.
    #[test]
    fn connections_met_in_turn_keep_one_of_them_in_a_full_set() {
        let mut cache = FrontCache::new(2);
        let keys = three_keys_of_one_set(&cache);
        let mut misses = Vec::new();
        for _round in 0..5 {
            let mut missed = 0;
            for (n, &key) in keys.iter().enumerate() {
                match cache.get(key, 0) {
                    Some((_, place)) => {
                        cache.promote(place);
                    }
                    None => {
                        missed += 1;
                        cache.insert(slot_of(key, n as u32), i64::MIN, i64::MAX);
                    }
                }
            }
            misses.push(missed);
        }
        assert_eq!(misses, [3, 2, 2, 2, 2]);
    }

    /// With time spans (a pods history), an entry moved up a way keeps its own span: each
    /// key is found over its span only, before and after the move, and a key put in again
    /// over another span replaces its entry in its way.
    #[test]
    fn an_entry_moved_up_keeps_its_span() {
        let mut cache = FrontCache::new(2);
        let [first, second, _] = three_keys_of_one_set(&cache);
        let at = cache.set(first);
        let found = |cache: &FrontCache, key, second| {
            cache.get(key, second).map(|(r, place)| (r.outcome, place))
        };
        cache.insert(slot_of(first, 1), 0, 10);
        cache.insert(slot_of(second, 2), 20, 30);
        assert_eq!(found(&cache, first, 5), Some((1, (at, 0))));
        assert_eq!(found(&cache, second, 25), Some((2, (at, 1))));
        assert_eq!(cache.promote((at, 1)), (at, 0));
        assert_eq!(found(&cache, second, 25), Some((2, (at, 0))));
        assert_eq!(found(&cache, second, 5), None);
        assert_eq!(found(&cache, first, 5), Some((1, (at, 1))));
        assert_eq!(found(&cache, first, 25), None);
        let (place, left) = cache.insert(slot_of(first, 3), 10, 20);
        assert!(place == (at, 1) && left.is_none());
        assert_eq!(found(&cache, first, 5), None);
        assert_eq!(found(&cache, first, 15), Some((3, (at, 1))));
        assert_eq!(found(&cache, second, 25), Some((2, (at, 0))));
    }
}
