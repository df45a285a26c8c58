//! What a replica starts from when it starts from a snapshot (`snapshot`): the service's state,
//! each lane's client tables, each source's position in the order, and where each ring's learner
//! must start so every source gets what it still needs.

use crate::multiring::RingId;
use crate::proto::{Instance, LearnerCheckpoint};
use crate::smr::{ClientTable, Service};

use super::replica::ReplicaError;
use super::snapshot::ReplicaSnapshot;
use super::source::SourcePosition;

/// See the module docs.
pub(crate) struct Restored<S> {
    pub state: S,
    /// Per lane: its table and g_all's (`None`: fresh tables).
    pub tables: Option<Vec<(ClientTable, ClientTable)>>,
    /// Per source, in the replica's order (`None`: from the rings' first instances).
    pub positions: Vec<Option<SourcePosition>>,
}

fn bad(what: impl std::fmt::Display) -> ReplicaError {
    ReplicaError::Snapshot(what.to_string())
}

impl<S: Service> Restored<S> {
    pub fn fresh(state: S, sources: usize) -> Restored<S> {
        Restored { state, tables: None, positions: vec![None; sources] }
    }

    /// From `snapshot`, for a replica of `lanes` lanes with `sources` sources: one per lane
    /// (P-SMR), or one for all (SMR's lane, sP-SMR's scheduler, whose position every lane's part
    /// carries).
    pub fn from_snapshot(
        snapshot: &ReplicaSnapshot,
        lanes: usize,
        sources: usize,
    ) -> Result<Restored<S>, ReplicaError> {
        let parts = &snapshot.checkpoint.lanes;
        if parts.len() != lanes {
            return Err(bad(format!(
                "it has {} lanes and this replica {lanes}: replicas of a service run the same \
                 model and workers",
                parts.len()
            )));
        }
        let state = S::restore(&snapshot.checkpoint.service).map_err(bad)?;
        let mut tables = Vec::new();
        for p in parts {
            let (table, _) = ClientTable::decode(&p.table).map_err(bad)?;
            let (table_all, _) = ClientTable::decode(&p.table_all).map_err(bad)?;
            tables.push((table, table_all));
        }
        let positions = parts
            .iter()
            .take(sources)
            .map(|p| SourcePosition::decode(&p.position).map(Some).map_err(bad))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Restored { state, tables: Some(tables), positions })
    }

    /// Per ring some source resumes in: the learner's start, the lowest instance any source
    /// needs again. The learner forgets which values it delivered before it (empty `delivered`):
    /// a value decided again after it is delivered again, and the client tables answer its
    /// commands as copies.
    pub fn resume_from(&self) -> Vec<(RingId, LearnerCheckpoint)> {
        let mut at: Vec<(RingId, Instance, u64)> = Vec::new();
        for p in self.positions.iter().flatten() {
            for (ring, instance) in p.needed_from() {
                let logical = p.merge.logical_of(ring, instance).unwrap_or(instance);
                match at.iter_mut().find(|a| a.0 == ring) {
                    Some(a) if a.1 <= instance => {}
                    Some(a) => *a = (ring, instance, logical),
                    None => at.push((ring, instance, logical)),
                }
            }
        }
        at.into_iter()
            .map(|(ring, next_instance, logical)| {
                let skipped_extra = logical.saturating_sub(next_instance);
                (ring, LearnerCheckpoint { next_instance, delivered: Vec::new(), skipped_extra })
            })
            .collect()
    }
}
