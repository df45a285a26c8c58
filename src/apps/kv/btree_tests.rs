//! Tests of the B+-tree: model-based property tests (against `BTreeMap`) with node capacities
//! small enough that splits, borrows, merges and root changes happen constantly; bulk loading;
//! the checksum; snapshots; and opt-PSMR runs on several threads compared with sequential runs.

use std::collections::BTreeMap;
use std::sync::Barrier;

use proptest::collection::{btree_set, vec};
use proptest::prelude::*;

use super::*;

/// A small deterministic generator for the tests that are not proptest's.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix64(self.0)
    }

    /// Uniform enough in `0..bound` for tests.
    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i as u64 + 1) as usize);
        }
    }
}

fn caps(leaf_keys: usize, internal_children: usize) -> NodeCapacities {
    NodeCapacities { leaf_keys, internal_children }
}

fn contents(tree: &BPlusTree) -> Vec<(u64, u64)> {
    tree.iter().collect()
}

fn model_contents(model: &BTreeMap<u64, u64>) -> Vec<(u64, u64)> {
    model.iter().map(|(&k, &v)| (k, v)).collect()
}

// ---- model-based property tests ----

#[derive(Clone, Copy, Debug)]
enum Op {
    Insert(u64, u64),
    Delete(u64),
    Get(u64),
    Update(u64, u64),
    TryInsert(u64, u64, KeyRange),
    TryDelete(u64, KeyRange),
}

fn arb_range(keys_end: u64) -> impl Strategy<Value = KeyRange> {
    // Ranges that start at 0 or end at u64::MAX are the only ones that can cover the leftmost and
    // rightmost leaves, so they come up often.
    prop_oneof![
        Just(KeyRange::FULL),
        (0..keys_end, 0..keys_end).prop_map(|(a, b)| KeyRange::new(a.min(b), a.max(b))),
        (0..keys_end).prop_map(|last| KeyRange::new(0, last)),
        (0..keys_end).prop_map(|first| KeyRange::new(first, u64::MAX)),
    ]
}

fn arb_op(keys_end: u64) -> impl Strategy<Value = Op> {
    let key = 0..keys_end;
    prop_oneof![
        4 => (key.clone(), any::<u64>()).prop_map(|(k, v)| Op::Insert(k, v)),
        4 => key.clone().prop_map(Op::Delete),
        1 => key.clone().prop_map(Op::Get),
        1 => (key.clone(), any::<u64>()).prop_map(|(k, v)| Op::Update(k, v)),
        2 => (key.clone(), any::<u64>(), arb_range(keys_end))
            .prop_map(|(k, v, r)| Op::TryInsert(k, v, r)),
        2 => (key, arb_range(keys_end)).prop_map(|(k, r)| Op::TryDelete(k, r)),
    ]
}

fn arb_capacities() -> impl Strategy<Value = NodeCapacities> {
    prop_oneof![
        4 => (2..=6usize, 3..=6usize).prop_map(|(l, i)| caps(l, i)),
        1 => (2..=LEAF_KEYS_MAX, 3..=INTERNAL_CHILDREN_MAX).prop_map(|(l, i)| caps(l, i)),
        1 => Just(NodeCapacities::DEFAULT),
    ]
}

/// The decision the specification asks of `try_insert_within`, from the leaf's facts before it.
fn expected_try_insert(
    tree: &BPlusTree,
    present: bool,
    key: u64,
    range: KeyRange,
) -> Result<bool, Conflict> {
    let (interval, fill) = tree.leaf_facts(key);
    if present {
        Ok(false)
    } else if range.covers(interval) && fill < tree.capacities().leaf_keys {
        Ok(true)
    } else {
        Err(Conflict)
    }
}

fn expected_try_delete(
    tree: &BPlusTree,
    present: bool,
    key: u64,
    range: KeyRange,
) -> Result<bool, Conflict> {
    let (interval, fill) = tree.leaf_facts(key);
    let keeps_min = tree.depth() == 1 || fill > tree.capacities().leaf_keys_min();
    if !present {
        Ok(false)
    } else if range.covers(interval) && keeps_min {
        Ok(true)
    } else {
        Err(Conflict)
    }
}

