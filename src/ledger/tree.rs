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
    format!("{origin}\n{size}\n{}\n", b64(root))
}

/// A hash in base64, as checkpoints write a root.
pub fn b64(h: &Hash) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(h)
}

/// A hash from base64 (a checkpoint's root); None when it is not 32 bytes of base64.
pub fn from_b64(text: &str) -> Option<Hash> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .ok()?;
    bytes.try_into().ok()
}

/// A hash from hex; None when it is not a SHA-256 in hex.
pub fn from_hex(text: &str) -> Option<Hash> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(text, &mut out).ok()?;
    Some(out)
}

/// Decodes hex leaf hashes as the database stores them.
pub fn decode_leaves(hex_leaves: &[String]) -> Result<Vec<Hash>, String> {
    hex_leaves
        .iter()
        .map(|h| from_hex(h).ok_or_else(|| format!("ledger leaf `{h}` is not a SHA-256 in hex")))
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

/// The audit path of leaf `index` in the tree of `leaves` (RFC 6962 §2.1.1, `PATH(m, D[n])`):
/// the sibling hashes from the leaf up to the root, which [`verify_inclusion`] folds back into
/// the root. None for an index outside the tree.
pub fn inclusion_proof(leaves: &[Hash], index: usize) -> Option<Vec<Hash>> {
    if index >= leaves.len() {
        return None;
    }
    let mut path = Vec::new();
    let (mut leaves, mut index) = (leaves, index);
    // Top down, then reversed: the path lists the deepest sibling first.
    while leaves.len() > 1 {
        let k = split_point(leaves.len());
        if index < k {
            path.push(root(&leaves[k..]));
            leaves = &leaves[..k];
        } else {
            path.push(root(&leaves[..k]));
            leaves = &leaves[k..];
            index -= k;
        }
    }
    path.reverse();
    Some(path)
}

/// Every level of the tree, the leaves first, for the audit paths of many leaves: one pass of
/// `n - 1` hashes, then `O(log n)` per path, where [`inclusion_proof`] recomputes subtrees for
/// each. Built bottom up, RFC 6962's tree is the one in which an unpaired last node rises to the
/// level above unchanged, so a path takes each level's sibling where there is one.
pub struct Levels(Vec<Vec<Hash>>);

impl Levels {
    pub fn new(leaves: &[Hash]) -> Levels {
        let mut levels = vec![leaves.to_vec()];
        while let Some(below) = levels.last().filter(|l| l.len() > 1) {
            let above = below
                .chunks(2)
                .map(|pair| match pair {
                    [left, right] => node_hash(left, right),
                    [single] => *single,
                    _ => unreachable!("chunks of two"),
                })
                .collect();
            levels.push(above);
        }
        Levels(levels)
    }

    /// The root, as [`root`] gives it.
    pub fn root(&self) -> Hash {
        self.0
            .last()
            .and_then(|top| top.first())
            .copied()
            .unwrap_or_else(|| root(&[]))
    }

    pub fn leaf(&self, index: usize) -> Option<&Hash> {
        self.0[0].get(index)
    }

    /// The audit path of leaf `index`, as [`inclusion_proof`] gives it.
    pub fn inclusion_proof(&self, index: usize) -> Option<Vec<Hash>> {
        if index >= self.0[0].len() {
            return None;
        }
        let levels = &self.0[..self.0.len() - 1];
        Some(
            levels
                .iter()
                .enumerate()
                .filter_map(|(k, level)| level.get((index >> k) ^ 1).copied())
                .collect(),
        )
    }
}

/// The proof that the tree of the first `old_size` leaves is a prefix of the tree of all of
/// them (RFC 6962 §2.1.2, `PROOF(m, D[n])`), which [`verify_consistency`] checks against the two
/// roots alone. None for an old size of 0 or beyond the tree.
pub fn consistency_proof(leaves: &[Hash], old_size: usize) -> Option<Vec<Hash>> {
    if old_size == 0 || old_size > leaves.len() {
        return None;
    }
    // SUBPROOF(m, D[n], b), top down, then reversed as the RFC writes it (deepest first).
    let mut proof = Vec::new();
    let (mut leaves, mut m, mut whole) = (leaves, old_size, true);
    while m < leaves.len() {
        let k = split_point(leaves.len());
        if m <= k {
            proof.push(root(&leaves[k..]));
            leaves = &leaves[..k];
        } else {
            proof.push(root(&leaves[..k]));
            leaves = &leaves[k..];
            m -= k;
            whole = false;
        }
    }
    if !whole {
        proof.push(root(leaves));
    }
    proof.reverse();
    Some(proof)
}

/// Checks an audit path (RFC 9162 §2.1.3.2): leaf `index`, with hash `leaf`, is in the tree of
/// `size` leaves whose root is `root`.
pub fn verify_inclusion(
    index: u64,
    size: u64,
    leaf: &Hash,
    path: &[Hash],
    root: &Hash,
) -> Result<(), String> {
    if index >= size {
        return Err(format!("leaf {index} is not in a tree of {size} leaves"));
    }
    let (mut f, mut s, mut r) = (index, size - 1, *leaf);
    for p in path {
        if s == 0 {
            return Err("the audit path is longer than the tree is deep".into());
        }
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 {
        return Err("the audit path is shorter than the tree is deep".into());
    }
    if r != *root {
        return Err(format!(
            "the audit path of leaf {index} leads to another root than the tree of {size} leaves"
        ));
    }
    Ok(())
}

/// Checks a consistency proof (RFC 9162 §2.1.4.2): the tree of `old_size` leaves with root
/// `old_root` is a prefix of the tree of `new_size` leaves with root `new_root`.
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), String> {
    let inconsistent = || {
        Err(format!(
            "the tree of {old_size} leaves is not a prefix of the tree of {new_size} leaves by this proof"
        ))
    };
    if old_size > new_size {
        return Err(format!(
            "a tree of {new_size} leaves cannot extend one of {old_size}"
        ));
    }
    if old_size == new_size {
        return if proof.is_empty() && old_root == new_root {
            Ok(())
        } else {
            inconsistent()
        };
    }
    if old_size == 0 {
        // The empty tree is a prefix of every tree; there is nothing to prove.
        return if proof.is_empty() {
            Ok(())
        } else {
            inconsistent()
        };
    }
    if proof.is_empty() {
        return inconsistent();
    }
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if old_size.is_power_of_two() {
        path.push(*old_root);
    }
    path.extend_from_slice(proof);
    let (mut f, mut s) = (old_size - 1, new_size - 1);
    while f & 1 == 1 {
        f >>= 1;
        s >>= 1;
    }
    let (mut fr, mut sr) = (path[0], path[0]);
    for c in &path[1..] {
        if s == 0 {
            return inconsistent();
        }
        if f & 1 == 1 || f == s {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f >>= 1;
        s >>= 1;
    }
    if fr == *old_root && sr == *new_root && s == 0 {
        Ok(())
    } else {
        inconsistent()
    }
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

    fn hashes(hexes: &[&str]) -> Vec<Hash> {
        hexes
            .iter()
            .map(|h| hex::decode(h).unwrap().try_into().unwrap())
            .collect()
    }

    fn reference_leaves() -> Vec<Hash> {
        LEAVES
            .iter()
            .map(|l| leaf_hash(&hex::decode(l).unwrap()))
            .collect()
    }

    fn reference_root(size: usize) -> Hash {
        hashes(&[ROOTS[size]])[0]
    }

    /// Audit paths and consistency proofs of the same reference implementation (as its Go and
    /// C++ tests publish them): (leaf index, tree size, path), (old size, new size, proof).
    const INCLUSION: [(usize, usize, &[&str]); 5] = [
        (0, 1, &[]),
        (
            0,
            8,
            &[
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ],
        ),
        (
            5,
            8,
            &[
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
        (
            2,
            3,
            &["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"],
        ),
        (
            1,
            5,
            &[
                "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            ],
        ),
    ];
    const CONSISTENCY: [(usize, usize, &[&str]); 4] = [
        (1, 1, &[]),
        (
            1,
            8,
            &[
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ],
        ),
        (
            6,
            8,
            &[
                "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
        (
            2,
            5,
            &[
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            ],
        ),
    ];

    #[test]
    fn proofs_match_the_rfc_6962_reference_vectors_and_verify() {
        let leaves = reference_leaves();
        for (index, size, path) in INCLUSION {
            let path = hashes(path);
            let made = inclusion_proof(&leaves[..size], index).unwrap();
            assert_eq!(made, path, "audit path of leaf {index} in {size}");
            let root = reference_root(size);
            verify_inclusion(index as u64, size as u64, &leaves[index], &path, &root).unwrap();
        }
        for (old, new, proof) in CONSISTENCY {
            let proof = hashes(proof);
            let made = consistency_proof(&leaves[..new], old).unwrap();
            assert_eq!(made, proof, "consistency of {old} with {new}");
            let (a, b) = (reference_root(old), reference_root(new));
            verify_consistency(old as u64, new as u64, &a, &b, &proof).unwrap();
        }
    }

    /// What the reference tests try on every good proof: each must fail.
    #[test]
    fn a_proof_altered_in_any_way_fails() {
        let leaves = reference_leaves();
        for (index, size, path) in INCLUSION.into_iter().skip(1) {
            let path = hashes(path);
            let root = reference_root(size);
            let (i, n) = (index as u64, size as u64);
            let leaf = leaves[index];
            let mut wrong: Vec<(String, u64, u64, Hash, Vec<Hash>, Hash)> = vec![
                (
                    "index - 1".into(),
                    i.wrapping_sub(1),
                    n,
                    leaf,
                    path.clone(),
                    root,
                ),
                ("index + 1".into(), i + 1, n, leaf, path.clone(), root),
                ("index ^ 2".into(), i ^ 2, n, leaf, path.clone(), root),
                ("size * 2".into(), i, n * 2, leaf, path.clone(), root),
                ("size / 2".into(), i, n / 2, leaf, path.clone(), root),
                (
                    "another leaf".into(),
                    i,
                    n,
                    leaf_hash(b"x"),
                    path.clone(),
                    root,
                ),
                (
                    "the empty root".into(),
                    i,
                    n,
                    leaf,
                    path.clone(),
                    reference_root(0),
                ),
                (
                    "a path one longer".into(),
                    i,
                    n,
                    leaf,
                    [path.clone(), vec![root]].concat(),
                    root,
                ),
                (
                    "a path one shorter".into(),
                    i,
                    n,
                    leaf,
                    path[..path.len() - 1].to_vec(),
                    root,
                ),
            ];
            for k in 0..path.len() {
                let mut p = path.clone();
                p[k][0] ^= 8;
                wrong.push((format!("bit 3 of path[{k}]"), i, n, leaf, p, root));
            }
            for (what, i, n, leaf, path, root) in wrong {
                assert!(
                    verify_inclusion(i, n, &leaf, &path, &root).is_err(),
                    "leaf {index} of {size}, {what}"
                );
            }
        }
        for (old, new, proof) in CONSISTENCY.into_iter().skip(1) {
            let proof = hashes(proof);
            let (a, b) = (reference_root(old), reference_root(new));
            let (m, n) = (old as u64, new as u64);
            let mut wrong: Vec<(String, u64, u64, Hash, Hash, Vec<Hash>)> = vec![
                ("old - 1".into(), m - 1, n, a, b, proof.clone()),
                ("old + 1".into(), m + 1, n, a, b, proof.clone()),
                ("old ^ 2".into(), m ^ 2, n, a, b, proof.clone()),
                ("new * 2".into(), m, n * 2, a, b, proof.clone()),
                ("new / 2".into(), m, n / 2, a, b, proof.clone()),
                ("swapped roots".into(), m, n, b, a, proof.clone()),
                ("no proof".into(), m, n, a, b, Vec::new()),
                (
                    "a proof one longer".into(),
                    m,
                    n,
                    a,
                    b,
                    [proof.clone(), vec![b]].concat(),
                ),
                (
                    "a proof one shorter".into(),
                    m,
                    n,
                    a,
                    b,
                    proof[..proof.len() - 1].to_vec(),
                ),
                (
                    "the old root first".into(),
                    m,
                    n,
                    a,
                    b,
                    [vec![a], proof.clone()].concat(),
                ),
            ];
            for k in 0..proof.len() {
                let mut p = proof.clone();
                p[k][0] ^= 16;
                wrong.push((format!("bit 4 of proof[{k}]"), m, n, a, b, p));
            }
            for (what, m, n, a, b, proof) in wrong {
                assert!(
                    verify_consistency(m, n, &a, &b, &proof).is_err(),
                    "{old} to {new}, {what}"
                );
            }
        }
    }

    /// Against this module's own tree code: every leaf of every tree up to 70 leaves, and every
    /// pair of sizes up to 70.
    #[test]
    fn the_levels_give_the_same_root_and_paths_as_the_recursive_tree() {
        let leaves: Vec<Hash> = (0..70u32).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        for n in 0..=leaves.len() {
            let levels = Levels::new(&leaves[..n]);
            assert_eq!(levels.root(), root(&leaves[..n]), "root of {n}");
            for i in 0..=n {
                assert_eq!(
                    levels.inclusion_proof(i),
                    inclusion_proof(&leaves[..n], i),
                    "leaf {i} of {n}"
                );
            }
        }
    }

    #[test]
    fn every_proof_of_every_small_tree_verifies_against_its_roots() {
        let leaves: Vec<Hash> = (0..70u32).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        for n in 1..=leaves.len() {
            let tree = &leaves[..n];
            let head = root(tree);
            for i in 0..n {
                let path = inclusion_proof(tree, i).unwrap();
                verify_inclusion(i as u64, n as u64, &tree[i], &path, &head)
                    .unwrap_or_else(|e| panic!("leaf {i} of {n}: {e}"));
            }
            assert!(inclusion_proof(tree, n).is_none());
            for m in 1..=n {
                let proof = consistency_proof(tree, m).unwrap();
                verify_consistency(m as u64, n as u64, &root(&tree[..m]), &head, &proof)
                    .unwrap_or_else(|e| panic!("{m} to {n}: {e}"));
                if m < n {
                    // A tree that differs in one leaf before m is not extended.
                    let mut other = tree.to_vec();
                    other[m - 1] = leaf_hash(b"rewritten");
                    assert!(
                        verify_consistency(m as u64, n as u64, &root(&other[..m]), &head, &proof)
                            .is_err(),
                        "{m} to {n} with leaf {} rewritten",
                        m - 1
                    );
                }
            }
        }
    }

    #[test]
    fn split_point_is_the_largest_power_of_two_below() {
        for (n, k) in [(2, 1), (3, 2), (4, 2), (5, 4), (8, 4), (9, 8), (1000, 512)] {
            assert_eq!(split_point(n), k, "n = {n}");
        }
    }
}
