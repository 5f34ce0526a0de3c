//! Vocabulary shards (vocab-parallel cross-entropy): which classes a shard holds, the
//! per-row record a shard writes, and the merge of the shards' records with nothing but
//! element-wise MAX and SUM — the collectives MPI and NCCL offer.
//!
//! A row's record (8 words, the partial record of the split-row kernel,
//! `cross_entropy_partials`): `[max, Σ exp(x - shift), Σ w_c (x_c - shift), Σ w_c, target
//! logit, 0, best logit, its column]`, f32 bits but the last (u32), with `shift` the max
//! when finite, else 0. The merge takes two rounds: MAX of the order keys of the maxima
//! (round 1), then SUM of each shard's sums rescaled to the global max, and MAX of the
//! argmax columns that hold the global best (round 2).

use crate::error::{LossError, Result};

/// Words of one row's record.
pub const RECORD_WORDS: usize = 8;

/// The column word of a record for "no column" (an empty shard).
const NO_COLUMN: u32 = u32::MAX;

/// Classes `[start, end)` of a row of `classes` (V): the part of the output layer, and of
/// the logits, that one shard holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VocabShard {
    classes: usize,
    start: usize,
    end: usize,
}

impl VocabShard {
    /// Classes `[start, end)` of `classes`; fails unless `start <= end <= classes`.
    pub fn new(classes: usize, start: usize, end: usize) -> Result<Self> {
        if start > end || end > classes {
            return Err(LossError::BadShard {
                detail: format!("classes [{start}, {end}) are not a range inside [0, {classes})"),
            });
        }
        Ok(Self { classes, start, end })
    }

    /// Shard `index` of `count` near-equal contiguous shards of `classes` (the first
    /// `classes % count` hold one class more), as a tensor-parallel layer splits its rows.
    pub fn even(classes: usize, count: usize, index: usize) -> Result<Self> {
        if index >= count {
            return Err(LossError::BadShard {
                detail: format!("shard {index} of {count} does not exist"),
            });
        }
        let (base, extra) = (classes / count, classes % count);
        let start = index * base + index.min(extra);
        Self::new(classes, start, start + base + usize::from(index < extra))
    }

    /// V, the classes of a whole row.
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// The shard's first class.
    pub fn start(&self) -> usize {
        self.start
    }

    /// One past the shard's last class.
    pub fn end(&self) -> usize {
        self.end
    }

    /// The shard's class count.
    pub fn len(&self) -> usize {
        self.end - self.start
    }

    /// Whether the shard holds no class.
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }
}

/// Per-row records of one shard ([`RECORD_WORDS`] words a row), as a shard step writes
/// them; [`VocabMerge`] combines the shards'.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardRecords {
    words: Vec<u32>,
}

/// The merged records of every shard (the same layout), which a finish step reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergedRecords {
    words: Vec<u32>,
}

macro_rules! record_words {
    ($type:ty) => {
        impl $type {
            /// Records from their words (as read from a GPU buffer or received).
            pub fn from_words(words: Vec<u32>) -> Result<Self> {
                if !words.len().is_multiple_of(RECORD_WORDS) {
                    return Err(LossError::BadShard {
                        detail: format!(
                            "{} record words are not whole records of {RECORD_WORDS}",
                            words.len()
                        ),
                    });
                }
                Ok(Self { words })
            }

            /// The words, [`RECORD_WORDS`] a row.
            pub fn words(&self) -> &[u32] {
                &self.words
            }

            /// The rows.
            pub fn rows(&self) -> usize {
                self.words.len() / RECORD_WORDS
            }

            fn row(&self, n: usize) -> &[u32] {
                &self.words[n * RECORD_WORDS..(n + 1) * RECORD_WORDS]
            }
        }
    };
}
record_words!(ShardRecords);
record_words!(MergedRecords);

/// A record's fields as numbers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Record {
    pub max: f32,
    pub exp_sum: f32,
    pub wx_sum: f32,
    pub w_sum: f32,
    pub term: f32,
    pub best: f32,
    pub column: u32,
}

impl Record {
    /// A record of no class.
    pub(crate) fn empty() -> Self {
        Self {
            max: f32::NEG_INFINITY,
            exp_sum: 0.0,
            wx_sum: 0.0,
            w_sum: 0.0,
            term: 0.0,
            best: f32::NEG_INFINITY,
            column: NO_COLUMN,
        }
    }

    pub(crate) fn words(&self) -> [u32; RECORD_WORDS] {
        let f = f32::to_bits;
        [
            f(self.max),
            f(self.exp_sum),
            f(self.wx_sum),
            f(self.w_sum),
            f(self.term),
            0,
            f(self.best),
            self.column,
        ]
    }

    pub(crate) fn of(words: &[u32]) -> Self {
        let f = |i: usize| f32::from_bits(words[i]);
        Self {
            max: f(0),
            exp_sum: f(1),
            wx_sum: f(2),
            w_sum: f(3),
            term: f(4),
            best: f(6),
            column: words[7],
        }
    }
}

impl MergedRecords {
    /// Row `n`'s merged record.
    pub(crate) fn record(&self, n: usize) -> Record {
        Record::of(self.row(n))
    }
}

impl ShardRecords {
    /// Records from their fields, a row at a time.
    pub(crate) fn of_records(records: impl IntoIterator<Item = Record>) -> Self {
        Self {
            words: records.into_iter().flat_map(|r| r.words()).collect(),
        }
    }

    fn record(&self, n: usize) -> Record {
        Record::of(self.row(n))
    }
}

/// The shift values are kept relative to: the max when finite, else 0 (`stats_shift` in
/// `shaders/prelude.wgsl`).
pub(crate) fn shift_of(max: f32) -> f32 {
    if max == f32::NEG_INFINITY {
        0.0
    } else {
        max
    }
}

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
                [key(r.max), key(r.best)].into_iter().take(self.keys_per_row())
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
                let holds = key(r.best) == merged_keys[2 * n + 1] && r.column != NO_COLUMN;
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
    fn even_shards_cover_the_classes_in_order() {
        for (classes, count) in [(10, 3), (7, 7), (5, 1), (3, 5), (32000, 4)] {
            let shards: Vec<VocabShard> = (0..count)
                .map(|i| VocabShard::even(classes, count, i).unwrap())
                .collect();
            assert_eq!(shards[0].start(), 0);
            assert_eq!(shards[count - 1].end(), classes);
            for pair in shards.windows(2) {
                assert_eq!(pair[0].end(), pair[1].start());
                assert!(pair[0].len() >= pair[1].len() && pair[0].len() - pair[1].len() <= 1);
            }
        }
        assert!(VocabShard::even(10, 2, 2).is_err());
        assert!(VocabShard::new(10, 4, 11).is_err());
        assert!(VocabShard::new(10, 5, 4).is_err());
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
        let empty = merge
            .merge_local(&[ShardRecords::of_records([Record::empty()])])
            .unwrap();
        assert_eq!(empty.record(0).column, NO_COLUMN);
    }
}
