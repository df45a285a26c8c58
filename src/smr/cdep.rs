//! Command dependencies (C-Dep) and the Command-to-Groups function (C-G) derived from them and the
//! multiprogramming level (MPL) (thesis 6.3.2).
//!
//! A service declares its commands' classes and which classes depend on which, either always
//! ("inserts and deletes depend on all commands") or only when they name the same key ("an update
//! on key k depends on other updates and reads of k"). Two commands with no declared dependency
//! are independent. [`CommandToGroups::derive`] turns that declaration into C-G for a given MPL;
//! the client proxy uses it to choose a command's group and the server proxy to check where a
//! delivered command belongs and how to execute it. No service hand-codes its C-G.
//!
//! **Groups.** With MPL k there are k *lanes*, one per worker thread t_1..t_k, each with its
//! group g_i, and g_all, which every worker delivers ([`Destination`]). As in the thesis'
//! prototype (6.5.2), a command that concerns several threads goes to g_all: Multi-Ring Paxos
//! addresses one group per message.
//!
//! **Derivation.**
//! - A class that depends on another regardless of parameters goes to g_all (the thesis' simple
//!   C-G: `set_state -> ALL_GROUPS`). Two classes related only that way are ordered through g_all,
//!   whatever the other one's group is, because every worker delivers g_all in merged order with
//!   its own group and executes a g_all command with every other worker waiting.
//! - A class related to others by key only goes to the lane of its key ([`KeyPartition`]): every
//!   command naming key k lands in the same group, so two such commands are ordered there.
//! - A class with no dependency left (e.g. reads when nothing updates) may go to any lane; the
//!   client spreads such commands over the lanes (load balance, 6.2.7).
//!
//! **Optimistic classes (opt-PSMR).** A class declared [`CDep::optimistic`] depends on all others
//! only *possibly* (an insert may split a node another thread's keys share). Under opt-PSMR its
//! commands go first to their key's lane; the replica executes them there only when the service
//! finds, deterministically, that they touch nothing another lane shares, and otherwise refuses
//! them, after which the client re-multicasts them conservatively to g_all.

use thiserror::Error;

/// A command class: the command identifier of the thesis' signatures (`insert`, `read`, ...).
pub type ClassId = u8;

/// When one class depends on another.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DependsWhen {
    /// Whatever the parameters are.
    Always,
    /// When both commands name the same key.
    SameKey,
}

/// The C-Dep a service declares: its classes and their dependencies. See the module docs.
#[derive(Clone, Debug, Default)]
pub struct CDep {
    classes: Vec<(ClassId, &'static str)>,
    /// (dependent, depended on, when), in declaration order.
    edges: Vec<(ClassId, ClassId, DependsWhen)>,
    optimistic: Vec<ClassId>,
}

/// A C-Dep that names a class it did not declare, or declares one twice.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum CDepError {
    #[error("C-Dep: class {0} is declared twice")]
    Duplicate(ClassId),
    #[error("C-Dep: class {0} is used but never declared with `command`")]
    Undeclared(ClassId),
    #[error("C-Dep: MPL must be between 1 and {max}, not {mpl}")]
    Mpl { mpl: usize, max: usize },
    #[error("C-Dep: optimistic class `{0}` must depend on others (it would never be refused)")]
    OptimisticWithoutDependency(&'static str),
}

impl CDep {
    pub fn new() -> CDep {
        CDep::default()
    }

    /// Declares a command class.
    pub fn command(mut self, class: ClassId, name: &'static str) -> CDep {
        self.classes.push((class, name));
        self
    }

    /// `class` depends on every class, itself included, whatever the parameters.
    pub fn depends_on_all(mut self, class: ClassId) -> CDep {
        let all: Vec<ClassId> = self.classes.iter().map(|&(c, _)| c).collect();
        for other in all {
            self.edges.push((class, other, DependsWhen::Always));
        }
        self
    }

    /// `class` depends on each of `others` when `when` holds.
    pub fn depends_on(mut self, class: ClassId, others: &[ClassId], when: DependsWhen) -> CDep {
        for &other in others {
            self.edges.push((class, other, when));
        }
        self
    }

    /// Commands of `class` may turn out to be independent when executed (opt-PSMR): the service
    /// checks them at execution ([`crate::smr::Service::execute_optimistic`]).
    pub fn optimistic(mut self, class: ClassId) -> CDep {
        self.optimistic.push(class);
        self
    }

