//! Core kinds and workloads: Namespace, ServiceAccount, Pod, Service, Node, ConfigMap (the
//! Istio mesh config), and the workload kinds whose templates become pods.

use super::*;

impl Loader {
    pub(super) fn load_namespace(&mut self, value: &Value, ctx: &Ctx) -> Result<(), LoadError> {
        let object: Decoded<Value> = decode(value, ctx, false)?;
        let meta = object.meta;
        self.namespaces.push((meta, ctx.origin.clone()));
        Ok(())
    }

    pub(super) fn load_service_account(
        &mut self,
        value: &Value,
        ctx: &Ctx,
    ) -> Result<(), LoadError> {
        let object: Decoded<Value> = decode(value, ctx, true)?;
        let meta = object.meta;
        self.service_accounts.push((meta, ctx.origin.clone()));
        Ok(())
    }

    pub(super) fn load_pod(&mut self, value: &Value, ctx: &Ctx) -> Result<(), LoadError> {
        let object: Decoded<PodSpec, PodStatus> = decode(value, ctx, true)?;
        let meta = object.meta;
        // A pod that has run to completion (phase Succeeded or Failed) has no network
        // presence: its address is free for reuse by another pod, and no policy applies to it
        // (API reference, PodStatus.phase; Calico and Cilium release its endpoint).
        let phase = object.status.as_ref().and_then(|s| s.phase.as_deref());
        if let Some(phase @ ("Succeeded" | "Failed")) = phase {
            *self
                .skipped
                .entry(format!(
                    "v1/Pod in phase {phase} (finished: not an endpoint)"
                ))
                .or_default() += 1;
            return Ok(());
        }
        let spec = required_spec(object.spec, ctx, "a Pod")?;
        let namespace = namespace_of(&meta);
        let name = meta.name.clone().unwrap_or_default();
        let owner = controller_owner(&meta);
        let annotations = mesh_annotations(meta.annotations.as_ref());
        let mut pod = pod_from_spec(
            &namespace,
            &name,
            meta.labels.unwrap_or_default(),
            &spec,
            object.status.as_ref(),
            // Resolved against the input's workloads in `finish`.
            WorkloadRef {
                kind: "Pod".into(),
                namespace: namespace.clone(),
                name: name.clone(),
            },
            false,
            ctx,
        )?;
        pod.mesh_annotations = annotations;
        self.pods.push((pod, owner));
        self.pods_changed();
        Ok(())
    }

    pub(super) fn load_workload(
        &mut self,
        kind: &str,
        value: &Value,
        ctx: &Ctx,
    ) -> Result<(), LoadError> {
        let object: Decoded<WorkloadSpec> = decode(value, ctx, true)?;
        let meta = object.meta;
        let spec = required_spec(object.spec, ctx, &format!("a {kind}"))?;
        let replicas = spec.replicas;
        let spec = WorkloadSpec { replicas, ..spec };
        let template = if kind == "CronJob" {
            spec.job_template
                .and_then(|j| j.spec)
                .and_then(|s| s.template)
        } else {
            spec.template
        };
        if let Some(template) = &template {
            if let Some(labels) = template.metadata.as_ref().and_then(|m| m.labels.as_ref()) {
                check_labels(labels, ctx, "spec.template.metadata.labels")?;
            }
        }
        // The Amazon VPC CNI (DaemonSet kube-system/aws-node, container aws-node): how it
        // enforces security groups for pods.
        if kind == "DaemonSet"
            && meta.name.as_deref() == Some("aws-node")
            && namespace_of(&meta) == "kube-system"
        {
            let mode = template
                .as_ref()
                .and_then(|t| t.spec.as_ref())
                .and_then(|s| s.containers.iter().find(|c| c.name == "aws-node"))
                .and_then(|c| c.env.as_ref())
                .and_then(|env| {
                    env.iter()
                        .find(|e| e.name == "POD_SECURITY_GROUP_ENFORCING_MODE")
                })
                .and_then(|e| e.value.clone());
            self.vpc_cni = Some(VpcCni {
                pod_security_group_enforcing_mode: mode,
                origin: ctx.origin.clone(),
            });
        }
        let selector = match &spec.selector {
            None | Some(Value::Null) => None,
            Some(value) if kind == "ReplicationController" => {
                let labels: BTreeMap<String, String> =
                    typed(value, ctx).map_err(|e| ctx.field("spec.selector", e.message))?;
                Some(
                    LabelSelector::from_parts(labels, Vec::new())
                        .map_err(|e| ctx.field(format!("spec.selector.{}", e.field), e.message))?,
                )
            }
            Some(value) => {
                let parsed: K8sLabelSelector =
                    typed(value, ctx).map_err(|e| ctx.field("spec.selector", e.message))?;
                Some(selector(&parsed, ctx, "spec.selector")?)
            }
        };
        self.workloads_by_namespace = Default::default();
        self.workloads.push(WorkloadObject {
            kind: kind.to_string(),
            replicas: spec.replicas,
            selector,
            meta,
            template,
            origin: ctx.origin.clone(),
        });
        Ok(())
    }

