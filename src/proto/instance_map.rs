//! A map keyed by consensus instance that reuses its memory (thesis 3.5.2).
//!
//! Per-instance state slides upward: an instance enters at the top when it is opened, voted or
//! decided, and leaves at the bottom when it is decided, delivered or garbage-collected. The thesis'
//! implementation keeps such state "in preallocated circular buffers" (3.5.2). A `BTreeMap` does not
//! behave like one: inserting at the top and removing at the bottom allocates and frees tree nodes all
//! the time, so a process keyed its state that way allocates for every batch it orders.
//!
//! [`InstanceMap`] is a circular buffer (`VecDeque`) of slots: slot k holds instance `base + k`, and
//! `base` follows the smallest key as the low instances leave. The buffer grows until it spans the
//! working set and keeps its capacity from then on (it is never shrunk), so the steady state — insert
//! at the top, remove at the bottom, in any order within the span — neither allocates nor frees.
//!
//! Instance numbers arrive in messages, so one may lie far above the others: a damaged or hostile
//! message, or a peer far ahead. A buffer stretched to reach it would cost memory in proportion to the
//! distance rather than to what the map holds. The buffer therefore spans at most [`WINDOW_SPAN_MAX`]
//! instances from its base; a key further up waits in an ordered overflow (a `BTreeMap`, which costs
//! only what it holds) and moves into the buffer once the base comes within reach. Whatever the keys,
//! the buffer holds at most `WINDOW_SPAN_MAX` slots.

use std::collections::btree_map::{self, Entry};
use std::collections::{BTreeMap, VecDeque, vec_deque};
use std::fmt;
use std::iter::Enumerate;

use super::types::Instance;

/// How many instances the buffer spans at most, counted from its base.
///
/// The bound should cover the widest steady-state working set: beyond it the map stays correct, but
/// the top of the set lives in the overflow and allocates per batch again. The widest is an
/// acceptor's: it keeps [`gc_retain_instances`](super::config::NodeConfig::gc_retain_instances)
/// decided instances below its garbage-collection point (100,000 by default; the node's rule of
/// 64 MiB of batches gives fewer for batches of 1 KiB and more) plus the pipeline above it. The
/// bound also caps what one far-off instance number can cost: this many slots, about 15 MiB for an
/// acceptor's slots of 120 bytes.
pub const WINDOW_SPAN_MAX: u64 = 1 << 17;

/// A map from [`Instance`] to `T` with `BTreeMap` semantics (ascending order everywhere), for keys
/// that are mostly dense and move upward; see the module docs.
///
/// `SPAN_MAX` is the buffer's span bound; only tests set it, to reach the overflow with small keys.
#[derive(Clone)]
pub struct InstanceMap<T, const SPAN_MAX: u64 = WINDOW_SPAN_MAX> {
    /// Slot k holds instance `base + k`. Empty, or its first and last slots are occupied: `base` is
    /// then the smallest key of the map.
    window: VecDeque<Option<T>>,
    base: Instance,
    /// Keys at least `SPAN_MAX` above `base`, so above every key of the buffer. Empty while the buffer
    /// is.
    overflow: BTreeMap<Instance, T>,
    /// Occupied slots plus overflow entries.
    len: usize,
}

