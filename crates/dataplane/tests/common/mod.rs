//! Helpers shared by the dataplane's kernel tests.

#![allow(dead_code)]

use netfence_dataplane::nflog::{self, DenyLogEvent, DenyLogStats, Labels, Record};
use netfence_dataplane::{enforce, AgentEvent, AgentSource, Enforcement, Lab, LabOptions};
use netfence_engine::{Engine, Matrix, ProbePort};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

/// Fail (not skip) when not root: these tests need network namespaces and nftables, as CI has.
pub fn require_root() {
    assert!(
        netfence_dataplane::running_as_root(),
        "this test needs root (network namespaces and nftables), as CI has"
    );
}

/// Probe every pair on `ports` in the lab and assert it equals the engine's prediction.
pub fn assert_kernel_matches(lab: &Lab, engine: &Engine, ports: &[ProbePort]) {
    let options = LabOptions {
        ports: ports.to_vec(),
        timeout: Duration::from_millis(700),
        ..LabOptions::default()
    };
    let (observed, _) = lab.probe_matrix(engine, &options).expect("probe");
    let predicted = Matrix::compute(engine, ports);
    let wrong: Vec<String> = observed
        .differences(&predicted)
        .expect("the lab probes the engine's pods and ports")
        .into_iter()
        .map(|(p, s, d)| {
            format!(
                "{} {} -> {}: kernel {}, engine {}",
                ports[p],
                observed.endpoints[s],
                observed.endpoints[d],
                observed.allowed(p, s, d),
                predicted.allowed(p, s, d)
            )
        })
        .collect();
    assert!(wrong.is_empty(), "{wrong:#?}");
}

/// A pod of namespace `x` on node `n1`, labelled `app: <name>`, as YAML.
pub fn pod(name: &str, ip: &str) -> String {
    format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: x, labels: {{app: {name}}}}}\nspec:\n  nodeName: n1\n  containers: [{{name: main, image: nginx}}]\nstatus: {{phase: Running, podIP: {ip}, podIPs: [{{ip: {ip}}}]}}\n")
}

/// The engine of these YAML documents (which must load).
pub fn engine(documents: &[String]) -> Engine {
    let mut loader = netfence_model::Loader::new();
    loader.load_str("<test>", &documents.join("---\n"));
    Engine::new(loader.finish().expect("loads"))
}

/// A lab (a network namespace per pod of `engine`, and the node's) probed on one port.
pub struct PortLab {
    pub lab: Lab,
    pub port: ProbePort,
}

impl PortLab {
    pub fn build(engine: &Engine, port: &str) -> PortLab {
        let port: ProbePort = port.parse().expect("port");
        let lab = Lab::build(engine, &[port]).expect("lab");
        PortLab { lab, port }
    }

    /// The node's network namespace, where the agent enforces.
    pub fn netns(&self) -> String {
        self.lab.node_namespace().to_string()
    }

    /// Whether each connection (pod indices in the engine's inventory, sorted by name) gets
    /// through, with a timeout under the 1 s SYN retransmission (one packet per denied probe).
    pub fn probe(&self, cells: &[(usize, usize)]) -> Vec<bool> {
        let cells: Vec<(ProbePort, usize, usize)> =
            cells.iter().map(|&(s, d)| (self.port, s, d)).collect();
        let options = LabOptions {
            timeout: Duration::from_millis(700),
            ..LabOptions::default()
        };
        self.lab.probe_cells(&cells, &options).expect("probe")
    }
}

/// [`netfence_dataplane::enforce`] on a thread of its own, its events on a channel.
pub struct RunningAgent {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<Result<(), netfence_dataplane::DataplaneError>>>,
    pub events: mpsc::Receiver<AgentEvent>,
    netns: Option<String>,
}

impl RunningAgent {
    /// Enforce with `settings` from the source `make_source` builds (on the agent's thread).
    pub fn spawn<S: AgentSource>(
        make_source: impl FnOnce() -> S + Send + 'static,
        settings: Enforcement,
    ) -> RunningAgent {
        let stop = Arc::new(AtomicBool::new(false));
        let (events_tx, events) = mpsc::channel();
        let netns = settings.netns.clone();
        let thread = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut source = make_source();
                enforce(&mut source, &settings, &stop, |e| {
                    let _ = events_tx.send(e);
                })
            })
        };
        RunningAgent {
            stop,
            thread: Some(thread),
            events,
            netns,
        }
    }

    /// Wait for the next event, which must be a ruleset applied.
    pub fn applied(&self) {
        match self.events.recv_timeout(Duration::from_secs(20)) {
            Ok(AgentEvent::Applied { .. }) => {}
            other => panic!("expected the ruleset applied, got {other:?}"),
        }
    }

    /// Stop the agent (it must have run without error) and remove its table.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            thread.join().expect("agent thread").expect("agent");
        }
        let _ = netfence_dataplane::flush(self.netns.as_deref());
    }
}

impl Drop for RunningAgent {
    fn drop(&mut self) {
        // A failed test: stop the thread all the same.
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// The deny-log reader of a namespace, its records on a channel.
pub struct Reader {
    pub stats: Arc<DenyLogStats>,
    pub records: mpsc::Receiver<DenyLogEvent>,
    reading: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Reader {
    /// Bind the log group in `netns`, writing at most `rate` lines a second.
    pub fn start(netns: &str, labels: &Arc<Labels>, rate: u32) -> Reader {
        let stats = Arc::new(DenyLogStats::default());
        let reading = Arc::new(AtomicBool::new(true));
        let (records_tx, records) = mpsc::channel();
        let thread = {
            let reading = reading.clone();
            nflog::start(
                Some(netns),
                labels.clone(),
                stats.clone(),
                rate,
                move || reading.load(Ordering::SeqCst),
                move |event| {
                    let _ = records_tx.send(event);
                },
            )
            .expect("bind the log group")
        };
        Reader {
            stats,
            records,
            reading,
            thread: Some(thread),
        }
    }

    /// Records arriving within `wait` (the reader batches for at most 0.1 s).
    pub fn drain(&self, wait: Duration) -> Vec<Record> {
        let end = Instant::now() + wait;
        let mut out = Vec::new();
        while let Ok(event) = self
            .records
            .recv_timeout(end.saturating_duration_since(Instant::now()))
        {
            match event {
                DenyLogEvent::Record(record) => out.push(*record),
                DenyLogEvent::Failed(e) => panic!("reader failed: {e}"),
            }
        }
        out
    }

    /// Stop reading and wait for the reader's thread (the group is free again after).
    pub fn stop(mut self) {
        self.reading.store(false, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            thread.join().expect("reader");
        }
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        self.reading.store(false, Ordering::SeqCst);
    }
}