    pub(super) fn load_service(&mut self, value: &Value, ctx: &Ctx) -> Result<(), LoadError> {
        let object: Decoded<ServiceSpecLite> = decode(value, ctx, true)?;
        let meta = object.meta;
        let spec = object.spec.unwrap_or(ServiceSpecLite {
            service_type: None,
            selector: None,
            ports: None,
            cluster_ip: None,
            cluster_ips: None,
        });
        let mut ports = Vec::new();
        for (i, port) in spec.ports.unwrap_or_default().into_iter().enumerate() {
            let number = port_number(port.port)
                .map_err(|m| ctx.field(format!("spec.ports[{i}].port"), m))?;
            let protocol = parse_protocol(port.protocol.as_deref())
                .map_err(|m| ctx.field(format!("spec.ports[{i}].protocol"), m))?;
            // API server: targetPort defaults to port; a number 1-65535 or an IANA_SVC_NAME.
            let target = match port.target_port {
                None => crate::inventory::TargetPort::Number(number),
                Some(IntOrString::Int(n)) => crate::inventory::TargetPort::Number(
                    port_number(i64::from(n))
                        .map_err(|m| ctx.field(format!("spec.ports[{i}].targetPort"), m))?,
                ),
                Some(IntOrString::String(text)) => match text.parse::<i64>() {
                    Ok(n) => crate::inventory::TargetPort::Number(
                        port_number(n)
                            .map_err(|m| ctx.field(format!("spec.ports[{i}].targetPort"), m))?,
                    ),
                    Err(_) if !text.is_empty() => crate::inventory::TargetPort::Named(text),
                    Err(_) => crate::inventory::TargetPort::Number(number),
                },
            };
            ports.push(crate::inventory::ServicePort {
                name: port.name,
                port: number,
                protocol,
                target,
            });
        }
        // `clusterIPs` (dual stack) wins over `clusterIP`, which it repeats first; `None` is a
        // headless Service.
        let mut cluster_ips = Vec::new();
        let texts = match spec.cluster_ips.filter(|list| !list.is_empty()) {
            Some(list) => list.into_iter().map(|t| ("spec.clusterIPs", t)).collect(),
            None => spec
                .cluster_ip
                .map(|t| vec![("spec.clusterIP", t)])
                .unwrap_or_default(),
        };
        for (field, text) in texts {
            if text.is_empty() || text == "None" {
                continue;
            }
            let ip = text
                .parse::<IpAddr>()
                .map_err(|_| ctx.field(field, format!("{text:?} is not an IP address or None")))?;
            cluster_ips.push(ip);
        }
        self.services.push(Service {
            namespace: meta.namespace.clone().unwrap_or_else(|| "default".into()),
            name: meta.name.clone().unwrap_or_default(),
            service_type: spec.service_type.unwrap_or_else(|| "ClusterIP".into()),
            selector: spec.selector.unwrap_or_default().into_iter().collect(),
            ports,
            cluster_ips,
            annotations: meta.annotations.unwrap_or_default(),
            origin: ctx.origin.clone(),
        });
        Ok(())
    }

    pub(super) fn load_node(&mut self, value: &Value, ctx: &Ctx) -> Result<(), LoadError> {
        let object: Decoded<Value, NodeStatusLite> = decode(value, ctx, false)?;
        let meta = object.meta;
        let mut addresses = Vec::new();
        let mut internal_addresses = Vec::new();
        for a in object.status.and_then(|s| s.addresses).unwrap_or_default() {
            if let Ok(ip) = a.address.parse::<IpAddr>() {
                addresses.push(ip);
                if a.address_type.as_deref() == Some("InternalIP") {
                    internal_addresses.push(ip);
                }
            }
        }
        self.nodes.push(Node {
            name: meta.name.unwrap_or_default(),
            labels: meta.labels.unwrap_or_default().into_iter().collect(),
            addresses,
            internal_addresses,
        });
        Ok(())
    }

