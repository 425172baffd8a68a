//! The lab: build the cluster on this host out of network namespaces, enforce the rendered
//! ruleset in the kernel, and probe every (source, destination, port) with real packets.
//!
//! Layout (after Calico Felix's FV setup): one namespace per pod with the pod's address as a
//! /32 on `eth0` and a default route via the link-local gateway 169.254.1.1; one "node"
//! namespace holding the other end of every veth, a /32 route per pod, IP forwarding, and the
//! netfence table on its forward hook. Neighbour entries are static, so nothing depends on
//! proxy ARP. Every name starts with a run-specific prefix; everything is deleted on drop, on
//! failure and (through [`teardown_all`], which the CLI calls on Ctrl-C) on interrupt.
//! Traffic never leaves the namespaces the lab created.

use crate::nft::{self, run, DataplaneError};
use crate::record::{self, KernelFlow};
use crate::render::{render, RenderOptions, Ruleset};
use netfence_engine::{Engine, Matrix, ProbePort};
use netfence_model::{PodId, Protocol};
use std::collections::{BTreeSet, HashSet};
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

/// Namespaces created by any lab in this process and not yet deleted.
static LIVE: Mutex<Vec<String>> = Mutex::new(Vec::new());
static RUN_COUNTER: AtomicUsize = AtomicUsize::new(0);

const GATEWAY: &str = "169.254.1.1";
const NODE_MAC: &str = "ee:ee:ee:ee:ee:ee";

/// Delete every namespace any lab of this process created (for signal handlers).
pub fn teardown_all() {
    let names: Vec<String> = LIVE
        .lock()
        .map(|mut l| std::mem::take(&mut *l))
        .unwrap_or_default();
    for name in names.iter().rev() {
        let _ = run(None, "ip", &["netns", "del", name], None);
    }
}

/// Options of a lab run.
#[derive(Clone, Debug)]
pub struct LabOptions {
    /// The ports to probe.
    pub ports: Vec<ProbePort>,
    /// How long a probe waits for an answer before calling the port blocked.
    pub timeout: Duration,
    /// Probes in flight at once.
    pub parallelism: usize,
    /// Record the flows of the probes' packets as the kernel sees them cross the node
    /// ([`crate::record`]), into [`LabReport::flows`].
    pub record_flows: bool,
    /// Probe only these connections (an application's call graph, say) instead of every
    /// ordered pair of pods on every port of `ports`: the results are in
    /// [`LabReport::connections`], the cells of [`LabReport::observed`] that were not probed
    /// are blocked, and disagreements are counted on the probed cells only.
    pub connections: Option<Vec<LabConnection>>,
}

/// One connection to probe: from pod `src` to pod `dst` (indices in the inventory) on a port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LabConnection {
    /// Source pod.
    pub src: PodId,
    /// Destination pod.
    pub dst: PodId,
    /// Protocol and port.
    pub port: ProbePort,
}

impl Default for LabOptions {
    fn default() -> Self {
        LabOptions {
            ports: Vec::new(),
            timeout: Duration::from_millis(1000),
            parallelism: 128,
            record_flows: false,
            connections: None,
        }
    }
}

/// What a lab run saw.
pub struct LabReport {
    /// Reachability observed with real packets.
    pub observed: Matrix,
    /// Reachability the engine predicts.
    pub predicted: Matrix,
    /// `PORT src -> dst: predicted X, observed Y` for every disagreement.
    pub disagreements: Vec<String>,
    /// Probes sent.
    pub probes: usize,
    /// Time to build the namespaces and load the ruleset.
    pub setup: Duration,
    /// Time spent probing.
    pub probing: Duration,
    /// With [`LabOptions::record_flows`]: the flows the kernel saw, original directions then
    /// replies (empty otherwise).
    pub flows: Vec<KernelFlow>,
    /// When recording started and ended (wall clock): the capture window of every flow.
    pub window: (SystemTime, SystemTime),
    /// With [`LabOptions::connections`]: each probed connection and whether it got through.
    pub connections: Vec<(LabConnection, bool)>,
}

