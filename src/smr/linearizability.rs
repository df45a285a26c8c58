//! A linearizability checker for histories of the key-value store (issue 6; Herlihy & Wing's
//! definition, Wing & Gong's search, split by key as in Lowe's and Porcupine's checkers).
//!
//! A history is what clients saw: each operation with the time it was called, the time its reply
//! came back, and the reply, or no reply at all (the client gave up: the operation may or may not
//! have taken effect). The history is linearizable when every operation can be placed at one point
//! between its call and its reply, so that the replies are those of the store's sequential
//! specification applied in that order.
//!
//! Operations on different keys never constrain each other in this store (each reads and writes
//! one key), and linearizability is *local* (Herlihy & Wing, Theorem 1): a history is linearizable
//! exactly when its restriction to each key is. So the search runs key by key, which keeps each
//! search small. Within a key it is Wing & Gong's: place next any operation that was called before
//! every pending operation returned, check its reply against the specification, go deeper, undo on
//! failure; and remember every (set of operations placed, state) already explored, which makes
//! the search linear in practice (Lowe).
//!
//! The sequential specification is that of the thesis' B+-tree store (6.5.1): `insert` of a key
//! that exists fails, `delete`, `update` and `read` of a key that does not exist fail.

use std::collections::{BTreeMap, BTreeSet, HashSet};

pub type Key = u64;
pub type Value = u64;

/// An operation on one key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KvOp {
    Insert(Key, Value),
    Delete(Key),
    Read(Key),
    Update(Key, Value),
}

impl KvOp {
    pub fn key(&self) -> Key {
        match *self {
            KvOp::Insert(k, _) | KvOp::Delete(k) | KvOp::Read(k) | KvOp::Update(k, _) => k,
        }
    }

    /// The sequential specification: the reply to this operation on a key holding `state`, and
    /// what the key holds after it.
    pub fn apply(&self, state: Option<Value>) -> (KvReply, Option<Value>) {
        match (*self, state) {
            (KvOp::Insert(_, v), None) => (KvReply::Ok, Some(v)),
            (KvOp::Insert(..), Some(_)) => (KvReply::Exists, state),
            (KvOp::Delete(_), Some(_)) => (KvReply::Ok, None),
            (KvOp::Read(_), Some(v)) => (KvReply::Value(v), state),
            (KvOp::Update(_, v), Some(_)) => (KvReply::Ok, Some(v)),
            (KvOp::Delete(_) | KvOp::Read(_) | KvOp::Update(..), None) => (KvReply::NotFound, None),
        }
    }
}

/// A reply of the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KvReply {
    Ok,
    Value(Value),
    /// `insert` of a key that exists.
    Exists,
    /// `delete`, `update` or `read` of a key that does not exist.
    NotFound,
}

/// One operation as a client saw it. Times are on one clock (the test's), in any unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Operation {
    pub client: u64,
    pub call: u64,
    /// When the reply came back; `None` with the reply when the client gave up waiting.
    pub returned: Option<(u64, KvReply)>,
    pub op: KvOp,
}

/// Why a history is not linearizable: the operations on one key admit no order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotLinearizable {
    pub key: Key,
    /// Every operation on that key, as the history has them.
    pub operations: Vec<Operation>,
}

impl std::fmt::Display for NotLinearizable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "no linearization of the {} operations on key {}:",
            self.operations.len(),
            self.key
        )?;
        for o in &self.operations {
            write!(f, "\n  client {} called {:?} at {}, ", o.client, o.op, o.call)?;
            match o.returned {
                Some((t, reply)) => write!(f, "got {reply:?} at {t}")?,
                None => write!(f, "got no reply")?,
            }
        }
        Ok(())
    }
}

/// Checks `history` (in any order), every key starting absent; the first key found without a
/// linearization is reported.
pub fn check(history: &[Operation]) -> Result<(), NotLinearizable> {
    check_from(history, |_| None)
}

/// Checks `history` against a store that started with `initial(key)` in each key (a preloaded
/// tree).
pub fn check_from(
    history: &[Operation],
    initial: impl Fn(Key) -> Option<Value>,
) -> Result<(), NotLinearizable> {
    let mut by_key: BTreeMap<Key, Vec<Operation>> = BTreeMap::new();
    for o in history {
        by_key.entry(o.op.key()).or_default().push(*o);
    }
    for (key, operations) in by_key {
        if !linearizable(&operations, initial(key)) {
            return Err(NotLinearizable { key, operations });
        }
    }
    Ok(())
}

/// The set of operations placed so far, one bit each.
#[derive(Clone, PartialEq, Eq, Hash)]
struct Placed(Vec<u64>);

impl Placed {
    fn new(n: usize) -> Placed {
        Placed(vec![0; n.div_ceil(64)])
    }
    fn has(&self, i: usize) -> bool {
        self.0[i / 64] & (1 << (i % 64)) != 0
    }
    fn flip(&mut self, i: usize) {
        self.0[i / 64] ^= 1 << (i % 64);
    }
}

