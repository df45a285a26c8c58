//! The store as a replicated service: the B+-tree behind [`Service`], with the thesis' C-Dep
//! (6.5.2): inserts and deletes depend on all commands; an update on key k depends on updates and
//! reads of k. Inserts and deletes are optimistic (opt-PSMR): most change one leaf only, which
//! the tree checks before it changes anything ([`BPlusTree::try_insert_within`]).

use crate::smr::{
    BadCommand, CDep, Conflict, DependsWhen, KeyRange, Service, ServiceSnapshotError, Signature,
};

use super::btree::{self, BPlusTree};
use super::command::{self, CHECKSUM, DELETE, INSERT, KvOp, KvReply, READ, UPDATE};

/// See the module docs.
#[derive(Default)]
pub struct KvStore {
    tree: BPlusTree,
}

impl KvStore {
    pub fn new() -> KvStore {
        KvStore::default()
    }

    /// A store holding `keys` keys, the even numbers below `2 * keys` (`workload`'s key space),
    /// each with the value `preload_value(key)`: every replica preloads the same tree (10 million
    /// keys in the thesis' runs).
    pub fn preloaded(keys: u64) -> KvStore {
        KvStore { tree: BPlusTree::bulk_load((0..keys).map(|i| (2 * i, preload_value(2 * i)))) }
    }

    /// A store over `tree` (tests use trees of small nodes, which split and merge often).
    pub fn from_tree(tree: BPlusTree) -> KvStore {
        KvStore { tree }
    }

    pub fn tree(&self) -> &BPlusTree {
        &self.tree
    }

    fn apply(&mut self, op: KvOp) -> KvReply {
        match op {
            KvOp::Insert(k, v) => {
                if self.tree.insert(k, v) {
                    KvReply::Ok
                } else {
                    KvReply::Exists
                }
            }
            KvOp::Delete(k) => {
                if self.tree.delete(k) {
                    KvReply::Ok
                } else {
                    KvReply::NotFound
                }
            }
            KvOp::Read(_) | KvOp::Update(..) => self.apply_shared(op),
        }
    }

    fn apply_shared(&self, op: KvOp) -> KvReply {
        match op {
            KvOp::Read(k) => self.tree.get(k).map_or(KvReply::NotFound, KvReply::Value),
            KvOp::Update(k, v) => {
                if self.tree.update(k, v) {
                    KvReply::Ok
                } else {
                    KvReply::NotFound
                }
            }
            KvOp::Insert(..) | KvOp::Delete(_) => {
                unreachable!("C-G sends inserts and deletes to g_all, or optimistically checked")
            }
        }
    }
}

/// What key `key` holds in a store [`KvStore::preloaded`] with `keys` keys, before any command:
/// the initial state a history of that store is checked against.
pub fn preloaded_value(keys: u64, key: u64) -> Option<u64> {
    (key.is_multiple_of(2) && key / 2 < keys).then(|| preload_value(key))
}

/// The value a preloaded key starts with.
pub fn preload_value(key: u64) -> u64 {
    key.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5EED
}

fn range(r: KeyRange) -> btree::KeyRange {
    btree::KeyRange { first: r.first, last: r.last }
}

impl Service for KvStore {
    fn dependencies() -> CDep {
        CDep::new()
            .command(INSERT, "insert")
            .command(DELETE, "delete")
            .command(READ, "read")
            .command(UPDATE, "update")
            .command(CHECKSUM, "checksum")
            .depends_on_all(CHECKSUM)
            .depends_on_all(INSERT)
            .depends_on_all(DELETE)
            .depends_on(UPDATE, &[UPDATE, READ], DependsWhen::SameKey)
            .optimistic(INSERT)
            .optimistic(DELETE)
    }

    fn signature(c: &[u8]) -> Result<Signature, BadCommand> {
        if command::is_checksum(c) {
            return Ok(Signature { class: CHECKSUM, key: None });
        }
        let op = command::decode(c)?;
        Ok(Signature { class: c[0], key: Some(op.key()) })
    }

    fn execute_shared(&self, c: &[u8], reply: &mut Vec<u8>) {
        let op = command::decode(c).expect("the worker checked the signature");
        command::encode_reply(self.apply_shared(op), reply);
    }

    fn execute_exclusive(&mut self, c: &[u8], reply: &mut Vec<u8>) {
        if command::is_checksum(c) {
            return command::encode_checksum_reply(self.tree.checksum(), reply);
        }
        let op = command::decode(c).expect("the worker checked the signature");
        command::encode_reply(self.apply(op), reply);
    }

    fn execute_optimistic(
        &self,
        c: &[u8],
        lane: KeyRange,
        reply: &mut Vec<u8>,
    ) -> Result<(), Conflict> {
        let op = command::decode(c).expect("the worker checked the signature");
        let r = match op {
            KvOp::Insert(k, v) => match self.tree.try_insert_within(k, v, range(lane)) {
                Ok(true) => KvReply::Ok,
                Ok(false) => KvReply::Exists,
                Err(_) => return Err(Conflict),
            },
            KvOp::Delete(k) => match self.tree.try_delete_within(k, range(lane)) {
                Ok(true) => KvReply::Ok,
                Ok(false) => KvReply::NotFound,
                Err(_) => return Err(Conflict),
            },
            KvOp::Read(_) | KvOp::Update(..) => self.apply_shared(op),
        };
        command::encode_reply(r, reply);
        Ok(())
    }

    fn snapshot(&self, out: &mut Vec<u8>) {
        self.tree.encode_snapshot(out);
    }

    fn restore(bytes: &[u8]) -> Result<KvStore, ServiceSnapshotError> {
        let tree =
            BPlusTree::decode_snapshot(bytes).map_err(|e| ServiceSnapshotError(e.to_string()))?;
        Ok(KvStore { tree })
    }

    fn checksum(&self) -> u64 {
        self.tree.checksum()
    }
}