/// A running lab: the namespaces, their addresses and the listeners. Dropping it tears
/// everything down.
pub struct Lab {
    node: String,
    pods: Vec<String>,
    addresses: Vec<Ipv4Addr>,
    stop: Arc<AtomicBool>,
    listeners: Vec<JoinHandle<()>>,
}

impl Lab {
    fn add_namespace(name: &str) -> Result<(), DataplaneError> {
        run(None, "ip", &["netns", "add", name], None)?;
        if let Ok(mut live) = LIVE.lock() {
            live.push(name.to_string());
        }
        Ok(())
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for handle in self.listeners.drain(..) {
            let _ = handle.join();
        }
        let mut names = self.pods.clone();
        names.push(self.node.clone());
        for name in &names {
            let _ = run(None, "ip", &["netns", "del", name], None);
        }
        if let Ok(mut live) = LIVE.lock() {
            live.retain(|n| !names.contains(n));
        }
    }
}

/// Enter a named network namespace on the current thread (never the main thread: the lab
/// only calls this on threads it spawned for that purpose). The project's one `unsafe` block:
/// no safe wrapper for setns(2) exists in the dependencies netfence uses.
#[allow(unsafe_code)]
pub(crate) fn enter_namespace(name: &str) -> std::io::Result<()> {
    let file = std::fs::File::open(format!("/run/netns/{name}"))?;
    // SAFETY: setns on a valid namespace fd affects only the calling thread's network
    // namespace; the fd stays open for the duration of the call.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

fn pod_mac(index: usize) -> String {
    let b = (index as u32).to_be_bytes();
    format!("02:4e:46:{:02x}:{:02x}:{:02x}", b[1], b[2], b[3])
}

/// Build the namespaces, load the ruleset, probe, compare, tear down.
pub fn run_lab(engine: &Engine, options: &LabOptions) -> Result<LabReport, DataplaneError> {
    let started = Instant::now();
    let lab = Lab::build(engine, &options.ports)?;
    lab.apply(&render(engine, &RenderOptions::default())?)?;
    if options.record_flows {
        record::start(&lab.node)?;
    }
    let setup = started.elapsed();
    let window_start = SystemTime::now();
    let probing_started = Instant::now();
    let (observed, probes, connections) = match &options.connections {
        None => {
            let (observed, probes) = lab.probe_matrix(engine, options)?;
            (observed, probes, Vec::new())
        }
        Some(list) => {
            let results = lab.probe_connections(list, options)?;
            let through: HashSet<LabConnection> = results
                .iter()
                .filter(|(_, ok)| *ok)
                .map(|(c, _)| *c)
                .collect();
            let observed = Matrix::from_fn(&options.ports, pod_names(engine), |port, src, dst| {
                src == dst
                    || through.contains(&LabConnection {
                        src: PodId::new(src),
                        dst: PodId::new(dst),
                        port,
                    })
            });
            (observed, list.len(), results)
        }
    };
    let probing = probing_started.elapsed();
    let flows = if options.record_flows {
        record::collect(&lab.node)?
    } else {
        Vec::new()
    };
    let window = (window_start, SystemTime::now());
    let predicted = Matrix::compute(engine, &options.ports);
    let n = observed.endpoints.len();
    let probed: Option<HashSet<LabConnection>> = options
        .connections
        .as_ref()
        .map(|list| list.iter().copied().collect());
    let mut disagreements = Vec::new();
    for (p, port) in options.ports.iter().enumerate() {
        for src in 0..n {
            for dst in 0..n {
                let cell = LabConnection {
                    src: PodId::new(src),
                    dst: PodId::new(dst),
                    port: *port,
                };
                let compared = probed.as_ref().is_none_or(|set| set.contains(&cell));
                if src != dst
                    && compared
                    && observed.allowed(p, src, dst) != predicted.allowed(p, src, dst)
                {
                    disagreements.push(format!(
                        "{port} {} -> {}: predicted {}, observed {}",
                        observed.endpoints[src],
                        observed.endpoints[dst],
                        verdict(predicted.allowed(p, src, dst)),
                        verdict(observed.allowed(p, src, dst))
                    ));
                }
            }
        }
    }
    drop(lab);
    Ok(LabReport {
        observed,
        predicted,
        disagreements,
        probes,
        setup,
        probing,
        flows,
        window,
        connections,
    })
}

/// Read a list of connections, one per line: `SRC -> DST PROTO/PORT`, where `SRC` and `DST`
/// name a workload (`namespace/name`, or `name` in `default`) or a pod (`namespace/pod`), and
/// `SRC` may be `*` (every pod that is not on the host's network, but the destination). Each
/// pod of the source reaches each pod of the destination. `#` starts a comment. Errors name
/// the line.
pub fn parse_connections(engine: &Engine, text: &str) -> Result<Vec<LabConnection>, String> {
    let pods = engine.inventory().pods();
    let resolve = |name: &str, line: usize| -> Result<Vec<PodId>, String> {
        let ids = || (0..pods.len()).map(PodId::new);
        if name == "*" {
            return Ok(ids().filter(|&i| !pods[i].host_network).collect());
        }
        let (namespace, short) = name.split_once('/').unwrap_or(("default", name));
        let workload: Vec<PodId> = ids()
            .filter(|&i| pods[i].workload.namespace == namespace && pods[i].workload.name == short)
            .collect();
        if !workload.is_empty() {
            return Ok(workload);
        }
        engine
            .inventory()
            .pod_by_key(namespace, short)
            .map(|id| vec![id])
            .ok_or_else(|| format!("line {line}: {name:?} names no workload or pod"))
    };
    let mut out = BTreeSet::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let content = raw.split('#').next().unwrap_or("").trim();
        if content.is_empty() {
            continue;
        }
        let words: Vec<&str> = content.split_whitespace().collect();
        let [src, "->", dst, port] = words[..] else {
            return Err(format!(
                "line {line}: expected `SRC -> DST PROTO/PORT`, got {content:?}"
            ));
        };
        let port: ProbePort = port.parse().map_err(|e| format!("line {line}: {e}"))?;
        let sources = resolve(src, line)?;
        let destinations = resolve(dst, line)?;
        for &s in &sources {
            for &d in &destinations {
                if s != d {
                    out.insert(LabConnection {
                        src: s,
                        dst: d,
                        port,
                    });
                }
            }
        }
    }
    Ok(out.into_iter().collect())
}