/// Runs `ops` on `tree` and on `model`, checking every reply and, every `check_every` steps, the
/// invariants and the whole content.
fn agrees_with_model(
    tree: &mut BPlusTree,
    model: &mut BTreeMap<u64, u64>,
    ops: &[Op],
    check_every: usize,
) -> Result<(), TestCaseError> {
    for (step, &op) in ops.iter().enumerate() {
        match op {
            Op::Insert(k, v) => {
                let absent = !model.contains_key(&k);
                if absent {
                    model.insert(k, v);
                }
                prop_assert_eq!(tree.insert(k, v), absent, "step {}: {:?}", step, op);
            }
            Op::Delete(k) => {
                prop_assert_eq!(
                    tree.delete(k),
                    model.remove(&k).is_some(),
                    "step {}: {:?}",
                    step,
                    op
                )
            }
            Op::Get(k) => {
                prop_assert_eq!(tree.get(k), model.get(&k).copied(), "step {}: {:?}", step, op)
            }
            Op::Update(k, v) => {
                let present = model.get_mut(&k).map(|slot| *slot = v).is_some();
                prop_assert_eq!(tree.update(k, v), present, "step {}: {:?}", step, op);
            }
            Op::TryInsert(k, v, range) => {
                let expected = expected_try_insert(tree, model.contains_key(&k), k, range);
                prop_assert_eq!(
                    tree.try_insert_within(k, v, range),
                    expected,
                    "step {}: {:?}",
                    step,
                    op
                );
                if expected == Ok(true) {
                    model.insert(k, v);
                }
            }
            Op::TryDelete(k, range) => {
                let expected = expected_try_delete(tree, model.contains_key(&k), k, range);
                prop_assert_eq!(
                    tree.try_delete_within(k, range),
                    expected,
                    "step {}: {:?}",
                    step,
                    op
                );
                if expected == Ok(true) {
                    model.remove(&k);
                }
            }
        }
        if step % check_every == 0 {
            tree.check_invariants();
            prop_assert_eq!(tree.len(), model.len());
        }
    }
    tree.check_invariants();
    prop_assert_eq!(contents(tree), model_contents(model));
    prop_assert_eq!(tree.len(), model.len());
    prop_assert_eq!(tree.is_empty(), model.is_empty());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Long sequences on a small key space: the tree grows and shrinks through many levels.
    #[test]
    fn random_ops_agree_with_btreemap(
        capacities in arb_capacities(),
        initial in btree_set(0..400u64, 0..300),
        ops in vec(arb_op(400), 2000..3000),
    ) {
        let mut model: BTreeMap<u64, u64> = initial.iter().map(|&k| (k, k ^ 0x5a5a)).collect();
        let mut tree = BPlusTree::bulk_load_with_capacities(model_contents(&model), capacities);
        tree.check_invariants();
        agrees_with_model(&mut tree, &mut model, &ops, 1)?;
        // The checksum depends on the pairs only.
        let rebuilt = BPlusTree::bulk_load(model_contents(&model));
        prop_assert_eq!(tree.checksum(), rebuilt.checksum());
    }

    /// A clone is an independent tree of the same shape.
    #[test]
    fn clones_are_independent(
        capacities in arb_capacities(),
        ops in vec(arb_op(200), 0..500),
        more in vec(arb_op(200), 0..500),
    ) {
        let mut tree = BPlusTree::with_capacities(capacities);
        let mut model = BTreeMap::new();
        agrees_with_model(&mut tree, &mut model, &ops, 50)?;
        let snapshot = model.clone();
        let mut copy = tree.clone();
        copy.check_invariants();
        prop_assert_eq!(copy.depth(), tree.depth());
        agrees_with_model(&mut copy, &mut model, &more, 50)?;
        prop_assert_eq!(contents(&tree), model_contents(&snapshot));
    }
}

/// 100,000 keys inserted in ascending, descending and random order, then all deleted in another
/// order, on the smallest and on the default capacities.
#[test]
fn hundred_thousand_inserts_then_deletes_of_every_key() {
    const KEYS: u64 = 100_000;
    let mut rng = SplitMix(7);
    for capacities in [caps(2, 3), caps(5, 4), NodeCapacities::DEFAULT] {
        let ascending: Vec<u64> = (0..KEYS).map(|i| i * 3).collect();
        let mut random = ascending.clone();
        rng.shuffle(&mut random);
        let descending: Vec<u64> = ascending.iter().rev().copied().collect();
        for (insert_order, delete_order) in
            [(&ascending, &random), (&random, &ascending), (&descending, &descending)]
        {
            let mut tree = BPlusTree::with_capacities(capacities);
            for (i, &k) in insert_order.iter().enumerate() {
                assert!(tree.insert(k, !k));
                if i % 20_000 == 0 {
                    tree.check_invariants();
                }
            }
            tree.check_invariants();
            assert_eq!(tree.len(), KEYS as usize);
            assert!(!tree.insert(insert_order[0], 1), "a present key is not inserted again");
            assert_eq!(contents(&tree), ascending.iter().map(|&k| (k, !k)).collect::<Vec<_>>());
            for &k in &ascending {
                assert_eq!(tree.get(k), Some(!k));
                assert_eq!(tree.get(k + 1), None);
            }
            for (i, &k) in delete_order.iter().enumerate() {
                assert!(tree.delete(k), "{capacities:?}: delete {k}");
                assert!(!tree.delete(k));
                if i % 20_000 == 0 {
                    tree.check_invariants();
                }
            }
            tree.check_invariants();
            assert!(tree.is_empty());
            assert_eq!(tree.depth(), 1, "the root collapsed back to a leaf");
            assert_eq!(tree.iter().next(), None);
            // Freed nodes are reused: growing the same way again allocates no new slots.
            let (leaves, internals) = (tree.leaves.len(), tree.internals.len());
            for &k in insert_order {
                tree.insert(k, k);
            }
            tree.check_invariants();
            assert_eq!((tree.leaves.len(), tree.internals.len()), (leaves, internals));
        }
    }
}

