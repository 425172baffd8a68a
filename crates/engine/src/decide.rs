//! Decisions without explanations: the verdict of one connection and the policy that decided
//! it, by typed id, for consumers that ask millions of times (flow logs) and name the policy
//! once per id. The same walk as [`Engine::explain`]; only the text is left out.

use crate::eval::{direction_index, Conn, Endpoint, Engine, Trace, Verdict};
use crate::ir::{Policy, Rule};
use netfence_model::{PolicyType, Protocol};

/// A compiled policy: its tier and its place in the tier, as [`Engine::tiers`] orders them.
/// Valid for the engine that issued it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PolicyId {
    tier: u32,
    index: u32,
}

impl PolicyId {
    pub(crate) fn new(tier: usize, index: usize) -> PolicyId {
        // Tiers and policies are counted in u32 (an inventory holds far fewer than 2^32).
        PolicyId {
            tier: u32::try_from(tier).unwrap_or(u32::MAX),
            index: u32::try_from(index).unwrap_or(u32::MAX),
        }
    }

    /// The tier's index in [`Engine::tiers`].
    pub fn tier(self) -> usize {
        self.tier as usize
    }

    /// The policy's index within its tier.
    pub fn index(self) -> usize {
        self.index as usize
    }
}

/// One rule of a compiled policy: the policy, the direction, and the rule's place among the
/// policy's rules for that direction ([`crate::ir::Policy::rules`]). Valid for the engine that
/// issued it ([`Engine::rule`] reads it back).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RuleId {
    policy: PolicyId,
    direction: PolicyType,
    rule: u32,
}

impl RuleId {
    pub(crate) fn new(policy: PolicyId, direction: PolicyType, rule: usize) -> RuleId {
        RuleId {
            policy,
            direction,
            // A policy has far fewer than 2^32 rules.
            rule: u32::try_from(rule).unwrap_or(u32::MAX),
        }
    }

    /// The policy the rule belongs to.
    pub fn policy(self) -> PolicyId {
        self.policy
    }

    /// The direction whose rules it is one of.
    pub fn direction(self) -> PolicyType {
        self.direction
    }

    /// Its index among the policy's rules for that direction.
    pub fn rule(self) -> usize {
        self.rule as usize
    }
}

/// How one direction was decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SideDecision {
    /// Whether this direction allows the connection.
    pub allowed: bool,
    /// The deciding policy, as [`crate::DirectionVerdict::deciding_policy`] has it.
    pub policy: Option<PolicyId>,
}

/// The verdict of one connection with the deciding policies, no text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Allowed in both directions.
    pub allowed: bool,
    /// Egress at the source.
    pub egress: SideDecision,
    /// Ingress at the destination.
    pub ingress: SideDecision,
}

/// The policy that decided a connection: when it is denied, the denying side's (egress
/// first); when it is allowed, the side whose rule allowed (ingress first). `None` when no
/// policy decided either side.
pub(crate) fn deciding(
    allowed: bool,
    egress: SideDecision,
    ingress: SideDecision,
) -> Option<PolicyId> {
    if allowed {
        ingress.policy.or(egress.policy)
    } else {
        [egress, ingress]
            .into_iter()
            .filter(|side| !side.allowed)
            .find_map(|side| side.policy)
    }
}

impl Decision {
    /// The policy that decided the connection (see [`Verdict::deciding_policy`]).
    pub fn deciding_policy(&self) -> Option<PolicyId> {
        deciding(self.allowed, self.egress, self.ingress)
    }
}

impl Verdict {
    /// The policy that decided the connection: when it is denied, the denying side's (egress
    /// first); when it is allowed, the side whose rule allowed (ingress first). `None` when no
    /// policy decided either side.
    pub fn deciding_policy(&self) -> Option<PolicyId> {
        let side = |v: &crate::DirectionVerdict| SideDecision {
            allowed: v.allowed,
            policy: v.deciding_policy,
        };
        deciding(self.allowed, side(&self.egress), side(&self.ingress))
    }
}

impl Engine {
    /// The id of the `index`-th policy of tier `tier` ([`Engine::tiers`]), when there is one.
    pub fn policy_id(&self, tier: usize, index: usize) -> Option<PolicyId> {
        (index < self.tiers.get(tier)?.policies.len()).then(|| PolicyId::new(tier, index))
    }

    /// A compiled policy by id.
    pub fn policy(&self, id: PolicyId) -> Option<&Policy> {
        self.tiers
            .get(id.tier())?
            .policies
            .get(id.index())
            .map(|p| &**p)
    }

    /// A compiled rule by id.
    pub fn rule(&self, id: RuleId) -> Option<&Rule> {
        self.policy(id.policy())?
            .rules(id.direction())?
            .get(id.rule())
    }

    /// The verdict of one connection and the policies that decided it: what
    /// [`Engine::explain`] answers, without building its text.
    pub fn decide(&self, src: Endpoint, dst: Endpoint, protocol: Protocol, port: u16) -> Decision {
        let conn = Conn {
            protocol,
            port,
            dst,
        };
        let egress = self.decide_side(PolicyType::Egress, src, dst, &conn);
        let ingress = self.decide_side(PolicyType::Ingress, dst, src, &conn);
        Decision {
            allowed: egress.allowed && ingress.allowed,
            egress,
            ingress,
        }
    }

    /// One direction of [`Engine::decide`]: `subject`'s side of the connection `conn` with
    /// `peer` (the source's egress, or the destination's ingress).
    fn decide_side(
        &self,
        direction: PolicyType,
        subject: Endpoint,
        peer: Endpoint,
        conn: &Conn,
    ) -> SideDecision {
        let Endpoint::Pod(id) = subject else {
            return SideDecision {
                allowed: true,
                policy: None,
            };
        };
        if subject == peer || self.inventory.pods()[id].host_network {
            return SideDecision {
                allowed: true,
                policy: None,
            };
        }
        let mut trace = Trace::default();
        let allowed = self.walk(direction, id, peer, conn, Some(&mut trace));
        SideDecision {
            allowed,
            policy: trace.deciding_policy(&self.selecting[id][direction_index(direction)]),
        }
    }
}

/// What a flow check keeps of a [`Decision`]: the verdict, the source's egress side, and
/// the deciding policy ([`Decision::deciding_policy`]). Made by
/// [`crate::VerdictIndex::decide`], which reads the sides that policy needs from rows of
/// whole pod classes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Deciding {
    /// Allowed in both directions.
    pub allowed: bool,
    /// Whether the source's egress allows.
    pub egress_allowed: bool,
    /// The deciding policy, as [`Decision::deciding_policy`] has it.
    pub policy: Option<PolicyId>,
}

impl From<Decision> for Deciding {
    fn from(decision: Decision) -> Deciding {
        Deciding {
            allowed: decision.allowed,
            egress_allowed: decision.egress.allowed,
            policy: decision.deciding_policy(),
        }
    }
}
