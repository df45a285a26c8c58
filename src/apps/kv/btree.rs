//! The in-memory B+-tree of the key-value store (thesis 6.5.2): 8-byte keys, 8-byte values, shared
//! by the worker threads of a replica.
//!
//! # Who touches the tree, and why its leaves are atomics
//!
//! Under P-SMR (thesis chapter 6) several worker threads execute commands on one tree: commands
//! that are independent run concurrently, and a dependent command runs while every other worker
//! waits at a barrier. Under opt-PSMR each worker owns a [`KeyRange`] and runs the commands on its
//! own keys without any synchronisation with the others, as long as a command does not change
//! structure another worker's keys also live in. The tree therefore offers two kinds of operation:
//!
//! * `&mut self` operations ([`BPlusTree::insert`], [`BPlusTree::delete`]) may split, merge,
//!   borrow and change the root. The caller proves it is alone (an `RwLock` write guard, or the
//!   barrier of a dependent command).
//! * `&self` operations ([`BPlusTree::get`], [`BPlusTree::update`],
//!   [`BPlusTree::try_insert_within`], [`BPlusTree::try_delete_within`]) may run on several
//!   threads at once. They never touch an internal node except to read it, and they change the
//!   key set of a leaf only when the leaf's whole key interval lies inside the caller's range;
//!   everything else is refused with [`Conflict`], which the caller answers by running the command
//!   again as a dependent one (with `&mut self`).
//!
//! The crate keeps all code that opts out of the borrow checker in its I/O layer, so the `&self`
//! writes must be data-race free in safe Rust: every leaf field a `&self` operation can write (the
//! keys, the values and the fill) is an `AtomicU64`/`AtomicU32` accessed with `Relaxed` ordering.
//! That is enough because nothing here publishes data to another thread: in opt-PSMR a modifiable
//! leaf has exactly one writer and no other reader (a worker only reaches leaves whose interval
//! meets its own range), and whatever ordering P-SMR needs between a dependent command and the
//! independent ones comes from the caller's barrier or lock. On x86-64 a relaxed load or store is
//! a plain `mov`, so `get` costs what it would on plain integers. Internal nodes, the root, the
//! depth, the leaf links and the free lists are written only by `&mut self` operations, so they
//! are plain integers.
//!
//! # Determinism
//!
//! Replicas run the same commands and must take the same decisions. `try_insert_within` and
//! `try_delete_within` decide from the leaf's key interval (given by the separators on the path
//! from the root, which no `&self` operation changes), the leaf's fill and its keys, and the
//! caller's range: never from node indices, addresses or timing. A leaf whose interval spans two
//! workers' ranges is never restructured while workers run in parallel, and a leaf inside one
//! worker's range is seen by that worker alone, so every decision is the one a sequential run of
//! the same per-worker command lists would take, in any interleaving.
//!
//! # Layout
//!
//! Nodes live in two arenas (`Vec<Leaf>`, `Vec<Internal>`) and name each other by `u32` index:
//! half the size of a pointer in the child arrays, no per-node allocation, `Clone` is a copy of two
//! vectors, and freed nodes go on a free list for the next split. A node has fixed arrays of
//! [`LEAF_KEYS_MAX`] keys (leaf) or [`INTERNAL_CHILDREN_MAX`] children (internal), both 64: a
//! 10-million-key tree is five levels deep, its top three levels (under 100 nodes) stay in cache,
//! and a lookup costs about two cache misses that cannot overlap (the fourth internal level and
//! the leaf). Nodes are searched linearly (see `Leaf::search`), and a leaf keeps its keys apart
//! from its values so the search reads six or eight lines of keys only. Measured on 10 million
//! keys, random `get`s: leaves of 32 or internal nodes of 32 children were 10-20% slower than
//! 64/64. The capacities actually used can be smaller ([`NodeCapacities`]), which the tests
//! use to make splits, merges and conflicts happen on small key sets.
//!
//! Leaves are linked left to right for [`BPlusTree::iter`]. Separators follow the usual rule: in
//! an internal node with separators `s_1 < ... < s_n`, child `i` holds keys in `[s_i, s_{i+1})`
//! (with the node's own bounds at both ends); a leaf's interval is that half-open range, the
//! leftmost leaf starting at 0 and the rightmost ending at `u64::MAX` inclusive. Separators are
//! not tightened when keys are deleted, so a leaf's interval changes only when a `&mut self`
//! operation restructures it or its neighbours.
//!
//! [`BPlusTree::len`] sums the leaves' fills instead of reading a shared counter: a counter that
//! every worker's inserts and deletes update would bounce one cache line between all cores on
//! the hot path, and `len` is for tests and reports, not for commands.

use std::fmt;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicU32, AtomicU64};

/// Slots of a leaf: the largest leaf capacity, and the default one.
pub const LEAF_KEYS_MAX: usize = 64;
/// Child slots of an internal node: the largest fan-out, and the default one.
pub const INTERNAL_CHILDREN_MAX: usize = 64;

/// The index no node has: end of the leaf chain.
const NIL: u32 = u32::MAX;

/// Internal levels a path may cross. Every internal node has at least two children, so a tree
/// of at most `u32::MAX` leaves has fewer than 32 internal levels.
const HEIGHT_MAX: usize = 40;

/// Inclusive key range a worker thread owns in opt-PSMR.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyRange {
    pub first: u64,
    pub last: u64,
}

impl KeyRange {
    /// Every key: the range of a single worker, or of a dependent command.
    pub const FULL: KeyRange = KeyRange { first: 0, last: u64::MAX };

    /// Panics if `first > last`.
    pub fn new(first: u64, last: u64) -> KeyRange {
        assert!(first <= last, "KeyRange::new({first}, {last}): first exceeds last");
        KeyRange { first, last }
    }

    pub fn contains(&self, key: u64) -> bool {
        self.first <= key && key <= self.last
    }

