//! A shard's two steps on the CPU (both CPU backends: f64 arithmetic, rows in parallel):
//! each row's record over the shard's classes, and from the merged records the row's loss,
//! its outputs and the shard's slice of the gradient — the formulas of
//! `cross_entropy_partials` and `finish_row` in `shaders/cross_entropy.wgsl`, and of
//! `element_grad` in `shaders/cross_entropy_grad.wgsl`.

use rayon::prelude::*;

use crate::api::host::{ForwardBackward, Upstream};
use crate::api::shard::{shift_of, MergedRecords, Record, ShardRecords, VocabShard};
use crate::cpu::RowLosses;
use crate::losses::cross_entropy::cpu::{accuracy_of, reduce_rows, row_scale};
use crate::losses::cross_entropy::spec::Spec;

/// One shard's host data: `[N, shard.len()]` logits as f32 and N class indices.
pub(crate) struct ShardRows<'a> {
    pub shard: VocabShard,
    pub logits: &'a [f32],
    pub targets: &'a [i64],
}

impl ShardRows<'_> {
    fn rows(&self) -> usize {
        self.targets.len()
    }

    fn row(&self, n: usize) -> &[f32] {
        let cols = self.shard.len();
        &self.logits[n * cols..(n + 1) * cols]
    }

    /// The shard's column of class `target`, when it holds it.
    fn column_of(&self, target: i64) -> Option<usize> {
        let (start, end) = (self.shard.start() as i64, self.shard.end() as i64);
        (start..end).contains(&target).then(|| (target - start) as usize)
    }
}

fn class_weight(spec: &Spec<'_>, class: usize) -> f64 {
    spec.weight.map_or(1.0, |w| f64::from(w[class]))
}

/// Row `n`'s record over the shard's classes.
fn row_record(spec: &Spec<'_>, data: &ShardRows<'_>, n: usize) -> Record {
    let row = data.row(n);
    let start = data.shard.start();
    let capped: Vec<f64> = row.iter().map(|&x| spec.capped(f64::from(x))).collect();
    let max = capped.iter().fold(f64::NEG_INFINITY, |m, &x| {
        if x.is_nan() || m.is_nan() {
            f64::NAN
        } else {
            m.max(x)
        }
    });
    let shift = f64::from(shift_of(max as f32));
    let mut record = Record {
        max: max as f32,
        exp_sum: 0.0,
        ..Record::empty()
    };
    let (mut exp_sum, mut wx_sum, mut w_sum) = (0.0, 0.0, 0.0);
    for (c, &x) in capped.iter().enumerate() {
        let w = class_weight(spec, start + c);
        exp_sum += (x - shift).exp();
        wx_sum += w * (x - shift);
        w_sum += w;
    }
    (record.exp_sum, record.wx_sum, record.w_sum) = (exp_sum as f32, wx_sum as f32, w_sum as f32);
    let target = data.targets[n];
    if target != spec.ignore_index {
        if let Some(c) = data.column_of(target) {
            record.term = capped[c] as f32;
        }
    }
    // The argmax of the raw logits: NaN first, then the largest, the first on ties.
    for (c, &x) in row.iter().enumerate() {
        let better = record.column == u32::MAX
            || (x.is_nan() && !record.best.is_nan())
            || (!record.best.is_nan() && x > record.best);
        if better {
            record.best = x;
            record.column = (start + c) as u32;
        }
    }
    record
}

/// Step 1: each row's record.
pub(crate) fn partials(spec: &Spec<'_>, data: &ShardRows<'_>) -> ShardRecords {
    let records: Vec<Record> = (0..data.rows())
        .into_par_iter()
        .map(|n| row_record(spec, data, n))
        .collect();
    ShardRecords::of_records(records)
}

/// What the finish knows of one row from its merged record and target.
struct RowFinish {
    loss: f64,
    weight: f64,
    lse: f64,
    /// Σ_c a_c (0 for an ignored row).
    a_sum: f64,
    /// The target and its weight, unless ignored.
    target: Option<(i64, f64)>,
}

