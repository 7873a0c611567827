//! The matchers an [`Acl`](super::Acl) is compiled into, so that a check costs time in the
//! length of the path rather than in the number of rules.
//!
//! - [`PrefixTree`]: a byte-level radix tree answering "which stored key is the longest prefix
//!   of this path", for `*` globs (which may end in the middle of a segment).
//! - [`SegmentTree`]: a trie over `/`-separated segments with a wildcard edge for `+`, for
//!   patterns with `+` segments; a pattern that also ends in `*` keeps its last, partial
//!   segment in a [`PrefixTree`] at the node it hangs from.

use std::collections::HashMap;

/// A compressed trie over the bytes of its keys.
#[derive(Debug, Clone)]
pub(super) struct PrefixTree<T> {
    nodes: Vec<PrefixNode<T>>,
}

#[derive(Debug, Clone)]
struct PrefixNode<T> {
    value: Option<T>,
    /// Sorted by the first byte of the label; no two labels share a first byte.
    edges: Vec<Edge>,
}

#[derive(Debug, Clone)]
struct Edge {
    /// Never empty.
    label: Box<[u8]>,
    child: usize,
}

impl<T> PrefixTree<T> {
    pub(super) fn new() -> PrefixTree<T> {
        PrefixTree {
            nodes: vec![PrefixNode {
                value: None,
                edges: Vec::new(),
            }],
        }
    }

    fn push_node(&mut self, value: Option<T>, edges: Vec<Edge>) -> usize {
        self.nodes.push(PrefixNode { value, edges });
        self.nodes.len() - 1
    }

    /// Stores `value` under `key`, returning the value it replaces.
    pub(super) fn insert(&mut self, key: &str, value: T) -> Option<T> {
        let mut node = 0;
        let mut rest = key.as_bytes();
        loop {
            let Some(&first) = rest.first() else {
                return self.nodes[node].value.replace(value);
            };
            let position = self.nodes[node]
                .edges
                .binary_search_by_key(&first, |edge| edge.label[0]);
            let index = match position {
                Ok(index) => index,
                Err(index) => {
                    let child = self.push_node(Some(value), Vec::new());
                    self.nodes[node].edges.insert(
                        index,
                        Edge {
                            label: rest.into(),
                            child,
                        },
                    );
                    return None;
                }
            };
            let edge = &self.nodes[node].edges[index];
            let common = common_prefix_len(&edge.label, rest);
            if common == edge.label.len() {
                node = edge.child;
                rest = &rest[common..];
                continue;
            }
            // The key leaves this edge part-way: split it at the divergence point, then carry
            // on from the new middle node (which either takes the value or gets a new edge).
            let old_child = edge.child;
            let old_label = edge.label.clone();
            let middle = self.push_node(
                None,
                vec![Edge {
                    label: old_label[common..].into(),
                    child: old_child,
                }],
            );
            self.nodes[node].edges[index] = Edge {
                label: old_label[..common].into(),
                child: middle,
            };
            node = middle;
            rest = &rest[common..];
        }
    }

    /// The value stored under exactly `key`.
    #[cfg(test)]
    pub(super) fn get(&self, key: &str) -> Option<&T> {
        match self.longest_prefix(key) {
            Some((length, value)) if length == key.len() => Some(value),
            _ => None,
        }
    }

    /// The value of the longest stored key that is a prefix of `key`, with that key's length.
    pub(super) fn longest_prefix(&self, key: &str) -> Option<(usize, &T)> {
        let key = key.as_bytes();
        let mut best = None;
        let mut node = 0;
        let mut consumed = 0;
        loop {
            let current = &self.nodes[node];
            if let Some(value) = &current.value {
                best = Some((consumed, value));
            }
            let rest = &key[consumed..];
            let Some(&first) = rest.first() else {
                return best;
            };
            let Ok(index) = current
                .edges
                .binary_search_by_key(&first, |edge| edge.label[0])
            else {
                return best;
            };
            let edge = &current.edges[index];
            if !rest.starts_with(&edge.label) {
                return best;
            }
            consumed += edge.label.len();
            node = edge.child;
        }
    }
}