    /// Whether `inner` lies wholly inside this range.
    pub fn covers(&self, inner: KeyRange) -> bool {
        self.first <= inner.first && inner.last <= self.last
    }
}

/// The operation would change tree structure shared with another worker's keys (split, merge or
/// borrow, or a leaf whose key interval is not wholly inside the caller's range): not done.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "the operation would split, merge or rebalance a leaf, or change a leaf that another worker's \
     keys share; run it as a dependent command"
)]
pub struct Conflict;

/// Why snapshot bytes were refused (`btree_snapshot`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    #[error("not a tree snapshot of this format (magic \"RSMRBT02\")")]
    BadMagic,
    #[error("tree snapshot: {0}")]
    Malformed(&'static str),
}

/// Node capacities of a tree. The defaults are the slot counts; smaller values make tests split
/// and merge on small key sets (the slots stay allocated, only the limits change).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeCapacities {
    /// Keys a leaf holds at most: `2..=LEAF_KEYS_MAX`.
    pub leaf_keys: usize,
    /// Children an internal node has at most: `3..=INTERNAL_CHILDREN_MAX`.
    pub internal_children: usize,
}

impl NodeCapacities {
    pub const DEFAULT: NodeCapacities =
        NodeCapacities { leaf_keys: LEAF_KEYS_MAX, internal_children: INTERNAL_CHILDREN_MAX };

    fn validate(self) {
        assert!(
            (2..=LEAF_KEYS_MAX).contains(&self.leaf_keys),
            "leaf capacity {} is outside 2..={LEAF_KEYS_MAX}",
            self.leaf_keys
        );
        // Two children could not be split into two nodes of the minimum fill (one child each
        // would leave an internal node with no separator).
        assert!(
            (3..=INTERNAL_CHILDREN_MAX).contains(&self.internal_children),
            "internal capacity {} is outside 3..={INTERNAL_CHILDREN_MAX}",
            self.internal_children
        );
    }

    /// The fewest keys a non-root leaf holds. Half the capacity rounded up: a split of a full leaf
    /// plus one key gives two halves at least this full, and an underflowing leaf merged with a
    /// sibling at this fill fits in one leaf (2 * ceil(c/2) - 1 <= c).
    pub fn leaf_keys_min(self) -> usize {
        self.leaf_keys.div_ceil(2)
    }

    /// The fewest children a non-root internal node has (the same reasoning as for leaves).
    pub fn internal_children_min(self) -> usize {
        self.internal_children.div_ceil(2)
    }

    /// Keys per leaf in a bulk load: three quarters full, so that opt-PSMR inserts into a freshly
    /// loaded tree find room instead of a conflict, but never under the minimum fill.
    fn leaf_keys_bulk(self) -> usize {
        (self.leaf_keys * 3 / 4).max(self.leaf_keys_min())
    }

    fn internal_children_bulk(self) -> usize {
        (self.internal_children * 3 / 4).max(self.internal_children_min())
    }
}

impl Default for NodeCapacities {
    fn default() -> NodeCapacities {
        NodeCapacities::DEFAULT
    }
}

/// A leaf: sorted keys with their values. Everything a `&self` operation may write is atomic.
struct Leaf {
    /// Keys in use: `keys[..len]`, strictly increasing.
    len: AtomicU32,
    /// The next leaf to the right, or `NIL`. Written only with `&mut` access.
    next: u32,
    keys: [AtomicU64; LEAF_KEYS_MAX],
    values: [AtomicU64; LEAF_KEYS_MAX],
}