// ---- bulk load ----

#[test]
fn bulk_load_of_every_small_count_and_capacity() {
    for capacities in [
        caps(2, 3),
        caps(3, 3),
        caps(4, 4),
        caps(5, 7),
        caps(7, 5),
        caps(64, 3),
        caps(2, 64),
        NodeCapacities::DEFAULT,
    ] {
        for count in 0..300u64 {
            let pairs: Vec<(u64, u64)> = (0..count).map(|i| (i * 2 + 1, i)).collect();
            let tree = BPlusTree::bulk_load_with_capacities(pairs.clone(), capacities);
            tree.check_invariants();
            assert_eq!(contents(&tree), pairs, "{capacities:?}, {count} pairs");
            assert_eq!(tree.len(), count as usize);
            assert_eq!(tree.is_empty(), count == 0);
        }
    }
}

#[test]
fn bulk_load_of_zero_one_and_many_then_operations() {
    let empty = BPlusTree::bulk_load(std::iter::empty());
    empty.check_invariants();
    assert!(empty.is_empty());
    assert_eq!((empty.len(), empty.depth(), empty.get(0)), (0, 1, None));

    let mut one = BPlusTree::bulk_load([(u64::MAX, 9)]);
    one.check_invariants();
    assert_eq!((one.len(), one.depth(), one.get(u64::MAX)), (1, 1, Some(9)));
    assert!(one.insert(0, 1));
    assert!(one.delete(u64::MAX));
    assert_eq!(contents(&one), vec![(0, 1)]);

    const MANY: u64 = 200_000;
    let mut many = BPlusTree::bulk_load((0..MANY).map(|i| (i * 10, i)));
    many.check_invariants();
    assert_eq!(many.len(), MANY as usize);
    assert_eq!(many.depth(), 4);
    // Three quarters full: about 48 of 64 keys per leaf.
    let per_leaf = MANY as usize / many.leaf_count();
    assert!((45..=48).contains(&per_leaf), "{per_leaf} keys per leaf");
    // So inserts find room without splitting at first.
    let leaves = many.leaf_count();
    for i in 0..MANY {
        if i % 48 == 0 {
            assert_eq!(many.try_insert_within(i * 10 + 5, 0, KeyRange::FULL), Ok(true));
        }
    }
    assert_eq!(many.leaf_count(), leaves);
    let mut model: BTreeMap<u64, u64> = many.iter().collect();
    let mut rng = SplitMix(3);
    let ops: Vec<Op> = (0..50_000)
        .map(|_| {
            let k = rng.below(MANY * 10);
            match rng.below(4) {
                0 => Op::Insert(k, k),
                1 => Op::Delete(k),
                2 => Op::Update(k, 1),
                _ => Op::Get(k),
            }
        })
        .collect();
    agrees_with_model(&mut many, &mut model, &ops, 10_000).unwrap();
}

#[test]
#[should_panic(expected = "strictly increasing keys: key 5 (pair 2) follows key 5")]
fn bulk_load_refuses_duplicate_keys() {
    BPlusTree::bulk_load([(1, 0), (5, 0), (5, 0)]);
}

#[test]
#[should_panic(expected = "strictly increasing keys: key 3 (pair 1) follows key 4")]
fn bulk_load_refuses_decreasing_keys() {
    BPlusTree::bulk_load([(4, 0), (3, 0)]);
}

