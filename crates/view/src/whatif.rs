//! What-if previews for `netfence serve`: the reachability delta a change would cause,
//! computed incrementally and without changing the state the page shows.
//!
//! [`netfence_engine::Cluster::apply`] commits the change (it takes `&mut self`, and the
//! engine offers no way back), and copying a `Cluster` per request would rebuild or copy the
//! whole engine. A [`Baseline`] keeps the same two things a `Cluster` keeps (the loaded
//! objects and the engine built from them) and runs the steps of `Cluster::apply` through the
//! engine's public API, on a copy of the loaded objects only: [`Loader::apply`], then
//! [`Engine::rebuilt`] (reusing every unaffected selection of the kept engine), then
//! [`netfence_engine::diff_touching`] over the workloads the change can affect. The kept
//! engine is only read, so every preview starts from the state the page was built from.

use netfence_engine::{diff_touching, DiffLine, Engine, Focus};
use netfence_model::{Change, LoadErrors, Loader, ObjectKey};

/// The loaded objects and the engine built from them, read-only.
pub struct Baseline {
    loader: Loader,
    engine: Engine,
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
        let engine = Engine::new(loader.clone().finish()?);
        Ok(Baseline { loader, engine })
    }

    /// The engine of the loaded objects.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The delta of creating or replacing each object `changes` holds and then deleting
    /// `deletions`, as [`netfence_engine::Cluster::apply`] would return it; nothing is kept.
    /// Errors are those of [`Loader::apply`] (load errors in the changes, kinds that cannot
    /// be applied, nothing to change, a deletion naming no loaded object) and of
    /// [`Loader::finish`].
    pub fn preview(&self, changes: Loader, deletions: &[ObjectKey]) -> Result<Preview, LoadErrors> {
        let mut loader = self.loader.clone();
        let changes = loader.apply(changes, deletions)?;
        let (after, focus, _) = self.engine.rebuilt(loader.finish()?);
        let delta = diff_touching(&self.engine, &after, focus.workloads());
        Ok(Preview {
            changes,
            delta,
            focus,
        })
    }
}
