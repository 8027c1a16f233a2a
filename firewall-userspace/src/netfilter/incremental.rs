//! Which rules of a chain a change keeps, deletes and inserts: the chain as recorded
//! (`record`) against the chain as translated now, compared by fingerprint (source rule
//! and alternative, `record::fingerprint`). The kept rules
//! are a longest common subsequence of the two; since every iptables rule has a slot of its
//! own in its comment, a fingerprint occurs once per chain, and that subsequence is a
//! longest increasing one (patience diff, O(n log n)). A fingerprint seen twice is never
//! kept: its rules are written again.

use rustc_hash::FxHashMap as HashMap;

/// For each new rule, the index of the old rule it keeps, if any; the old rules no new
/// one keeps go. Kept pairs are in the same order on both sides.
pub fn plan(old: &[u64], new: &[u64]) -> Vec<Option<usize>> {
    let mut seen: HashMap<u64, (u32, u32, usize)> =
        HashMap::with_capacity_and_hasher(old.len(), Default::default());
    for (i, fp) in old.iter().enumerate() {
        let e = seen.entry(*fp).or_insert((0, 0, i));
        e.0 += 1;
        e.2 = i;
    }
    for fp in new {
        if let Some(e) = seen.get_mut(fp) {
            e.1 += 1;
        }
    }
    // (new index, old index) of every candidate pair, in new order.
    let pairs: Vec<(usize, usize)> = new
        .iter()
        .enumerate()
        .filter_map(|(j, fp)| match seen.get(fp) {
            Some(&(1, 1, i)) => Some((j, i)),
            _ => None,
        })
        .collect();
    // Longest strictly increasing run of old indices: tails[k] is the pair index ending
    // the best run of length k + 1 found so far.
    let mut tails: Vec<usize> = Vec::new();
    let mut before: Vec<Option<usize>> = vec![None; pairs.len()];
    for (p, &(_, i)) in pairs.iter().enumerate() {
        let k = tails.partition_point(|&t| pairs[t].1 < i);
        before[p] = k.checked_sub(1).map(|k| tails[k]);
        if k == tails.len() {
            tails.push(p);
        } else {
            tails[k] = p;
        }
    }
    let mut out = vec![None; new.len()];
    let mut at = tails.last().copied();
    while let Some(p) = at {
        let (j, i) = pairs[p];
        out[j] = Some(i);
        at = before[p];
    }
    out
}

/// Whether to write a chain again rather than change it in place: each positioned insert
/// or deletion finds its rule by handle, a walk of the chain in the kernel (~1/4000 of
/// adding a rule, per rule walked, here), where emptying the chain and appending costs a
/// rule's work per rule (a quarter of it per rule flushed).
pub fn rewrite_whole(old_len: usize, new_len: usize, kept: usize) -> bool {
    let changes = (old_len - kept.min(old_len) + new_len - kept.min(new_len)) as u64;
    let (old_len, new_len) = (old_len as u64, new_len as u64);
    changes * (4000 + old_len) > 4000 * new_len + 1000 * old_len
}

/// Where a new rule goes, given the handles of the rules kept around it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    /// Right after the rule with this handle (`NFTA_RULE_POSITION` with `NLM_F_APPEND`).
    After(u64),
    /// Right before it (`NFTA_RULE_POSITION` alone).
    Before(u64),
    /// At the end of the chain.
    End,
}