/// The pod the lab gives `ip` (each pod's first IPv4 address), as a log would name it.
pub fn lab_pod(engine: &Engine, ip: IpAddr) -> Option<netfence_flows::PodHint> {
    engine
        .inventory()
        .pods()
        .iter()
        .find(|pod| pod.ips.iter().find(|a| a.is_ipv4()) == Some(&ip))
        .map(|pod| netfence_flows::PodHint {
            namespace: pod.namespace.clone(),
            name: pod.name.clone(),
        })
}

fn pod_names(engine: &Engine) -> Vec<String> {
    engine.inventory().pods().iter().map(|p| p.key()).collect()
}

impl Lab {
    /// Build one namespace per pod of `engine`'s inventory and the node namespace, with
    /// listeners on every declared container port and on `ports`. No ruleset is loaded yet.
    pub fn build(engine: &Engine, ports: &[ProbePort]) -> Result<Lab, DataplaneError> {
        Lab::build_with_outside(engine, ports, &[])
    }

    /// [`Lab::build`], plus one namespace per address in `outside`: endpoints that are no pod
    /// (an external client or server, a network set's member), attached to the node like the
    /// pods and listening on `ports`. They take the indices after the pods' in
    /// [`Lab::probe_cells`], in the order given.
    pub fn build_with_outside(
        engine: &Engine,
        ports: &[ProbePort],
        outside: &[Ipv4Addr],
    ) -> Result<Lab, DataplaneError> {
        if ports.iter().any(|p| p.protocol == Protocol::Sctp) {
            return Err(DataplaneError::Other(
                "the lab probes TCP and UDP; SCTP probes are not supported yet".into(),
            ));
        }
        let inventory = engine.inventory();
        let mut addresses = Vec::new();
        let mut seen = HashSet::new();
        for pod in inventory.pods() {
            let Some(ip) = pod.ips.iter().find_map(|ip| match ip {
                IpAddr::V4(v4) => Some(*v4),
                IpAddr::V6(_) => None,
            }) else {
                return Err(DataplaneError::Other(format!(
                    "pod {} has no IPv4 address; the lab builds IPv4 networks only",
                    pod.key()
                )));
            };
            if !seen.insert(ip) {
                return Err(DataplaneError::Other(format!(
                    "pod {} shares address {ip} with another pod; the lab needs distinct addresses",
                    pod.key()
                )));
            }
            addresses.push(ip);
        }
        for ip in outside {
            if !seen.insert(*ip) {
                return Err(DataplaneError::Other(format!(
                    "outside address {ip} is a pod's or given twice; the lab needs distinct addresses"
                )));
            }
            addresses.push(*ip);
        }
        let run_id = RUN_COUNTER.fetch_add(1, Ordering::SeqCst);
        let prefix = format!(
            "nf{:x}",
            ((std::process::id() as usize) << 8 | (run_id & 0xff)) & 0xff_ffff
        );
        let mut lab = Lab {
            node: format!("{prefix}-node"),
            pods: Vec::new(),
            addresses: addresses.clone(),
            stop: Arc::new(AtomicBool::new(false)),
            listeners: Vec::new(),
        };
        Lab::add_namespace(&lab.node)?;
        let node = lab.node.clone();
        run(
            Some(&node),
            "sysctl",
            &["-qw", "net.ipv4.ip_forward=1"],
            None,
        )?;
        run(None, "ip", &["-n", &node, "link", "set", "lo", "up"], None)?;
        for (i, ip) in addresses.iter().enumerate() {
            let pod_ns = format!("{prefix}-{i}");
            Lab::add_namespace(&pod_ns)?;
            lab.pods.push(pod_ns.clone());
            let veth = format!("{prefix}v{i}");
            let host = format!("{ip}/32");
            let mac = pod_mac(i);
            let ip_text = ip.to_string();
            let steps: [&[&str]; 10] = [
                &[
                    "link", "add", &veth, "netns", &node, "type", "veth", "peer", "name", "eth0",
                    "netns", &pod_ns,
                ],
                &["-n", &node, "link", "set", &veth, "address", NODE_MAC, "up"],
                &["-n", &node, "route", "add", &host, "dev", &veth],
                &[
                    "-n",
                    &node,
                    "neigh",
                    "replace",
                    &ip_text,
                    "lladdr",
                    &mac,
                    "dev",
                    &veth,
                    "nud",
                    "permanent",
                ],
                &["-n", &pod_ns, "link", "set", "lo", "up"],
                &["-n", &pod_ns, "link", "set", "eth0", "address", &mac, "up"],
                &["-n", &pod_ns, "addr", "add", &host, "dev", "eth0"],
                &[
                    "-n", &pod_ns, "route", "add", GATEWAY, "dev", "eth0", "scope", "link",
                ],
                &[
                    "-n", &pod_ns, "route", "add", "default", "via", GATEWAY, "dev", "eth0",
                ],
                &[
                    "-n",
                    &pod_ns,
                    "neigh",
                    "replace",
                    GATEWAY,
                    "lladdr",
                    NODE_MAC,
                    "dev",
                    "eth0",
                    "nud",
                    "permanent",
                ],
            ];
            for step in steps {
                run(None, "ip", step, None)?;
            }
        }
        for i in 0..addresses.len() {
            let declared = inventory.pods().get(i).map(|pod| pod.ports.as_slice());
            let mut listen: BTreeSet<(Protocol, u16)> = declared
                .unwrap_or(&[])
                .iter()
                .map(|p| (p.protocol, p.port))
                .collect();
            listen.extend(ports.iter().map(|p| (p.protocol, p.port)));
            listen.retain(|(p, _)| *p != Protocol::Sctp);
            let namespace = lab.pods[i].clone();
            let stop = lab.stop.clone();
            let (ready_tx, ready_rx) = std::sync::mpsc::channel();
            lab.listeners.push(std::thread::spawn(move || {
                if let Err(e) = serve(&namespace, &listen, &stop, &ready_tx) {
                    let _ = ready_tx.send(Err(format!("listener in {namespace}: {e}")));
                }
            }));
            match ready_rx.recv() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(DataplaneError::Other(e)),
                Err(_) => return Err(DataplaneError::Other("listener thread ended early".into())),
            }
        }
        Ok(lab)
    }

    /// The node namespace, where the ruleset lives.
    pub fn node_namespace(&self) -> &str {
        &self.node
    }

    /// Load a ruleset in the node namespace (full, atomic replace).
    pub fn apply(&self, ruleset: &Ruleset) -> Result<(), DataplaneError> {
        nft::apply(ruleset, Some(&self.node))
    }

    /// Update the node namespace's ruleset from `previous` to `next` incrementally.
    pub fn update(&self, previous: &Ruleset, next: &Ruleset) -> Result<bool, DataplaneError> {
        nft::update(previous, next, Some(&self.node))
    }

    /// Probe every ordered pair of pods on every port, in parallel batches.
    pub fn probe_matrix(
        &self,
        engine: &Engine,
        options: &LabOptions,
    ) -> Result<(Matrix, usize), DataplaneError> {
        let n = engine.inventory().pods().len().min(self.pods.len());
        let ports = &options.ports;
        let mut jobs = Vec::new();
        for (p, port) in ports.iter().enumerate() {
            for src in 0..n {
                for dst in 0..n {
                    if src != dst {
                        jobs.push((p, *port, src, dst));
                    }
                }
            }
        }
        // A pod reaches itself without crossing the node: the diagonal is allowed.
        let mut bits = vec![false; ports.len() * n * n];
        for p in 0..ports.len() {
            for i in 0..n {
                bits[(p * n + i) * n + i] = true;
            }
        }
        let cells: Vec<(ProbePort, usize, usize)> = jobs
            .iter()
            .map(|&(_, port, src, dst)| (port, src, dst))
            .collect();
        let results = self.probe_cells(&cells, options)?;
        for (&(p, _, src, dst), result) in jobs.iter().zip(results) {
            bits[(p * n + src) * n + dst] = result;
        }
        let endpoints: Vec<String> = engine.inventory().pods().iter().map(|p| p.key()).collect();
        let matrix = Matrix::from_fn(ports, endpoints, |probe, src, dst| {
            let p = ports.iter().position(|x| *x == probe).unwrap_or(0);
            bits[(p * n + src) * n + dst]
        });
        Ok((matrix, jobs.len()))
    }

    /// Probe each connection of `list` (ports beyond the listeners' answer with a refusal,
    /// which counts as delivered), in parallel batches.
    pub fn probe_connections(
        &self,
        list: &[LabConnection],
        options: &LabOptions,
    ) -> Result<Vec<(LabConnection, bool)>, DataplaneError> {
        if let Some(bad) = list
            .iter()
            .find(|c| c.src.index() >= self.pods.len() || c.dst.index() >= self.pods.len())
        {
            return Err(DataplaneError::Other(format!(
                "connection {} -> {}: the lab has {} pods",
                bad.src.index(),
                bad.dst.index(),
                self.pods.len()
            )));
        }
        let cells: Vec<(ProbePort, usize, usize)> = list
            .iter()
            .map(|c| (c.port, c.src.index(), c.dst.index()))
            .collect();
        let results = self.probe_cells(&cells, options)?;
        Ok(list.iter().copied().zip(results).collect())
    }

    /// Probe the given cells (port, source pod, destination pod; indices in the inventory the
    /// lab was built from) with real packets, `options.parallelism` at a time: whether each
    /// got an answer.
    pub fn probe_cells(
        &self,
        cells: &[(ProbePort, usize, usize)],
        options: &LabOptions,
    ) -> Result<Vec<bool>, DataplaneError> {
        let mut out = Vec::with_capacity(cells.len());
        for batch in cells.chunks(options.parallelism.max(1)) {
            let handles: Vec<_> = batch
                .iter()
                .map(|&(port, src, dst)| {
                    let namespace = self.pods[src].clone();
                    let target = SocketAddr::new(IpAddr::V4(self.addresses[dst]), port.port);
                    let timeout = options.timeout;
                    std::thread::spawn(move || probe(&namespace, port.protocol, target, timeout))
                })
                .collect();
            for handle in handles {
                let result = handle
                    .join()
                    .map_err(|_| DataplaneError::Other("probe thread panicked".into()))?;
                out.push(result.map_err(DataplaneError::Other)?);
            }
        }
        Ok(out)
    }

    /// Run `work` on a thread inside pod `pod`'s namespace and return its result.
    pub fn run_in<T: Send + 'static>(
        &self,
        pod: PodId,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, DataplaneError> {
        let namespace = self.pods[pod].clone();
        std::thread::spawn(move || {
            enter_namespace(&namespace).map_err(|e| format!("entering {namespace}: {e}"))?;
            Ok(work())
        })
        .join()
        .map_err(|_| DataplaneError::Other("lab thread panicked".into()))?
        .map_err(DataplaneError::Other)
    }

    /// Spawn `work` on a thread inside pod `pod`'s namespace (for servers).
    pub fn spawn_in(
        &self,
        pod: PodId,
        work: impl FnOnce() + Send + 'static,
    ) -> std::thread::JoinHandle<()> {
        let namespace = self.pods[pod].clone();
        std::thread::spawn(move || {
            if enter_namespace(&namespace).is_ok() {
                work();
            }
        })
    }

    /// The IPv4 address of pod `pod` in the lab.
    pub fn address(&self, pod: PodId) -> Ipv4Addr {
        self.addresses[pod]
    }

    /// Open a TCP connection from pod `src` to pod `dst` (indices in the inventory); the
    /// listener echoes what it receives, so the stream can carry traffic across updates.
    pub fn connect(
        &self,
        src: PodId,
        dst: PodId,
        port: u16,
        timeout: Duration,
    ) -> Result<TcpStream, DataplaneError> {
        let namespace = self.pods[src].clone();
        let target = SocketAddr::new(IpAddr::V4(self.addresses[dst]), port);
        std::thread::spawn(move || {
            enter_namespace(&namespace).map_err(|e| e.to_string())?;
            TcpStream::connect_timeout(&target, timeout)
                .map_err(|e| format!("connect {target}: {e}"))
        })
        .join()
        .map_err(|_| DataplaneError::Other("connect thread panicked".into()))?
        .map_err(DataplaneError::Other)
    }
}