impl Leaf {
    fn new() -> Leaf {
        Leaf {
            len: AtomicU32::new(0),
            next: NIL,
            keys: std::array::from_fn(|_| AtomicU64::new(0)),
            values: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    #[inline]
    fn len(&self) -> usize {
        self.len.load(Relaxed) as usize
    }

    #[inline]
    fn set_len(&self, len: usize) {
        debug_assert!(len <= LEAF_KEYS_MAX);
        self.len.store(len as u32, Relaxed);
    }

    #[inline]
    fn key(&self, i: usize) -> u64 {
        self.keys[i].load(Relaxed)
    }

    #[inline]
    fn value(&self, i: usize) -> u64 {
        self.values[i].load(Relaxed)
    }

    #[inline]
    fn set(&self, i: usize, key: u64, value: u64) {
        self.keys[i].store(key, Relaxed);
        self.values[i].store(value, Relaxed);
    }

    /// `Ok(slot)` of `key`, or `Err(slot)` where it would go. A linear count of the smaller keys
    /// rather than a binary search: the loads do not depend on each other, so the cache misses
    /// on the leaf's lines overlap instead of queueing one behind the other as a binary search's
    /// do (random `get` on a 10-million-key tree: about 1.0 us against 1.3 us on the 2-core VM
    /// this was written on, where a DRAM access with its page walk costs about 250 ns).
    #[inline]
    fn search(&self, key: u64) -> Result<usize, usize> {
        let keys = &self.keys[..self.len()];
        let below: usize = keys.iter().map(|k| usize::from(k.load(Relaxed) < key)).sum();
        match keys.get(below) {
            Some(k) if k.load(Relaxed) == key => Ok(below),
            _ => Err(below),
        }
    }

    /// Inserts at `pos`, shifting the tail right. The caller checked there is a free slot.
    fn insert_at(&self, pos: usize, key: u64, value: u64) {
        let len = self.len();
        for i in (pos..len).rev() {
            self.set(i + 1, self.key(i), self.value(i));
        }
        self.set(pos, key, value);
        self.set_len(len + 1);
    }

    fn push(&self, key: u64, value: u64) {
        let len = self.len();
        self.set(len, key, value);
        self.set_len(len + 1);
    }

    /// Removes the pair at `pos`, shifting the tail left.
    fn remove_at(&self, pos: usize) -> (u64, u64) {
        let len = self.len();
        let removed = (self.key(pos), self.value(pos));
        for i in pos + 1..len {
            self.set(i - 1, self.key(i), self.value(i));
        }
        self.set_len(len - 1);
        removed
    }
}

impl Clone for Leaf {
    fn clone(&self) -> Leaf {
        let len = self.len();
        let copy = Leaf { next: self.next, ..Leaf::new() };
        for i in 0..len {
            copy.set(i, self.key(i), self.value(i));
        }
        copy.set_len(len);
        copy
    }
}

/// An internal node. Only `&mut self` operations write internal nodes, so nothing here is atomic.
#[derive(Clone)]
struct Internal {
    /// Separators in use: `keys[..len]`; the node has `len + 1` children.
    len: u32,
    keys: [u64; INTERNAL_CHILDREN_MAX - 1],
    /// Indices into the internal arena, or into the leaf arena on the level above the leaves.
    children: [u32; INTERNAL_CHILDREN_MAX],
}

impl Internal {
    fn new() -> Internal {
        Internal {
            len: 0,
            keys: [0; INTERNAL_CHILDREN_MAX - 1],
            children: [NIL; INTERNAL_CHILDREN_MAX],
        }
    }

    #[inline]
    fn keys(&self) -> &[u64] {
        &self.keys[..self.len as usize]
    }

    #[inline]
    fn children_len(&self) -> usize {
        self.len as usize + 1
    }

    /// The child whose subtree holds `key`: the number of separators at or below it, counted
    /// linearly for the same reason as in [`Leaf::search`] (and the count vectorises).
    #[inline]
    fn child_index(&self, key: u64) -> usize {
        self.keys().iter().map(|&separator| usize::from(separator <= key)).sum()
    }

    /// Adds `child` right of child `pos`, with `key` as the separator between them.
    fn insert_after(&mut self, pos: usize, key: u64, child: u32) {
        let len = self.len as usize;
        self.keys.copy_within(pos..len, pos + 1);
        self.keys[pos] = key;
        self.children.copy_within(pos + 1..len + 1, pos + 2);
        self.children[pos + 1] = child;
        self.len += 1;
    }

    /// Removes separator `pos` and the child right of it.
    fn remove_after(&mut self, pos: usize) {
        let len = self.len as usize;
        self.keys.copy_within(pos + 1..len, pos);
        self.children.copy_within(pos + 2..len + 1, pos + 1);
        self.len -= 1;
    }

    fn push_front(&mut self, child: u32, key: u64) {
        let len = self.len as usize;
        self.keys.copy_within(0..len, 1);
        self.keys[0] = key;
        self.children.copy_within(0..len + 1, 1);
        self.children[0] = child;
        self.len += 1;
    }

    fn push_back(&mut self, key: u64, child: u32) {
        let len = self.len as usize;
        self.keys[len] = key;
        self.children[len + 1] = child;
        self.len += 1;
    }

    fn pop_front(&mut self) -> (u32, u64) {
        let len = self.len as usize;
        let popped = (self.children[0], self.keys[0]);
        self.keys.copy_within(1..len, 0);
        self.children.copy_within(1..len + 1, 0);
        self.len -= 1;
        popped
    }

    fn pop_back(&mut self) -> (u64, u32) {
        let len = self.len as usize;
        self.len -= 1;
        (self.keys[len - 1], self.children[len])
    }

    /// Appends `separator` and all of `right`'s separators and children.
    fn append(&mut self, separator: u64, right: &Internal) {
        let len = self.len as usize;
        let right_len = right.len as usize;
        self.keys[len] = separator;
        self.keys[len + 1..len + 1 + right_len].copy_from_slice(right.keys());
        self.children[len + 1..len + 2 + right_len].copy_from_slice(&right.children[..=right_len]);
        self.len += 1 + right.len;
    }
}

/// The internal nodes a `&mut self` operation descended through, root first, with the child index
/// taken at each: what a split or merge climbs back up. A fixed array, so no allocation.
struct Path {
    steps: [(u32, u32); HEIGHT_MAX],
    len: usize,
}

impl Path {
    fn new() -> Path {
        Path { steps: [(NIL, 0); HEIGHT_MAX], len: 0 }
    }

    fn push(&mut self, node: u32, child: usize) {
        self.steps[self.len] = (node, child as u32);
        self.len += 1;
    }

    fn pop(&mut self) -> Option<(u32, usize)> {
        self.len = self.len.checked_sub(1)?;
        let (node, child) = self.steps[self.len];
        Some((node, child as usize))
    }

    fn last(&self) -> Option<(u32, usize)> {
        let (node, child) = *self.steps[..self.len].last()?;
        Some((node, child as usize))
    }
}

/// A bulk-loaded key that does not exceed the one before it.
struct OutOfOrder {
    index: u64,
    previous: u64,
    key: u64,
}

/// The B+-tree. See the module documentation for the concurrency contract.
#[derive(Clone)]
pub struct BPlusTree {
    leaves: Vec<Leaf>,
    internals: Vec<Internal>,
    /// A leaf index when `height == 0`, an internal index otherwise.
    root: u32,
    /// Internal levels above the leaves; every leaf is this many steps below the root.
    height: usize,
    free_leaves: Vec<u32>,
    free_internals: Vec<u32>,
    capacities: NodeCapacities,
}

impl Default for BPlusTree {
    fn default() -> BPlusTree {
        BPlusTree::new()
    }
}

impl fmt::Debug for BPlusTree {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BPlusTree")
            .field("depth", &self.depth())
            .field("leaves", &(self.leaves.len() - self.free_leaves.len()))
            .field("internals", &(self.internals.len() - self.free_internals.len()))
            .field("capacities", &self.capacities)
            .finish_non_exhaustive()
    }
}

impl BPlusTree {
    pub fn new() -> BPlusTree {
        BPlusTree::with_capacities(NodeCapacities::DEFAULT)
    }

