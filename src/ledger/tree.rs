//! The Merkle ledger: every run manifest and every audit event is a leaf of an RFC 6962 tree.
//!
//! Leaf hash = SHA-256(0x00 ‖ leaf bytes); node hash = SHA-256(0x01 ‖ left ‖ right); the root
//! of `n` leaves splits at the largest power of two below `n`. The database stores the leaf
//! hashes in order; anyone holding the leaf bytes (the manifests in the store and the audit
//! event rows) can recompute the root.

use sha2::{Digest, Sha256};

pub type Hash = [u8; 32];

/// SHA-256(0x00 ‖ data).
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(data);
    h.finalize().into()
}

/// SHA-256(0x01 ‖ left ‖ right).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The body of a C2SP `tlog-checkpoint`: origin line, tree size, base64 root hash.
pub fn checkpoint_text(origin: &str, size: u64, root: &Hash) -> String {
    use base64::Engine;
    format!(
        "{origin}\n{size}\n{}\n",
        base64::engine::general_purpose::STANDARD.encode(root)
    )
}

/// Decodes hex leaf hashes as the database stores them.
pub fn decode_leaves(hex_leaves: &[String]) -> Result<Vec<Hash>, String> {
    hex_leaves
        .iter()
        .map(|h| {
            let mut out = [0u8; 32];
            hex::decode_to_slice(h, &mut out)
                .map_err(|_| format!("ledger leaf `{h}` is not a SHA-256 in hex"))?;
            Ok(out)
        })
        .collect()
}

/// The RFC 6962 Merkle tree hash of the given leaf hashes.
pub fn root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => Sha256::digest([]).into(),
        1 => leaves[0],
        n => {
            let k = split_point(n);
            node_hash(&root(&leaves[..k]), &root(&leaves[k..]))
        }
    }
}

/// A growing tree's right edge: the roots of its perfect subtrees, largest first. Appending a
/// leaf and reading the root are O(log n), so every tree head along a ledger comes in one pass.
#[derive(Debug, Clone, Default)]
pub struct Frontier {
    size: u64,
    /// (height, root) of each perfect subtree, left to right.
    subtrees: Vec<(u32, Hash)>,
}

impl Frontier {
    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn push(&mut self, leaf: Hash) {
        let mut node = (0, leaf);
        while let Some(&(height, left)) = self.subtrees.last() {
            if height != node.0 {
                break;
            }
            self.subtrees.pop();
            node = (height + 1, node_hash(&left, &node.1));
        }
        self.subtrees.push(node);
        self.size += 1;
    }

    /// The RFC 6962 tree hash of the leaves pushed so far.
    pub fn root(&self) -> Hash {
        let mut subtrees = self.subtrees.iter().rev();
        let Some(&(_, mut acc)) = subtrees.next() else {
            return Sha256::digest([]).into();
        };
        for (_, left) in subtrees {
            acc = node_hash(left, &acc);
        }
        acc
    }
}

/// The root of the tree at each of `sizes` (in any order), from one pass over the leaves;
/// `None` for a size beyond the ledger.
pub fn roots_at(leaves: &[Hash], sizes: &[u64]) -> Vec<Option<Hash>> {
    let mut order: Vec<usize> = (0..sizes.len()).collect();
    order.sort_by_key(|&i| sizes[i]);
    let mut roots = vec![None; sizes.len()];
    let mut frontier = Frontier::default();
    let mut pending = order.into_iter().peekable();
    let mut leaves = leaves.iter();
    while let Some(&i) = pending.peek() {
        if sizes[i] == frontier.size() {
            roots[i] = Some(frontier.root());
            pending.next();
        } else if let Some(leaf) = leaves.next() {
            frontier.push(*leaf);
        } else {
            break;
        }
    }
    roots
}

/// The largest power of two strictly below `n` (n ≥ 2).
fn split_point(n: usize) -> usize {
    let k = n.next_power_of_two() / 2;
    if k == n { n / 2 } else { k }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The inputs and tree heads published with the Certificate Transparency reference
    /// implementation (and reused by Trillian and others) for RFC 6962.
    const LEAVES: [&str; 8] = [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ];
    const ROOTS: [&str; 9] = [
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];

    #[test]
    fn tree_heads_match_the_rfc_6962_reference_vectors() {
        let leaves: Vec<Hash> = LEAVES
            .iter()
            .map(|l| leaf_hash(&hex::decode(l).unwrap()))
            .collect();
        for (size, expected) in ROOTS.iter().enumerate() {
            assert_eq!(
                hex::encode(root(&leaves[..size])),
                *expected,
                "tree size {size}"
            );
        }
    }

    #[test]
    fn the_frontier_gives_the_same_root_as_the_whole_tree_at_every_size() {
        let leaves: Vec<Hash> = (0..300u32).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        let mut frontier = Frontier::default();
        assert_eq!(frontier.root(), root(&[]));
        for (i, leaf) in leaves.iter().enumerate() {
            frontier.push(*leaf);
            assert_eq!(frontier.size(), i as u64 + 1);
            assert_eq!(frontier.root(), root(&leaves[..=i]), "size {}", i + 1);
        }
    }

    #[test]
    fn roots_at_any_sizes_in_one_pass() {
        let leaves: Vec<Hash> = (0..20u32).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        let roots = roots_at(&leaves, &[7, 0, 20, 21, 7]);
        assert_eq!(roots[0], Some(root(&leaves[..7])));
        assert_eq!(roots[1], Some(root(&[])));
        assert_eq!(roots[2], Some(root(&leaves)));
        assert_eq!(roots[3], None, "beyond the ledger");
        assert_eq!(roots[4], roots[0]);
    }

    #[test]
    fn split_point_is_the_largest_power_of_two_below() {
        for (n, k) in [(2, 1), (3, 2), (4, 2), (5, 4), (8, 4), (9, 8), (1000, 512)] {
            assert_eq!(split_point(n), k, "n = {n}");
        }
    }
}
