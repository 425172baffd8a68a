//! The agent's health and metrics: what its [`AgentEvent`]s add up to, and the drops the
//! kernel counted, in the Prometheus text exposition format (version 0.0.4,
//! prometheus.io/docs/instrumenting/exposition_formats). The HTTP endpoints are the CLI's.

use crate::agent::AgentEvent;
use std::fmt::Write as _;
use std::time::Duration;

/// Upper bounds (seconds) of the update-latency histogram's buckets.
pub const LATENCY_BUCKETS: [f64; 12] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Counters and gauges of one agent run.
#[derive(Clone, Debug, Default)]
pub struct Metrics {
    applied_full: u64,
    applied_incremental: u64,
    apply_failed: u64,
    rejected: u64,
    empty_refused: u64,
    unchanged: u64,
    failed_closed: bool,
    ruleset_in: bool,
    chains: usize,
    rules: usize,
    last_latency: Option<Duration>,
    buckets: [u64; LATENCY_BUCKETS.len()],
    latency_sum: f64,
    latency_count: u64,
}

/// Packets the netfence table's counted drops saw, read from `nft list table`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Drops {
    /// Drops of policy Deny rules (`netfence Deny …`).
    pub deny: u64,
    /// Drops at the end of a tier (`netfence drop … end of tier …`).
    pub end_of_tier: u64,
    /// Drops of connections of pods not known yet (the [`crate::PodGuard`]).
    pub new_pod: u64,
    /// Drops of the fail-closed table.
    pub fail_closed: u64,
}

impl Drops {
    /// Sum the counters of `listing` (the text of `nft list table inet netfence`) by the log
    /// prefix of their rule.
    pub fn from_listing(listing: &str) -> Drops {
        let mut drops = Drops::default();
        for line in listing.lines() {
            let Some(packets) = counter_packets(line) else {
                continue;
            };
            let slot = if line.contains("\"netfence Deny ") {
                &mut drops.deny
            } else if line.contains("\"netfence drop ") {
                &mut drops.end_of_tier
            } else if line.contains("\"netfence new pod") {
                &mut drops.new_pod
            } else if line.contains("\"netfence fail-closed") {
                &mut drops.fail_closed
            } else {
                continue;
            };
            *slot += packets;
        }
        drops
    }
}

/// `N` of `counter packets N bytes M` in a rule's line.
fn counter_packets(line: &str) -> Option<u64> {
    let rest = &line[line.find("counter packets ")? + "counter packets ".len()..];
    rest.split_whitespace().next()?.parse().ok()
}

impl Metrics {
    /// Count one event.
    pub fn record(&mut self, event: &AgentEvent) {
        match event {
            AgentEvent::Applied {
                incremental,
                chains,
                rules,
                latency,
            } => {
                match incremental {
                    true => self.applied_incremental += 1,
                    false => self.applied_full += 1,
                }
                self.ruleset_in = true;
                self.failed_closed = false;
                self.chains = *chains;
                self.rules = *rules;
                self.last_latency = Some(*latency);
                let seconds = latency.as_secs_f64();
                for (bucket, bound) in self.buckets.iter_mut().zip(LATENCY_BUCKETS) {
                    if seconds <= bound {
                        *bucket += 1;
                    }
                }
                self.latency_sum += seconds;
                self.latency_count += 1;
            }
            AgentEvent::Unchanged => self.unchanged += 1,
            AgentEvent::Rejected(_) => self.rejected += 1,
            AgentEvent::ApplyFailed(_) => self.apply_failed += 1,
            AgentEvent::FailedClosed(_) => self.failed_closed = true,
            AgentEvent::EmptyRefused { .. } => self.empty_refused += 1,
        }
    }

    /// Healthy once a ruleset rendered from the policies is in the kernel (not while the
    /// agent fails closed).
    pub fn healthy(&self) -> bool {
        self.ruleset_in && !self.failed_closed
    }