fn verdict(allowed: bool) -> &'static str {
    if allowed {
        "allowed"
    } else {
        "blocked"
    }
}

/// Serve TCP (accept and close) and UDP (echo) on `ports` inside `namespace` until `stop`.
fn serve(
    namespace: &str,
    ports: &BTreeSet<(Protocol, u16)>,
    stop: &AtomicBool,
    ready: &std::sync::mpsc::Sender<Result<(), String>>,
) -> std::io::Result<()> {
    enter_namespace(namespace)?;
    let any = |port: u16| SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port);
    let mut tcp = Vec::new();
    let mut udp = Vec::new();
    for &(protocol, port) in ports {
        match protocol {
            Protocol::Tcp => {
                let listener = TcpListener::bind(any(port))?;
                listener.set_nonblocking(true)?;
                tcp.push(listener);
            }
            Protocol::Udp => {
                let socket = UdpSocket::bind(any(port))?;
                socket.set_nonblocking(true)?;
                udp.push(socket);
            }
            Protocol::Sctp => {}
        }
    }
    let _ = ready.send(Ok(()));
    let mut buffer = [0u8; 1500];
    let mut streams: Vec<TcpStream> = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        let mut busy = false;
        for listener in &tcp {
            while let Ok((stream, _)) = listener.accept() {
                busy = true;
                if stream.set_nonblocking(true).is_ok() {
                    streams.push(stream);
                }
            }
        }
        // Echo on accepted connections; drop them at EOF or error.
        streams.retain_mut(|stream| match stream.read(&mut buffer) {
            Ok(0) => false,
            Ok(len) => {
                busy = true;
                stream.write_all(&buffer[..len]).is_ok()
            }
            Err(e) => e.kind() == ErrorKind::WouldBlock,
        });
        for socket in &udp {
            while let Ok((len, from)) = socket.recv_from(&mut buffer) {
                busy = true;
                let _ = socket.send_to(&buffer[..len], from);
            }
        }
        if !busy {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    Ok(())
}