    /// An empty tree whose nodes hold at most the given numbers of keys and children. Panics if
    /// they are outside the ranges [`NodeCapacities`] documents.
    pub fn with_capacities(capacities: NodeCapacities) -> BPlusTree {
        capacities.validate();
        BPlusTree {
            leaves: vec![Leaf::new()],
            internals: Vec::new(),
            root: 0,
            height: 0,
            free_leaves: Vec::new(),
            free_internals: Vec::new(),
            capacities,
        }
    }

    /// Builds from strictly increasing keys (panics naming the first key out of order), leaves
    /// three quarters full so that later inserts do not split at once.
    pub fn bulk_load(pairs: impl IntoIterator<Item = (u64, u64)>) -> BPlusTree {
        BPlusTree::bulk_load_with_capacities(pairs, NodeCapacities::DEFAULT)
    }

    /// [`BPlusTree::bulk_load`] with the given node capacities.
    pub fn bulk_load_with_capacities(
        pairs: impl IntoIterator<Item = (u64, u64)>,
        capacities: NodeCapacities,
    ) -> BPlusTree {
        match BPlusTree::build(pairs, capacities) {
            Ok(tree) => tree,
            Err(OutOfOrder { index, previous, key }) => panic!(
                "BPlusTree::bulk_load needs strictly increasing keys: key {key} (pair {index}) \
                 follows key {previous}"
            ),
        }
    }

    pub fn capacities(&self) -> NodeCapacities {
        self.capacities
    }

    /// Pairs in the tree. Reads every leaf's fill (see the module documentation for why there is
    /// no counter): about 25 ms for 10 million pairs, so not for a per-command path.
    pub fn len(&self) -> usize {
        self.leaf_chain().map(Leaf::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        // Only the root may be an empty leaf.
        self.height == 0 && self.leaves[self.root as usize].len() == 0
    }

    /// Levels from the root to the leaves, both counted: 1 for a tree that is a single leaf.
    pub fn depth(&self) -> usize {
        self.height + 1
    }

    pub fn get(&self, key: u64) -> Option<u64> {
        let leaf = &self.leaves[self.leaf_for(key) as usize];
        leaf.search(key).ok().map(|slot| leaf.value(slot))
    }

    /// Stores `value` for `key` in place; false (nothing changes) if `key` is absent. Changes no
    /// structure, so it needs no range.
    pub fn update(&self, key: u64, value: u64) -> bool {
        let leaf = &self.leaves[self.leaf_for(key) as usize];
        match leaf.search(key) {
            Ok(slot) => {
                leaf.values[slot].store(value, Relaxed);
                true
            }
            Err(_) => false,
        }
    }

    /// Inserts; false (nothing changes) if `key` is present.
    pub fn insert(&mut self, key: u64, value: u64) -> bool {
        let mut path = Path::new();
        let leaf_id = self.leaf_for_recording(key, &mut path);
        let leaf = &self.leaves[leaf_id as usize];
        let Err(pos) = leaf.search(key) else { return false };
        if leaf.len() < self.capacities.leaf_keys {
            leaf.insert_at(pos, key, value);
            return true;
        }
        let (separator, right) = self.split_leaf_inserting(leaf_id, pos, key, value);
        self.insert_into_parents(&mut path, separator, right);
        true
    }

    /// Deletes; false if `key` is absent. An underflowing node borrows from a sibling or merges
    /// with one, up to the root, which collapses when it is left with a single child.
    pub fn delete(&mut self, key: u64) -> bool {
        let mut path = Path::new();
        let leaf_id = self.leaf_for_recording(key, &mut path);
        let leaf = &self.leaves[leaf_id as usize];
        let Ok(pos) = leaf.search(key) else { return false };
        leaf.remove_at(pos);
        if self.height > 0 && leaf.len() < self.capacities.leaf_keys_min() {
            self.rebalance_leaf(&mut path, leaf_id);
        }
        true
    }

    /// opt-PSMR insert, which may run concurrently with other threads' calls on disjoint ranges.
    /// `Ok(false)` if `key` is present (nothing changes); `Ok(true)` if inserted, which happens
    /// only when the leaf's key interval lies wholly inside `range` and the leaf has a free slot;
    /// `Err(Conflict)` otherwise (nothing changes).
    pub fn try_insert_within(
        &self,
        key: u64,
        value: u64,
        range: KeyRange,
    ) -> Result<bool, Conflict> {
        let (leaf_id, interval) = self.leaf_and_interval(key);
        let leaf = &self.leaves[leaf_id as usize];
        let Err(pos) = leaf.search(key) else { return Ok(false) };
        if !range.covers(interval) || leaf.len() >= self.capacities.leaf_keys {
            return Err(Conflict);
        }
        leaf.insert_at(pos, key, value);
        Ok(true)
    }

    /// opt-PSMR delete, which may run concurrently with other threads' calls on disjoint ranges.
    /// `Ok(false)` if `key` is absent; `Ok(true)` if removed, which happens only when the leaf's
    /// interval lies wholly inside `range` and the leaf stays at or above its minimum fill (or is
    /// the root); `Err(Conflict)` otherwise (nothing changes).
    pub fn try_delete_within(&self, key: u64, range: KeyRange) -> Result<bool, Conflict> {
        let (leaf_id, interval) = self.leaf_and_interval(key);
        let leaf = &self.leaves[leaf_id as usize];
        let Ok(pos) = leaf.search(key) else { return Ok(false) };
        let underflows = self.height > 0 && leaf.len() <= self.capacities.leaf_keys_min();
        if !range.covers(interval) || underflows {
            return Err(Conflict);
        }
        leaf.remove_at(pos);
        Ok(true)
    }

    /// Content hash over the pairs in key order: the same for any two trees holding the same pairs
    /// however they were built, and different (with probability about 1 - 2^-64) when any pair
    /// differs. Each key and value goes through the SplitMix64 finalizer chained on the running
    /// state, so a change anywhere avalanches through everything after it; the pair count is
    /// mixed in last so that sequences cannot be extended unnoticed.
    pub fn checksum(&self) -> u64 {
        let mut state = 0x6a09_e667_f3bc_c908_u64; // fractional bits of sqrt(2): an arbitrary start
        let mut count = 0u64;
        for (key, value) in self.iter() {
            state = absorb(state, key);
            state = absorb(state, value);
            count += 1;
        }
        absorb(state, count)
    }

    /// The pairs in key order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        Iter { tree: self, leaf: self.leftmost_leaf(), slot: 0 }
    }

