//! The simulated network: decides for each message whether it is lost, duplicated, and when each copy
//! arrives. Partitions and crashed receivers are decided at delivery time by the simulation.

use crate::proto::Tick;

use super::faults::NetworkFaults;
use super::rng::Rng;

/// The arrival times of the copies of one message (empty: lost).
pub fn fate(
    rng: &mut Rng,
    faults: &NetworkFaults,
    now: Tick,
    multicast: bool,
    out: &mut Vec<Tick>,
) {
    out.clear();
    let drop_p = if multicast { faults.multicast_drop_p } else { faults.drop_p };
    if rng.chance(drop_p) {
        return;
    }
    out.push(now + rng.range(faults.delay_min_us, faults.delay_max_us));
    if rng.chance(faults.duplicate_p) {
        out.push(now + rng.range(faults.delay_min_us, faults.delay_max_us));
    }
}