/// The new rules to insert, in the order to send them, and where each goes: a run of new
/// rules after a kept rule is sent last first, each right after that rule; a run at the
/// head of the chain goes before the first kept rule, first to last; in a chain that
/// keeps nothing, everything is appended in order.
pub fn placements(keep: &[Option<usize>], old_handles: &[u64]) -> Vec<(usize, Place)> {
    let mut out = Vec::new();
    let mut j = 0;
    while j < keep.len() {
        if keep[j].is_some() {
            j += 1;
            continue;
        }
        let start = j;
        while j < keep.len() && keep[j].is_none() {
            j += 1;
        }
        let prev = start
            .checked_sub(1)
            .and_then(|p| keep[p])
            .map(|i| old_handles[i]);
        let next = keep.get(j).copied().flatten().map(|i| old_handles[i]);
        match (prev, next) {
            (Some(h), _) => out.extend((start..j).rev().map(|n| (n, Place::After(h)))),
            (None, Some(h)) => out.extend((start..j).map(|n| (n, Place::Before(h)))),
            (None, None) => out.extend((start..j).map(|n| (n, Place::End))),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Applies deletions and placements to `old` as the kernel would, returning the
    /// chain's fingerprints in order.
    fn apply(old: &[u64], new: &[u64]) -> (Vec<u64>, usize) {
        let keep = plan(old, new);
        let handles: Vec<u64> = (0..old.len() as u64).map(|h| h + 100).collect();
        // The chain as (handle, fingerprint), deletions applied.
        let mut chain: Vec<(u64, u64)> = old
            .iter()
            .enumerate()
            .filter(|(i, _)| keep.contains(&Some(*i)))
            .map(|(i, fp)| (handles[i], *fp))
            .collect();
        let places = placements(&keep, &handles);
        for (handle, &(n, place)) in (1000..).zip(&places) {
            let rule = (handle, new[n]);
            let pos = |h: u64, chain: &[(u64, u64)]| chain.iter().position(|r| r.0 == h).unwrap();
            match place {
                Place::After(h) => {
                    let at = pos(h, &chain) + 1;
                    chain.insert(at, rule)
                }
                Place::Before(h) => {
                    let at = pos(h, &chain);
                    chain.insert(at, rule)
                }
                Place::End => chain.push(rule),
            }
        }
        (chain.iter().map(|r| r.1).collect(), places.len())
    }

    #[test]
    fn a_change_sends_only_the_rules_it_changes() {
        let old: Vec<u64> = (1..=10).collect();
        for (new, sent) in [
            // -I at 3, -D 3, -R 5, -A, two edits far apart, nothing.
            (vec![1, 2, 99, 3, 4, 5, 6, 7, 8, 9, 10], 1),
            (vec![1, 2, 4, 5, 6, 7, 8, 9, 10], 0),
            (vec![1, 2, 3, 4, 99, 6, 7, 8, 9, 10], 1),
            (vec![1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 99], 1),
            (vec![98, 1, 2, 4, 5, 6, 7, 8, 9, 10, 99], 2),
            (old.clone(), 0),
        ] {
            let (chain, count) = apply(&old, &new);
            assert_eq!(chain, new);
            assert_eq!(count, sent, "{new:?}");
        }
    }

    #[test]
    fn any_reordering_ends_as_the_new_chain() {
        let old: Vec<u64> = (1..=8).collect();
        for new in [
            vec![8, 7, 6, 5, 4, 3, 2, 1],
            vec![3, 1, 2],
            vec![],
            vec![50, 51],
            vec![2, 2, 2, 5],
            vec![5, 1, 60, 2, 8, 61],
        ] {
            assert_eq!(apply(&old, &new).0, new);
        }
        assert_eq!(apply(&[], &[4, 5]).0, vec![4, 5]);
        // Moving one rule to the end keeps the seven others in place.
        let new = vec![2, 3, 4, 5, 6, 7, 8, 1];
        assert_eq!(apply(&old, &new), (new, 1));
    }

    #[test]
    fn a_chain_mostly_replaced_is_written_whole() {
        // One rule inserted into 10,000, or a thousand changed: in place.
        assert!(!rewrite_whole(10_000, 10_001, 10_000));
        assert!(!rewrite_whole(10_000, 10_000, 9_000));
        // Every rule replaced, or half of them: whole.
        assert!(rewrite_whole(10_000, 10_000, 0));
        assert!(rewrite_whole(10_000, 10_000, 5_000));
        // Small chains change in place unless nothing is kept.
        assert!(!rewrite_whole(3, 4, 3));
        assert!(rewrite_whole(3, 3, 0));
    }

    #[test]
    fn rules_seen_twice_are_written_again() {
        assert_eq!(apply(&[7, 7], &[7, 7]), (vec![7, 7], 2));
        assert_eq!(apply(&[1, 7, 7], &[1, 7, 7]), (vec![1, 7, 7], 2));
    }
}
