//! The merge of vocabulary shards' records (`api::shard`) with nothing but element-wise
//! MAX and SUM — the collectives MPI and NCCL offer. Two rounds: MAX of the order keys of
//! the maxima (round 1), then SUM of each shard's sums rescaled to the merged max, and MAX
//! of the argmax columns that hold the merged best (round 2).

use crate::api::shard::{shift_of, MergeOptions, MergedRecords, Record, ShardRecords, NO_COLUMN};
use crate::error::{LossError, Result};

/// An order key of `x`: `a < b` exactly when `key(a) < key(b)`, NaN above everything, so
/// that MAX over u32 keys is an exact, NaN-safe MAX over f32 (MPI's and NCCL's float MAX
/// leave NaN unspecified).
fn key(x: f32) -> u32 {
    if x.is_nan() {
        return u32::MAX;
    }
    let bits = x.to_bits();
    if bits & 0x8000_0000 != 0 {
        !bits
    } else {
        bits | 0x8000_0000
    }
}

/// The order key of a best logit: `-0.0` and `+0.0` are one value to an argmax (the
/// unsharded kernels keep the lower column of equal logits), so both take `+0.0`'s key.
fn best_key(x: f32) -> u32 {
    key(x + 0.0)
}

/// The f32 of an order key ([`key`]'s inverse; every NaN comes back as one NaN).
fn unkey(k: u32) -> f32 {
    if k == u32::MAX {
        f32::NAN
    } else if k & 0x8000_0000 != 0 {
        f32::from_bits(k & 0x7fff_ffff)
    } else {
        f32::from_bits(!k)
    }
}

/// The element-wise collectives a merge needs, over every participant (MPI ranks, NCCL
/// ranks): each calls them in the same order with its own values and gets the combined
/// values back in place.
pub trait Collectives {
    /// Element-wise MAX of u32 values.
    fn all_max_u32(&mut self, values: &mut [u32]) -> Result<()>;
    /// Element-wise SUM of f32 values.
    fn all_sum_f32(&mut self, values: &mut [f32]) -> Result<()>;
}

/// How the shards' records of one call merge (from [`crate::CrossEntropy::vocab_merge`]):
/// which words travel, and the sum of every class weight that a merged record carries.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VocabMerge {
    /// The argmax travels (row outputs).
    pub(crate) argmax: bool,
    /// The smoothing sum `Σ w_c (x_c - shift)` travels (label smoothing).
    pub(crate) smoothing: bool,
    /// `Σ_c w_c` over all V classes (V without weights): the same on every shard.
    pub(crate) weight_sum: f32,
}

impl VocabMerge {
    /// The options the merged records carry (checked by the finish steps).
    pub(crate) fn options(&self) -> MergeOptions {
        MergeOptions {
            argmax: self.argmax,
            smoothing: self.smoothing,
            weight_sum_bits: self.weight_sum.to_bits(),
        }
    }
    /// Round 1's u32 words per row (MAX).
    fn keys_per_row(&self) -> usize {
        1 + usize::from(self.argmax)
    }

    /// Round 2's f32 words per row (SUM).
    fn sums_per_row(&self) -> usize {
        2 + usize::from(self.smoothing)
    }

    /// Bytes each participant contributes per row over the whole merge (every collective
    /// together): 12 for the plain loss, +4 with label smoothing, +8 with the argmax.
    pub fn bytes_per_row(&self) -> usize {
        4 * (self.keys_per_row() + self.sums_per_row() + usize::from(self.argmax))
    }

    /// Round 1: each row's order key of its max (and of its best logit, with the argmax).
    pub fn max_keys(&self, records: &ShardRecords) -> Vec<u32> {
        (0..records.rows())
            .flat_map(|n| {
                let r = records.record(n);
                [key(r.max), best_key(r.best)].into_iter().take(self.keys_per_row())
            })
            .collect()
    }

