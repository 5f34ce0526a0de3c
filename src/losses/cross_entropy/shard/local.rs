//! The in-process driver of both vocab-parallel forms (`CrossEntropy::vocab_parallel`,
//! `LinearCrossEntropy::vocab_parallel`): the shards' cover of `[0, V)`, and the three
//! steps over shards held in one process, side by side where they sit on different
//! devices.

use crate::api::merge::VocabMerge;
use crate::api::shard::{MergedRecords, ShardRecords, VocabShard};
use crate::error::{LossError, Result};
use crate::gpu::context::GpuContext;
use crate::losses::Backend;

/// V of shards that cover `[0, V)` in order, one after another (an error names the first
/// shard out of place).
pub(crate) fn covered(shards: impl IntoIterator<Item = VocabShard>) -> Result<usize> {
    let mut shards = shards.into_iter().peekable();
    let Some(classes) = shards.peek().map(VocabShard::classes) else {
        return Err(LossError::BadShard {
            detail: "a vocab-parallel call of no shards".into(),
        });
    };
    let mut next = 0;
    for s in shards {
        if s.classes() != classes || s.start() != next {
            return Err(LossError::BadShard {
                detail: format!(
                    "shards must cover [0, {classes}) in order: classes [{}, {}) of {} after [0, {next})",
                    s.start(),
                    s.end(),
                    s.classes()
                ),
            });
        }
        next = s.end();
    }
    if next != classes {
        return Err(LossError::BadShard {
            detail: format!("the shards cover [0, {next}) of [0, {classes})"),
        });
    }
    Ok(classes)
}

/// The three steps over shards held in one process: every shard's partials, the records
/// merged in shard order ([`VocabMerge::merge_local`]), every shard's finish. Shards on
/// different GPU contexts run side by side (a thread per context); shards on one context,
/// and CPU shards, run one after another — they share one device's memory and queue, or
/// every core already, and side by side would only multiply their memory. The result
/// does not depend on which thread ends first; an error is the first shard's.
pub(crate) fn run_local<S: Sync, P: Send>(
    shards: &[S],
    backend_of: impl Fn(&S) -> Backend<'_> + Sync,
    merge: &VocabMerge,
    partials: impl Fn(&S) -> Result<ShardRecords> + Sync,
    finish: impl Fn(&S, &MergedRecords) -> Result<P> + Sync,
) -> Result<Vec<P>> {
    let lanes = lanes(shards.iter().map(&backend_of));
    let records = side_by_side(shards, &lanes, partials)?;
    let merged = merge.merge_local(&records)?;
    side_by_side(shards, &lanes, |s| finish(s, &merged))
}

/// The shards' indices by where they run: one list per GPU context, one for the host, in
/// order of first appearance.
fn lanes<'a>(backends: impl Iterator<Item = Backend<'a>>) -> Vec<Vec<usize>> {
    let mut keys: Vec<Option<*const GpuContext>> = Vec::new();
    let mut lanes: Vec<Vec<usize>> = Vec::new();
    for (i, backend) in backends.enumerate() {
        let key = match backend {
            Backend::Gpu(ctx) => Some(ctx as *const GpuContext),
            Backend::Cpu | Backend::Reference => None,
        };
        match keys.iter().position(|&k| k == key) {
            Some(lane) => lanes[lane].push(i),
            None => {
                keys.push(key);
                lanes.push(vec![i]);
            }
        }
    }
    lanes
}

/// `step` of every shard: each lane's shards in order, the lanes side by side (a scoped
/// thread each; the calling thread alone for one lane); the results in shard order.
fn side_by_side<S: Sync, T: Send>(
    shards: &[S],
    lanes: &[Vec<usize>],
    step: impl Fn(&S) -> Result<T> + Sync,
) -> Result<Vec<T>> {
    let run = |lane: &[usize]| -> Vec<(usize, Result<T>)> { lane.iter().map(|&i| (i, step(&shards[i]))).collect() };
    let mut results: Vec<(usize, Result<T>)> = match lanes {
        [] => Vec::new(),
        [one] => run(one),
        _ => std::thread::scope(|scope| {
            let running: Vec<_> = lanes.iter().map(|lane| scope.spawn(|| run(lane))).collect();
            // Every thread is joined before a panic goes on (the scope waits for them).
            running
                .into_iter()
                .flat_map(|thread| thread.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
                .collect()
        }),
    };
    results.sort_by_key(|&(i, _)| i);
    results.into_iter().map(|(_, result)| result).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_shards_share_one_lane_in_order() {
        let backends = [Backend::Cpu, Backend::Reference, Backend::Cpu];
        assert_eq!(lanes(backends.into_iter()), vec![vec![0, 1, 2]]);
        assert!(lanes(std::iter::empty()).is_empty());
    }

    #[test]
    fn side_by_side_keeps_shard_order_and_gives_the_first_error() {
        let shards = [0_usize, 1, 2, 3];
        let lanes = vec![vec![1, 3], vec![0, 2]];
        let doubled = side_by_side(&shards, &lanes, |&s| Ok(2 * s)).unwrap();
        assert_eq!(doubled, vec![0, 2, 4, 6]);
        let failing = side_by_side(&shards, &lanes, |&s| {
            if s >= 1 {
                Err(LossError::BadShard {
                    detail: format!("shard {s}"),
                })
            } else {
                Ok(s)
            }
        });
        assert!(matches!(failing, Err(LossError::BadShard { detail }) if detail == "shard 1"));
    }
}