#[test]
fn group_count_gives_every_node_its_minimum_and_at_most_its_capacity() {
    for capacity in 3..=INTERNAL_CHILDREN_MAX {
        let c = caps(2, capacity);
        let (min, per_node) = (c.internal_children_min(), c.internal_children_bulk());
        for items in 2..2_000 {
            let nodes = group_count(items, min, per_node);
            assert!(
                nodes == 1 || items / nodes >= min,
                "{items} items over {nodes} nodes, min {min}"
            );
            assert!(
                items.div_ceil(nodes) <= capacity,
                "{items} items over {nodes} nodes, cap {capacity}"
            );
        }
    }
}

// ---- explicit opt-PSMR decisions ----

/// Leaves [10 20 30] [40 50 60] [70 80 90] under one root (bulk fill 3 of 4): intervals
/// [0, 39], [40, 69], [70, MAX].
fn three_leaves() -> BPlusTree {
    let tree = BPlusTree::bulk_load_with_capacities((1..=9).map(|i| (i * 10, i)), caps(4, 4));
    tree.check_invariants();
    assert_eq!((tree.depth(), tree.leaf_count()), (2, 3));
    assert_eq!(tree.leaf_facts(15), (KeyRange::new(0, 39), 3));
    assert_eq!(tree.leaf_facts(69), (KeyRange::new(40, 69), 3));
    assert_eq!(tree.leaf_facts(70), (KeyRange::new(70, u64::MAX), 3));
    tree
}

#[test]
fn try_insert_within_conflicts_when_the_leaf_spans_two_ranges() {
    let tree = three_leaves();
    // The leaf [40, 69] spans both halves of a split at 55.
    assert_eq!(tree.try_insert_within(45, 0, KeyRange::new(0, 54)), Err(Conflict));
    assert_eq!(tree.try_insert_within(65, 0, KeyRange::new(55, u64::MAX)), Err(Conflict));
    // The rightmost leaf reaches u64::MAX, so a range ending below it never covers it.
    assert_eq!(tree.try_insert_within(75, 0, KeyRange::new(40, 1_000)), Err(Conflict));
    // Present keys: nothing to insert, whoever shares the leaf.
    assert_eq!(tree.try_insert_within(50, 0, KeyRange::new(0, 54)), Ok(false));
    // Ranges that cover the leaf exactly, or more.
    assert_eq!(tree.try_insert_within(45, 1, KeyRange::new(40, 69)), Ok(true));
    assert_eq!(tree.try_insert_within(5, 2, KeyRange::new(0, 39)), Ok(true));
    assert_eq!(tree.try_insert_within(75, 3, KeyRange::new(40, u64::MAX)), Ok(true));
    tree.check_invariants();
    assert_eq!(tree.len(), 12);
    assert_eq!((tree.get(45), tree.get(5), tree.get(75)), (Some(1), Some(2), Some(3)));
}

#[test]
fn try_insert_within_conflicts_when_the_leaf_is_full() {
    let tree = three_leaves();
    let owned = KeyRange::new(40, 69);
    assert_eq!(tree.try_insert_within(45, 0, owned), Ok(true));
    assert_eq!(tree.leaf_facts(45), (owned, 4));
    assert_eq!(tree.try_insert_within(46, 0, owned), Err(Conflict), "a split is structural");
    assert_eq!(tree.try_insert_within(46, 0, KeyRange::FULL), Err(Conflict));
    assert_eq!(tree.get(46), None);

    // A full root leaf conflicts even for the full range; only the full range covers a root leaf.
    let mut root = BPlusTree::with_capacities(caps(4, 3));
    for k in [10, 20, 30] {
        root.insert(k, k);
    }
    assert_eq!(root.try_insert_within(5, 0, KeyRange::new(0, 1 << 40)), Err(Conflict));
    assert_eq!(root.try_insert_within(5, 0, KeyRange::FULL), Ok(true));
    assert_eq!(root.try_insert_within(25, 0, KeyRange::FULL), Err(Conflict));
    assert!(root.insert(25, 0), "the dependent path splits");
    assert_eq!(root.depth(), 2);
    root.check_invariants();
}