    /// Round 2 (SUM): each row's exp-sum rescaled to the merged max, target logit, and
    /// with smoothing its rescaled `Σ w_c (x_c - shift)` — the shader's `stats_merge`.
    pub fn sums(&self, records: &ShardRecords, merged_keys: &[u32]) -> Result<Vec<f32>> {
        self.check_keys(records, merged_keys)?;
        let mut sums = Vec::with_capacity(records.rows() * self.sums_per_row());
        for n in 0..records.rows() {
            let r = records.record(n);
            let (shift, own) = (shift_of(unkey(merged_keys[n * self.keys_per_row()])), shift_of(r.max));
            sums.push(r.exp_sum * (own - shift).min(0.0).exp());
            sums.push(r.term);
            if self.smoothing {
                sums.push(r.wx_sum + (own - shift) * r.w_sum);
            }
        }
        Ok(sums)
    }

    /// Round 2 (MAX, with the argmax): `!column` where the shard's best is the merged best,
    /// else 0 — MAX keeps the first column of the best logit.
    pub fn column_keys(&self, records: &ShardRecords, merged_keys: &[u32]) -> Result<Vec<u32>> {
        self.check_keys(records, merged_keys)?;
        if !self.argmax {
            return Ok(Vec::new());
        }
        Ok((0..records.rows())
            .map(|n| {
                let r = records.record(n);
                let holds = best_key(r.best) == merged_keys[2 * n + 1] && r.column != NO_COLUMN;
                if holds {
                    !r.column
                } else {
                    0
                }
            })
            .collect())
    }

    /// The merged records from the three merged vectors.
    pub fn assemble(&self, keys: &[u32], sums: &[f32], columns: &[u32]) -> Result<MergedRecords> {
        let rows = keys.len() / self.keys_per_row();
        let lengths = [
            (keys.len(), rows * self.keys_per_row(), "max keys"),
            (sums.len(), rows * self.sums_per_row(), "sums"),
            (columns.len(), if self.argmax { rows } else { 0 }, "column keys"),
        ];
        if let Some((got, want, what)) = lengths.into_iter().find(|(got, want, _)| got != want) {
            return Err(LossError::BadShard {
                detail: format!("{got} merged {what} for {rows} rows (expected {want})"),
            });
        }
        let records = (0..rows).map(|n| {
            let s = &sums[n * self.sums_per_row()..(n + 1) * self.sums_per_row()];
            let column = columns
                .get(n)
                .map_or(NO_COLUMN, |&c| if c == 0 { NO_COLUMN } else { !c });
            Record {
                max: unkey(keys[n * self.keys_per_row()]),
                exp_sum: s[0],
                term: s[1],
                wx_sum: if self.smoothing { s[2] } else { 0.0 },
                w_sum: self.weight_sum,
                best: if self.argmax {
                    unkey(keys[2 * n + 1])
                } else {
                    f32::NEG_INFINITY
                },
                column,
            }
        });
        Ok(MergedRecords {
            words: ShardRecords::of_records(records).words,
            merged_for: Some(self.options()),
        })
    }

    /// Merges this participant's records with every other's through `collectives`: MAX,
    /// then SUM (and MAX of the argmax columns).
    pub fn merge(&self, collectives: &mut impl Collectives, records: &ShardRecords) -> Result<MergedRecords> {
        let mut keys = self.max_keys(records);
        collectives.all_max_u32(&mut keys)?;
        let mut sums = self.sums(records, &keys)?;
        collectives.all_sum_f32(&mut sums)?;
        let mut columns = self.column_keys(records, &keys)?;
        if self.argmax {
            collectives.all_max_u32(&mut columns)?;
        }
        self.assemble(&keys, &sums, &columns)
    }

