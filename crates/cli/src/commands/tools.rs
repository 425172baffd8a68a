//! `netfence gen`, `selector` and `demo`: the synthetic-cluster generator, the Calico selector
//! evaluator and the built-in example cluster.

use super::*;
use crate::examples;

/// The arguments of `netfence gen`.
#[derive(Args)]
pub struct GenArgs {
    /// Pods in total, the two CoreDNS pods included.
    #[arg(long)]
    pub pods: usize,
    /// Application namespaces.
    #[arg(long)]
    pub namespaces: usize,
    /// NetworkPolicies (at least the per-namespace baseline).
    #[arg(long)]
    pub policies: usize,
    /// Calico GlobalNetworkPolicies to add, in a `security` tier (0: Kubernetes only).
    #[arg(long, default_value_t = 0)]
    pub calico: usize,
    /// AdminNetworkPolicies to add (priorities 0, 1, …; at most 1001), then one
    /// BaselineAdminNetworkPolicy (0: none).
    #[arg(long, default_value_t = 0)]
    pub admin: usize,
    /// Seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Write every address in IPv6, as an IPv6-only EKS cluster has them: each IPv4 address
    /// as its twin in fd00:10::/96 (10.0.24.230 as fd00:10::a00:18e6, prefix lengths plus
    /// 96). The same pods, policies and verdicts as without it.
    #[arg(long)]
    pub ipv6: bool,
    /// Output directory: new or empty, unless --force.
    #[arg(short = 'o', long = "output", value_name = "DIR")]
    pub output: PathBuf,
    /// Write into a directory that is not empty: replace the generator's own files
    /// (`00-namespaces.yaml` … `60-admin.yaml`, removing one this cluster leaves empty) and
    /// leave every other file alone.
    #[arg(long)]
    pub force: bool,
}

/// The arguments of `netfence selector`.
#[derive(Args)]
pub struct SelectorArgs {
    /// The selector expression, e.g. `role == "db" && !has(legacy)`.
    pub expression: String,
    /// Labels to evaluate against: `k=v,k2=v2` (`''` for an endpoint with no labels).
    #[arg(long)]
    pub labels: Option<String>,
}

/// `netfence selector` (its help text is on [`crate::Command`]).
pub fn selector(args: SelectorArgs) -> Result<u8, Failure> {
    let SelectorArgs { expression, labels } = args;
    let mut out = std::io::stdout().lock();
    let selector = netfence_selector::calico::Selector::parse(&expression).map_err(|e| {
        let (excerpt, caret) = excerpt_at(&expression, e.column);
        Failure::input(format!(
            "error: invalid selector at column {}: {}\n  {excerpt}\n  {}^",
            e.column,
            e.message,
            " ".repeat(caret)
        ))
    })?;
    match labels {
        None => {
            writeln!(out, "{selector}").map_err(io_failure)?;
            Ok(0)
        }
        Some(text) => {
            let mut map = netfence_selector::Labels::new();
            for pair in text.split(',').filter(|p| !p.trim().is_empty()) {
                let (key, value) = pair.split_once('=').ok_or_else(|| {
                    Failure::input(format!("--labels: {pair:?} is not key=value"))
                })?;
                map.insert(key.trim().to_string(), value.trim().to_string());
            }
            let matched = selector.matches(&map);
            writeln!(out, "{matched}").map_err(io_failure)?;
            Ok(if matched { 0 } else { 1 })
        }
    }
}

/// The arguments of `netfence demo`.
#[derive(Args)]
pub struct DemoArgs {
    /// Write the example manifests to this directory instead of analysing them.
    #[arg(long, value_name = "DIR")]
    pub export: Option<PathBuf>,
}

/// `netfence demo` (its help text is on [`crate::Command`]).
pub fn demo(args: DemoArgs) -> Result<u8, Failure> {
    let DemoArgs { export } = args;
    let mut out = std::io::stdout().lock();
    if let Some(dir) = export {
        examples::export(&dir).map_err(|e| Failure::input(format!("{}: {e}", dir.display())))?;
        return Ok(0);
    }
    let engine = examples::engine()?;
    let groups = examples::security_groups()?;
    render::demo(&mut out, &engine, &groups).map_err(io_failure)?;
    Ok(0)
}

/// `netfence gen` (its help text is on [`crate::Command`]).
pub fn gen(args: GenArgs) -> Result<u8, Failure> {
    let GenArgs {
        pods,
        namespaces,
        policies,
        calico,
        admin,
        seed,
        ipv6,
        output,
        force,
    } = args;
    let options = netfence_gen::GenOptions {
        pods,
        namespaces,
        policies,
        calico,
        admin,
        seed,
    };
    write_cluster(&options, ipv6, &output, force)
}

/// Check the sizes and the directory before generating anything, then write.
fn write_cluster(
    options: &netfence_gen::GenOptions,
    ipv6: bool,
    output: &std::path::Path,
    force: bool,
) -> Result<u8, Failure> {
    options
        .check()
        .map_err(|e| Failure::input(format!("error: gen: {e}")))?;
    let dir = output.display();
    match std::fs::read_dir(output) {
        Ok(mut entries) => {
            if !force && entries.next().is_some() {
                return Err(Failure::input(format!(
                    "error: gen: {dir} is not empty; choose a new directory, or pass --force to replace the generated files in it"
                )));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Failure::input(format!("error: gen: {dir}: {e}"))),
    }
    let files =
        netfence_gen::generate(options).map_err(|e| Failure::input(format!("error: gen: {e}")))?;
    std::fs::create_dir_all(output).map_err(|e| Failure::input(format!("error: {dir}: {e}")))?;
    for (name, text) in files {
        let text = match ipv6 {
            true => netfence_gen::ipv6_twin(&text),
            false => text,
        };
        let path = output.join(&name);
        let written = if text.is_empty() {
            // A file of an earlier, larger run (--force) must not outlive it.
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                other => other,
            }
        } else {
            std::fs::write(&path, text)
        };
        written.map_err(|e| Failure::input(format!("error: {}: {e}", path.display())))?;
    }
    Ok(0)
}

/// At most 40 characters of `text` on either side of 1-based `column`, with `…` where cut, and
/// the caret's offset in that excerpt: a 20,000-character selector is not echoed whole.
fn excerpt_at(text: &str, column: usize) -> (String, usize) {
    const CONTEXT: usize = 40;
    let chars: Vec<char> = text.chars().collect();
    let at = column.saturating_sub(1).min(chars.len());
    let start = at.saturating_sub(CONTEXT);
    let end = (at + CONTEXT).min(chars.len());
    let mut excerpt: String = chars[start..end].iter().collect();
    let mut caret = at - start;
    if start > 0 {
        excerpt.insert(0, '…');
        caret += 1;
    }
    if end < chars.len() {
        excerpt.push('…');
    }
    (excerpt, caret)
}
