//! A worker's deliveries from the rings: its own merge of the groups it delivers (P-SMR: g_i and
//! g_all; SMR and sP-SMR: the one group), over the rings' delivery taps.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::multiring::node::split_group_tag;
use crate::multiring::{GroupId, MergedBatch, TapMerge};
use crate::proto::IntoValues;
use crate::smr::{Delivered, ExecModel, WorkSource};

/// How long a worker with nothing to deliver sleeps before it looks at the stop flag again (the
/// rings unpark it as soon as they deliver).
const IDLE_PARK: Duration = Duration::from_millis(1);

/// See the module docs.
pub struct RingSource {
    model: ExecModel,
    merge: TapMerge,
    /// The groups this worker delivers; messages of others (rings shared by groups) are skipped.
    groups: Vec<GroupId>,
    /// The batch being handed out, and its group when the ring orders one group only.
    current: Option<(Option<GroupId>, IntoValues)>,
    stop: Arc<AtomicBool>,
    registered: bool,
}

impl RingSource {
    pub fn new(
        model: ExecModel,
        merge: TapMerge,
        groups: Vec<GroupId>,
        stop: Arc<AtomicBool>,
    ) -> RingSource {
        RingSource { model, merge, groups, current: None, stop, registered: false }
    }

    fn next_value(&mut self) -> Option<Delivered> {
        loop {
            let (group, values) = self.current.as_mut()?;
            let Some(v) = values.next() else {
                self.current = None;
                return None;
            };
            let (group, payload) = match *group {
                Some(g) => (g, v.payload),
                None => match split_group_tag(&v.payload) {
                    Some(tagged) => tagged,
                    None => continue,
                },
            };
            if self.groups.contains(&group) {
                return Some(Delivered { scope: self.model.scope_of(group), payload });
            }
        }
    }
}

impl WorkSource for RingSource {
    fn next(&mut self) -> Option<Delivered> {
        if !self.registered {
            self.merge.wake_on_delivery(std::thread::current());
            self.registered = true;
        }
        loop {
            if let Some(d) = self.next_value() {
                return Some(d);
            }
            if self.stop.load(Ordering::Acquire) {
                return None;
            }
            match self.merge.try_deliver_batch() {
                Some(MergedBatch { group, values, .. }) => {
                    self.current = Some((group, values.into_iter()));
                }
                None => std::thread::park_timeout(IDLE_PARK),
            }
        }
    }
}
