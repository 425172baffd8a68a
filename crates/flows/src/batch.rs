//! Judged flows handed to another thread a batch at a time (rows put together and written
//! there: `flows check -o json|csv`, and [`crate::ParquetWriter::on_a_thread`]).

use crate::check::CheckedFlow;
use std::sync::Arc;

/// Judged flows on their way to another thread. Each flow's deciding policy is kept by its
/// place in the batch's list of policies, and the flow's own `decided_by` left empty: a
/// clone of the policy's name per flow, dropped on the other thread, would have both
/// threads change its count for every flow (one count for every flow a policy decides,
/// shared between the cores).
#[derive(Default)]
pub struct FlowBatch {
    flows: Vec<CheckedFlow>,
    /// Each flow's place in `policies`, or `u32::MAX` when no policy decided.
    decided_by: Vec<u32>,
    policies: Vec<Arc<str>>,
    /// Each policy's place in `policies`, by the address of its name.
    places: netfence_model::net::FastMap<usize, u32>,
}

impl FlowBatch {
    /// The flows a batch holds when it is handed on ([`FlowBatch::is_full`]).
    pub const FULL: usize = 1024;

    /// Whether the batch holds [`FlowBatch::FULL`] flows (or more): time to hand it on.
    pub fn is_full(&self) -> bool {
        self.flows.len() >= Self::FULL
    }

    /// Add `flow` (its deciding policy kept once in the batch).
    pub fn push(&mut self, flow: &CheckedFlow) {
        let place = match &flow.decided_by {
            None => u32::MAX,
            Some(name) => {
                let address = Arc::as_ptr(name).cast::<u8>() as usize;
                let next = self.policies.len() as u32;
                let policies = &mut self.policies;
                *self.places.entry(address).or_insert_with(|| {
                    policies.push(Arc::clone(name));
                    next
                })
            }
        };
        self.flows.push(CheckedFlow {
            decided_by: None,
            ..*flow
        });
        self.decided_by.push(place);
    }

    /// How many flows the batch holds.
    pub fn len(&self) -> usize {
        self.flows.len()
    }

    /// Whether the batch holds no flow.
    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }

    /// Each flow in the order pushed, with its deciding policy (its own `decided_by` is
    /// empty).
    pub fn iter(&self) -> impl Iterator<Item = (&CheckedFlow, Option<&Arc<str>>)> {
        self.flows
            .iter()
            .zip(&self.decided_by)
            .map(|(flow, &place)| (flow, self.policies.get(place as usize)))
    }

    /// Every flow taken out, the room kept.
    pub fn clear(&mut self) {
        self.flows.clear();
        self.decided_by.clear();
        self.policies.clear();
        self.places.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::Judgement;
    use crate::FlowProtocol;
    use netfence_engine::Endpoint;

    /// A batch gives back its flows in order, each with its own policy (the same name in
    /// two texts stays two policies; one text many times is kept once), and empties.
    #[test]
    fn a_batch_gives_back_each_flow_with_its_policy() {
        let names: Vec<Arc<str>> = [
            "NetworkPolicy a/x",
            "NetworkPolicy a/x",
            "GlobalNetworkPolicy y",
        ]
        .map(Arc::from)
        .into();
        let flow = |port: u16, decided_by: Option<&Arc<str>>| CheckedFlow {
            time: None,
            src: Endpoint::Address("10.0.0.1".parse().unwrap()),
            dst: Endpoint::Address("10.0.0.2".parse().unwrap()),
            protocol: FlowProtocol::Tcp,
            port: Some(port),
            observed: None,
            policy: Some(Judgement::Allow),
            decided_by: decided_by.cloned(),
            mismatch: false,
        };
        let flows: Vec<CheckedFlow> = (0..40u16)
            .map(|n| {
                flow(
                    n,
                    [None, Some(&names[0]), Some(&names[1]), Some(&names[2])]
                        .get(usize::from(n % 4))
                        .copied()
                        .flatten(),
                )
            })
            .collect();
        let mut batch = FlowBatch::default();
        for flow in &flows {
            batch.push(flow);
        }
        assert_eq!(batch.len(), 40);
        assert_eq!(batch.policies.len(), 3);
        for ((got, policy), expected) in batch.iter().zip(&flows) {
            assert!(got.decided_by.is_none());
            assert_eq!(got.port, expected.port);
            match (policy, &expected.decided_by) {
                (Some(got), Some(expected)) => assert!(Arc::ptr_eq(got, expected)),
                (None, None) => {}
                other => panic!("{other:?}"),
            }
        }
        batch.clear();
        assert!(batch.is_empty() && batch.iter().next().is_none());
    }
}