/// One level of the search: the first operation not placed (every one before it is), the
/// operations that may come next, which one is being tried, and the state before it.
struct Level {
    lowest_pending: usize,
    candidates: Vec<usize>,
    next: usize,
    tried: Option<(usize, Option<Value>)>,
}

/// The operations (all on one key, sorted by call time) that may be placed next: those no
/// pending operation precedes (one precedes another when it returned before the other was
/// called). An operation without a reply never returned. `returns` holds the pending operations'
/// return times; since the operations are sorted by call, the scan stops at the first one called
/// after the earliest of them, so a level costs what the concurrency at that point is, not the
/// history's length.
fn candidates(
    ops: &[Operation],
    placed: &Placed,
    lowest_pending: usize,
    returns: &BTreeSet<(u64, usize)>,
) -> Vec<usize> {
    let first_return = returns.first().map(|&(t, _)| t);
    (lowest_pending..ops.len())
        .take_while(|&i| first_return.is_none_or(|t| ops[i].call <= t))
        .filter(|&i| !placed.has(i))
        .collect()
}

/// The first pending operation and the placed set's words from there on.
type MemoKey = (usize, Vec<u64>);

/// What a level's explored-state memo needs of the placed set: everything below the first
/// pending operation is placed, so only the words from there on tell sets apart.
fn memo_key(placed: &Placed, lowest_pending: usize) -> MemoKey {
    let words = &placed.0[lowest_pending / 64..];
    let used = words.iter().rposition(|&w| w != 0).map_or(0, |i| i + 1);
    (lowest_pending, words[..used].to_vec())
}