fn finish_row(spec: &Spec<'_>, classes: usize, merged: &Record, target: i64) -> RowFinish {
    let eps = spec.label_smoothing;
    let smoothing = eps > 0.0;
    let shift = f64::from(shift_of(merged.max));
    let log_z = f64::from(merged.exp_sum).ln();
    let lse = log_z + shift;
    let mut out = RowFinish {
        loss: 0.0,
        weight: 0.0,
        lse,
        a_sum: 0.0,
        target: None,
    };
    if target == spec.ignore_index {
        return out;
    }
    let w_y = class_weight(spec, target as usize);
    let nll = log_z - (f64::from(merged.term) - shift);
    let smoothing_sum = f64::from(merged.w_sum) * log_z - f64::from(merged.wx_sum);
    let scale = eps / classes as f64;
    (out.loss, out.a_sum) = if smoothing {
        (
            (1.0 - eps) * w_y * nll + scale * smoothing_sum,
            (1.0 - eps) * w_y + scale * f64::from(merged.w_sum),
        )
    } else {
        (w_y * nll, w_y)
    };
    out.loss += spec.z_loss * lse * lse;
    out.weight = w_y;
    out.target = Some((target, w_y));
    out
}

/// One row's slice of the gradient (`logits` the shard's columns of the row), scaled by `g`.
fn grad_row(spec: &Spec<'_>, shard: VocabShard, logits: &[f32], row: &RowFinish, g: f64, out: &mut [f32]) {
    let Some((target, w_y)) = row.target else {
        out.fill(0.0);
        return;
    };
    let eps = spec.label_smoothing;
    let scale = eps / shard.classes() as f64;
    for (c, (slot, &x)) in out.iter_mut().zip(logits).enumerate() {
        let class = shard.start() + c;
        let xc = spec.capped(f64::from(x));
        let p = (xc - row.lse).exp();
        let hit = if class as i64 == target { w_y } else { 0.0 };
        let a = if eps > 0.0 {
            (1.0 - eps) * hit + scale * class_weight(spec, class)
        } else {
            hit
        };
        let mut d = row.a_sum * p - a + 2.0 * spec.z_loss * row.lse * p;
        if let Some(cap) = spec.softcap {
            let q = xc / cap;
            d *= 1.0 - q * q;
        }
        *slot = (g * d) as f32;
    }
}

/// Step 2: the loss (reduced over every row), the row outputs, and with an upstream the
/// shard's slice `[N, shard.len()]` of the gradient, from the merged records.
pub(crate) fn finish(
    spec: &Spec<'_>,
    data: &ShardRows<'_>,
    merged: &MergedRecords,
    upstream: Option<Upstream<&[f32]>>,
) -> ForwardBackward {
    let classes = data.shard.classes();
    let rows: Vec<RowFinish> = (0..data.rows())
        .into_par_iter()
        .map(|n| finish_row(spec, classes, &merged.record(n), data.targets[n]))
        .collect();
    let losses = RowLosses {
        loss: rows.iter().map(|r| r.loss).collect(),
        weight: rows.iter().map(|r| r.weight).collect(),
    };
    let mut out = ForwardBackward::plain(reduce_rows(spec, rows.len(), &losses), Vec::new());
    if let Some(upstream) = upstream {
        let scale = row_scale(spec, &losses, upstream);
        let cols = data.shard.len().max(1);
        let mut grad = vec![0.0_f32; data.logits.len()];
        grad.par_chunks_mut(cols).enumerate().for_each(|(n, slot)| {
            grad_row(spec, data.shard, data.row(n), &rows[n], scale[n], slot);
        });
        out.grad = grad;
    }
    if spec.row_outputs {
        let argmax: Vec<u32> = (0..rows.len()).map(|n| merged.record(n).column).collect();
        out.accuracy = Some(accuracy_of(&argmax, data.targets, spec.ignore_index));
        out.lse = Some(rows.iter().map(|r| r.lse as f32).collect());
        out.argmax = Some(argmax);
    }
    out
}
