//! What the wire showed against what the cluster says (NF-WIRE-*): observed connections
//! (`netfence tls -f`) to pods whose Istio PeerAuthentication is STRICT, to backends of a load
//! balancer configured for TLS end to end, and TLS versions below the configured minimum.
//! These checks need observations, so `netfence audit` alone finds nothing here; the family
//! exists so that the ids are listed, parsed and suppressed like every other check.
//!
//! The load balancer's negotiation policy governs its listener; a capture in the cluster
//! sees the leg to the pod. NF-WIRE-003 takes the policy as the minimum the cluster's owner
//! stated for that service, and TLS 1.2 (NIST SP 800-52r2) where none is stated.

use crate::{Audit, AwsInput, CheckId, Family, Report, Suppressions};
use netfence_engine::Engine;
use netfence_model::{Inventory, MtlsMode, Pod, Service};
use std::net::SocketAddr;

/// The wire family.
pub(crate) const FAMILY: Family = Family {
    name: "wire",
    checks: &[
        CheckId::PlaintextUnderStrictMtls,
        CheckId::PlaintextBehindTlsLoadBalancer,
        CheckId::TlsBelowMinimum,
    ],
    run,
};

/// Without observations there is nothing to compare.
fn run(_: &mut Audit<'_>) {}

/// Connections seen to one server address, aggregated (a capture's connections do not need
/// to be kept one by one).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WireObservation {
    /// The server's address and port.
    pub server: SocketAddr,
    /// One client seen (the first).
    pub client: SocketAddr,
    /// How many connections.
    pub connections: u64,
    /// They were plaintext.
    pub plaintext: bool,
    /// The protocol when recognised (`http/1.x`, …).
    pub protocol: Option<String>,
    /// The negotiated TLS version's wire value (0x0303 for TLS 1.2), when TLS.
    pub version: Option<u16>,
}

const SSL_CERT: &str = "service.beta.kubernetes.io/aws-load-balancer-ssl-cert";
const SSL_POLICY: &str = "service.beta.kubernetes.io/aws-load-balancer-ssl-negotiation-policy";
const BACKEND: &str = "service.beta.kubernetes.io/aws-load-balancer-backend-protocol";

/// The findings the observations raise, in the audit's report format (suppressions apply).
pub fn wire_audit(
    engine: &Engine,
    config: &Suppressions,
    observations: &[WireObservation],
) -> Report {
    let mut audit = Audit::new(engine, config, None::<&AwsInput>);
    let inventory = engine.inventory();
    for observation in observations {
        let pod = inventory
            .pod_by_ip(observation.server.ip())
            .map(|id| &*inventory.pods()[id]);
        // Through a Service's cluster IP the port is the Service's; the pod port is its target.
        let service_target = inventory
            .services
            .iter()
            .find(|service| service.cluster_ips.contains(&observation.server.ip()));
        let seen = describe(observation);
        if observation.plaintext {
            if let Some(pod) = pod {
                if strict(inventory, pod, observation.server.port()) {
                    audit
                        .finding(CheckId::PlaintextUnderStrictMtls, pod)
                        .message(format!(
                            "{seen} to {} port {}, where PeerAuthentication is STRICT: this traffic does not go through the mesh",
                            pod.key(),
                            observation.server.port()
                        ))
                        .remediation("# inject the sidecar in both pods (or the ambient mode label), and check that\n# traffic.sidecar.istio.io/excludeInboundPorts and excludeOutboundPorts leave this port in\n");
                }
            }
            for service in
                tls_load_balancers(inventory, pod, service_target, observation.server.port())
            {
                audit
                    .finding(CheckId::PlaintextBehindTlsLoadBalancer, service)
                    .message(format!(
                        "{seen} to {}, a backend of {} whose backend protocol is {}: TLS does not reach the pod",
                        observation.server,
                        service.key(),
                        service.annotations.get(BACKEND).map_or("?", String::as_str)
                    ))
                    .remediation("# serve TLS in the pod on this port (the load balancer re-encrypts to it)\n");
            }
        }
        if let Some(version) = observation.version {
            let balancers =
                load_balancer_policies(inventory, pod, service_target, observation.server.port());
            let (minimum, source): (u16, String) = match balancers.first() {
                Some((service, policy)) => (
                    policy_minimum(policy),
                    format!("{}'s negotiation policy {policy}", service.key()),
                ),
                None => (0x0303, "the recommended minimum".into()),
            };
            if version < minimum {
                let who = pod.map_or(observation.server.to_string(), Pod::key);
                let draft = match balancers.first() {
                    Some((service, _)) => audit.finding(CheckId::TlsBelowMinimum, *service),
                    None => match pod {
                        Some(pod) => audit.finding(CheckId::TlsBelowMinimum, pod),
                        None => continue,
                    },
                };
                draft
                    .message(format!(
                        "{seen} to {who} port {} negotiated {}, below {} ({source})",
                        observation.server.port(),
                        version_name(version),
                        version_name(minimum)
                    ))
                    .remediation(
                        "# configure the server for TLS 1.2 or later (TLS 1.3 preferred)\n",
                    );
            }
        }
    }
    audit.into_report()
}

fn describe(observation: &WireObservation) -> String {
    let what = match (&observation.protocol, observation.plaintext) {
        (Some(protocol), true) => format!("plaintext ({protocol})"),
        (None, true) => "plaintext".to_string(),
        _ => "TLS".to_string(),
    };
    let count = observation.connections;
    let plural = if count == 1 { "" } else { "s" };
    format!(
        "{count} {what} connection{plural} (first from {})",
        observation.client
    )
}

