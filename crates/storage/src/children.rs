//! The listing walk shared by every backend: turning an ordered key scan into the immediate
//! children of a prefix, with paging and skipping over whole folders.

use std::ops::Bound;

/// What the backend's scan should do after feeding one key.
pub(crate) enum Step {
    /// Keep going with the next key in order.
    Next,
    /// Every key before this one is irrelevant (it lies inside a folder already reported or
    /// skipped): restart the scan here, inclusive.
    Seek(String),
    /// The listing is complete.
    Done,
}

/// Accumulates the children of `prefix` from keys fed in ascending order.
///
/// Child names are prefixes of their keys cut just after the first `/`, so ascending keys give
/// non-decreasing children: deduplication only needs to look at the last child pushed.
pub(crate) struct Children<'a> {
    prefix: &'a str,
    after: &'a str,
    limit: usize,
    out: Vec<String>,
}

impl<'a> Children<'a> {
    pub(crate) fn new(prefix: &'a str, after: &'a str, limit: usize) -> Self {
        Self {
            prefix,
            after,
            limit,
            out: Vec::new(),
        }
    }

    /// Where the scan starts: at the prefix, or just past `after` when paging.
    pub(crate) fn start(&self) -> Bound<String> {
        match self.after.strip_suffix('/') {
            _ if self.after.is_empty() => Bound::Included(self.prefix.to_owned()),
            Some(folder) => Bound::Included(past_folder(self.prefix, folder)),
            None => Bound::Excluded(format!("{}{}", self.prefix, self.after)),
        }
    }

    pub(crate) fn feed(&mut self, key: &str) -> Step {
        let Some(rest) = key.strip_prefix(self.prefix) else {
            return Step::Done;
        };
        let (child, folder) = match rest.find('/') {
            Some(i) => (&rest[..=i], Some(&rest[..i])),
            None => (rest, None),
        };
        // `after` is normally a child name, which `start` already skipped; the comparison keeps
        // arbitrary `after` values correct too.
        if child > self.after && self.out.last().is_none_or(|last| last != child) {
            self.out.push(child.to_owned());
            if self.limit != 0 && self.out.len() >= self.limit {
                return Step::Done;
            }
        }
        match folder {
            Some(folder) => Step::Seek(past_folder(self.prefix, folder)),
            None => Step::Next,
        }
    }

    pub(crate) fn finish(self) -> Vec<String> {
        self.out
    }
}

/// The first key after everything under `prefix + folder + "/"`: `'0'` is the character right
/// after `'/'`, so `folder0` sorts after every `folder/...` key and before anything else.
fn past_folder(prefix: &str, folder: &str) -> String {
    format!("{prefix}{folder}0")
}
