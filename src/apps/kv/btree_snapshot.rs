//! Snapshots of the tree that keep its shape: every node as it is, not just the pairs.
//!
//! opt-PSMR's decisions depend on the shape (a `try_insert_within` conflicts when the leaf is full
//! or its interval crosses a worker's range: `btree`'s "Determinism"). A replica restored from a
//! snapshot must therefore hold the very tree the others hold, or it refuses commands they
//! execute and the replicas part ways. (A bulk load of the pairs gives another shape: the first
//! format did that, and a restarted opt-PSMR replica diverged.)
//!
//! ```text
//! snapshot := magic "RSMRBT02" | leaf_keys u32 | internal_children u32 | height u32 | node
//! node     := internal (above the leaves' level) | leaf
//! internal := children u32 | separator u64 * (children - 1) | node * children
//! leaf     := len u32 | (key u64 | value u64) * len
//! ```
//!
//! Nodes come in pre-order, so the decoder rebuilds them left to right and links the leaves as it
//! goes. It checks everything an operation relies on: capacities in range, every node within its
//! capacity and (but the root) at its minimum fill, keys strictly increasing and inside the
//! interval the separators above give them, the bytes neither short nor long.

use super::{BPlusTree, HEIGHT_MAX, Internal, NIL, NodeCapacities, SnapshotError};
use super::{INTERNAL_CHILDREN_MAX, LEAF_KEYS_MAX};

pub(super) const SNAPSHOT_MAGIC: [u8; 8] = *b"RSMRBT02";

impl BPlusTree {
    /// Appends the snapshot encoding (module docs).
    pub fn encode_snapshot(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&SNAPSHOT_MAGIC);
        out.extend_from_slice(&(self.capacities.leaf_keys as u32).to_le_bytes());
        out.extend_from_slice(&(self.capacities.internal_children as u32).to_le_bytes());
        out.extend_from_slice(&(self.height as u32).to_le_bytes());
        self.encode_node(self.root, self.height, out);
    }

    fn encode_node(&self, node: u32, above_leaves: usize, out: &mut Vec<u8>) {
        if above_leaves == 0 {
            let leaf = &self.leaves[node as usize];
            out.extend_from_slice(&(leaf.len() as u32).to_le_bytes());
            for i in 0..leaf.len() {
                out.extend_from_slice(&leaf.key(i).to_le_bytes());
                out.extend_from_slice(&leaf.value(i).to_le_bytes());
            }
            return;
        }
        let n = &self.internals[node as usize];
        out.extend_from_slice(&(n.children_len() as u32).to_le_bytes());
        for k in n.keys() {
            out.extend_from_slice(&k.to_le_bytes());
        }
        for &child in &n.children[..n.children_len()] {
            self.encode_node(child, above_leaves - 1, out);
        }
    }

    /// Rebuilds the tree [`BPlusTree::encode_snapshot`] wrote, shape and all; refuses bytes that
    /// do not make a valid tree (module docs).
    pub fn decode_snapshot(bytes: &[u8]) -> Result<BPlusTree, SnapshotError> {
        let mut d = Decoder { bytes, at: 0 };
        if d.take(8)? != SNAPSHOT_MAGIC {
            return Err(SnapshotError::BadMagic);
        }
        let leaf_keys = d.u32()? as usize;
        let internal_children = d.u32()? as usize;
        if !(2..=LEAF_KEYS_MAX).contains(&leaf_keys)
            || !(3..=INTERNAL_CHILDREN_MAX).contains(&internal_children)
        {
            return Err(SnapshotError::Malformed("node capacities out of range"));
        }
        let height = d.u32()? as usize;
        if height >= HEIGHT_MAX {
            return Err(SnapshotError::Malformed("taller than any tree"));
        }
        let mut tree = BPlusTree::with_capacities(NodeCapacities { leaf_keys, internal_children });
        // `with_capacities` made an empty root leaf: the decoder allocates every node itself.
        tree.leaves.clear();
        let mut build = Build { tree, last_leaf: NIL, last_key: None };
        let root = build.node(&mut d, height, true, (None, None))?;
        if d.at != bytes.len() {
            return Err(SnapshotError::Malformed("bytes after the tree"));
        }
        let mut tree = build.tree;
        tree.root = root;
        tree.height = height;
        Ok(tree)
    }
}

struct Decoder<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Decoder<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], SnapshotError> {
        let end = self.at.checked_add(n).ok_or(SnapshotError::Malformed("truncated"))?;
        let s = self.bytes.get(self.at..end).ok_or(SnapshotError::Malformed("truncated"))?;
        self.at = end;
        Ok(s)
    }
    fn u32(&mut self) -> Result<u32, SnapshotError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }
    fn u64(&mut self) -> Result<u64, SnapshotError> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }
}

struct Build {
    tree: BPlusTree,
    last_leaf: u32,
    /// The largest key so far: keys must strictly increase from leaf to leaf.
    last_key: Option<u64>,
}

impl Build {
    /// Decodes the node at `above_leaves` levels over the leaves, whose keys must lie in
    /// `[low, high)` (`None`: unbounded); returns its index in its arena.
    fn node(
        &mut self,
        d: &mut Decoder<'_>,
        above_leaves: usize,
        is_root: bool,
        (low, high): (Option<u64>, Option<u64>),
    ) -> Result<u32, SnapshotError> {
        let caps = self.tree.capacities;
        if above_leaves == 0 {
            let len = d.u32()? as usize;
            let min = if is_root { 0 } else { caps.leaf_keys_min() };
            if len < min || len > caps.leaf_keys {
                return Err(SnapshotError::Malformed("a leaf's fill out of range"));
            }
            let id = self.tree.alloc_leaf();
            for _ in 0..len {
                let (key, value) = (d.u64()?, d.u64()?);
                if self.last_key.is_some_and(|k| key <= k)
                    || low.is_some_and(|l| key < l)
                    || high.is_some_and(|h| key >= h)
                {
                    return Err(SnapshotError::Malformed("keys out of order or out of their node"));
                }
                self.last_key = Some(key);
                self.tree.leaves[id as usize].push(key, value);
            }
            if self.last_leaf != NIL {
                self.tree.leaves[self.last_leaf as usize].next = id;
            }
            self.last_leaf = id;
            return Ok(id);
        }
        let children = d.u32()? as usize;
        let min = if is_root { 2 } else { caps.internal_children_min() };
        if children < min || children > caps.internal_children {
            return Err(SnapshotError::Malformed("an internal node's children out of range"));
        }
        let mut node = Internal::new();
        node.len = (children - 1) as u32;
        for i in 0..children - 1 {
            let k = d.u64()?;
            let above_previous =
                if i == 0 { low.is_none_or(|l| k > l) } else { k > node.keys[i - 1] };
            if !above_previous || high.is_some_and(|h| k >= h) {
                return Err(SnapshotError::Malformed("separators out of order"));
            }
            node.keys[i] = k;
        }
        for i in 0..children {
            let child_low = if i == 0 { low } else { Some(node.keys[i - 1]) };
            let child_high = if i + 1 == children { high } else { Some(node.keys[i]) };
            node.children[i] = self.node(d, above_leaves - 1, false, (child_low, child_high))?;
        }
        let id = self.tree.alloc_internal();
        self.tree.internals[id as usize] = node;
        Ok(id)
    }
}
