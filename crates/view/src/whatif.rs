//! What-if previews for `netfence serve`: the reachability delta a change would cause,
//! computed incrementally by [`netfence_engine::Cluster::preview`], which leaves the state the
//! page shows as it was, so every preview starts from the state the page was built from.

use netfence_engine::{Cluster, DiffLine, Engine, Focus};
use netfence_model::{Change, LoadErrors, Loader, ObjectKey};

/// The loaded objects and the engine built from them, read-only.
pub struct Baseline {
    cluster: Cluster,
}

/// What a preview found.
#[derive(Clone, Debug)]
pub struct Preview {
    /// The object changes, in the order they would be applied.
    pub changes: Vec<Change>,
    /// The reachability delta: the lines `netfence diff` prints for the state before and after.
    pub delta: Vec<DiffLine>,
    /// Which workloads were compared.
    pub focus: Focus,
}

impl Baseline {
    /// Build the engine from everything `loader` read, keeping the objects for previews.
    pub fn new(loader: Loader) -> Result<Baseline, LoadErrors> {
        Ok(Baseline {
            cluster: Cluster::new(loader)?,
        })
    }

    /// The engine of the loaded objects.
    pub fn engine(&self) -> &Engine {
        self.cluster.engine()
    }

    /// The delta of creating or replacing each object `changes` holds and then deleting
    /// `deletions`, as [`netfence_engine::Cluster::apply`] would return it; nothing is kept.
    /// Errors are those of [`Loader::apply`] (load errors in the changes, kinds that cannot
    /// be applied, nothing to change, a deletion naming no loaded object) and of
    /// [`Loader::finish`].
    pub fn preview(&self, changes: Loader, deletions: &[ObjectKey]) -> Result<Preview, LoadErrors> {
        let applied = self.cluster.preview(changes, deletions)?;
        Ok(Preview {
            changes: applied.changes,
            delta: applied.delta,
            focus: applied.focus,
        })
    }
}
