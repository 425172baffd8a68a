//! The one tier walk. Every question about one direction at one endpoint (a verdict with its
//! explanation, the set of allowed connections, the peer classes a class admits) is this walk
//! over a different kind of set: the connections still undecided flow down the tiers.
//!
//! Tiers in order; within a tier, the policies that select the endpoint, in order; within a
//! policy, its rules in order. A rule takes the part of the undecided set it matches: Allow
//! and Deny decide that part, Pass hands it to the next tier, Log records and goes on. What a
//! tier selected and left undecided is denied at its end (Calico's default, Kubernetes
//! isolation) or passed on (admin tiers). What is left after the last tier is allowed (the
//! profile: a pod no policy selects is not isolated).

use crate::bits::BitSet;
use crate::connset::ConnSet;
use crate::decide::{PolicyId, RuleId};
use crate::ir::{Action, Direction, Rule, Tier, TierEnd};

/// The set algebra the walk needs of a kind of set: the same for every walker over that
/// kind (its whole and empty sets, which may depend on the walker, are [`Walker::full`] and
/// [`Walker::none`]).
pub(crate) trait WalkSet: Clone {
    /// Whether it holds nothing.
    fn holds_nothing(&self) -> bool;
    /// `self ∪= other`.
    fn add(&mut self, other: &Self);
    /// `self −= other`.
    fn take_away(&mut self, other: &Self);
}

/// One connection, or none.
impl WalkSet for bool {
    fn holds_nothing(&self) -> bool {
        !*self
    }
    fn add(&mut self, other: &bool) {
        *self |= *other;
    }
    fn take_away(&mut self, other: &bool) {
        *self &= !*other;
    }
}

impl WalkSet for ConnSet {
    fn holds_nothing(&self) -> bool {
        self.is_empty()
    }
    fn add(&mut self, other: &ConnSet) {
        *self = self.union(other);
    }
    fn take_away(&mut self, other: &ConnSet) {
        *self = self.subtract(other);
    }
}

impl WalkSet for BitSet {
    fn holds_nothing(&self) -> bool {
        self.is_empty()
    }
    fn add(&mut self, other: &BitSet) {
        self.or_assign(other);
    }
    fn take_away(&mut self, other: &BitSet) {
        self.and_not_assign(other);
    }
}

/// What the walk runs over: a kind of set of connections (or peers), how a rule carves it,
/// and observers for explanations.
pub(crate) trait Walker {
    /// A set of connections.
    type Set: WalkSet;
    /// Every connection.
    fn full(&self) -> Self::Set;
    /// No connection.
    fn none(&self) -> Self::Set;
    /// The part of `undecided` that `rule` matches.
    fn matched(&mut self, at: RuleId, rule: &Rule, undecided: &Self::Set) -> Self::Set;
    /// A rule matched a non-empty part (every action, Log included).
    fn on_match(&mut self, _at: RuleId, _action: Action, _matched: &Self::Set) {}
    /// A tier that ends in Deny denied what it left undecided (possibly nothing).
    fn on_end_of_tier(&mut self, _tier: usize, _denied: &Self::Set) {}
}

/// Walk `tiers` for one direction over the policies in `selecting` (in evaluation order);
/// returns what is allowed.
pub(crate) fn walk<W: Walker>(
    tiers: &[Tier],
    direction: Direction,
    selecting: &[PolicyId],
    walker: &mut W,
) -> W::Set {
    let mut allowed = walker.none();
    let mut remaining = walker.full();
    let mut i = 0;
    while i < selecting.len() {
        let t = selecting[i].tier();
        let tier = &tiers[t];
        let mut undecided = remaining.clone();
        let mut passed = walker.none();
        while i < selecting.len() && selecting[i].tier() == t {
            let id = selecting[i];
            i += 1;
            let rules = tier.policies[id.index()].rules(direction).unwrap_or(&[]);
            for (r, rule) in rules.iter().enumerate() {
                if undecided.holds_nothing() {
                    break;
                }
                let at = RuleId::new(id, direction, r);
                let matched = walker.matched(at, rule, &undecided);
                if matched.holds_nothing() {
                    continue;
                }
                walker.on_match(at, rule.action, &matched);
                match rule.action {
                    Action::Allow => allowed.add(&matched),
                    Action::Deny => {}
                    Action::Pass => passed.add(&matched),
                    Action::Log => continue,
                }
                undecided.take_away(&matched);
            }
        }
        remaining = match tier.end {
            TierEnd::Deny => {
                walker.on_end_of_tier(t, &undecided);
                passed
            }
            TierEnd::Pass => {
                passed.add(&undecided);
                passed
            }
        };
    }
    allowed.add(&remaining);
    allowed
}