    /// The declared classes, in declaration order.
    pub fn classes(&self) -> impl Iterator<Item = (ClassId, &'static str)> + '_ {
        self.classes.iter().copied()
    }

    /// The name of `class`, if declared.
    pub fn name(&self, class: ClassId) -> Option<&'static str> {
        self.classes.iter().find(|&&(c, _)| c == class).map(|&(_, n)| n)
    }

    /// Whether commands of classes `a` and `b` may depend on each other, given whether they name
    /// the same key: the relation C-G must respect (used by tests of the derivation).
    pub fn dependent(&self, a: ClassId, b: ClassId, same_key: bool) -> bool {
        self.edges.iter().any(|&(x, y, when)| {
            ((x, y) == (a, b) || (x, y) == (b, a))
                && (when == DependsWhen::Always || (when == DependsWhen::SameKey && same_key))
        })
    }

    fn validate(&self) -> Result<(), CDepError> {
        for (i, &(c, _)) in self.classes.iter().enumerate() {
            if self.classes[..i].iter().any(|&(d, _)| d == c) {
                return Err(CDepError::Duplicate(c));
            }
        }
        let declared = |c: ClassId| self.classes.iter().any(|&(d, _)| d == c);
        let named =
            self.edges.iter().flat_map(|&(a, b, _)| [a, b]).chain(self.optimistic.iter().copied());
        if let Some(c) = named.into_iter().find(|&c| !declared(c)) {
            return Err(CDepError::Undeclared(c));
        }
        for &c in &self.optimistic {
            if !self.edges.iter().any(|&(a, b, _)| a == c || b == c) {
                return Err(CDepError::OptimisticWithoutDependency(self.name(c).unwrap_or("?")));
            }
        }
        Ok(())
    }
}

/// Where C-G sends a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Destination {
    /// Group g_i of worker lane `i` (0-based): one thread executes it, in parallel mode.
    Lane(usize),
    /// g_all: every worker delivers it; the lowest lane executes it while the others wait.
    All,
}

/// How commands keyed by an 8-byte key map to lanes: `key_space` split into MPL equal ranges, so
/// each worker owns a contiguous range of keys (what opt-PSMR's conflict check reasons about;
/// it also keeps a worker's keys close together in a tree). Keys at or past `key_space` belong
/// to the last lane.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyPartition {
    pub key_space: u64,
    pub lanes: usize,
}

/// An inclusive range of keys: the keys one lane owns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyRange {
    pub first: u64,
    pub last: u64,
}

impl KeyPartition {
    pub fn new(key_space: u64, lanes: usize) -> KeyPartition {
        KeyPartition { key_space: key_space.max(1), lanes: lanes.max(1) }
    }

    pub fn lane_of(&self, key: u64) -> usize {
        let lane = u128::from(key) * self.lanes as u128 / u128::from(self.key_space);
        (lane as usize).min(self.lanes - 1)
    }

    /// The keys lane `lane` owns; the first lane starts at 0 and the last ends at `u64::MAX`.
    pub fn range_of(&self, lane: usize) -> KeyRange {
        // The smallest key whose lane is `lane`: ceil(lane * key_space / lanes).
        let start = |l: usize| -> u64 {
            let n = l as u128 * u128::from(self.key_space);
            n.div_ceil(self.lanes as u128) as u64
        };
        let first = if lane == 0 { 0 } else { start(lane) };
        let last = if lane + 1 >= self.lanes { u64::MAX } else { start(lane + 1) - 1 };
        KeyRange { first, last }
    }
}

/// What C-G needs of a command: its class and, if it has one, its key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Signature {
    pub class: ClassId,
    pub key: Option<u64>,
}

/// How a class maps to groups (derived; see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClassMapping {
    All,
    ByKey,
    /// Any lane: the client picks one.
    Any,
}

/// The most lanes C-G derives for (MPL).
pub const MPL_MAX: usize = 64;

/// C-G for one C-Dep and MPL. Cheap to copy around threads (`Clone`).
#[derive(Clone, Debug)]
pub struct CommandToGroups {
    /// Indexed by class id.
    mapping: [Option<ClassMapping>; 256],
    optimistic: [bool; 256],
    partition: KeyPartition,
}