    /// Panics naming the first broken invariant: keys sorted within nodes, separators strictly
    /// increasing and bounding their subtrees, every non-root node at or above its minimum fill
    /// and within its capacity, the root internal node with at least two children, the leaf chain
    /// linking exactly the tree's leaves in key order, every arena slot either in the tree once or
    /// on a free list, and `len` equal to the pairs in the tree. (All leaves are at one depth by
    /// construction: a node's kind follows from its level, so a leaf is reached only after
    /// exactly `depth() - 1` internal levels, and a misplaced node shows up as a node reached
    /// twice or never.)
    pub fn check_invariants(&self) {
        let mut check = InvariantCheck {
            leaf_seen: vec![false; self.leaves.len()],
            internal_seen: vec![false; self.internals.len()],
            leaves_in_order: Vec::new(),
            pairs: 0,
        };
        assert!(self.height < HEIGHT_MAX, "the tree has {} internal levels", self.height);
        self.check_subtree(&mut check, self.root, self.height, 0, None);

        let mut chain = Vec::new();
        let mut leaf = self.leftmost_leaf();
        while leaf != NIL {
            assert!(
                chain.len() < self.leaves.len(),
                "the leaf chain is longer than the leaf arena (a cycle)"
            );
            chain.push(leaf);
            leaf = self.leaves[leaf as usize].next;
        }
        assert_eq!(
            chain, check.leaves_in_order,
            "the leaf chain does not link the leaves in key order"
        );

        for (kind, seen, free) in [
            ("leaf", &mut check.leaf_seen, &self.free_leaves),
            ("internal node", &mut check.internal_seen, &self.free_internals),
        ] {
            for &id in free {
                assert!(!seen[id as usize], "{kind} {id} is both in the tree and on the free list");
                seen[id as usize] = true;
            }
            if let Some(id) = seen.iter().position(|&s| !s) {
                panic!("{kind} {id} is neither in the tree nor on the free list (leaked)");
            }
        }
        assert_eq!(self.len(), check.pairs, "len() disagrees with the pairs in the tree");
    }

    // ---- descent ----

    /// The leaf whose interval holds `key`. The hot path of `get`.
    #[inline]
    fn leaf_for(&self, key: u64) -> u32 {
        let mut node = self.root;
        for _ in 0..self.height {
            let internal = &self.internals[node as usize];
            node = internal.children[internal.child_index(key)];
        }
        node
    }

    fn leaf_for_recording(&self, key: u64, path: &mut Path) -> u32 {
        let mut node = self.root;
        for _ in 0..self.height {
            let internal = &self.internals[node as usize];
            let child = internal.child_index(key);
            path.push(node, child);
            node = internal.children[child];
        }
        node
    }

    /// The leaf whose interval holds `key`, and that interval (inclusive), from the separators on
    /// the path: the tightest bounds seen on each side.
    fn leaf_and_interval(&self, key: u64) -> (u32, KeyRange) {
        let mut interval = KeyRange::FULL;
        let mut node = self.root;
        for _ in 0..self.height {
            let internal = &self.internals[node as usize];
            let child = internal.child_index(key);
            if child > 0 {
                interval.first = internal.keys[child - 1];
            }
            if child < internal.len as usize {
                // A separator exceeds the lower bound of its node, so it is at least 1.
                interval.last = internal.keys[child] - 1;
            }
            node = internal.children[child];
        }
        (node, interval)
    }

    fn leftmost_leaf(&self) -> u32 {
        let mut node = self.root;
        for _ in 0..self.height {
            node = self.internals[node as usize].children[0];
        }
        node
    }

    fn leaf_chain(&self) -> impl Iterator<Item = &Leaf> + '_ {
        let mut next = self.leftmost_leaf();
        std::iter::from_fn(move || {
            let leaf = self.leaves.get(next as usize)?;
            next = leaf.next;
            Some(leaf)
        })
    }

    // ---- arenas ----

    fn alloc_leaf(&mut self) -> u32 {
        if let Some(id) = self.free_leaves.pop() {
            return id;
        }
        let id = u32::try_from(self.leaves.len()).ok().filter(|&id| id != NIL);
        self.leaves.push(Leaf::new());
        id.expect("the leaf arena is full (2^32 - 1 leaves)")
    }

    fn alloc_internal(&mut self) -> u32 {
        if let Some(id) = self.free_internals.pop() {
            return id;
        }
        let id = u32::try_from(self.internals.len()).ok().filter(|&id| id != NIL);
        self.internals.push(Internal::new());
        id.expect("the internal-node arena is full (2^32 - 1 nodes)")
    }

    fn free_leaf(&mut self, id: u32) {
        let leaf = &mut self.leaves[id as usize];
        *leaf.len.get_mut() = 0;
        leaf.next = NIL;
        self.free_leaves.push(id);
    }

    fn free_internal(&mut self, id: u32) {
        self.internals[id as usize].len = 0;
        self.free_internals.push(id);
    }

    // ---- insertion ----