#[test]
fn try_delete_within_conflicts_on_underflow_and_on_shared_leaves() {
    let tree = three_leaves();
    let owned = KeyRange::new(40, 69);
    assert_eq!(tree.try_delete_within(45, owned), Ok(false), "absent");
    assert_eq!(tree.try_delete_within(45, KeyRange::new(0, 44)), Ok(false), "absent, shared leaf");
    assert_eq!(tree.try_delete_within(50, KeyRange::new(45, 69)), Err(Conflict), "shared leaf");
    assert_eq!(tree.try_delete_within(50, owned), Ok(true), "3 keys to 2, the minimum");
    assert_eq!(tree.try_delete_within(40, owned), Err(Conflict), "would underflow");
    assert_eq!(tree.try_delete_within(40, KeyRange::FULL), Err(Conflict), "would underflow");
    assert_eq!(tree.get(40), Some(4));
    tree.check_invariants();

    // A root leaf may go down to empty.
    let root = BPlusTree::bulk_load_with_capacities([(1, 1), (2, 2)], caps(4, 3));
    assert_eq!(
        root.try_delete_within(1, KeyRange::new(0, 1)),
        Err(Conflict),
        "the root spans all keys"
    );
    assert_eq!(root.try_delete_within(1, KeyRange::FULL), Ok(true));
    assert_eq!(root.try_delete_within(2, KeyRange::FULL), Ok(true));
    assert!(root.is_empty());
    root.check_invariants();
}

#[test]
fn delete_borrows_merges_and_collapses_the_root() {
    let mut tree = three_leaves();
    // [10 20 30] [40 50 60] [70 80 90]; the minimum is 2.
    assert!(tree.delete(80));
    assert!(tree.delete(90)); // [70] underflows and borrows 60 from the left.
    tree.check_invariants();
    assert_eq!(tree.leaf_facts(60).0, KeyRange::new(60, u64::MAX));
    assert!(tree.delete(50)); // [40] underflows and borrows 30 from the left.
    tree.check_invariants();
    assert_eq!(tree.leaf_facts(30).0, KeyRange::new(30, 59));
    // [10 20] [30 40] [60 70]
    assert!(tree.delete(70)); // [60] underflows, the left sibling is at the minimum: merge left.
    tree.check_invariants();
    assert_eq!((tree.leaf_count(), tree.leaf_facts(60).0), (2, KeyRange::new(30, u64::MAX)));
    // [10 20] [30 40 60]
    assert!(tree.delete(10)); // [20] has no left sibling and borrows 30 from the right.
    tree.check_invariants();
    assert_eq!(tree.leaf_facts(20).0, KeyRange::new(0, 39));
    // [20 30] [40 60]
    assert!(tree.delete(20)); // [30] merges with its right sibling; the root collapses.
    tree.check_invariants();
    assert_eq!((tree.depth(), contents(&tree)), (1, vec![(30, 3), (40, 4), (60, 6)]));
}

// ---- checksum ----

#[test]
fn checksum_ignores_shape_and_sees_every_pair() {
    let mut rng = SplitMix(11);
    let pairs: Vec<(u64, u64)> =
        (0..5_000u64).map(|i| (i * 7 + rng.below(7), rng.next())).collect();
    let loaded = BPlusTree::bulk_load(pairs.iter().copied());
    let mut shuffled = pairs.clone();
    rng.shuffle(&mut shuffled);
    let mut inserted = BPlusTree::with_capacities(caps(3, 3));
    for &(k, v) in &shuffled {
        inserted.insert(k, v);
    }
    // Extra keys inserted and deleted again leave a different shape, the same pairs.
    for k in 0..2_000 {
        if inserted.insert(k * 35 + 1, 0) {
            inserted.delete(k * 35 + 1);
        }
    }
    assert_ne!(inserted.depth(), loaded.depth());
    assert_eq!(inserted.checksum(), loaded.checksum());

    let base = loaded.checksum();
    let mut sums = std::collections::HashSet::new();
    sums.insert(base);
    let (k0, v0) = pairs[100];
    let (k1, v1) = pairs[101];
    type Change = Box<dyn Fn(&mut BPlusTree)>;
    let variants: Vec<Change> = vec![
        Box::new(move |t| assert!(t.update(k0, v0 ^ 1))),
        Box::new(move |t| assert!(t.update(k0, v0.wrapping_add(1 << 63)))),
        Box::new(move |t| assert!(t.delete(k0))),
        Box::new(move |t| assert!(t.insert(k0 + 1, v0) || t.insert(k0 + 2, v0))),
        // The same values on swapped keys.
        Box::new(move |t| assert!(t.update(k0, v1) && t.update(k1, v0))),
        // A key moved, its value kept.
        Box::new(move |t| {
            assert!(t.delete(k0));
            let free = (k0 + 1..).find(|&k| t.get(k).is_none()).expect("a free key");
            assert!(t.insert(free, v0));
        }),
    ];
    for change in variants {
        let mut tree = loaded.clone();
        change(&mut tree);
        assert!(sums.insert(tree.checksum()), "a changed pair left the checksum as before");
    }
    // Pairs that cancel in an XOR or a sum do not cancel here.
    let a = BPlusTree::bulk_load([(1, 2), (3, 4)]);
    let b = BPlusTree::bulk_load([(1, 4), (3, 2)]);
    let c = BPlusTree::bulk_load([(2, 1), (4, 3)]);
    let d = BPlusTree::bulk_load([(0, 0)]);
    let sums: std::collections::HashSet<u64> =
        [a.checksum(), b.checksum(), c.checksum(), d.checksum(), BPlusTree::new().checksum()]
            .into();
    assert_eq!(sums.len(), 5);
}

