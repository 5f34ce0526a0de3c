//! Vocabulary shards (vocab-parallel cross-entropy): which classes a shard holds, the
//! per-row record a shard writes.
//!
//! A row's record (8 words, the partial record of the split-row kernel,
//! `cross_entropy_partials`): `[max, Σ exp(x - shift), Σ w_c (x_c - shift), Σ w_c, target
//! logit, 0, best logit, its column]`, f32 bits but the last (u32), with `shift` the max
//! when finite, else 0. `api::merge` combines the shards' records.

use crate::error::{LossError, Result};

/// Words of one row's record.
pub const RECORD_WORDS: usize = 8;

/// The column word of a record for "no column" (an empty shard).
pub(crate) const NO_COLUMN: u32 = u32::MAX;

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
/// them; [`crate::VocabMerge`] combines the shards'.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardRecords {
    pub(crate) words: Vec<u32>,
}

/// The merged records of every shard (the same layout), which a finish step reads. Two are
/// equal when their words and the options they were merged for are (records made
/// [`MergedRecords::from_words`] carry none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergedRecords {
    pub(crate) words: Vec<u32>,
    /// The options of the [`crate::VocabMerge`] that made them (`None` for records from
    /// their words): a finish step refuses records merged for other options.
    pub(crate) merged_for: Option<MergeOptions>,
}

/// What a merge carried for its loss's options: the argmax, the smoothing sum, `Σ w`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MergeOptions {
    pub argmax: bool,
    pub smoothing: bool,
    pub weight_sum_bits: u32,
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
                Ok(Self::of_words(words))
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
    fn of_words(words: Vec<u32>) -> Self {
        Self {
            words,
            merged_for: None,
        }
    }

    /// Rows `[first, first + len)`.
    pub(crate) fn rows_of(&self, first: usize, len: usize) -> Self {
        Self {
            words: self.words[first * RECORD_WORDS..(first + len) * RECORD_WORDS].to_vec(),
            merged_for: self.merged_for,
        }
    }

    /// Row `n`'s merged record.
    pub(crate) fn record(&self, n: usize) -> Record {
        Record::of(self.row(n))
    }
}

impl ShardRecords {
    fn of_words(words: Vec<u32>) -> Self {
        Self { words }
    }

    /// Records from their fields, a row at a time.
    pub(crate) fn of_records(records: impl IntoIterator<Item = Record>) -> Self {
        Self {
            words: records.into_iter().flat_map(|r| r.words()).collect(),
        }
    }

    pub(crate) fn record(&self, n: usize) -> Record {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