    /// Splits the full leaf `left_id` into two while inserting `(key, value)` at `pos`; returns
    /// the separator (the right leaf's first key) and the right leaf.
    fn split_leaf_inserting(
        &mut self,
        left_id: u32,
        pos: usize,
        key: u64,
        value: u64,
    ) -> (u64, u32) {
        let right_id = self.alloc_leaf();
        let left = &self.leaves[left_id as usize];
        let right = &self.leaves[right_id as usize];
        let len = left.len();
        // Of the len + 1 pairs the left keeps the larger half (the right half is at least the
        // minimum fill, ceil(len / 2)).
        let left_keeps = (len + 1).div_ceil(2);
        let goes_left = pos < left_keeps;
        let moved_from = if goes_left { left_keeps - 1 } else { left_keeps };
        for i in moved_from..len {
            right.push(left.key(i), left.value(i));
        }
        left.set_len(moved_from);
        if goes_left {
            left.insert_at(pos, key, value);
        } else {
            right.insert_at(pos - left_keeps, key, value);
        }
        let separator = right.key(0);
        self.leaves[right_id as usize].next = self.leaves[left_id as usize].next;
        self.leaves[left_id as usize].next = right_id;
        (separator, right_id)
    }

    /// Adds `right` with `separator` to the parent on top of `path`, splitting full internal nodes
    /// upwards and growing a new root if the old one splits.
    fn insert_into_parents(&mut self, path: &mut Path, mut separator: u64, mut right: u32) {
        while let Some((node, child)) = path.pop() {
            if self.internals[node as usize].children_len() < self.capacities.internal_children {
                self.internals[node as usize].insert_after(child, separator, right);
                return;
            }
            (separator, right) = self.split_internal_inserting(node, child, separator, right);
        }
        let root = self.alloc_internal();
        let new_root = &mut self.internals[root as usize];
        new_root.len = 1;
        new_root.keys[0] = separator;
        new_root.children[0] = self.root;
        new_root.children[1] = right;
        self.root = root;
        self.height += 1;
        assert!(self.height < HEIGHT_MAX, "the tree grew past {HEIGHT_MAX} levels");
    }

    /// Splits the full internal node `left_id` while adding `child` right of child `pos` with
    /// `separator`; returns the separator promoted to the parent and the new right node.
    fn split_internal_inserting(
        &mut self,
        left_id: u32,
        pos: usize,
        separator: u64,
        child: u32,
    ) -> (u64, u32) {
        let right_id = self.alloc_internal();
        // Lay out all children and separators, the new ones included, then cut: simpler than
        // the four cases of where the new child lands, and internal splits are rare.
        let mut keys = [0u64; INTERNAL_CHILDREN_MAX];
        let mut children = [NIL; INTERNAL_CHILDREN_MAX + 1];
        let left = &self.internals[left_id as usize];
        let children_len = left.children_len() + 1;
        keys[..children_len - 2].copy_from_slice(left.keys());
        children[..children_len - 1].copy_from_slice(&left.children[..children_len - 1]);
        keys.copy_within(pos..children_len - 2, pos + 1);
        keys[pos] = separator;
        children.copy_within(pos + 1..children_len - 1, pos + 2);
        children[pos + 1] = child;

        let left_children = children_len.div_ceil(2);
        let right_children = children_len - left_children;
        let promoted = keys[left_children - 1];
        let left = &mut self.internals[left_id as usize];
        left.len = (left_children - 1) as u32;
        left.keys[..left_children - 1].copy_from_slice(&keys[..left_children - 1]);
        left.children[..left_children].copy_from_slice(&children[..left_children]);
        let right = &mut self.internals[right_id as usize];
        right.len = (right_children - 1) as u32;
        right.keys[..right_children - 1].copy_from_slice(&keys[left_children..children_len - 1]);
        right.children[..right_children].copy_from_slice(&children[left_children..children_len]);
        (promoted, right_id)
    }

    // ---- deletion ----

    /// Restores the minimum fill of non-root leaf `leaf_id`, one key short: borrow from the left
    /// sibling, else from the right one, else merge with a sibling and fix the parent.
    fn rebalance_leaf(&mut self, path: &mut Path, leaf_id: u32) {
        let (parent_id, child) = path.last().expect("a non-root leaf has a parent");
        let min = self.capacities.leaf_keys_min();
        let parent = &self.internals[parent_id as usize];
        let left_id = (child > 0).then(|| parent.children[child - 1]);
        let right_id = (child + 1 < parent.children_len()).then(|| parent.children[child + 1]);
        let leaf = &self.leaves[leaf_id as usize];

        if let Some(left_id) = left_id {
            let left = &self.leaves[left_id as usize];
            if left.len() > min {
                let (key, value) = left.remove_at(left.len() - 1);
                leaf.insert_at(0, key, value);
                self.internals[parent_id as usize].keys[child - 1] = key;
                return;
            }
        }
        if let Some(right_id) = right_id {
            let right = &self.leaves[right_id as usize];
            if right.len() > min {
                let (key, value) = right.remove_at(0);
                leaf.push(key, value);
                self.internals[parent_id as usize].keys[child] = right.key(0);
                return;
            }
        }
        // Both siblings at the minimum: the merge fits in one leaf.
        let (into, from, separator) = match (left_id, right_id) {
            (Some(left_id), _) => (left_id, leaf_id, child - 1),
            (None, Some(right_id)) => (leaf_id, right_id, child),
            (None, None) => unreachable!("an internal node has at least two children"),
        };
        let (kept, gone) = (&self.leaves[into as usize], &self.leaves[from as usize]);
        for i in 0..gone.len() {
            kept.push(gone.key(i), gone.value(i));
        }
        self.leaves[into as usize].next = self.leaves[from as usize].next;
        self.free_leaf(from);
        self.internals[parent_id as usize].remove_after(separator);
        self.rebalance_internals(path);
    }