// ---- snapshots ----

/// A tree of small nodes shaped by `ops` random inserts and deletes (so not a bulk load's shape).
fn shaped_tree(ops: u64, seed: u64) -> BPlusTree {
    let mut tree = BPlusTree::with_capacities(caps(4, 3));
    let mut rng = SplitMix(seed);
    for i in 0..ops {
        let key = rng.next() % (ops + 1);
        if i % 3 == 2 {
            tree.delete(key);
        } else {
            tree.insert(key, rng.next());
        }
    }
    tree
}

#[test]
fn snapshot_round_trip_keeps_the_shape() {
    for ops in [0u64, 1, 2, 47, 1_000, 30_000] {
        let tree = shaped_tree(ops, ops);
        let mut bytes = vec![0xee]; // Encoding appends.
        tree.encode_snapshot(&mut bytes);
        let decoded = BPlusTree::decode_snapshot(&bytes[1..]).unwrap();
        decoded.check_invariants();
        assert_eq!(contents(&decoded), contents(&tree));
        assert_eq!(decoded.checksum(), tree.checksum());
        assert_eq!(decoded.capacities(), tree.capacities());
        let mut again = vec![0xee];
        decoded.encode_snapshot(&mut again);
        assert_eq!(again, bytes, "{ops} operations: the decoded tree has another shape");
    }
}

#[test]
fn a_decoded_tree_takes_the_same_opt_psmr_decisions() {
    // The decisions depend on the shape: a bulk load of the same pairs decides otherwise.
    let (original, mut bytes) = (shaped_tree(5_000, 7), Vec::new());
    original.encode_snapshot(&mut bytes);
    let decoded = BPlusTree::decode_snapshot(&bytes).unwrap();
    let bulk = BPlusTree::bulk_load_with_capacities(contents(&original), caps(4, 3));
    let range = KeyRange { first: 0, last: 2_500 };
    let mut rng = SplitMix(99);
    let mut differs_from_bulk = false;
    for _ in 0..2_000 {
        let key = rng.next() % 5_001;
        let (a, b, c) = if key.is_multiple_of(2) {
            let v = rng.next();
            let run = |t: &BPlusTree| t.try_insert_within(key, v, range);
            (run(&original), run(&decoded), run(&bulk))
        } else {
            let run = |t: &BPlusTree| t.try_delete_within(key, range);
            (run(&original), run(&decoded), run(&bulk))
        };
        assert_eq!(a, b, "key {key}: the decoded tree decided otherwise");
        differs_from_bulk |= a != c;
    }
    assert!(differs_from_bulk, "the test's operations must depend on the shape");
}

#[test]
fn decode_refuses_malformed_snapshots() {
    let tree = shaped_tree(200, 3);
    let mut good = Vec::new();
    tree.encode_snapshot(&mut good);
    assert!(BPlusTree::decode_snapshot(&good).is_ok());
    for cut in 0..good.len() {
        assert!(BPlusTree::decode_snapshot(&good[..cut]).is_err(), "cut at {cut}");
    }
    let mut trailing = good.clone();
    trailing.push(0);
    assert_eq!(
        BPlusTree::decode_snapshot(&trailing).unwrap_err(),
        SnapshotError::Malformed("bytes after the tree")
    );
    let mut magic = good.clone();
    magic[0] ^= 1;
    assert_eq!(BPlusTree::decode_snapshot(&magic).unwrap_err(), SnapshotError::BadMagic);
    let mut capacity = good.clone();
    capacity[8..12].copy_from_slice(&1u32.to_le_bytes());
    assert!(BPlusTree::decode_snapshot(&capacity).is_err(), "a leaf capacity of 1");
    // The body overwritten 8 bytes at a time with one number: counts and keys alike go wrong.
    let mut flat = good.clone();
    for chunk in flat[20..].chunks_exact_mut(8) {
        chunk.copy_from_slice(&5u64.to_le_bytes());
    }
    assert!(BPlusTree::decode_snapshot(&flat).is_err());
    let height_max = u32::MAX.to_le_bytes();
    let mut tall = good.clone();
    tall[16..20].copy_from_slice(&height_max);
    assert!(BPlusTree::decode_snapshot(&tall).is_err());
}

