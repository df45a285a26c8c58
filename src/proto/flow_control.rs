//! The coordinator's window of outstanding consensus instances and its flow control (thesis 3.3.6).
//!
//! Learners that fall behind send a notice; the coordinator halves its window (down to a floor) and
//! opens fewer instances in parallel. While no notice arrives the window grows back by one instance per
//! grow interval, up to the configured size: multiplicative decrease, additive increase.
//!
//! Even the smallest window lets a ring decide an instance or two per round trip, thousands a
//! second, which a learner whose application takes nothing (a Multi-Ring learner waiting for
//! another ring, 5.4.7) would buffer without bound. A notice reporting a backlog beyond the pause
//! bound therefore closes the window altogether; it opens again (at its halved size) when a notice
//! reports less, or after a grow interval without notices. A learner's buffer is then bounded by the pause
//! bound plus what a ring decides between two notices.

use super::types::Tick;

#[derive(Debug, Clone)]
pub struct FlowWindow {
    current_instances: u32,
    min_instances: u32,
    max_instances: u32,
    grow_interval_us: Tick,
    last_change_at: Tick,
    /// Closed by a backlog beyond the pause bound.
    paused: bool,
}

impl FlowWindow {
    pub fn new(
        max_instances: u32,
        min_instances: u32,
        grow_interval_us: Tick,
        now: Tick,
    ) -> FlowWindow {
        FlowWindow {
            current_instances: max_instances,
            min_instances,
            max_instances,
            grow_interval_us,
            last_change_at: now,
            paused: false,
        }
    }

    /// How many instances may be open now.
    pub fn instances(&self) -> u32 {
        if self.paused { 0 } else { self.current_instances }
    }

    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// A learner reported `backlog_instances` decided and not delivered: shrink, and close while
    /// the backlog exceeds `pause_above_instances`.
    pub fn on_notice(&mut self, now: Tick, backlog_instances: u32, pause_above_instances: u32) {
        self.current_instances = (self.current_instances / 2).max(self.min_instances);
        self.paused = backlog_instances > pause_above_instances;
        self.last_change_at = now;
    }

    /// Open again after a quiet grow interval, and grow back by one instance per quiet grow
    /// interval.
    pub fn on_tick(&mut self, now: Tick) {
        if self.paused && now >= self.last_change_at + self.grow_interval_us {
            self.paused = false;
            self.last_change_at = now;
            return;
        }
        if self.current_instances < self.max_instances
            && now >= self.last_change_at + self.grow_interval_us
        {
            self.current_instances += 1;
            self.last_change_at = now;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shrinks_on_notice_and_grows_back_when_quiet() {
        let mut w = FlowWindow::new(32, 2, 10, 0);
        w.on_notice(0, 100, 1000);
        assert_eq!(w.instances(), 16);
        for _ in 0..5 {
            w.on_notice(1, 100, 1000);
        }
        assert_eq!(w.instances(), 2, "never below the floor");
        w.on_tick(5);
        assert_eq!(w.instances(), 2, "no growth inside the grow interval");
        w.on_tick(11);
        assert_eq!(w.instances(), 3);
        for t in 0..100 {
            w.on_tick(20 + 10 * t);
        }
        assert_eq!(w.instances(), 32, "never above the configured window");
    }

    #[test]
    fn a_backlog_beyond_the_pause_bound_closes_the_window_until_it_shrinks_or_time_passes() {
        let mut w = FlowWindow::new(32, 2, 10, 0);
        w.on_notice(0, 5000, 2000);
        assert_eq!(w.instances(), 0, "closed");
        w.on_tick(9);
        assert_eq!(w.instances(), 0, "still closed inside the grow interval");
        w.on_notice(9, 1500, 2000);
        assert_eq!(w.instances(), 8, "a smaller backlog opens it, halved again");
        w.on_notice(12, 5000, 2000);
        w.on_tick(22);
        assert_eq!(w.instances(), 4, "a quiet grow interval opens it");
    }
}