    /// The internal node on top of `path` just lost a child: restore its minimum fill the same
    /// way as for leaves (rotating separators through the parent), up to the root, and collapse a
    /// root left with one child.
    fn rebalance_internals(&mut self, path: &mut Path) {
        let min = self.capacities.internal_children_min();
        loop {
            let (node_id, _) = path.pop().expect("the path holds the node to rebalance");
            let Some((parent_id, child)) = path.last() else {
                if self.internals[node_id as usize].len == 0 {
                    self.root = self.internals[node_id as usize].children[0];
                    self.height -= 1;
                    self.free_internal(node_id);
                }
                return;
            };
            if self.internals[node_id as usize].children_len() >= min {
                return;
            }
            let parent = &self.internals[parent_id as usize];
            let left_id = (child > 0).then(|| parent.children[child - 1]);
            let right_id = (child + 1 < parent.children_len()).then(|| parent.children[child + 1]);

            if let Some(left_id) = left_id
                && self.internals[left_id as usize].children_len() > min
            {
                let separator = self.internals[parent_id as usize].keys[child - 1];
                let [left, node] = self.two_internals(left_id, node_id);
                let (left_last_key, moved) = left.pop_back();
                node.push_front(moved, separator);
                self.internals[parent_id as usize].keys[child - 1] = left_last_key;
                return;
            }
            if let Some(right_id) = right_id
                && self.internals[right_id as usize].children_len() > min
            {
                let separator = self.internals[parent_id as usize].keys[child];
                let [node, right] = self.two_internals(node_id, right_id);
                let (moved, right_first_key) = right.pop_front();
                node.push_back(separator, moved);
                self.internals[parent_id as usize].keys[child] = right_first_key;
                return;
            }
            let (into, from, separator_pos) = match (left_id, right_id) {
                (Some(left_id), _) => (left_id, node_id, child - 1),
                (None, Some(right_id)) => (node_id, right_id, child),
                (None, None) => unreachable!("an internal node has at least two children"),
            };
            let separator = self.internals[parent_id as usize].keys[separator_pos];
            let [kept, gone] = self.two_internals(into, from);
            kept.append(separator, gone);
            self.free_internal(from);
            self.internals[parent_id as usize].remove_after(separator_pos);
            // The parent lost a child: it is now on top of the path.
        }
    }

    fn two_internals(&mut self, a: u32, b: u32) -> [&mut Internal; 2] {
        self.internals.get_disjoint_mut([a as usize, b as usize]).expect("two distinct nodes")
    }

    // ---- bulk load ----

    /// Leaves filled to the bulk fill left to right as the pairs stream in (no second copy of
    /// the input), the last two evened out if the last one ends under the minimum fill, then
    /// internal levels built bottom-up with the children spread evenly over the nodes.
    fn build(
        pairs: impl IntoIterator<Item = (u64, u64)>,
        capacities: NodeCapacities,
    ) -> Result<BPlusTree, OutOfOrder> {
        let mut tree = BPlusTree::with_capacities(capacities);
        let per_leaf = capacities.leaf_keys_bulk();
        let pairs = pairs.into_iter();
        let leaves_hint = pairs.size_hint().0 / per_leaf + 1;
        tree.leaves.reserve(leaves_hint.saturating_sub(1));
        // The first key of each leaf: the separators of the level above.
        let mut firsts = Vec::with_capacity(leaves_hint);
        let mut previous = None;
        let mut fill = 0;
        for (index, (key, value)) in pairs.enumerate() {
            if let Some(previous) = previous
                && key <= previous
            {
                return Err(OutOfOrder { index: index as u64, previous, key });
            }
            previous = Some(key);
            if fill == per_leaf {
                let id = tree.alloc_leaf();
                let last = tree.leaves.len() - 2;
                tree.leaves[last].next = id;
                fill = 0;
            }
            if fill == 0 {
                firsts.push(key);
            }
            let leaf = tree.leaves.last_mut().expect("the root leaf exists");
            *leaf.keys[fill].get_mut() = key;
            *leaf.values[fill].get_mut() = value;
            fill += 1;
            *leaf.len.get_mut() = fill as u32;
        }
        tree.even_out_last_leaves(&mut firsts);

        let mut level: Vec<u32> = (0..tree.leaves.len() as u32).collect();
        while level.len() > 1 {
            let nodes = group_count(
                level.len(),
                capacities.internal_children_min(),
                capacities.internal_children_bulk(),
            );
            let (per_node, with_one_more) = (level.len() / nodes, level.len() % nodes);
            debug_assert!(
                per_node + usize::from(with_one_more > 0) <= capacities.internal_children
            );
            let mut next_level = Vec::with_capacity(nodes);
            let mut next_firsts = Vec::with_capacity(nodes);
            let mut start = 0;
            for n in 0..nodes {
                let end = start + per_node + usize::from(n < with_one_more);
                let id = tree.alloc_internal();
                let node = &mut tree.internals[id as usize];
                node.len = (end - start - 1) as u32;
                node.keys[..end - start - 1].copy_from_slice(&firsts[start + 1..end]);
                node.children[..end - start].copy_from_slice(&level[start..end]);
                next_level.push(id);
                next_firsts.push(firsts[start]);
                start = end;
            }
            level = next_level;
            firsts = next_firsts;
            tree.height += 1;
        }
        tree.root = level[0];
        Ok(tree)
    }

    /// After the streaming fill the last leaf may hold fewer than the minimum: merge it into the
    /// one before if both fit in a leaf, otherwise split their pairs evenly (each half then
    /// exceeds the minimum, since together they exceed a leaf's capacity).
    fn even_out_last_leaves(&mut self, firsts: &mut Vec<u64>) {
        let count = self.leaves.len();
        let capacities = self.capacities;
        if count < 2 || self.leaves[count - 1].len() >= capacities.leaf_keys_min() {
            return;
        }
        let (before, last) = self.leaves.split_at_mut(count - 1);
        let (before, last) = (&mut before[count - 2], &last[0]);
        let (before_len, last_len) = (before.len(), last.len());
        let total = before_len + last_len;
        if total <= capacities.leaf_keys {
            for i in 0..last_len {
                before.push(last.key(i), last.value(i));
            }
            before.next = NIL;
            self.leaves.pop();
            firsts.pop();
            return;
        }
        let before_keeps = total.div_ceil(2);
        let moved = before_len - before_keeps;
        for i in (0..last_len).rev() {
            last.set(i + moved, last.key(i), last.value(i));
        }
        for i in 0..moved {
            last.set(i, before.key(before_keeps + i), before.value(before_keeps + i));
        }
        last.set_len(last_len + moved);
        before.set_len(before_keeps);
        firsts[count - 1] = last.key(0);
    }