fn common_prefix_len(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// A trie over path segments for patterns containing `+` segments.
///
/// Matching follows Vault: a `+` segment matches any one segment (including an empty one); a
/// pattern without a trailing `*` must have exactly as many segments as the path; one with a
/// trailing `*` needs at least as many, and its last segment only has to be a prefix of the
/// path's segment at that position.
#[derive(Debug, Clone)]
pub(super) struct SegmentTree {
    nodes: Vec<SegmentNode>,
}

#[derive(Debug, Clone, Default)]
struct SegmentNode {
    literal: HashMap<Box<str>, usize>,
    plus: Option<usize>,
    /// The rule whose pattern ends exactly here.
    end: Option<usize>,
    /// Rules whose pattern ends in `*` with its last segment hanging from here, keyed by that
    /// segment without the `*`. Among them only the longest match can win: they share every
    /// earlier segment, so Vault's precedence comes down to length.
    globs: Option<PrefixTree<usize>>,
}

impl SegmentTree {
    pub(super) fn new() -> SegmentTree {
        SegmentTree {
            nodes: vec![SegmentNode::default()],
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.nodes.len() == 1 && self.nodes[0].end.is_none() && self.nodes[0].globs.is_none()
    }

    /// Adds a pattern (possibly ending in `*`) for `rule`, replacing any rule with the same
    /// pattern.
    pub(super) fn insert(&mut self, pattern: &str, rule: usize) {
        let (body, is_glob) = match pattern.strip_suffix('*') {
            Some(body) => (body, true),
            None => (pattern, false),
        };
        let mut segments: Vec<&str> = body.split('/').collect();
        let tail = if is_glob { segments.pop() } else { None };
        let mut node = 0;
        for segment in segments {
            node = self.child(node, segment);
        }
        match tail {
            Some(tail) => {
                self.nodes[node]
                    .globs
                    .get_or_insert_with(PrefixTree::new)
                    .insert(tail, rule);
            }
            None => self.nodes[node].end = Some(rule),
        }
    }

    fn child(&mut self, node: usize, segment: &str) -> usize {
        let existing = if segment == "+" {
            self.nodes[node].plus
        } else {
            self.nodes[node].literal.get(segment).copied()
        };
        if let Some(child) = existing {
            return child;
        }
        self.nodes.push(SegmentNode::default());
        let child = self.nodes.len() - 1;
        if segment == "+" {
            self.nodes[node].plus = Some(child);
        } else {
            self.nodes[node].literal.insert(segment.into(), child);
        }
        child
    }

    /// Calls `visit` with every rule whose pattern matches `path` (at most one per trie node).
    pub(super) fn for_each_match(&self, path: &str, mut visit: impl FnMut(usize)) {
        if self.is_empty() {
            return;
        }
        let segments: Vec<&str> = path.split('/').collect();
        let mut pending = vec![(0usize, 0usize)];
        while let Some((node, depth)) = pending.pop() {
            let current = &self.nodes[node];
            let Some(segment) = segments.get(depth) else {
                if let Some(rule) = current.end {
                    visit(rule);
                }
                continue;
            };
            if let Some((_, &rule)) = current
                .globs
                .as_ref()
                .and_then(|globs| globs.longest_prefix(segment))
            {
                visit(rule);
            }
            if let Some(&child) = current.literal.get(*segment) {
                pending.push((child, depth + 1));
            }
            if let Some(child) = current.plus {
                pending.push((child, depth + 1));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_tree_finds_longest_prefix() {
        let mut tree = PrefixTree::new();
        for (index, key) in ["secret/", "secret/foo", "sec", "secret/fob/", "", "zzz"]
            .iter()
            .enumerate()
        {
            assert_eq!(tree.insert(key, index), None);
        }
        let cases = [
            ("secret/foo/bar", Some(("secret/foo", 1))),
            ("secret/fo", Some(("secret/", 0))),
            ("secret/fob/x", Some(("secret/fob/", 3))),
            ("secre", Some(("sec", 2))),
            ("other", Some(("", 4))),
            ("zz", Some(("", 4))),
            ("zzzz", Some(("zzz", 5))),
        ];
        for (path, expected) in cases {
            let found = tree
                .longest_prefix(path)
                .map(|(length, value)| (&path[..length], *value));
            assert_eq!(found, expected, "{path}");
        }
        assert_eq!(tree.insert("secret/foo", 9), Some(1));
        assert_eq!(tree.get("secret/foo"), Some(&9));
        assert_eq!(tree.get("secret/fo"), None);
    }

    #[test]
    fn segment_tree_matches_plus_and_globs() {
        let mut tree = SegmentTree::new();
        let patterns = [
            "a/+/c", "a/+/c*", "a/b/+", "+", "a/+/", "a/+/*", "x/+/ab*", "x/+/a*",
        ];
        for (index, pattern) in patterns.iter().enumerate() {
            tree.insert(pattern, index);
        }
        let matches = |path: &str| {
            let mut found: Vec<&str> = Vec::new();
            tree.for_each_match(path, |rule| found.push(patterns[rule]));
            found.sort_unstable();
            found
        };
        // `a/+/*` also matches these two, but `a/+/c*` hangs from the same node with a longer
        // tail, so it alone is reported.
        assert_eq!(matches("a/b/c"), ["a/+/c", "a/+/c*", "a/b/+"]);
        assert_eq!(matches("a/x/cd"), ["a/+/c*"]);
        assert_eq!(matches("a/x/d"), ["a/+/*"]);
        assert_eq!(matches("a/x/"), ["a/+/", "a/+/*"]);
        assert_eq!(matches("a/x"), Vec::<&str>::new());
        assert_eq!(matches("anything"), ["+"]);
        assert_eq!(matches(""), ["+"]);
        // Only the longest glob tail at one node is reported.
        assert_eq!(matches("x/y/abc"), ["x/+/ab*"]);
        assert_eq!(matches("x/y/az/more"), ["x/+/a*"]);
    }
}