/// Wing & Gong's search over the operations of one key, with the explored (placed, state) pairs
/// remembered (module docs).
fn linearizable(ops: &[Operation], initial: Option<Value>) -> bool {
    let mut ops = ops.to_vec();
    ops.sort_by_key(|o| o.call);
    let ops = &ops[..];
    let n = ops.len();
    let mut placed = Placed::new(n);
    let mut left = n;
    let mut state = initial;
    let mut returns: BTreeSet<(u64, usize)> =
        ops.iter().enumerate().filter_map(|(i, o)| o.returned.map(|(t, _)| (t, i))).collect();
    let mut explored: HashSet<(MemoKey, Option<Value>)> = HashSet::new();
    let first = candidates(ops, &placed, 0, &returns);
    let mut levels = vec![Level { lowest_pending: 0, candidates: first, next: 0, tried: None }];
    while let Some(level) = levels.last_mut() {
        if left == 0 {
            return true;
        }
        // Undo what this level tried last.
        if let Some((i, before)) = level.tried.take() {
            placed.flip(i);
            left += 1;
            state = before;
            if let Some((t, _)) = ops[i].returned {
                returns.insert((t, i));
            }
        }
        let Some(&i) = level.candidates.get(level.next) else {
            levels.pop();
            continue;
        };
        level.next += 1;
        let (reply, after) = ops[i].op.apply(state);
        if ops[i].returned.is_some_and(|(_, r)| r != reply) {
            continue;
        }
        level.tried = Some((i, state));
        placed.flip(i);
        left -= 1;
        state = after;
        if let Some((t, _)) = ops[i].returned {
            returns.remove(&(t, i));
        }
        if left == 0 {
            return true;
        }
        let mut lowest_pending = level.lowest_pending;
        while placed.has(lowest_pending) {
            lowest_pending += 1;
        }
        if explored.insert((memo_key(&placed, lowest_pending), state)) {
            let candidates = candidates(ops, &placed, lowest_pending, &returns);
            levels.push(Level { lowest_pending, candidates, next: 0, tried: None });
        }
    }
    n == 0
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn op(client: u64, call: u64, ret: u64, op: KvOp, reply: KvReply) -> Operation {
        Operation { client, call, returned: Some((ret, reply)), op }
    }

    #[test]
    fn a_sequential_history_by_the_specification_is_linearizable() {
        let h = [
            op(1, 0, 1, KvOp::Insert(7, 70), KvReply::Ok),
            op(1, 2, 3, KvOp::Insert(7, 71), KvReply::Exists),
            op(2, 4, 5, KvOp::Read(7), KvReply::Value(70)),
            op(2, 6, 7, KvOp::Update(7, 72), KvReply::Ok),
            op(1, 8, 9, KvOp::Delete(7), KvReply::Ok),
            op(1, 10, 11, KvOp::Read(7), KvReply::NotFound),
            op(2, 12, 13, KvOp::Update(8, 1), KvReply::NotFound),
        ];
        assert_eq!(check(&h), Ok(()));
        assert_eq!(check(&[]), Ok(()));
    }

    #[test]
    fn a_read_concurrent_with_a_write_may_see_either_value() {
        for seen in [10, 11] {
            let h = [
                op(1, 0, 1, KvOp::Insert(1, 10), KvReply::Ok),
                op(1, 2, 6, KvOp::Update(1, 11), KvReply::Ok),
                op(2, 3, 5, KvOp::Read(1), KvReply::Value(seen)),
            ];
            assert_eq!(check(&h), Ok(()), "a read overlapping the update saw {seen}");
        }
    }

    #[test]
    fn a_stale_read_is_refused_and_its_key_named() {
        let h = [
            op(1, 0, 1, KvOp::Insert(1, 10), KvReply::Ok),
            op(3, 0, 1, KvOp::Insert(2, 20), KvReply::Ok),
            op(1, 2, 3, KvOp::Update(1, 11), KvReply::Ok),
            // After the update returned, a read that still sees the old value.
            op(2, 4, 5, KvOp::Read(1), KvReply::Value(10)),
            op(3, 4, 5, KvOp::Read(2), KvReply::Value(20)),
        ];
        let err = check(&h).unwrap_err();
        assert_eq!(err.key, 1);
        assert_eq!(err.operations.len(), 3);
        assert!(err.to_string().contains("Read(1)"), "{err}");
    }

    #[test]
    fn an_operation_without_a_reply_may_or_may_not_have_taken_effect() {
        let lost = Operation { client: 1, call: 2, returned: None, op: KvOp::Update(1, 11) };
        for seen in [10, 11] {
            let h = [
                op(1, 0, 1, KvOp::Insert(1, 10), KvReply::Ok),
                lost,
                op(2, 5, 6, KvOp::Read(1), KvReply::Value(seen)),
                op(2, 7, 8, KvOp::Read(1), KvReply::Value(seen)),
            ];
            assert_eq!(check(&h), Ok(()), "the lost update, then reads of {seen}");
        }
        // But it takes effect once at most: a read cannot see it and then not.
        let h = [
            op(1, 0, 1, KvOp::Insert(1, 10), KvReply::Ok),
            lost,
            op(2, 5, 6, KvOp::Read(1), KvReply::Value(11)),
            op(2, 7, 8, KvOp::Read(1), KvReply::Value(10)),
        ];
        assert!(check(&h).is_err());
    }

    #[test]
    fn two_inserts_of_one_key_cannot_both_succeed() {
        let h = [
            op(1, 0, 5, KvOp::Insert(4, 1), KvReply::Ok),
            op(2, 1, 6, KvOp::Insert(4, 2), KvReply::Ok),
        ];
        assert!(check(&h).is_err());
    }

    /// A history from a store that really is linearizable: operations applied in turn to a map,
    /// each with a call before and a reply after its turn, overlapping at random.
    fn linearizable_history(script: &[(u8, u8, u8, u8, u8)]) -> Vec<Operation> {
        let mut store: BTreeMap<Key, Value> = BTreeMap::new();
        script
            .iter()
            .enumerate()
            .map(|(i, &(kind, key, value, before, after))| {
                let (key, value) = (u64::from(key % 3), u64::from(value));
                let o = match kind % 4 {
                    0 => KvOp::Insert(key, value),
                    1 => KvOp::Delete(key),
                    2 => KvOp::Read(key),
                    _ => KvOp::Update(key, value),
                };
                let (reply, after_state) = o.apply(store.get(&key).copied());
                match after_state {
                    Some(v) => store.insert(key, v),
                    None => store.remove(&key),
                };
                // Its turn is at 10 i; the call and reply lie around it.
                let at = 10 * i as u64 + 100;
                let call = at - u64::from(before % 50);
                let ret = at + 1 + u64::from(after % 50);
                let returned = (after % 17 != 0).then_some((ret, reply));
                Operation { client: i as u64, call, returned, op: o }
            })
            .collect()
    }

    proptest! {
        #[test]
        fn histories_of_a_linearizable_store_are_accepted(
            script in proptest::collection::vec(any::<(u8, u8, u8, u8, u8)>(), 0..60),
        ) {
            let h = linearizable_history(&script);
            prop_assert_eq!(check(&h), Ok(()));
        }

        #[test]
        fn a_read_made_stale_in_a_sequential_history_is_refused(
            script in proptest::collection::vec(any::<(u8, u8, u8, u8, u8)>(), 2..40),
        ) {
            // No overlap at all: the only order is the real one, so changing what a read saw
            // after a successful write of another value must be caught.
            let sequential: Vec<_> = script.iter().map(|&(a, b, c, _, _)| (a, b, c, 0, 1)).collect();
            let mut h = linearizable_history(&sequential);
            let read = h.iter().position(|o| {
                matches!(o.op, KvOp::Read(_)) && matches!(o.returned, Some((_, KvReply::Value(_))))
            });
            if let Some(i) = read
                && let Some((t, KvReply::Value(v))) = h[i].returned
            {
                h[i].returned = Some((t, KvReply::Value(v.wrapping_add(1000))));
                prop_assert!(check(&h).is_err(), "{h:?}");
            }
        }
    }
}
