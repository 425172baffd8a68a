//! `netfence watch --cluster`: follow the API server and print every change of reachability
//! as it happens, with the object change that caused it. Each change goes through the
//! engine's incremental update (`Cluster::apply`, what `what-if` uses), so a change's lines
//! are `netfence diff` between the states before and after it.

use super::{inputs, Args, ClusterArgs, Failure, Inputs, OptionalInputs, PathBuf};
use netfence_cluster::{Follower, Update, UpdateKind};
use netfence_engine::{Cluster, DiffKind, DiffLine};
use netfence_model::{Inventory, Loader, Origin};
use std::collections::HashMap;
use std::io::Write;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Output of `netfence watch`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum WatchFormat {
    /// `+ a -> b TCP 80 (NetworkPolicy ns/p created)`, one line per change.
    Text,
    /// One JSON object per line: diff's keys plus `time` and `cause`.
    Json,
}

/// The arguments of `netfence watch`.
#[derive(Args)]
pub struct WatchArgs {
    #[command(flatten)]
    pub inputs: OptionalInputs,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = WatchFormat::Text)]
    pub output: WatchFormat,
    /// Append each pod address tenure to FILE as it ends, and the open ones on exit: the
    /// JSON Lines `flows check --pods-history` reads.
    #[arg(long, value_name = "FILE")]
    pub record_pods: Option<PathBuf>,
    /// Stop after this many object changes (for scripts and tests); default: until
    /// interrupted.
    #[arg(long, value_name = "N")]
    pub max_changes: Option<usize>,
}

static STOP: AtomicBool = AtomicBool::new(false);

/// `netfence watch` (its help text is on [`crate::Command`]).
pub fn watch(args: WatchArgs) -> Result<u8, Failure> {
    if !args.inputs.cluster.cluster {
        return Err(Failure::input("watch: needs --cluster (a live API server)"));
    }
    let cluster_args = args.inputs.cluster.clone();
    let files: Inputs = Inputs {
        cluster: ClusterArgs::default(),
        ..Inputs::from(OptionalInputs {
            files: args.inputs.files.clone(),
            namespace: args.inputs.namespace.clone(),
            lenient: args.inputs.lenient,
            cni: args.inputs.cni.clone(),
            cluster: ClusterArgs::default(),
        })
    };
    let loader = inputs::loader(&files)?;
    let _ = ctrlc::set_handler(|| STOP.store(true, Ordering::SeqCst));
    let recorder = match &args.record_pods {
        Some(path) => Some(PodRecorder::create(path)?),
        None => None,
    };
    netfence_cluster::block_on(follow(loader, &cluster_args, &args, recorder))
        .map_err(|e| Failure::input(format!("error: --cluster: {e}")))?
}

fn cluster_failure(error: netfence_cluster::Error) -> Failure {
    Failure::input(format!("error: --cluster: {error}"))
}

async fn follow(
    mut loader: Loader,
    cluster_args: &ClusterArgs,
    args: &WatchArgs,
    mut recorder: Option<PodRecorder>,
) -> Result<u8, Failure> {
    let client = netfence_cluster::client(&inputs::source(cluster_args))
        .await
        .map_err(cluster_failure)?;
    let (summary, tracker) =
        netfence_cluster::snapshot(&client, &mut loader, netfence_cluster::PAGE_SIZE)
            .await
            .map_err(cluster_failure)?;
    inputs::report_cluster(&summary);
    let mut cluster = Cluster::new(loader).map_err(|e| Failure::input(e.to_string()))?;
    inputs::report(cluster.engine().inventory());
    let mut follower = Follower::new(&client, tracker);
    let unfollowed = follower.unfollowed();
    eprintln!(
        "netfence: watching {} object(s) of {} kind(s){}",
        follower.tracker().len(),
        follower.tracker().kinds().len() - unfollowed.len(),
        match unfollowed.is_empty() {
            true => String::new(),
            false => format!(
                "; read once, not followed (changes need a restart): {}",
                unfollowed.join(", ")
            ),
        }
    );
    if let Some(recorder) = &mut recorder {
        recorder.sync(cluster.engine().inventory())?;
    }
    let mut changes = 0;
    // A compaction ends every watch with 410 Gone at once: say so once, not once per kind.
    let mut relisting = false;
    while !STOP.load(Ordering::SeqCst) && args.max_changes.is_none_or(|max| changes < max) {
        let Some(batch) = follower.next_or_idle(Duration::from_millis(200)).await else {
            break;
        };
        let batch = match batch {
            Ok(batch) => batch,
            Err(error) if error.to_string().contains("Expired") => {
                if !relisting {
                    eprintln!("netfence: the API server's history moved on (410 Gone): relisting, changes missed meanwhile are found by comparing resource versions");
                }
                relisting = true;
                continue;
            }
            Err(error) => {
                eprintln!("netfence: warning: {error} (retrying with backoff)");
                continue;
            }
        };
        relisting &= batch.is_empty();
        for update in batch {
            changes += 1;
            apply(&mut cluster, &update, args.output)?;
            if let Some(recorder) = &mut recorder {
                recorder.sync(cluster.engine().inventory())?;
            }
        }
    }
    if let Some(recorder) = &mut recorder {
        recorder.finish()?;
    }
    Ok(0)
}