    /// Merges the records of shards held in this process, in shard order (the same
    /// rounds as [`VocabMerge::merge`]; the sums add shard after shard).
    pub fn merge_local(&self, shards: &[ShardRecords]) -> Result<MergedRecords> {
        let rows = shards.first().map_or(0, ShardRecords::rows);
        if let Some(bad) = shards.iter().find(|s| s.rows() != rows) {
            return Err(LossError::BadShard {
                detail: format!("records of {} rows beside records of {rows} rows", bad.rows()),
            });
        }
        let fold = |parts: Vec<Vec<u32>>| {
            parts
                .into_iter()
                .reduce(|a, b| a.iter().zip(&b).map(|(x, y)| *x.max(y)).collect())
                .unwrap_or_default()
        };
        let keys = fold(shards.iter().map(|s| self.max_keys(s)).collect());
        let keys = if shards.is_empty() {
            vec![key(f32::NEG_INFINITY); rows * self.keys_per_row()]
        } else {
            keys
        };
        let mut sums = vec![0.0_f32; rows * self.sums_per_row()];
        for shard in shards {
            for (total, s) in sums.iter_mut().zip(self.sums(shard, &keys)?) {
                *total += s;
            }
        }
        let columns = shards
            .iter()
            .map(|s| self.column_keys(s, &keys))
            .collect::<Result<Vec<_>>>()?;
        let columns = if self.argmax && shards.is_empty() {
            vec![0; rows]
        } else {
            fold(columns)
        };
        self.assemble(&keys, &sums, &columns)
    }

    fn check_keys(&self, records: &ShardRecords, keys: &[u32]) -> Result<()> {
        let want = records.rows() * self.keys_per_row();
        if keys.len() != want {
            return Err(LossError::BadShard {
                detail: format!(
                    "{} merged max keys for {} rows of records (expected {want})",
                    keys.len(),
                    records.rows()
                ),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_keys_order_floats_and_put_nan_on_top() {
        let values = [f32::NEG_INFINITY, -3.5, -0.0, 0.0, 1e-40, 2.0, f32::MAX, f32::INFINITY];
        for pair in values.windows(2) {
            assert!(key(pair[0]) <= key(pair[1]), "{pair:?}");
        }
        assert!(key(f32::NAN) > key(f32::INFINITY));
        for v in values {
            assert_eq!(unkey(key(v)).to_bits(), v.to_bits());
        }
        assert!(unkey(key(f32::NAN)).is_nan());
    }

    #[test]
    fn bytes_per_row_count_every_collective() {
        let plain = VocabMerge {
            argmax: false,
            smoothing: false,
            weight_sum: 1.0,
        };
        assert_eq!(plain.bytes_per_row(), 12);
        let all = VocabMerge {
            argmax: true,
            smoothing: true,
            ..plain
        };
        assert_eq!(all.bytes_per_row(), 24);
    }

    #[test]
    fn merged_argmax_is_the_first_column_of_the_best() {
        let merge = VocabMerge {
            argmax: true,
            smoothing: false,
            weight_sum: 4.0,
        };
        let shard = |best: f32, column: u32| {
            ShardRecords::of_records([Record {
                max: best,
                best,
                column,
                exp_sum: 1.0,
                ..Record::empty()
            }])
        };
        let merged = merge
            .merge_local(&[shard(1.0, 0), shard(3.0, 5), shard(3.0, 9)])
            .unwrap();
        assert_eq!(merged.record(0).column, 5);
        assert_eq!(merged.record(0).max, 3.0);
        let nan = merge.merge_local(&[shard(1.0, 0), shard(f32::NAN, 7)]).unwrap();
        assert_eq!(nan.record(0).column, 7);
        assert!(nan.record(0).max.is_nan());
        // -0.0 and +0.0 tie, as in one row: the lower column wins whichever shard has it.
        let zeros = merge.merge_local(&[shard(-0.0, 1), shard(0.0, 5)]).unwrap();
        assert_eq!(zeros.record(0).column, 1);
        let zeros = merge.merge_local(&[shard(0.0, 1), shard(-0.0, 5)]).unwrap();
        assert_eq!(zeros.record(0).column, 1);
        let empty = merge
            .merge_local(&[ShardRecords::of_records([Record::empty()])])
            .unwrap();
        assert_eq!(empty.record(0).column, NO_COLUMN);
    }
}
