//! `netfence what-if`: the connectivity change that applying objects (and deleting others)
//! would cause, computed incrementally on the loaded state; the same lines as `netfence diff`
//! against the changed inputs.

use super::connectivity::DiffFormat;
use super::{emit, inputs, Args, ClusterArgs, Failure, Inputs, PathBuf};
use netfence_engine::{Applied, Cluster, DiffKind};
use netfence_model::{Loader, ObjectKey};

/// The arguments of `netfence what-if`.
#[derive(Args)]
pub struct WhatIfArgs {
    #[command(flatten)]
    pub inputs: Inputs,
    /// Objects to create or replace (by kind, namespace and name, as `kubectl apply`):
    /// files, directories or `-`; repeatable.
    #[arg(long, value_name = "PATH")]
    pub apply: Vec<PathBuf>,
    /// An object to delete, as `KIND/NAMESPACE/NAME` (`KIND/NAME` when cluster-scoped;
    /// Calico's namespaced policy is `NetworkPolicy.projectcalico.org`); repeatable.
    #[arg(long, value_name = "KIND/NS/NAME")]
    pub delete: Vec<String>,
    /// Output format (that of `netfence diff`).
    #[arg(short = 'o', long, value_enum, default_value_t = DiffFormat::Txt)]
    pub output: DiffFormat,
    /// Print counts and timings instead of the lines.
    #[arg(long)]
    pub summary: bool,
}

/// `netfence what-if` (its help text is on [`crate::Command`]). Exit 1 when connectivity
/// changes, as `diff`.
pub fn what_if(args: WhatIfArgs) -> Result<u8, Failure> {
    if args.apply.is_empty() && args.delete.is_empty() {
        return Err(Failure::input(
            "what-if: nothing to change (give --apply PATH or --delete KIND/NS/NAME)",
        ));
    }
    let deletions = args
        .delete
        .iter()
        .map(|text| {
            text.parse::<ObjectKey>()
                .map_err(|e| Failure::input(format!("--delete {e}")))
        })
        .collect::<Result<Vec<ObjectKey>, Failure>>()?;
    let mut cluster = Cluster::new(inputs::loader(&args.inputs)?)
        .map_err(|errors| Failure::input(errors.to_string()))?;
    inputs::report(cluster.engine().inventory());
    let changes: Loader = inputs::loader(&Inputs {
        files: args.apply.clone(),
        namespace: args.inputs.namespace.clone(),
        lenient: args.inputs.lenient,
        cni: args.inputs.cni.clone(),
        cluster: ClusterArgs::default(),
    })?;
    let applied = cluster
        .apply(changes, &deletions)
        .map_err(|errors| Failure::input(errors.to_string()))?;
    if args.summary {
        print_summary(&applied);
    } else {
        emit(args.output, applied.delta.as_slice())?;
    }
    Ok(u8::from(!applied.delta.is_empty()))
}

fn print_summary(applied: &Applied) {
    let count = |kind: DiffKind| applied.delta.iter().filter(|l| l.kind == kind).count();
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
    println!("objects changed: {}", applied.changes.len());
    for change in &applied.changes {
        println!("  {change}");
    }
    println!("lines changed: {}", count(DiffKind::Changed));
    println!("lines added: {}", count(DiffKind::Added));
    println!("lines removed: {}", count(DiffKind::Removed));
    match applied.focus.workloads() {
        Some(workloads) => println!("workloads compared: {}", workloads.len()),
        None => println!("workloads compared: all (network sets, nodes or tiers changed)"),
    }
    println!(
        "policies recompiled: {} new or changed, {} gone or changed; pods rematched: {}",
        applied.stats.changed_policies,
        applied.stats.removed_policies,
        applied.stats.rematched_pods
    );
    let timings = &applied.timings;
    println!(
        "incremental: {:.0} ms (relink {:.1} ms + engine {:.1} ms + delta {:.1} ms)",
        ms(timings.link + timings.engine + timings.delta),
        ms(timings.link),
        ms(timings.engine),
        ms(timings.delta)
    );
    println!(
        "relink: {}",
        if timings.patched {
            "inventory patched (pods, policies, network sets or tiers changed)"
        } else {
            "every object applied and linked again (a change the patch does not take)"
        }
    );
}