impl CommandToGroups {
    /// Derives C-G from `cdep` for `partition.lanes` worker threads (MPL).
    pub fn derive(cdep: &CDep, partition: KeyPartition) -> Result<CommandToGroups, CDepError> {
        cdep.validate()?;
        if partition.lanes == 0 || partition.lanes > MPL_MAX {
            return Err(CDepError::Mpl { mpl: partition.lanes, max: MPL_MAX });
        }
        let mut mapping = [None; 256];
        for (class, _) in cdep.classes() {
            mapping[usize::from(class)] = Some(ClassMapping::Any);
        }
        // Classes depending always on others: g_all. An edge between two classes is honoured if
        // either end goes to g_all, so only the declaring side moves.
        for &(a, b, when) in &cdep.edges {
            if when == DependsWhen::Always && mapping[usize::from(b)] != Some(ClassMapping::All) {
                mapping[usize::from(a)] = Some(ClassMapping::All);
            }
        }
        // Key-related classes not in g_all: by key, both ends.
        for &(a, b, when) in &cdep.edges {
            if when == DependsWhen::SameKey {
                for c in [a, b] {
                    if mapping[usize::from(c)] == Some(ClassMapping::Any) {
                        mapping[usize::from(c)] = Some(ClassMapping::ByKey);
                    }
                }
            }
        }
        let mut optimistic = [false; 256];
        for &c in &cdep.optimistic {
            optimistic[usize::from(c)] = true;
        }
        Ok(CommandToGroups { mapping, optimistic, partition })
    }

    pub fn lanes(&self) -> usize {
        self.partition.lanes
    }

    pub fn partition(&self) -> KeyPartition {
        self.partition
    }

    /// How `class` maps, `None` for a class the service never declared.
    pub fn mapping(&self, class: ClassId) -> Option<ClassMapping> {
        self.mapping[usize::from(class)]
    }

    /// Whether `class` is one opt-PSMR may send optimistically to its key's lane.
    pub fn is_optimistic(&self, class: ClassId) -> bool {
        self.optimistic[usize::from(class)]
    }

    /// The conservative destination of a command (P-SMR's C-G, thesis Algorithm 1 line 2);
    /// `spread` chooses the lane of a command free to go anywhere (the client's load balancing).
    /// `None` for an undeclared class, or a keyed class whose command has no key.
    pub fn destination(&self, sig: Signature, spread: usize) -> Option<Destination> {
        match self.mapping(sig.class)? {
            ClassMapping::All => Some(Destination::All),
            ClassMapping::ByKey => Some(Destination::Lane(self.partition.lane_of(sig.key?))),
            ClassMapping::Any => Some(Destination::Lane(spread % self.lanes())),
        }
    }

    /// opt-PSMR's first, optimistic, destination: an optimistic class with a key goes to its key's
    /// lane; everything else as [`Self::destination`].
    pub fn optimistic_destination(&self, sig: Signature, spread: usize) -> Option<Destination> {
        match sig.key {
            Some(key) if self.is_optimistic(sig.class) && self.mapping(sig.class).is_some() => {
                Some(Destination::Lane(self.partition.lane_of(key)))
            }
            _ => self.destination(sig, spread),
        }
    }