// ---- concurrency and determinism ----

#[derive(Clone, Copy, Debug)]
enum RangeOp {
    Get(u64),
    Update(u64, u64),
    TryInsert(u64, u64),
    TryDelete(u64),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reply {
    Get(Option<u64>),
    Update(bool),
    Try(Result<bool, Conflict>),
}

fn run_range_ops(tree: &BPlusTree, range: KeyRange, ops: &[RangeOp]) -> Vec<Reply> {
    ops.iter()
        .map(|&op| match op {
            RangeOp::Get(k) => Reply::Get(tree.get(k)),
            RangeOp::Update(k, v) => Reply::Update(tree.update(k, v)),
            RangeOp::TryInsert(k, v) => Reply::Try(tree.try_insert_within(k, v, range)),
            RangeOp::TryDelete(k) => Reply::Try(tree.try_delete_within(k, range)),
        })
        .collect()
}

/// Cuts the key space into `count` ranges at random points below `keys_end`.
fn random_ranges(rng: &mut SplitMix, count: usize, keys_end: u64) -> Vec<KeyRange> {
    let mut cuts = std::collections::BTreeSet::new();
    while cuts.len() < count - 1 {
        cuts.insert(1 + rng.below(keys_end - 1));
    }
    let firsts: Vec<u64> = std::iter::once(0).chain(cuts).collect();
    (0..count)
        .map(|i| {
            KeyRange::new(firsts[i], if i + 1 == count { u64::MAX } else { firsts[i + 1] - 1 })
        })
        .collect()
}

struct Tally {
    inserted: usize,
    deleted: usize,
    conflicts: usize,
}

/// Builds a tree, gives each of `threads` ranges a random op list, runs the lists concurrently,
/// and checks the replies and the final tree against sequential runs (in two orders) of the same
/// lists on clones of the initial tree, and the replies against the specification.
fn concurrent_run_matches_sequential(
    seed: u64,
    threads: usize,
    capacities: NodeCapacities,
    tally: &mut Tally,
) {
    const KEYS_END: u64 = 40_000;
    const OPS_PER_THREAD: usize = 3_000;
    let mut rng = SplitMix(seed);
    let mut initial = Vec::new();
    for k in 0..KEYS_END {
        if rng.below(2) == 0 {
            initial.push((k, rng.next()));
        }
    }
    let base = BPlusTree::bulk_load_with_capacities(initial.iter().copied(), capacities);
    // Some churn first, so that the shape is not only the bulk-loaded one.
    let mut base = base;
    for _ in 0..2_000 {
        let k = rng.below(KEYS_END);
        if rng.below(2) == 0 {
            base.insert(k, k);
        } else {
            base.delete(k);
        }
    }
    let ranges = random_ranges(&mut rng, threads, KEYS_END);
    let lists: Vec<Vec<RangeOp>> = ranges
        .iter()
        .map(|range| {
            let span_end = range.last.min(KEYS_END + 100);
            (0..OPS_PER_THREAD)
                .map(|_| {
                    let k = range.first + rng.below(span_end - range.first + 1);
                    match rng.below(8) {
                        0 => RangeOp::Get(k),
                        1 => RangeOp::Update(k, rng.next()),
                        2..=4 => RangeOp::TryInsert(k, rng.next()),
                        _ => RangeOp::TryDelete(k),
                    }
                })
                .collect()
        })
        .collect();

    let concurrent = base.clone();
    let start = Barrier::new(threads);
    let replies: Vec<Vec<Reply>> = std::thread::scope(|scope| {
        let handles: Vec<_> = ranges
            .iter()
            .zip(&lists)
            .map(|(&range, ops)| {
                let (tree, start) = (&concurrent, &start);
                scope.spawn(move || {
                    start.wait();
                    run_range_ops(tree, range, ops)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("worker thread")).collect()
    });

    let forward = base.clone();
    let forward_replies: Vec<Vec<Reply>> = ranges
        .iter()
        .zip(&lists)
        .map(|(&range, ops)| run_range_ops(&forward, range, ops))
        .collect();
    let backward = base.clone();
    let mut backward_replies: Vec<Vec<Reply>> = ranges
        .iter()
        .zip(&lists)
        .rev()
        .map(|(&range, ops)| run_range_ops(&backward, range, ops))
        .collect();
    backward_replies.reverse();
    assert_eq!(
        replies, forward_replies,
        "seed {seed}, {threads} threads: replies differ from a sequential run"
    );
    assert_eq!(
        replies, backward_replies,
        "seed {seed}, {threads} threads: replies depend on the order"
    );
    for tree in [&concurrent, &forward, &backward] {
        tree.check_invariants();
    }
    assert_eq!(contents(&concurrent), contents(&forward), "seed {seed}: final content");
    assert_eq!(contents(&concurrent), contents(&backward), "seed {seed}: final content");
    assert_eq!(concurrent.checksum(), forward.checksum());

    // The replies obey the key-value specification (each thread's keys are its own).
    let mut model: BTreeMap<u64, u64> = base.iter().collect();
    for (ops, replies) in lists.iter().zip(&replies) {
        for (&op, &reply) in ops.iter().zip(replies) {
            match (op, reply) {
                (RangeOp::Get(k), Reply::Get(got)) => assert_eq!(got, model.get(&k).copied()),
                (RangeOp::Update(k, v), Reply::Update(done)) => {
                    assert_eq!(done, model.get_mut(&k).map(|slot| *slot = v).is_some())
                }
                (RangeOp::TryInsert(k, v), Reply::Try(result)) => match result {
                    Ok(true) => {
                        assert!(model.insert(k, v).is_none());
                        tally.inserted += 1;
                    }
                    Ok(false) => assert!(model.contains_key(&k)),
                    Err(Conflict) => {
                        assert!(!model.contains_key(&k));
                        tally.conflicts += 1;
                    }
                },
                (RangeOp::TryDelete(k), Reply::Try(result)) => match result {
                    Ok(true) => {
                        assert!(model.remove(&k).is_some());
                        tally.deleted += 1;
                    }
                    Ok(false) => assert!(!model.contains_key(&k)),
                    Err(Conflict) => {
                        assert!(model.contains_key(&k));
                        tally.conflicts += 1;
                    }
                },
                (op, reply) => panic!("{op:?} got {reply:?}"),
            }
        }
    }
    assert_eq!(contents(&concurrent), model_contents(&model));
}

#[test]
fn concurrent_range_workers_match_sequential_runs() {
    let mut tally = Tally { inserted: 0, deleted: 0, conflicts: 0 };
    for seed in 0..14u64 {
        let threads = 2 + (seed as usize % 7);
        let capacities = match seed % 3 {
            0 => caps(4, 3),
            1 => caps(8, 5),
            _ => NodeCapacities::DEFAULT,
        };
        concurrent_run_matches_sequential(seed, threads, capacities, &mut tally);
    }
    // The runs exercised every decision.
    assert!(tally.inserted > 1_000 && tally.deleted > 1_000 && tally.conflicts > 1_000);
}

// ---- timing (release builds, on demand) ----

/// `cargo test --release --lib apps::kv::btree -- --ignored --nocapture`
#[test]
#[ignore = "timing report: run in release with --ignored --nocapture"]
fn timing_on_ten_million_keys() {
    use std::time::Instant;
    const KEYS: u64 = 10_000_000;
    const LOOKUPS: usize = 5_000_000;

    let started = Instant::now();
    let tree = BPlusTree::bulk_load((0..KEYS).map(|i| (i * 2, i)));
    let load = started.elapsed();
    assert_eq!(tree.len(), KEYS as usize);

    let mut rng = SplitMix(1);
    let keys: Vec<u64> = (0..LOOKUPS).map(|_| rng.below(KEYS) * 2).collect();
    let started = Instant::now();
    let mut found = 0u64;
    for &k in &keys {
        found = found.wrapping_add(tree.get(k).expect("present"));
    }
    let get = started.elapsed();
    std::hint::black_box(found);

    let started = Instant::now();
    let sum = tree.checksum();
    let checksum = started.elapsed();
    std::hint::black_box(sum);

    let started = Instant::now();
    let len = tree.len();
    let len_time = started.elapsed();
    std::hint::black_box(len);

    let mut tree = tree;
    let started = Instant::now();
    for &k in &keys[..1_000_000] {
        tree.insert(k + 1, k);
    }
    let insert = started.elapsed();
    let started = Instant::now();
    for &k in &keys[..1_000_000] {
        tree.delete(k + 1);
    }
    let delete = started.elapsed();

    eprintln!(
        "bulk_load 10M: {load:?}; get: {:.0} ns/op (random keys, depth {}); \
         checksum: {checksum:?}; \
         len: {len_time:?}; insert: {:.0} ns/op; delete: {:.0} ns/op",
        get.as_nanos() as f64 / LOOKUPS as f64,
        tree.depth(),
        insert.as_nanos() as f64 / 1e6,
        delete.as_nanos() as f64 / 1e6,
    );
}