    /// ConfigMaps are read only for Istio's mesh config (the `istio` ConfigMap, or `istio-<rev>`
    /// for a revision, with a `mesh` key): its `rootNamespace` (default: the ConfigMap's own
    /// namespace, where istiod runs) is where mesh-wide PeerAuthentications live. Others are
    /// counted as skipped.
    pub(super) fn load_config_map(
        &mut self,
        api_version: &str,
        value: &Value,
        ctx: &Ctx,
    ) -> Result<(), LoadError> {
        let name = value
            .get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        let mesh = value
            .get("data")
            .and_then(|d| d.get("mesh"))
            .filter(|_| name == "istio" || name.starts_with("istio-"));
        let Some(mesh) = mesh else {
            *self
                .skipped
                .entry(format!("{api_version}/ConfigMap"))
                .or_default() += 1;
            return Ok(());
        };
        let object: Decoded<Value> = decode(value, ctx, true)?;
        let meta = object.meta;
        let text = mesh
            .as_str()
            .ok_or_else(|| ctx.field("data.mesh", "expected a string (the mesh config YAML)"))?;
        let config: Value = serde_yaml_ng::from_str(text)
            .map_err(|e| ctx.field("data.mesh", format!("invalid mesh config YAML: {e}")))?;
        let root_namespace = match config.get("rootNamespace") {
            None | Some(Value::Null) => namespace_of(&meta),
            Some(Value::String(ns)) if !ns.is_empty() => ns.clone(),
            Some(other) => {
                return Err(ctx.field(
                    "data.mesh: rootNamespace",
                    format!("expected a namespace name, found {other}"),
                ))
            }
        };
        self.istio_mesh_configs.push(IstioMeshConfig {
            namespace: namespace_of(&meta),
            name: meta.name.unwrap_or_default(),
            root_namespace,
            origin: ctx.origin.clone(),
        });
        Ok(())
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct WorkloadSpec {
    replicas: Option<i64>,
    /// A LabelSelector, or a plain label map for a ReplicationController.
    selector: Option<Value>,
    template: Option<PodTemplateSpec>,
    job_template: Option<JobTemplate>,
}

#[derive(Deserialize)]
pub(super) struct JobTemplate {
    spec: Option<JobTemplateSpec>,
}

#[derive(Deserialize)]
pub(super) struct JobTemplateSpec {
    template: Option<PodTemplateSpec>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ServiceSpecLite {
    #[serde(rename = "type")]
    service_type: Option<String>,
    selector: Option<BTreeMap<String, String>>,
    ports: Option<Vec<ServicePortLite>>,
    #[serde(rename = "clusterIP")]
    cluster_ip: Option<String>,
    #[serde(rename = "clusterIPs")]
    cluster_ips: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ServicePortLite {
    name: Option<String>,
    port: i64,
    protocol: Option<String>,
    target_port: Option<IntOrString>,
}

#[derive(Deserialize)]
pub(super) struct NodeStatusLite {
    addresses: Option<Vec<NodeAddressLite>>,
}

#[derive(Deserialize)]
pub(super) struct NodeAddressLite {
    address: String,
    #[serde(rename = "type")]
    address_type: Option<String>,
}

/// At most this many pods are made from one StatefulSet's template.
pub const MAX_STATEFUL_REPLICAS: i64 = 100;

#[allow(clippy::too_many_arguments)]
pub(super) fn pod_from_spec(
    namespace: &str,
    name: &str,
    labels: BTreeMap<String, String>,
    spec: &PodSpec,
    status: Option<&PodStatus>,
    workload: WorkloadRef,
    from_template: bool,
    ctx: &Ctx,
) -> Result<Pod, LoadError> {
    let prefix = if from_template {
        "spec.template.spec"
    } else {
        "spec"
    };
    let mut ports = Vec::new();
    let groups = [
        ("containers", Some(&spec.containers)),
        ("initContainers", spec.init_containers.as_ref()),
    ];
    for (group, containers) in groups {
        for (ci, container) in containers.into_iter().flatten().enumerate() {
            for (pi, port) in container.ports.iter().flatten().enumerate() {
                let field = |leaf: &str| format!("{prefix}.{group}[{ci}].ports[{pi}].{leaf}");
                // A missing containerPort deserializes as 0.
                let number = port_number(i64::from(port.container_port)).map_err(|_| {
                    ctx.field(
                        field("containerPort"),
                        format!(
                            "must be 1-65535, found {} (is it missing or misspelt?)",
                            port.container_port
                        ),
                    )
                })?;
                let protocol = parse_protocol(port.protocol.as_deref())
                    .map_err(|m| ctx.field(field("protocol"), m))?;
                ports.push(ContainerPort {
                    name: port.name.clone(),
                    port: number,
                    protocol,
                });
            }
        }
    }
    let probes = probe_ports(spec);
    let mut ips = Vec::new();
    if let Some(status) = status {
        if let Some(pod_ips) = &status.pod_ips {
            for (i, ip) in pod_ips.iter().enumerate() {
                let parsed: IpAddr = ip.ip.parse().map_err(|_| {
                    ctx.field(
                        format!("status.podIPs[{i}].ip"),
                        format!("invalid IP address {:?}", ip.ip),
                    )
                })?;
                if !ips.contains(&parsed) {
                    ips.push(parsed);
                }
            }
        }
        if let Some(ip) = status.pod_ip.as_deref().filter(|ip| !ip.is_empty()) {
            let parsed: IpAddr = ip
                .parse()
                .map_err(|_| ctx.field("status.podIP", format!("invalid IP address {ip:?}")))?;
            if !ips.contains(&parsed) {
                ips.insert(0, parsed);
            }
        }
    }
    Ok(Pod {
        namespace: namespace.to_string(),
        name: name.to_string(),
        labels: labels.into_iter().collect(),
        synthetic_ip: ips.is_empty(),
        ips,
        ports,
        probes,
        service_account: spec
            .service_account_name
            .clone()
            .or_else(|| spec.service_account.clone())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "default".into()),
        host_network: spec.host_network.unwrap_or(false),
        node: spec.node_name.clone(),
        workload,
        from_template,
        mesh_annotations: BTreeMap::new(),
        origin: ctx.origin.clone(),
    })
}

/// The ports the kubelet connects to for liveness, readiness and startup probes (`httpGet`,
/// `tcpSocket`, `grpc`; `exec` probes use no network). Named ports resolve against the
/// container's own ports, as the kubelet does (`findPortByName`); a name that resolves to
/// nothing cannot be probed and is left out.
pub(super) fn probe_ports(spec: &PodSpec) -> Vec<ProbePort> {
    let mut out = Vec::new();
    for container in &spec.containers {
        let probes = [
            ("liveness", container.liveness_probe.as_ref()),
            ("readiness", container.readiness_probe.as_ref()),
            ("startup", container.startup_probe.as_ref()),
        ];
        for (kind, probe) in probes {
            let Some(probe) = probe else { continue };
            let port = if let Some(http) = &probe.http_get {
                Some(&http.port)
            } else {
                probe.tcp_socket.as_ref().map(|t| &t.port)
            };
            let number = match port {
                Some(IntOrString::Int(n)) => u16::try_from(*n).ok().filter(|&n| n > 0),
                Some(IntOrString::String(name)) => container
                    .ports
                    .iter()
                    .flatten()
                    .find(|p| p.name.as_deref() == Some(name.as_str()))
                    .and_then(|p| u16::try_from(p.container_port).ok()),
                None => probe
                    .grpc
                    .as_ref()
                    .and_then(|g| u16::try_from(g.port).ok())
                    .filter(|&n| n > 0),
            };
            if let Some(port) = number {
                out.push(ProbePort {
                    kind,
                    container: container.name.clone(),
                    port,
                });
            }
        }
    }
    out
}

/// Give every pod without an address a stable one in 100.64.0.0/10: the stable hash of
/// `namespace/name` ([`crate::net::stable_hash`]), probing forward past addresses already
/// taken.
pub(super) fn assign_synthetic_ips(pods: &mut [Pod]) {
    if pods.iter().all(|p| !p.ips.is_empty()) {
        return;
    }
    let mut taken: HashSet<IpAddr> = pods.iter().flat_map(|p| p.ips.iter().copied()).collect();
    for pod in pods.iter_mut().filter(|p| p.ips.is_empty()) {
        let base = u32::from(Ipv4Addr::new(100, 64, 0, 0));
        let size = 1u32 << 22;
        let mut offset = (crate::net::stable_hash(pod.key().bytes()) % u64::from(size)) as u32;
        loop {
            // Skip the network and broadcast-looking ends of each /24 for readability.
            let candidate = IpAddr::V4(Ipv4Addr::from(base + offset));
            let last_octet = offset & 0xff;
            if last_octet != 0 && last_octet != 255 && taken.insert(candidate) {
                pod.ips.push(candidate);
                break;
            }
            offset = (offset + 1) % size;
        }
    }
}