    // ---- invariants ----

    /// Checks the subtree of `node` (`levels` internal levels above its leaves) whose keys must
    /// lie in `[low, high)` (`high` None: no upper bound).
    fn check_subtree(
        &self,
        check: &mut InvariantCheck,
        node: u32,
        levels: usize,
        low: u64,
        high: Option<u64>,
    ) {
        let is_root = levels == self.height;
        let within = |key: u64| low <= key && high.is_none_or(|high| key < high);
        if levels == 0 {
            let leaf = self
                .leaves
                .get(node as usize)
                .unwrap_or_else(|| panic!("leaf {node} does not exist"));
            assert!(!check.leaf_seen[node as usize], "leaf {node} is reached twice");
            check.leaf_seen[node as usize] = true;
            check.leaves_in_order.push(node);
            let len = leaf.len();
            assert!(
                len <= self.capacities.leaf_keys,
                "leaf {node} holds {len} keys, over its capacity"
            );
            assert!(
                is_root || len >= self.capacities.leaf_keys_min(),
                "leaf {node} holds {len} keys, under the minimum fill {}",
                self.capacities.leaf_keys_min()
            );
            for i in 0..len {
                let key = leaf.key(i);
                assert!(
                    i == 0 || leaf.key(i - 1) < key,
                    "leaf {node}: keys not strictly increasing at slot {i}"
                );
                assert!(
                    within(key),
                    "leaf {node}: key {key} outside its separators' bounds [{low}, {high:?})"
                );
            }
            check.pairs += len;
            return;
        }
        let internal = self
            .internals
            .get(node as usize)
            .unwrap_or_else(|| panic!("internal node {node} does not exist"));
        assert!(!check.internal_seen[node as usize], "internal node {node} is reached twice");
        check.internal_seen[node as usize] = true;
        let children = internal.children_len();
        assert!(
            children <= self.capacities.internal_children,
            "internal node {node} has {children} children, over its capacity"
        );
        let min = if is_root { 2 } else { self.capacities.internal_children_min() };
        assert!(
            children >= min,
            "internal node {node} has {children} children, under the minimum {min}"
        );
        let keys = internal.keys();
        for (i, &key) in keys.iter().enumerate() {
            assert!(
                i == 0 || keys[i - 1] < key,
                "internal node {node}: separators not strictly increasing at {i}"
            );
            assert!(
                low < key && high.is_none_or(|high| key < high),
                "internal node {node}: separator {key} outside its bounds ({low}, {high:?})"
            );
        }
        for i in 0..children {
            let child_low = if i == 0 { low } else { keys[i - 1] };
            let child_high = if i < keys.len() { Some(keys[i]) } else { high };
            self.check_subtree(check, internal.children[i], levels - 1, child_low, child_high);
        }
    }
}

/// What [`BPlusTree::check_invariants`] gathers while it walks the tree.
struct InvariantCheck {
    leaf_seen: Vec<bool>,
    internal_seen: Vec<bool>,
    leaves_in_order: Vec<u32>,
    pairs: usize,
}

/// How many nodes to spread `items` children (or pairs) over so that each gets between `min` and
/// the capacity: about `items / per_node` nodes, fewer if that would leave nodes under `min`.
/// With a capacity of at least `2 * min - 1` some count always fits (see the bulk-load tests).
fn group_count(items: usize, min: usize, per_node: usize) -> usize {
    let mut nodes = items.div_ceil(per_node).max(1);
    while nodes > 1 && items / nodes < min {
        nodes -= 1;
    }
    nodes
}

/// The SplitMix64 finalizer (Stafford's variant 13): a bijection on u64 in which every input bit
/// flips each output bit with probability about one half.
#[inline]
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// One step of the checksum: the state and the word are combined, and the Weyl increment keeps a
/// zero state from staying zero on zero words (the finalizer maps 0 to 0).
#[inline]
fn absorb(state: u64, word: u64) -> u64 {
    mix64((state ^ word).wrapping_add(0x9e37_79b9_7f4a_7c15))
}

/// Pairs in key order, leaf by leaf along the chain.
struct Iter<'a> {
    tree: &'a BPlusTree,
    leaf: u32,
    slot: usize,
}

impl Iterator for Iter<'_> {
    type Item = (u64, u64);

    fn next(&mut self) -> Option<(u64, u64)> {
        loop {
            let leaf = self.tree.leaves.get(self.leaf as usize)?;
            if self.slot < leaf.len() {
                let pair = (leaf.key(self.slot), leaf.value(self.slot));
                self.slot += 1;
                return Some(pair);
            }
            self.leaf = leaf.next;
            self.slot = 0;
        }
    }
}

#[cfg(test)]
impl BPlusTree {
    /// The interval and fill of the leaf `key` belongs in: what the `try_*` decisions read.
    fn leaf_facts(&self, key: u64) -> (KeyRange, usize) {
        let (leaf, interval) = self.leaf_and_interval(key);
        (interval, self.leaves[leaf as usize].len())
    }

    /// Leaves in the tree.
    fn leaf_count(&self) -> usize {
        self.leaf_chain().count()
    }
}

#[path = "btree_snapshot.rs"]
mod snapshot;

#[cfg(test)]
#[path = "btree_tests.rs"]
mod tests;
