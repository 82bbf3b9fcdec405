//! Applying the warninglists to every loaded source, on every core.
//!
//! Judging 1.6M indicators is a few hundred nanoseconds each (a parse, a few hash probes), so
//! the sources are split into consecutive runs of about equal size, one per core; each run is
//! screened with its own counts and flagged records, merged in source order afterwards, so the
//! result does not depend on the number of cores.

use super::{Allowlist, FLAG_TAG};
use crate::model::{Indicator, Meta};
use hashbrown::HashMap;
use std::sync::Arc;

/// What screening one run of sources did.
#[derive(Default)]
struct Screening {
    suppressed: Vec<Indicator>,
    /// Per list: (withdrawn, flagged).
    counts: Vec<(usize, usize)>,
    flagged: usize,
}

/// A metadata record, kept alive while in use as a key, and its flagged copy.
type Flagged = (Arc<Meta>, Arc<Meta>);

impl Allowlist {
    /// Applies the lists to `sources` in place: withdrawn indicators are taken out and
    /// returned, flagged ones carry a [`FLAG_TAG`] tag per list; both are counted per list.
    pub fn apply(&mut self, sources: &mut [Vec<Indicator>]) -> Vec<Indicator> {
        if self.is_empty() {
            return Vec::new();
        }
        let _ = self.coverage();
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
        let runs = split(sources, workers);
        let this = &*self;
        let screenings: Vec<Screening> = std::thread::scope(|scope| {
            let handles: Vec<_> = runs.into_iter().map(|run| scope.spawn(move || this.screen(run))).collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
                .collect()
        });
        let mut suppressed = Vec::new();
        for screening in screenings {
            for (list, (withdrawn, flagged)) in self.lists.iter_mut().zip(screening.counts) {
                list.suppressed += withdrawn;
                list.flagged += flagged;
            }
            self.flagged += screening.flagged;
            suppressed.extend(screening.suppressed);
        }
        suppressed
    }

    fn screen(&self, run: &mut [Vec<Indicator>]) -> Screening {
        let mut out = Screening { counts: vec![(0, 0); self.lists.len()], ..Screening::default() };
        // Flagged indicators of one record share one flagged record. The key is the record's
        // address; the value keeps the record alive, so no other can take the address.
        let mut flagged_meta: HashMap<(*const Meta, Vec<u16>), Flagged> = HashMap::default();
        for source in run {
            let mut kept = Vec::with_capacity(source.len());
            for mut ind in std::mem::take(source) {
                let verdict = self.judge(&ind);
                if let Some(list) = verdict.suppressed_by {
                    out.counts[usize::from(list)].0 += 1;
                    out.suppressed.push(ind);
                    continue;
                }
                if !verdict.flagged_by.is_empty() {
                    out.flagged += 1;
                    for &list in &verdict.flagged_by {
                        out.counts[usize::from(list)].1 += 1;
                    }
                    let key = (Arc::as_ptr(&ind.meta), verdict.flagged_by);
                    let (_, meta) = flagged_meta.entry(key).or_insert_with_key(|(_, by)| {
                        let mut meta = Meta::clone(&ind.meta);
                        let slugs = by.iter().map(|&l| &self.lists[usize::from(l)].slug);
                        meta.tags.extend(slugs.map(|slug| format!("{FLAG_TAG}{slug}")));
                        (ind.meta.clone(), Arc::new(meta))
                    });
                    ind.meta = meta.clone();
                }
                kept.push(ind);
            }
            *source = kept;
        }
        out
    }
}

/// `sources` as at most `parts` consecutive runs of about equal numbers of indicators.
fn split(sources: &mut [Vec<Indicator>], parts: usize) -> Vec<&mut [Vec<Indicator>]> {
    let total: usize = sources.iter().map(Vec::len).sum();
    let share = total.div_ceil(parts.max(1)).max(1);
    let mut runs = Vec::new();
    let mut rest = sources;
    while !rest.is_empty() {
        if runs.len() + 1 == parts {
            runs.push(rest);
            break;
        }
        let mut size = 0;
        let end = rest.iter().position(|s| {
            size += s.len();
            size >= share
        });
        let (run, after) = rest.split_at_mut(end.map_or(rest.len(), |i| i + 1));
        runs.push(run);
        rest = after;
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::parse_plain;

    #[test]
    fn runs_are_consecutive_and_about_equal() {
        let source = |n: usize| {
            parse_plain("s", &(0..n).map(|i| format!("h{i}.example\n")).collect::<String>()).indicators
        };
        let mut sources = vec![source(5), source(1), source(4), source(10), source(0)];
        let sizes: Vec<Vec<usize>> =
            split(&mut sources, 2).iter().map(|run| run.iter().map(Vec::len).collect()).collect();
        assert_eq!(sizes, [vec![5, 1, 4], vec![10, 0]]);
        assert_eq!(split(&mut sources, 1).len(), 1);
        assert!(split(&mut [], 2).is_empty());
    }
}