fn version_name(version: u16) -> String {
    match version {
        0x0300 => "SSL3.0".into(),
        0x0301 => "TLS1.0".into(),
        0x0302 => "TLS1.1".into(),
        0x0303 => "TLS1.2".into(),
        0x0304 => "TLS1.3".into(),
        other => format!("0x{other:04x}"),
    }
}

/// Istio's effective mode for `pod` on `port` (istio.io, "PeerAuthentication": a workload
/// policy wins over the namespace's, which wins over the mesh-wide one in the root namespace;
/// UNSET inherits; port-level settings apply to the workload's port).
fn strict(inventory: &Inventory, pod: &Pod, port: u16) -> bool {
    let policies = &inventory.peer_authentications;
    let workload = policies.iter().find(|p| {
        p.namespace == pod.namespace
            && p.selector.as_ref().is_some_and(|selector| {
                !selector.is_empty()
                    && selector
                        .iter()
                        .all(|(key, value)| pod.labels.get(key) == Some(value))
            })
    });
    let namespace = policies
        .iter()
        .find(|p| p.namespace == pod.namespace && p.selector.is_none());
    let root = crate::mtls::root_namespace(inventory);
    let mesh = policies
        .iter()
        .find(|p| p.namespace == root && p.selector.is_none());
    let port_mode = workload.and_then(|p| {
        p.port_modes
            .iter()
            .find(|(number, mode)| *number == port && *mode != MtlsMode::Unset)
            .map(|(_, mode)| *mode)
    });
    let mode = port_mode
        .into_iter()
        .chain(
            [workload, namespace, mesh]
                .into_iter()
                .flatten()
                .map(|p| p.mode),
        )
        .find(|mode| *mode != MtlsMode::Unset);
    mode == Some(MtlsMode::Strict)
}

/// LoadBalancer Services (with a TLS listener) that `pod` backs on `port`, or whose cluster
/// IP was the destination.
fn balancers<'i>(
    inventory: &'i Inventory,
    pod: Option<&Pod>,
    via_cluster_ip: Option<&'i Service>,
    port: u16,
) -> Vec<&'i Service> {
    inventory
        .services
        .iter()
        .filter(|s| s.service_type == "LoadBalancer" && s.annotations.contains_key(SSL_CERT))
        .filter(|s| {
            let backs = pod.is_some_and(|pod| {
                s.selects(pod) && s.ports.iter().any(|p| p.target_on(pod) == Some(port))
            });
            let direct = via_cluster_ip.is_some_and(|v| std::ptr::eq(v, *s))
                && s.ports.iter().any(|p| p.port == port);
            backs || direct
        })
        .collect()
}

/// Those of [`balancers`] the audit believes encrypt to the pod (backend-protocol ssl or
/// https: AWS Load Balancer Controller, "Service annotations").
fn tls_load_balancers<'i>(
    inventory: &'i Inventory,
    pod: Option<&Pod>,
    via_cluster_ip: Option<&'i Service>,
    port: u16,
) -> Vec<&'i Service> {
    balancers(inventory, pod, via_cluster_ip, port)
        .into_iter()
        .filter(|s| {
            s.annotations
                .get(BACKEND)
                .is_some_and(|p| p == "ssl" || p == "https")
        })
        .collect()
}

/// Those of [`balancers`] with their negotiation policy (the controller's default,
/// ELBSecurityPolicy-2016-08, when the annotation is absent).
fn load_balancer_policies<'i>(
    inventory: &'i Inventory,
    pod: Option<&Pod>,
    via_cluster_ip: Option<&'i Service>,
    port: u16,
) -> Vec<(&'i Service, &'i str)> {
    balancers(inventory, pod, via_cluster_ip, port)
        .into_iter()
        .map(|s| {
            let policy = s
                .annotations
                .get(SSL_POLICY)
                .map_or("ELBSecurityPolicy-2016-08", String::as_str);
            (s, policy)
        })
        .collect()
}

/// The lowest version an ELB security policy accepts, from its name (Elastic Load Balancing,
/// "Security policies for your Application Load Balancer": `…-TLS13-1-3-…` is 1.3 only,
/// `…-TLS13-1-2-…` and `…-TLS-1-2-…` start at 1.2, `…-TLS-1-1-…` at 1.1, the others at 1.0).
fn policy_minimum(policy: &str) -> u16 {
    if policy.contains("TLS13-1-3") {
        0x0304
    } else if policy.contains("TLS13-1-2") || policy.contains("TLS-1-2") {
        0x0303
    } else if policy.contains("TLS-1-1") || policy.contains("TLS13-1-1") {
        0x0302
    } else {
        0x0301
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_minimums() {
        assert_eq!(
            policy_minimum("ELBSecurityPolicy-TLS13-1-3-2021-06"),
            0x0304
        );
        assert_eq!(
            policy_minimum("ELBSecurityPolicy-TLS13-1-2-2021-06"),
            0x0303
        );
        assert_eq!(
            policy_minimum("ELBSecurityPolicy-TLS-1-2-Ext-2018-06"),
            0x0303
        );
        assert_eq!(policy_minimum("ELBSecurityPolicy-TLS-1-1-2017-01"), 0x0302);
        assert_eq!(policy_minimum("ELBSecurityPolicy-2016-08"), 0x0301);
    }
}
