//! What an acceptor writes to stable storage before it answers (Recoverable Ring Paxos, thesis
//! 3.3.5): "when an acceptor replies to a Phase 1A or to a Phase 2A message, it must not forget its
//! state (rnd, v-rnd, v-val, v-vid) despite failures ... by requiring acceptors to keep their state
//! on the stable storage before replying".
//!
//! With `NodeConfig::stable_storage` set, the core emits an [`Action::Persist`](super::Action) each
//! time its acceptor state changes in a way a restarted acceptor must remember, before any action
//! that could reveal the change. The driver keeps the order: an action that follows a `Persist` is
//! performed only once that `Persist` is durable. Holding everything that follows, not only the
//! Phase 1B or 2B that carries the state, keeps the rule simple where the state leaves in other
//! forms: a coordinator counts its own vote at once (it handles its own messages) and its next Phase
//! 2A or decision already depends on it.
//!
//! Reading the records back in order and [`AcceptorState::replay`]ing them rebuilds the state the
//! acceptor had when the last durable one was written. Decisions are not recorded: a restarted
//! acceptor learns them again (3.3.4), and only promises and votes matter for agreement.

use super::acceptor::AcceptorState;
use super::types::{Batch, Instance, Round, Vid};

/// One change of an acceptor's state that must survive a crash.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Durable {
    /// The acceptor promised `rnd` (Phase 1B).
    Promise { rnd: Round },
    /// The acceptor voted for (`v_vid`, `v_val`) in round `v_rnd` at `instance` (Phase 2B); this
    /// also promises `v_rnd`.
    Vote { instance: Instance, v_rnd: Round, v_vid: Vid, v_val: Batch },
    /// Garbage collection forgot every instance below `below` (3.3.7). Not needed for agreement,
    /// only so that the log can drop what the acceptor no longer holds.
    Trimmed { below: Instance },
    /// The value this acceptor voted for at `instance`, `vid`, was decided. Not needed for
    /// agreement either: with it, a restarted acceptor still hands the decision to learners that
    /// ask (3.3.4), where after a restart of every acceptor no process would otherwise know the
    /// decisions between the slowest learner's version and the last ones decided.
    Decided { instance: Instance, vid: Vid },
}

impl AcceptorState {
    /// Applies one record read back from stable storage, as the acceptor changed its state when it
    /// wrote the record. Records replayed in the order they were written give the state back.
    pub fn replay(&mut self, record: Durable) {
        match record {
            Durable::Promise { rnd } => self.rnd = self.rnd.max(rnd),
            Durable::Trimmed { below } => self.trim(below),
            Durable::Vote { instance, v_rnd, v_vid, v_val } => {
                self.rnd = self.rnd.max(v_rnd);
                if instance >= self.trimmed_below {
                    self.change_slot(instance, |slot| slot.vote = Some((v_rnd, v_vid, v_val)));
                }
            }
            Durable::Decided { instance, vid } => {
                let voted = self.slots.get(instance).and_then(|slot| match &slot.vote {
                    Some((_, v_vid, v_val)) if *v_vid == vid => Some(v_val.clone()),
                    _ => None,
                });
                if let Some(v_val) = voted {
                    self.change_slot(instance, |slot| slot.decided = Some((vid, v_val)));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaying_what_an_acceptor_did_gives_its_state_back() {
        let mut live = AcceptorState::default();
        let mut replayed = AcceptorState::default();
        let (r1, r2) = (Round(0x1_0001), Round(0x2_0002));
        let val = Batch::empty();
        let vid = |seq| Vid { rnd: r1, seq };
        live.on_phase1a(r1);
        replayed.replay(Durable::Promise { rnd: r1 });
        for i in 0..5 {
            live.on_phase2a(r1, i, vid(i), &val);
            replayed.replay(Durable::Vote {
                instance: i,
                v_rnd: r1,
                v_vid: vid(i),
                v_val: val.clone(),
            });
        }
        live.on_phase2a(r2, 3, vid(9), &val);
        replayed.replay(Durable::Vote {
            instance: 3,
            v_rnd: r2,
            v_vid: vid(9),
            v_val: val.clone(),
        });
        live.trim(2);
        replayed.replay(Durable::Trimmed { below: 2 });
        // A vote below the trim point, read from before the trim was known, stays forgotten.
        replayed.replay(Durable::Vote {
            instance: 1,
            v_rnd: r1,
            v_vid: vid(1),
            v_val: val.clone(),
        });
        // A decision of the voted value is remembered; one of another value is not (never written).
        live.on_decision(4, vid(4), &val);
        replayed.replay(Durable::Decided { instance: 4, vid: vid(4) });
        replayed.replay(Durable::Decided { instance: 3, vid: vid(77) });
        assert_eq!(replayed, live);
        assert_eq!(replayed.rnd, r2);
    }
}