/// Where a key is to be stored.
enum Place<'a, T> {
    Window(&'a mut Option<T>),
    Overflow(Entry<'a, Instance, T>),
}

impl<T, const SPAN_MAX: u64> InstanceMap<T, SPAN_MAX> {
    pub fn new() -> Self {
        InstanceMap { window: VecDeque::new(), base: 0, overflow: BTreeMap::new(), len: 0 }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// Makes room for the buffer to span `slots` instances (at most `SPAN_MAX`) without growing.
    pub fn reserve(&mut self, slots: usize) {
        let slots = slots.min(usize::try_from(SPAN_MAX).unwrap_or(usize::MAX));
        self.window.reserve(slots.saturating_sub(self.window.len()));
    }

    /// Instances the buffer can span without growing.
    pub fn capacity(&self) -> usize {
        self.window.capacity()
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The smallest key.
    pub fn first_key(&self) -> Option<Instance> {
        // The overflow is empty while the buffer is.
        (!self.window.is_empty()).then_some(self.base)
    }

    pub fn get(&self, instance: Instance) -> Option<&T> {
        let offset = instance.checked_sub(self.base)?;
        if offset < SPAN_MAX {
            self.window.get(offset as usize)?.as_ref()
        } else {
            self.overflow.get(&instance)
        }
    }

    pub fn get_mut(&mut self, instance: Instance) -> Option<&mut T> {
        let offset = instance.checked_sub(self.base)?;
        if offset < SPAN_MAX {
            self.window.get_mut(offset as usize)?.as_mut()
        } else {
            self.overflow.get_mut(&instance)
        }
    }

    pub fn contains_key(&self, instance: Instance) -> bool {
        self.get(instance).is_some()
    }

    /// Stores `value` under `instance`; returns the value it replaced.
    pub fn insert(&mut self, instance: Instance, value: T) -> Option<T> {
        let old = match Self::place(&mut self.window, &mut self.base, &mut self.overflow, instance)
        {
            Place::Window(slot) => slot.replace(value),
            Place::Overflow(Entry::Occupied(mut e)) => Some(e.insert(value)),
            Place::Overflow(Entry::Vacant(e)) => {
                e.insert(value);
                None
            }
        };
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    /// The value under `instance`, stored from `default()` first if there is none.
    pub fn get_or_insert_with(
        &mut self,
        instance: Instance,
        default: impl FnOnce() -> T,
    ) -> &mut T {
        let InstanceMap { window, base, overflow, len } = self;
        match Self::place(window, base, overflow, instance) {
            Place::Window(slot) => {
                if slot.is_none() {
                    *len += 1;
                }
                slot.get_or_insert_with(default)
            }
            Place::Overflow(Entry::Occupied(e)) => e.into_mut(),
            Place::Overflow(Entry::Vacant(e)) => {
                *len += 1;
                e.insert(default())
            }
        }
    }

    pub fn remove(&mut self, instance: Instance) -> Option<T> {
        let offset = instance.checked_sub(self.base)?;
        let value = if offset < SPAN_MAX {
            self.window.get_mut(offset as usize)?.take()?
        } else {
            self.overflow.remove(&instance)?
        };
        self.len -= 1;
        self.settle();
        Some(value)
    }

    /// Drops every key below `below` (garbage collection). Allocates nothing.
    pub fn remove_below(&mut self, below: Instance) {
        if self.window.is_empty() {
            return;
        }
        let Some(cut) = below.checked_sub(self.base) else { return };
        let cut = usize::try_from(cut).unwrap_or(usize::MAX).min(self.window.len());
        let dropped = self.window.drain(..cut).filter(Option::is_some).count();
        self.len -= dropped;
        if !self.window.is_empty() {
            // A slot remains, so `base + cut` is a key's instance and cannot overflow.
            self.base += cut as Instance;
        }
        while let Some(e) = self.overflow.first_entry()
            && *e.key() < below
        {
            e.remove();
            self.len -= 1;
        }
        self.settle();
    }

    /// The entries from `from` on, ascending.
    pub fn range_from(&self, from: Instance) -> impl Iterator<Item = (Instance, &T)> {
        let start = usize::try_from(from.saturating_sub(self.base))
            .unwrap_or(usize::MAX)
            .min(self.window.len());
        let base = self.base;
        self.window
            .range(start..)
            .enumerate()
            .filter_map(move |(k, slot)| Some((base + (start + k) as Instance, slot.as_ref()?)))
            .chain(self.overflow.range(from..).map(|(&instance, value)| (instance, value)))
    }

    /// Every entry, ascending.
    pub fn iter(&self) -> impl Iterator<Item = (Instance, &T)> {
        self.range_from(0)
    }

    /// Every entry, ascending, its value mutable.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (Instance, &mut T)> {
        let base = self.base;
        self.window
            .iter_mut()
            .enumerate()
            .filter_map(move |(k, slot)| Some((base + k as Instance, slot.as_mut()?)))
            .chain(self.overflow.iter_mut().map(|(&instance, value)| (instance, value)))
    }

    /// Takes every entry out, ascending; the map keeps its buffer for reuse.
    pub fn drain(&mut self) -> impl Iterator<Item = (Instance, T)> {
        let base = self.base;
        self.len = 0;
        // An empty `BTreeMap` owns no memory: taking the overflow allocates nothing.
        let overflow = std::mem::take(&mut self.overflow);
        self.window
            .drain(..)
            .enumerate()
            .filter_map(move |(k, slot)| Some((base + k as Instance, slot?)))
            .chain(overflow)
    }

    /// The place for `instance`, room made for it. The caller fills it at once: the buffer must not
    /// keep an empty slot at either end. (Over the fields rather than `self`, so the caller can still
    /// count the entry while it holds the place.)
    fn place<'a>(
        window: &'a mut VecDeque<Option<T>>,
        base: &mut Instance,
        overflow: &'a mut BTreeMap<Instance, T>,
        instance: Instance,
    ) -> Place<'a, T> {
        if window.is_empty() {
            debug_assert!(overflow.is_empty(), "the overflow is empty while the buffer is");
            *base = instance;
            window.push_back(None);
            return Place::Window(&mut window[0]);
        }
        match instance.checked_sub(*base) {
            Some(offset) if offset < SPAN_MAX => {
                let offset = offset as usize;
                if offset >= window.len() {
                    window.resize_with(offset + 1, || None);
                }
                Place::Window(&mut window[offset])
            }
            Some(_) => Place::Overflow(overflow.entry(instance)),
            None => {
                // Below the base (an instance decided or voted out of order): the buffer extends
                // downward, and what would then lie beyond its span moves to the overflow, keeping
                // every overflow key above the buffer's.
                while let Some(last) = window.len().checked_sub(1) {
                    let top = *base + last as Instance;
                    if top - instance < SPAN_MAX {
                        break;
                    }
                    if let Some(Some(value)) = window.pop_back() {
                        overflow.insert(top, value);
                    }
                }
                while window.back().is_some_and(Option::is_none) {
                    window.pop_back();
                }
                if window.is_empty() {
                    window.push_back(None);
                } else {
                    // The old base is within the span of `instance` now, so this is bounded.
                    for _ in instance..*base {
                        window.push_front(None);
                    }
                }
                *base = instance;
                Place::Window(&mut window[0])
            }
        }
    }

    /// Restores the shape after slots were emptied: no empty slot at either end of the buffer (so
    /// `base` is the smallest key), and every overflow key within reach of the base in the buffer.
    fn settle(&mut self) {
        while self.window.back().is_some_and(Option::is_none) {
            self.window.pop_back();
        }
        while self.window.front().is_some_and(Option::is_none) {
            // The last slot is occupied, so the base stays an instance.
            self.window.pop_front();
            self.base += 1;
        }
        if self.window.is_empty() {
            let Some((instance, value)) = self.overflow.pop_first() else { return };
            self.base = instance;
            self.window.push_back(Some(value));
        }
        while let Some(e) = self.overflow.first_entry()
            && *e.key() - self.base < SPAN_MAX
        {
            let (instance, value) = e.remove_entry();
            self.window.resize_with((instance - self.base) as usize, || None);
            self.window.push_back(Some(value));
        }
    }

    /// Checks the shape `place` and `settle` maintain.
    #[cfg(test)]
    fn assert_invariants(&self) {
        assert!(self.window.len() as u64 <= SPAN_MAX);
        if self.window.is_empty() {
            assert!(self.overflow.is_empty() && self.len == 0);
            return;
        }
        assert!(self.window.front().is_some_and(Option::is_some));
        assert!(self.window.back().is_some_and(Option::is_some));
        assert!(self.overflow.keys().all(|&k| k - self.base >= SPAN_MAX));
        let occupied = self.window.iter().filter(|s| s.is_some()).count();
        assert_eq!(self.len, occupied + self.overflow.len());
    }
}

impl<T, const SPAN_MAX: u64> Default for InstanceMap<T, SPAN_MAX> {
    fn default() -> Self {
        InstanceMap::new()
    }
}

impl<T: fmt::Debug, const SPAN_MAX: u64> fmt::Debug for InstanceMap<T, SPAN_MAX> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

/// Two maps are equal when they hold the same entries, however their buffers are laid out.
impl<T: PartialEq, const SPAN_MAX: u64> PartialEq for InstanceMap<T, SPAN_MAX> {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.iter().eq(other.iter())
    }
}

