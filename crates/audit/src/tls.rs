//! Encryption in transit at AWS load balancers: LoadBalancer Services (NF-TLS-001 to
//! NF-TLS-003) and Ingresses, with the AWS Load Balancer Controller's ALB annotations
//! (NF-TLS-003 to NF-TLS-006).

use crate::remediation::annotations;
use crate::{Audit, CheckId, Family, Object, ObjectRef};
use netfence_model::{Ingress, Service};
use std::collections::BTreeSet;

/// The TLS family.
pub(crate) const FAMILY: Family = Family {
    name: "tls",
    checks: &[
        CheckId::LoadBalancerWithoutTls,
        CheckId::WeakLoadBalancerTlsPolicy,
        CheckId::TlsEndsAtLoadBalancer,
        CheckId::IngressWithoutTls,
        CheckId::AlbCertificateDiscovered,
        CheckId::WeakAlbTlsPolicy,
    ],
    run,
};

/// ELB security policies that allow TLS 1.0/1.1 (AWS docs, "Security policies for your
/// Application/Network Load Balancer").
const WEAK: [&str; 5] = [
    "ELBSecurityPolicy-2016-08",
    "ELBSecurityPolicy-TLS-1-0-2015-04",
    "ELBSecurityPolicy-TLS-1-1-2017-01",
    "ELBSecurityPolicy-2015-05",
    "ELBSecurityPolicy-FS-2018-06",
];

/// The security policy remediations recommend: TLS 1.3 and 1.2 only.
const STRONG: &str = "ELBSecurityPolicy-TLS13-1-2-2021-06";

fn run(audit: &mut Audit<'_>) {
    load_balancers(audit);
    ingresses(audit);
}

impl Object for Service {
    fn object_ref(&self) -> ObjectRef<'_> {
        ObjectRef {
            namespace: Some(&self.namespace),
            label: format!("Service {}/{}", self.namespace, self.name),
            origin: Some(&self.origin),
            annotations: Some(&self.annotations),
        }
    }
}

impl Object for Ingress {
    fn object_ref(&self) -> ObjectRef<'_> {
        ObjectRef {
            namespace: Some(&self.namespace),
            label: format!("Ingress {}/{}", self.namespace, self.name),
            origin: Some(&self.origin),
            annotations: Some(&self.annotations),
        }
    }
}

/// LoadBalancer Services (AWS Load Balancer Controller service annotations).
fn load_balancers(audit: &mut Audit<'_>) {
    const SSL_CERT: &str = "service.beta.kubernetes.io/aws-load-balancer-ssl-cert";
    const SSL_PORTS: &str = "service.beta.kubernetes.io/aws-load-balancer-ssl-ports";
    const SSL_POLICY: &str = "service.beta.kubernetes.io/aws-load-balancer-ssl-negotiation-policy";
    const BACKEND: &str = "service.beta.kubernetes.io/aws-load-balancer-backend-protocol";
    for service in audit.inventory().services.iter() {
        if service.service_type != "LoadBalancer" {
            continue;
        }
        let a = &service.annotations;
        if !a.contains_key(SSL_CERT) || !a.contains_key(SSL_PORTS) {
            audit
                .finding(CheckId::LoadBalancerWithoutTls, service)
                .message("no TLS listener: the ssl-cert and ssl-ports annotations are not both set")
                .remediation(annotations(&[
                    (SSL_CERT, "<certificate ARN>"),
                    (SSL_PORTS, "443"),
                ]));
        }
        // Without the annotation, a TLS listener gets ELBSecurityPolicy-2016-08 (AWS Load
        // Balancer Controller service annotations reference), which accepts TLS 1.0 and 1.1.
        let weak_policy = match a.get(SSL_POLICY) {
            Some(p) if WEAK.contains(&p.as_str()) => {
                Some(format!("negotiation policy {p} allows TLS versions below 1.2"))
            }
            None if a.contains_key(SSL_CERT) => Some(
                "no ssl-negotiation-policy: the default ELBSecurityPolicy-2016-08 allows TLS 1.0 and 1.1"
                    .to_string(),
            ),
            _ => None,
        };
        if let Some(message) = weak_policy {
            audit
                .finding(CheckId::WeakLoadBalancerTlsPolicy, service)
                .message(message)
                .remediation(annotations(&[(SSL_POLICY, STRONG)]));
        }
        if a.contains_key(SSL_CERT) && a.get(BACKEND).is_some_and(|p| p == "http" || p == "tcp") {
            audit
                .finding(CheckId::TlsEndsAtLoadBalancer, service)
                .message(format!(
                    "TLS ends at the load balancer; the backend protocol is {}",
                    a[BACKEND]
                ))
                .remediation(annotations(&[(BACKEND, "ssl")]) + "# and serve TLS in the pod\n");
        }
    }
}

