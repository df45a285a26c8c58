//! The coordinator's window of outstanding consensus instances and its flow control (thesis 3.3.6).
//!
//! Learners that fall behind send a notice; the coordinator halves its window (down to a floor) and
//! opens fewer instances in parallel. While no notice arrives the window grows back by one instance per
//! grow interval, up to the configured size: multiplicative decrease, additive increase.

use super::types::Tick;

#[derive(Debug, Clone)]
pub struct FlowWindow {
    current_instances: u32,
    min_instances: u32,
    max_instances: u32,
    grow_interval_us: Tick,
    last_change_at: Tick,
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
        }
    }

    /// How many instances may be open now.
    pub fn instances(&self) -> u32 {
        self.current_instances
    }

    /// A learner reported a backlog: shrink.
    pub fn on_notice(&mut self, now: Tick) {
        self.current_instances = (self.current_instances / 2).max(self.min_instances);
        self.last_change_at = now;
    }

    /// Grow back by one instance per quiet grow interval.
    pub fn on_tick(&mut self, now: Tick) {
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
        w.on_notice(0);
        assert_eq!(w.instances(), 16);
        for _ in 0..5 {
            w.on_notice(1);
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
}