/// Apply one object change and print the reachability it changed. A change the loader
/// refuses (an invalid object) is reported and skipped: the last good state stays.
fn apply(cluster: &mut Cluster, update: &Update, format: WatchFormat) -> Result<(), Failure> {
    let mut changes = Loader::new();
    let mut deletions = Vec::new();
    match update.kind {
        UpdateKind::Applied => changes.load_object(
            &update.object,
            Origin {
                file: "<watch>".into(),
                document: 1,
                line: 1,
                item: None,
            },
        ),
        UpdateKind::Deleted => deletions.push(update.key.clone()),
    }
    let applied = match cluster.apply(changes, &deletions) {
        Ok(applied) => applied,
        Err(errors) => {
            eprintln!(
                "netfence: warning: {}: not applied, the last good state stays: {errors}",
                update.key
            );
            return Ok(());
        }
    };
    let cause: Vec<String> = applied.changes.iter().map(ToString::to_string).collect();
    let cause = cause.join("; ");
    let time = jiff::Timestamp::now().to_string();
    let mut out = std::io::stdout().lock();
    for line in &applied.delta {
        let written = match format {
            WatchFormat::Text => writeln!(out, "{} ({cause})", text(line)),
            WatchFormat::Json => writeln!(out, "{}", json(line, &time, &cause)),
        };
        written.map_err(crate::io_failure)?;
    }
    out.flush().map_err(crate::io_failure)?;
    eprintln!("netfence: {cause}: {} line(s)", applied.delta.len());
    Ok(())
}

/// `+ a -> b TCP 80`, `- a -> b TCP 80`, `~ a -> b TCP 80 => TCP 80,443`.
fn text(line: &DiffLine) -> String {
    match line.kind {
        DiffKind::Added => format!("+ {} -> {} {}", line.src, line.dst, line.after),
        DiffKind::Removed => format!("- {} -> {} {}", line.src, line.dst, line.before),
        DiffKind::Changed => format!(
            "~ {} -> {} {} => {}",
            line.src, line.dst, line.before, line.after
        ),
    }
}

fn json(line: &DiffLine, time: &str, cause: &str) -> serde_json::Value {
    serde_json::json!({
        "time": time,
        "cause": cause,
        "diff-type": line.kind.to_string(),
        "source": line.src.to_string(),
        "destination": line.dst.to_string(),
        "ref1": line.before.to_string(),
        "ref2": line.after.to_string(),
        "workloads-diff-info": line.workloads_info.clone().unwrap_or_default(),
    })
}

/// `--record-pods`: which pod holds each address, written as each tenure ends (and the
/// open ones on exit, with `to: null`). Memory: one entry per live address.
struct PodRecorder {
    path: PathBuf,
    file: std::io::BufWriter<std::fs::File>,
    open: HashMap<IpAddr, (String, String)>,
}

impl PodRecorder {
    fn create(path: &PathBuf) -> Result<PodRecorder, Failure> {
        let file = std::fs::File::create(path)
            .map_err(|e| Failure::input(format!("error: --record-pods {}: {e}", path.display())))?;
        Ok(PodRecorder {
            path: path.clone(),
            file: std::io::BufWriter::new(file),
            open: HashMap::new(),
        })
    }

    fn write(
        &mut self,
        ip: IpAddr,
        pod: &str,
        from: &str,
        to: Option<&str>,
    ) -> Result<(), Failure> {
        let entry = serde_json::json!({"ip": ip.to_string(), "pod": pod, "from": from, "to": to});
        writeln!(self.file, "{entry}").map_err(|e| {
            Failure::input(format!("error: --record-pods {}: {e}", self.path.display()))
        })
    }

    /// Close the tenures that ended and open the new ones.
    fn sync(&mut self, inventory: &Inventory) -> Result<(), Failure> {
        let now = jiff::Timestamp::now().to_string();
        let mut current: HashMap<IpAddr, String> = HashMap::new();
        for pod in inventory
            .pods()
            .iter()
            .filter(|p| !p.synthetic_ip && !p.host_network)
        {
            for ip in &pod.ips {
                current.insert(*ip, format!("{}/{}", pod.namespace, pod.name));
            }
        }
        let mut ended: Vec<(IpAddr, String, String)> = Vec::new();
        self.open.retain(|ip, (pod, from)| {
            let same = current.get(ip) == Some(pod);
            if !same {
                ended.push((*ip, pod.clone(), from.clone()));
            }
            same
        });
        ended.sort();
        for (ip, pod, from) in ended {
            self.write(ip, &pod, &from, Some(&now))?;
        }
        for (ip, pod) in current {
            self.open.entry(ip).or_insert_with(|| (pod, now.clone()));
        }
        self.file.flush().map_err(|e| {
            Failure::input(format!("error: --record-pods {}: {e}", self.path.display()))
        })
    }

    /// Write the tenures still open.
    fn finish(&mut self) -> Result<(), Failure> {
        let mut open: Vec<(IpAddr, (String, String))> = self.open.drain().collect();
        open.sort();
        for (ip, (pod, from)) in open {
            self.write(ip, &pod, &from, None)?;
        }
        self.file.flush().map_err(|e| {
            Failure::input(format!("error: --record-pods {}: {e}", self.path.display()))
        })
    }
}