/// One probe from inside `namespace`: true when the destination answered (a connection, an
/// echo, or a refusal: a refusal proves the packet was delivered and its answer came back).
fn probe(
    namespace: &str,
    protocol: Protocol,
    target: SocketAddr,
    timeout: Duration,
) -> Result<bool, String> {
    enter_namespace(namespace).map_err(|e| format!("entering {namespace}: {e}"))?;
    match protocol {
        Protocol::Tcp => match TcpStream::connect_timeout(&target, timeout) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => Ok(true),
            Err(e) if matches!(e.kind(), ErrorKind::TimedOut | ErrorKind::WouldBlock) => Ok(false),
            Err(e) => Err(format!("TCP probe {target} from {namespace}: {e}")),
        },
        Protocol::Udp => {
            let socket = UdpSocket::bind(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0))
                .map_err(|e| format!("UDP socket in {namespace}: {e}"))?;
            socket
                .connect(target)
                .map_err(|e| format!("UDP connect {target}: {e}"))?;
            socket
                .set_read_timeout(Some(timeout / 2))
                .map_err(|e| e.to_string())?;
            let mut buffer = [0u8; 64];
            // Two tries: a datagram is not retransmitted like a SYN.
            for _ in 0..2 {
                socket
                    .send(b"netfence-probe")
                    .map_err(|e| format!("UDP send {target}: {e}"))?;
                match socket.recv(&mut buffer) {
                    Ok(_) => return Ok(true),
                    Err(e) if e.kind() == ErrorKind::ConnectionRefused => return Ok(true),
                    Err(e) if matches!(e.kind(), ErrorKind::TimedOut | ErrorKind::WouldBlock) => {}
                    Err(e) => return Err(format!("UDP probe {target} from {namespace}: {e}")),
                }
            }
            Ok(false)
        }
        Protocol::Sctp => Err("SCTP probes are not supported".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_lists_resolve_workloads_pods_and_stars_and_name_bad_lines() {
        let mut loader = netfence_model::Loader::new();
        loader.load_str(
            "c.yaml",
            "
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: c}]}
---
apiVersion: v1
kind: Pod
metadata: {name: db, namespace: shop}
spec: {containers: [{name: c}]}
",
        );
        let engine = Engine::new(loader.finish().unwrap());
        let db = engine.inventory().pod_by_key("shop", "db").unwrap();
        let list = parse_connections(&engine, "# calls\nshop/web -> shop/db TCP/5432\n").unwrap();
        // The loader makes one pod from the template, replicas aside.
        assert_eq!(list.len(), 1, "{list:?}");
        assert!(list.iter().all(|c| c.dst == db && c.port.port == 5432));
        let star = parse_connections(&engine, "* -> shop/db UDP/53 # dns\n").unwrap();
        assert_eq!(star.len(), 1, "every pod but the destination");
        assert_ne!(star[0].src, db);
        let bad = parse_connections(&engine, "\nshop/web shop/db TCP/1\n").unwrap_err();
        assert!(bad.starts_with("line 2:"), "{bad}");
        let unknown = parse_connections(&engine, "shop/nope -> shop/db TCP/1").unwrap_err();
        assert!(unknown.contains("\"shop/nope\""), "{unknown}");
        assert!(parse_connections(&engine, "shop/web -> shop/db TCP/0").is_err());
    }
}