impl<T: Eq, const SPAN_MAX: u64> Eq for InstanceMap<T, SPAN_MAX> {}

/// The entries of an [`InstanceMap`], ascending, by value.
pub struct IntoIter<T> {
    base: Instance,
    window: Enumerate<vec_deque::IntoIter<Option<T>>>,
    overflow: btree_map::IntoIter<Instance, T>,
}

impl<T> Iterator for IntoIter<T> {
    type Item = (Instance, T);

    fn next(&mut self) -> Option<(Instance, T)> {
        for (k, slot) in self.window.by_ref() {
            if let Some(value) = slot {
                return Some((self.base + k as Instance, value));
            }
        }
        self.overflow.next()
    }
}

impl<T, const SPAN_MAX: u64> IntoIterator for InstanceMap<T, SPAN_MAX> {
    type Item = (Instance, T);
    type IntoIter = IntoIter<T>;

    fn into_iter(self) -> IntoIter<T> {
        IntoIter {
            base: self.base,
            window: self.window.into_iter().enumerate(),
            overflow: self.overflow.into_iter(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::ops::Range;

    use proptest::collection::vec;
    use proptest::prelude::*;

    use super::*;
    use crate::proto::config::{ClusterConfig, NodeConfig, Protocol};

    /// A key relative to the map's smallest one (so the keys slide upward with it), or one far off.
    #[derive(Clone, Copy, Debug)]
    enum Key {
        Near(i64),
        Huge(u64),
    }

    #[derive(Clone, Debug)]
    enum Op {
        Insert(Key, u32),
        Remove(Key),
        GetOrInsertWith(Key, u32),
        RemoveBelow(Key),
        RangeFrom(Key),
        Get(Key),
        IterMut(u32),
        Drain,
        /// Compares with a copy and with a map of the same entries built in another order.
        Rebuild,
    }

    fn arb_key(near: Range<i64>) -> impl Strategy<Value = Key> {
        let huge = prop_oneof![
            Just(u64::MAX),
            Just(u64::MAX - 1),
            (1u64 << 60)..(1u64 << 60) + 64,
            any::<u64>(),
        ];
        prop_oneof![24 => near.prop_map(Key::Near), 1 => huge.prop_map(Key::Huge)]
    }

    fn arb_ops(near: Range<i64>) -> impl Strategy<Value = Vec<Op>> {
        let key = move || arb_key(near.clone());
        let op = prop_oneof![
            8 => (key(), any::<u32>()).prop_map(|(k, v)| Op::Insert(k, v)),
            6 => key().prop_map(Op::Remove),
            3 => (key(), any::<u32>()).prop_map(|(k, v)| Op::GetOrInsertWith(k, v)),
            2 => key().prop_map(Op::RemoveBelow),
            2 => key().prop_map(Op::RangeFrom),
            2 => key().prop_map(Op::Get),
            1 => any::<u32>().prop_map(Op::IterMut),
            1 => Just(Op::Rebuild),
        ];
        // A drain empties the map: rare, so most runs slide far.
        vec(prop_oneof![60 => op, 1 => Just(Op::Drain)], 1..300)
    }

    fn entries<const S: u64>(m: &InstanceMap<u32, S>) -> Vec<(Instance, u32)> {
        m.iter().map(|(k, &v)| (k, v)).collect()
    }

    /// Runs `ops` on an `InstanceMap` and on a `BTreeMap` and checks they agree after every one.
    fn agrees_with_btreemap<const S: u64>(ops: &[Op]) -> Result<(), TestCaseError> {
        let mut map = InstanceMap::<u32, S>::new();
        let mut model = BTreeMap::<Instance, u32>::new();
        let mut cursor: Instance = 1 << 20;
        for op in ops {
            let at = |key: Key| match key {
                Key::Near(d) if d >= 0 => cursor.saturating_add(d.unsigned_abs()),
                Key::Near(d) => cursor.saturating_sub(d.unsigned_abs()),
                Key::Huge(k) => k,
            };
            match op.clone() {
                Op::Insert(k, v) => prop_assert_eq!(map.insert(at(k), v), model.insert(at(k), v)),
                Op::Remove(k) => prop_assert_eq!(map.remove(at(k)), model.remove(&at(k))),
                Op::GetOrInsertWith(k, v) => {
                    let got = *map.get_or_insert_with(at(k), || v);
                    prop_assert_eq!(got, *model.entry(at(k)).or_insert(v));
                }
                Op::RemoveBelow(k) => {
                    map.remove_below(at(k));
                    model = model.split_off(&at(k));
                }
                Op::RangeFrom(k) => {
                    let got: Vec<_> = map.range_from(at(k)).map(|(k, &v)| (k, v)).collect();
                    let want: Vec<_> = model.range(at(k)..).map(|(&k, &v)| (k, v)).collect();
                    prop_assert_eq!(got, want);
                }
                Op::Get(k) => {
                    prop_assert_eq!(map.get(at(k)), model.get(&at(k)));
                    prop_assert_eq!(map.contains_key(at(k)), model.contains_key(&at(k)));
                    prop_assert_eq!(map.get_mut(at(k)).copied(), model.get_mut(&at(k)).copied());
                }
                Op::IterMut(d) => {
                    let mut keys = Vec::new();
                    for (k, v) in map.iter_mut() {
                        keys.push(k);
                        *v = v.wrapping_add(d);
                    }
                    model.values_mut().for_each(|v| *v = v.wrapping_add(d));
                    prop_assert_eq!(keys, model.keys().copied().collect::<Vec<_>>());
                }
                Op::Drain => {
                    let drained: Vec<_> = map.drain().collect();
                    prop_assert_eq!(
                        drained,
                        std::mem::take(&mut model).into_iter().collect::<Vec<_>>()
                    );
                }
                Op::Rebuild => {
                    let copy = map.clone();
                    prop_assert_eq!(&copy, &map);
                    let mut rebuilt = InstanceMap::<u32, S>::new();
                    for (&k, &v) in model.iter().rev() {
                        rebuilt.insert(k, v);
                    }
                    rebuilt.assert_invariants();
                    prop_assert_eq!(&rebuilt, &map);
                    prop_assert_eq!(format!("{rebuilt:?}"), format!("{model:?}"));
                    let by_value: Vec<_> = copy.into_iter().collect();
                    prop_assert_eq!(
                        by_value,
                        model.iter().map(|(&k, &v)| (k, v)).collect::<Vec<_>>()
                    );
                }
            }
            map.assert_invariants();
            prop_assert_eq!(map.len(), model.len());
            prop_assert_eq!(map.is_empty(), model.is_empty());
            prop_assert_eq!(map.first_key(), model.keys().next().copied());
            prop_assert_eq!(entries(&map), model.iter().map(|(&k, &v)| (k, v)).collect::<Vec<_>>());
            cursor = model.keys().next().copied().unwrap_or(cursor);
        }
        Ok(())
    }

    proptest! {
        /// A span of 16 sends keys across the buffer's bound all the time.
        #[test]
        fn a_small_span_agrees_with_btreemap(ops in arb_ops(-24..48)) {
            agrees_with_btreemap::<16>(&ops)?;
        }

        #[test]
        fn the_real_span_agrees_with_btreemap(ops in arb_ops(-8..40)) {
            agrees_with_btreemap::<WINDOW_SPAN_MAX>(&ops)?;
        }
    }

    #[test]
    fn the_span_covers_an_acceptors_default_working_set() {
        let cluster = ClusterConfig { nodes: 3, acceptors: vec![0, 1, 2], f: 1 };
        let cfg = NodeConfig::new(0, Protocol::URing, cluster);
        assert!(cfg.gc_retain_instances + u64::from(cfg.window_instances) < WINDOW_SPAN_MAX);
    }

    #[test]
    fn a_far_instance_waits_in_the_overflow_without_stretching_the_buffer() {
        let mut m = InstanceMap::<&str>::new();
        m.insert(0, "zero");
        m.insert(1 << 60, "far");
        m.insert(Instance::MAX, "last");
        assert_eq!((m.window.len(), m.overflow.len(), m.len()), (1, 2, 3));
        assert!(m.window.capacity() < 16, "no slots were made for the far instances");
        assert_eq!(
            (m.get(1 << 60), m.get(Instance::MAX), m.get(1)),
            (Some(&"far"), Some(&"last"), None)
        );
        assert_eq!(m.remove(0), Some("zero"));
        assert_eq!((m.first_key(), m.window.len(), m.overflow.len()), (Some(1 << 60), 1, 1));
        m.remove_below(Instance::MAX);
        assert_eq!((m.first_key(), m.window.len(), m.overflow.len()), (Some(Instance::MAX), 1, 0));
        assert_eq!(m.into_iter().collect::<Vec<_>>(), [(Instance::MAX, "last")]);
    }

    #[test]
    fn keys_move_into_the_buffer_as_the_base_comes_within_reach() {
        let mut m = InstanceMap::<u64>::new();
        m.insert(0, 0);
        m.insert(WINDOW_SPAN_MAX - 1, 1);
        m.insert(WINDOW_SPAN_MAX, 2);
        assert_eq!((m.window.len() as u64, m.overflow.len()), (WINDOW_SPAN_MAX, 1));
        m.remove(0);
        assert_eq!((m.window.len(), m.overflow.len()), (2, 0));
        assert_eq!(
            m.range_from(0).collect::<Vec<_>>(),
            [(WINDOW_SPAN_MAX - 1, &1), (WINDOW_SPAN_MAX, &2)]
        );
    }

    #[test]
    fn an_instance_far_below_the_base_pushes_the_buffer_into_the_overflow() {
        let mut m = InstanceMap::<u64>::new();
        m.insert(1 << 40, 1);
        m.insert((1 << 40) + 1, 2);
        m.insert(5, 0);
        assert_eq!((m.first_key(), m.window.len(), m.overflow.len()), (Some(5), 1, 2));
        assert_eq!(m.iter().map(|(k, _)| k).collect::<Vec<_>>(), [5, 1 << 40, (1 << 40) + 1]);
        m.remove_below(6);
        assert_eq!((m.first_key(), m.window.len(), m.overflow.len()), (Some(1 << 40), 2, 0));
    }

    #[test]
    fn the_buffer_does_not_reallocate_once_warm() {
        const SPAN: u64 = 64;
        let mut m = InstanceMap::<u64>::new();
        for i in 0..SPAN {
            m.insert(i, i);
        }
        // One step: the top arrives out of order (two instances, the higher first), the bottom
        // leaves out of order too, by removal and by trimming.
        let step = |m: &mut InstanceMap<u64>, j: u64| {
            let (low, top) = (2 * j, SPAN + 2 * j);
            m.insert(top + 1, top + 1);
            *m.get_or_insert_with(top, || 0) = top;
            assert_eq!(m.remove(low + 1), Some(low + 1));
            m.remove_below(low + 1);
        };
        step(&mut m, 0);
        let capacity = m.window.capacity();
        for j in 1..10_000 {
            step(&mut m, j);
            assert_eq!(
                (m.window.capacity(), m.overflow.len(), m.len()),
                (capacity, 0, SPAN as usize)
            );
        }
        assert_eq!(m.first_key(), Some(2 * 10_000));
    }
}