/// TLS at Ingresses: any controller needs `spec.tls`; the AWS Load Balancer Controller needs an
/// HTTPS listener instead (its "Ingress annotations" guide: `listen-ports` defaults to HTTP 80,
/// or to HTTPS 443 when `certificate-arn` is set; certificate discovery needs HTTPS listed
/// explicitly, "Certificate Discovery").
fn ingresses(audit: &mut Audit<'_>) {
    const CERT: &str = "alb.ingress.kubernetes.io/certificate-arn";
    const LISTEN: &str = "alb.ingress.kubernetes.io/listen-ports";
    const SSL_POLICY: &str = "alb.ingress.kubernetes.io/ssl-policy";
    const BACKEND: &str = "alb.ingress.kubernetes.io/backend-protocol";
    const GROUP: &str = "alb.ingress.kubernetes.io/group.name";
    let engine = audit.engine;
    for ingress in &engine.inventory().ingresses {
        let a = &ingress.annotations;
        if !ingress.is_alb() {
            if ingress.tls_entries == 0 {
                let message = format!(
                    "spec.tls is empty: {} is served over plain HTTP",
                    if ingress.rule_hosts.is_empty() {
                        "every host".to_string()
                    } else {
                        ingress.rule_hosts.join(", ")
                    }
                );
                let remediation = "spec:\n  tls:\n  - hosts:\n    - <host>\n    secretName: <host>-tls  # e.g. issued by cert-manager\n";
                audit
                    .finding(CheckId::IngressWithoutTls, ingress)
                    .message(message)
                    .remediation(remediation);
            }
            continue;
        }
        let https = match &ingress.listen_ports {
            Some(ports) => ports.iter().any(|(p, _)| p == "HTTPS"),
            None => a.contains_key(CERT),
        };
        if !https {
            let message = format!(
                "the ALB has no HTTPS listener ({})",
                if ingress.listen_ports.is_some() {
                    "listen-ports lists HTTP only"
                } else {
                    "no listen-ports and no certificate-arn: HTTP 80 only"
                }
            );
            let remediation = annotations(&[
                (LISTEN, r#"[{"HTTPS": 443}]"#),
                (CERT, "<ACM certificate ARN>"),
            ]);
            audit
                .finding(CheckId::IngressWithoutTls, ingress)
                .message(message)
                .remediation(remediation);
            continue;
        }
        if !a.contains_key(CERT) {
            let hosts: BTreeSet<&String> = ingress
                .tls_hosts
                .iter()
                .chain(&ingress.rule_hosts)
                .collect();
            let message = if hosts.is_empty() {
                "no certificate-arn and no hosts to discover a certificate by: the HTTPS listener cannot get one".to_string()
            } else {
                format!(
                    "no certificate-arn: the certificate is discovered from ACM for {}",
                    hosts.into_iter().cloned().collect::<Vec<_>>().join(", ")
                )
            };
            let remediation = annotations(&[(CERT, "<ACM certificate ARN>")]);
            audit
                .finding(CheckId::AlbCertificateDiscovered, ingress)
                .message(message)
                .remediation(remediation);
        }
        // ssl-policy is exclusive within an IngressGroup: another member may set it. Without
        // one, the AWS Load Balancer Controller uses ELBSecurityPolicy-2016-08 (its ingress
        // annotations reference), which still accepts TLS 1.0 and 1.1.
        let group = a.get(GROUP);
        let policy = a.get(SSL_POLICY).or_else(|| {
            group.and_then(|g| {
                engine
                    .inventory()
                    .ingresses
                    .iter()
                    .filter(|other| other.annotations.get(GROUP) == Some(g))
                    .find_map(|other| other.annotations.get(SSL_POLICY))
            })
        });
        let weak_policy = match policy {
            Some(p) if WEAK.contains(&p.as_str()) => {
                Some(format!("ssl-policy {p} allows TLS versions below 1.2"))
            }
            Some(_) => None,
            None => Some(
                "no ssl-policy: the controller's default ELBSecurityPolicy-2016-08 allows TLS 1.0 and 1.1"
                    .to_string(),
            ),
        };
        if let Some(message) = weak_policy {
            let remediation = annotations(&[(SSL_POLICY, STRONG)]);
            audit
                .finding(CheckId::WeakAlbTlsPolicy, ingress)
                .message(message)
                .remediation(remediation);
        }
        // backend-protocol defaults to HTTP.
        let backend = a.get(BACKEND).map_or("HTTP", String::as_str);
        if !backend.eq_ignore_ascii_case("HTTPS") {
            let message = format!("TLS ends at the ALB; the backend protocol is {backend}");
            let remediation = annotations(&[(BACKEND, "HTTPS")]) + "# and serve TLS in the pod\n";
            audit
                .finding(CheckId::TlsEndsAtLoadBalancer, ingress)
                .message(message)
                .remediation(remediation);
        }
    }
}
