//! Connections through a Service: a client opens a connection to a cluster IP and Service
//! port, kube-proxy sends it to one backend pod on the target port, and policy (Kubernetes,
//! Calico) judges the rewritten connection: backend pod and target port. So the question
//! "may A reach Service S on port P?" has one answer per backend.
//!
//! Backends are the pods the Service's selector picks in its namespace (the EndpointSlice
//! controller's rule); a named `targetPort` is resolved on each backend, and a backend that
//! does not declare it is no endpoint for that port (kubernetes `pkg/api/v1/pod.FindPort`).

use crate::eval::{Endpoint, Engine, Verdict};
use netfence_model::{PodId, Protocol, Service, ServicePort};

/// The verdict for one backend of a Service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackendVerdict {
    /// The backend pod.
    pub pod: PodId,
    /// The port the connection lands on at this pod.
    pub target_port: u16,
    /// The verdict for source → pod on the target port.
    pub verdict: Verdict,
}

/// Why a connection through a Service reaches no backend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NoBackend {
    /// The Service has no port with this protocol and number.
    NoSuchPort,
    /// The Service has no selector: its endpoints are managed by hand, out of netfence's view.
    NoSelector,
    /// The selector matches no pod of the Service's namespace.
    NoPods,
    /// Pods match, but none declares the named target port.
    TargetPortUnresolved,
}

/// The answer for a connection through a Service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceVerdict {
    /// The Service port the client connects to, when the Service has it.
    pub port: Option<ServicePort>,
    /// One verdict per backend that serves the port, in pod order.
    pub backends: Vec<BackendVerdict>,
    /// Why there is no backend, when there is none.
    pub no_backend: Option<NoBackend>,
}

impl ServiceVerdict {
    /// Allowed iff there is a backend and every backend allows: kube-proxy picks a backend per
    /// connection, so one denying backend makes connections through the Service fail now and
    /// then.
    pub fn allowed(&self) -> bool {
        !self.backends.is_empty() && self.backends.iter().all(|b| b.verdict.allowed)
    }

    /// How many backends allow the connection.
    pub fn allowed_backends(&self) -> usize {
        self.backends.iter().filter(|b| b.verdict.allowed).count()
    }
}

impl Engine {
    /// The verdicts for `src` connecting to `service` on its port (`protocol`, `port`): one per
    /// backend, each for the backend pod on its target port.
    pub fn explain_via_service(
        &self,
        src: Endpoint,
        service: &Service,
        protocol: Protocol,
        port: u16,
    ) -> ServiceVerdict {
        let inventory = self.inventory();
        let Some(service_port) = service
            .ports
            .iter()
            .find(|p| p.protocol == protocol && p.port == port)
        else {
            return ServiceVerdict {
                port: None,
                backends: Vec::new(),
                no_backend: Some(NoBackend::NoSuchPort),
            };
        };
        let no_backend = |reason| ServiceVerdict {
            port: Some(service_port.clone()),
            backends: Vec::new(),
            no_backend: Some(reason),
        };
        if service.selector.is_empty() {
            return no_backend(NoBackend::NoSelector);
        }
        let pods = inventory.service_backends(service);
        if pods.is_empty() {
            return no_backend(NoBackend::NoPods);
        }
        let backends: Vec<BackendVerdict> = pods
            .into_iter()
            .filter_map(|pod| {
                let target_port = service_port.target_on(&inventory.pods()[pod])?;
                Some(BackendVerdict {
                    pod,
                    target_port,
                    verdict: self.explain(src, Endpoint::Pod(pod), protocol, target_port),
                })
            })
            .collect();
        if backends.is_empty() {
            return no_backend(NoBackend::TargetPortUnresolved);
        }
        ServiceVerdict {
            port: Some(service_port.clone()),
            backends,
            no_backend: None,
        }
    }
}