    /// Whether a command delivered to `lane`'s own group belongs there: its conservative
    /// destination is that lane (any lane for a free class), or, when `optimistic` (opt-PSMR),
    /// it is an optimistic command keyed to that lane. A replica refuses what does not belong
    /// (a client with another C-G would break the isolation parallel mode relies on).
    pub fn belongs_to_lane(&self, sig: Signature, lane: usize, optimistic: bool) -> bool {
        match self.mapping(sig.class) {
            None => false,
            Some(ClassMapping::Any) => true,
            Some(ClassMapping::ByKey) => sig.key.is_some_and(|k| self.partition.lane_of(k) == lane),
            Some(ClassMapping::All) => {
                optimistic
                    && self.is_optimistic(sig.class)
                    && sig.key.is_some_and(|k| self.partition.lane_of(k) == lane)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INSERT: ClassId = 1;
    const DELETE: ClassId = 2;
    const READ: ClassId = 3;
    const UPDATE: ClassId = 4;

    /// The thesis' key-value store (6.5.2).
    fn kv() -> CDep {
        CDep::new()
            .command(INSERT, "insert")
            .command(DELETE, "delete")
            .command(READ, "read")
            .command(UPDATE, "update")
            .depends_on_all(INSERT)
            .depends_on_all(DELETE)
            .depends_on(UPDATE, &[UPDATE, READ], DependsWhen::SameKey)
            .optimistic(INSERT)
            .optimistic(DELETE)
    }

    fn sig(class: ClassId, key: u64) -> Signature {
        Signature { class, key: Some(key) }
    }

    #[test]
    fn the_key_value_store_maps_as_in_the_thesis() {
        let cg = CommandToGroups::derive(&kv(), KeyPartition::new(1000, 4)).unwrap();
        assert_eq!(cg.mapping(INSERT), Some(ClassMapping::All));
        assert_eq!(cg.mapping(DELETE), Some(ClassMapping::All));
        assert_eq!(cg.mapping(READ), Some(ClassMapping::ByKey));
        assert_eq!(cg.mapping(UPDATE), Some(ClassMapping::ByKey));
        assert_eq!(cg.destination(sig(READ, 0), 0), Some(Destination::Lane(0)));
        assert_eq!(cg.destination(sig(UPDATE, 999), 0), Some(Destination::Lane(3)));
        assert_eq!(cg.destination(sig(INSERT, 5), 0), Some(Destination::All));
        assert_eq!(cg.optimistic_destination(sig(INSERT, 600), 0), Some(Destination::Lane(2)));
        assert_eq!(cg.optimistic_destination(sig(READ, 600), 0), Some(Destination::Lane(2)));
        assert!(cg.belongs_to_lane(sig(INSERT, 600), 2, true));
        assert!(!cg.belongs_to_lane(sig(INSERT, 600), 2, false));
        assert!(!cg.belongs_to_lane(sig(READ, 600), 1, false));
        assert_eq!(cg.destination(Signature { class: 9, key: None }, 0), None);
    }

    #[test]
    fn reads_with_nothing_to_depend_on_go_anywhere() {
        let cdep =
            CDep::new().command(READ, "read").command(INSERT, "insert").depends_on_all(INSERT);
        let cg = CommandToGroups::derive(&cdep, KeyPartition::new(10, 3)).unwrap();
        assert_eq!(cg.mapping(READ), Some(ClassMapping::Any));
        let lanes: Vec<_> = (0..3).map(|s| cg.destination(sig(READ, 1), s)).collect();
        assert_eq!(lanes, [0, 1, 2].map(|l| Some(Destination::Lane(l))));
    }

    /// The property C-G exists for: any two dependent commands share a group, g_all counting as
    /// every lane's (thesis 6.3.2).
    #[test]
    fn dependent_commands_always_share_a_group() {
        let cdep = kv();
        for lanes in 1..=8 {
            let cg = CommandToGroups::derive(&cdep, KeyPartition::new(64, lanes)).unwrap();
            let classes = [INSERT, DELETE, READ, UPDATE];
            for a in classes {
                for b in classes {
                    for (ka, kb) in [(3, 3), (3, 40), (63, 0), (17, 18)] {
                        if !cdep.dependent(a, b, ka == kb) {
                            continue;
                        }
                        for spread in 0..lanes {
                            let da = cg.destination(sig(a, ka), spread).unwrap();
                            let db = cg.destination(sig(b, kb), spread + 1).unwrap();
                            let shared =
                                da == Destination::All || db == Destination::All || da == db;
                            assert!(shared, "{a} on {ka} -> {da:?}, {b} on {kb} -> {db:?}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn key_ranges_cover_the_keys_and_agree_with_lane_of() {
        for (space, lanes) in [(1000u64, 3usize), (7, 8), (u64::MAX, 5), (1, 1), (10_000_000, 2)] {
            let p = KeyPartition::new(space, lanes);
            let mut next = 0u64;
            for lane in 0..lanes {
                let r = p.range_of(lane);
                if r.first > r.last {
                    continue; // more lanes than keys: this one owns none
                }
                assert_eq!(r.first, next, "ranges are contiguous");
                assert_eq!(p.lane_of(r.first), lane);
                assert_eq!(p.lane_of(r.last), lane);
                next = r.last.wrapping_add(1);
            }
            assert_eq!(next, 0, "the last range ends at u64::MAX");
        }
    }

    #[test]
    fn bad_declarations_are_refused_naming_the_class() {
        let dup = CDep::new().command(1, "a").command(1, "b");
        assert_eq!(
            CommandToGroups::derive(&dup, KeyPartition::new(1, 1)).unwrap_err(),
            CDepError::Duplicate(1)
        );
        let undeclared = CDep::new().command(1, "a").depends_on(1, &[2], DependsWhen::SameKey);
        let err = CommandToGroups::derive(&undeclared, KeyPartition::new(1, 1)).unwrap_err();
        assert_eq!(err, CDepError::Undeclared(2));
        let lonely = CDep::new().command(1, "a").optimistic(1);
        let err = CommandToGroups::derive(&lonely, KeyPartition::new(1, 1)).unwrap_err();
        assert_eq!(err, CDepError::OptimisticWithoutDependency("a"));
        let err = CommandToGroups::derive(&kv(), KeyPartition::new(1, 65)).unwrap_err();
        assert_eq!(err, CDepError::Mpl { mpl: 65, max: MPL_MAX });
    }
}