    /// The exposition text; `drops` when the kernel's counters could be read.
    pub fn exposition(&self, drops: Option<Drops>) -> String {
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, samples: &[(String, String)]| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, value) in samples {
                let _ = writeln!(out, "{name}{labels} {value}");
            }
        };
        let plain = |v: String| vec![(String::new(), v)];
        metric(
            "netfence_agent_updates_applied_total",
            "counter",
            "Rulesets loaded into the kernel, by kind of transaction.",
            &[
                ("{kind=\"full\"}".into(), self.applied_full.to_string()),
                (
                    "{kind=\"incremental\"}".into(),
                    self.applied_incremental.to_string(),
                ),
            ],
        );
        metric(
            "netfence_agent_updates_failed_total",
            "counter",
            "Rulesets the kernel refused (the last good one stayed).",
            &plain(self.apply_failed.to_string()),
        );
        metric(
            "netfence_agent_updates_rejected_total",
            "counter",
            "Changes that did not load or render (the last good ruleset stayed).",
            &plain(self.rejected.to_string()),
        );
        metric(
            "netfence_agent_updates_empty_refused_total",
            "counter",
            "Changes refused because they would lift all enforcement.",
            &plain(self.empty_refused.to_string()),
        );
        metric(
            "netfence_agent_updates_unchanged_total",
            "counter",
            "Changes that left the rendered ruleset as it was.",
            &plain(self.unchanged.to_string()),
        );
        metric(
            "netfence_agent_failed_closed",
            "gauge",
            "1 while the agent fails closed (no ruleset could be rendered yet).",
            &plain(u8::from(self.failed_closed).to_string()),
        );
        metric(
            "netfence_agent_healthy",
            "gauge",
            "1 once a ruleset rendered from the policies is in force.",
            &plain(u8::from(self.healthy()).to_string()),
        );
        metric(
            "netfence_agent_chains",
            "gauge",
            "Chains of the ruleset in force.",
            &plain(self.chains.to_string()),
        );
        metric(
            "netfence_agent_rules",
            "gauge",
            "Rules of the ruleset in force.",
            &plain(self.rules.to_string()),
        );
        if let Some(latency) = self.last_latency {
            metric(
                "netfence_agent_last_update_latency_seconds",
                "gauge",
                "From the change received to the kernel having it, for the last update.",
                &plain(latency.as_secs_f64().to_string()),
            );
        }
        let mut samples: Vec<(String, String)> = LATENCY_BUCKETS
            .iter()
            .zip(self.buckets)
            .map(|(bound, count)| (format!("_bucket{{le=\"{bound}\"}}"), count.to_string()))
            .collect();
        samples.push((
            "_bucket{le=\"+Inf\"}".into(),
            self.latency_count.to_string(),
        ));
        samples.push(("_sum".into(), self.latency_sum.to_string()));
        samples.push(("_count".into(), self.latency_count.to_string()));
        metric(
            "netfence_agent_update_latency_seconds",
            "histogram",
            "From the change received to the kernel having it.",
            &samples,
        );
        if let Some(drops) = drops {
            metric(
                "netfence_agent_dropped_packets_total",
                "counter",
                "Packets dropped by the netfence table, by reason (the kernel's rule counters).",
                &[
                    ("{reason=\"deny\"}".into(), drops.deny.to_string()),
                    (
                        "{reason=\"end_of_tier\"}".into(),
                        drops.end_of_tier.to_string(),
                    ),
                    ("{reason=\"new_pod\"}".into(), drops.new_pod.to_string()),
                    (
                        "{reason=\"fail_closed\"}".into(),
                        drops.fail_closed.to_string(),
                    ),
                ],
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_are_summed_by_log_prefix() {
        let listing = "table inet netfence {\n\tchain ti1 {\n\t\tip saddr 10.0.0.1 counter packets 3 bytes 180 log prefix \"netfence Deny 0123456789abcdef Ingress default/p rule 0 \" group 28262 drop comment \"p rule 0\"\n\t\tcounter packets 5 bytes 300 log prefix \"netfence drop fedcba9876543210 Ingress end of tier default \" group 28262 drop\n\t}\n\tchain forward {\n\t\tip daddr @local_v4 ip daddr != @known_v4 counter packets 7 bytes 420 log prefix \"netfence new pod \" group 28262 drop\n\t\tct state invalid counter packets 9 bytes 0 drop\n\t}\n}\n";
        assert_eq!(
            Drops::from_listing(listing),
            Drops {
                deny: 3,
                end_of_tier: 5,
                new_pod: 7,
                fail_closed: 0
            }
        );
    }

    #[test]
    fn the_histogram_is_cumulative() {
        let mut metrics = Metrics::default();
        assert!(!metrics.healthy());
        for ms in [2, 30, 700] {
            metrics.record(&AgentEvent::Applied {
                incremental: ms != 2,
                chains: 4,
                rules: 9,
                latency: Duration::from_millis(ms),
            });
        }
        assert!(metrics.healthy());
        let text = metrics.exposition(None);
        assert!(text.contains("netfence_agent_update_latency_seconds_bucket{le=\"0.005\"} 1\n"));
        assert!(text.contains("netfence_agent_update_latency_seconds_bucket{le=\"0.05\"} 2\n"));
        assert!(text.contains("netfence_agent_update_latency_seconds_bucket{le=\"1\"} 3\n"));
        assert!(text.contains("netfence_agent_update_latency_seconds_count 3\n"));
        assert!(text.contains("netfence_agent_updates_applied_total{kind=\"incremental\"} 2\n"));
        assert!(!text.contains("dropped_packets"));
    }
}
