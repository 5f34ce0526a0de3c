//! Host groups of a call along a strided class axis: whole rows (whole outer slices of
//! `[…, C, inner]`) as slices of the caller's data, or — when one slice is larger than the
//! device's largest buffer or binding — runs of a slice's positions, each gathered into a
//! `[1, C, len]` call of its own (one copy per class) whose tensors are scattered back.

use std::ops::Range;

use crate::api::host::Input;

/// One group: positions `range` of the call (contiguous in position order either way).
pub(crate) enum Group {
    /// Whole rows (whole outer slices).
    Rows(Range<usize>),
    /// Positions `range` inside one outer slice.
    Run(Range<usize>),
}

impl Group {
    /// The group's positions.
    pub(crate) fn range(&self) -> &Range<usize> {
        match self {
            Group::Rows(range) | Group::Run(range) => range,
        }
    }
}

/// The runs of at most `per_run` positions of every outer slice of `rows` positions
/// (`inner` per slice), in position order.
pub(crate) fn runs(rows: usize, inner: usize, per_run: usize) -> Vec<Group> {
    let per_run = per_run.max(1);
    (0..rows)
        .step_by(inner)
        .flat_map(|slice| {
            (0..inner)
                .step_by(per_run)
                .map(move |i| slice + i..slice + inner.min(i + per_run))
        })
        .map(Group::Run)
        .collect()
}

/// A run's input, and an f32 array laid out like it (probability targets, an upstream),
/// gathered from the caller's `[N, C, inner]` layout into `[1, C, len]`.
pub(crate) struct Gathered {
    input: Owned,
    alike: Option<Vec<f32>>,
}

/// Gathered input elements in the caller's format.
enum Owned {
    F32(Vec<f32>),
    F16(Vec<u16>),
    Bf16(Vec<u16>),
}

/// The element ranges of positions `range` (inside one slice), one per class.
fn class_ranges(range: &Range<usize>, classes: usize, inner: usize) -> impl Iterator<Item = Range<usize>> + '_ {
    let (slice, position) = (range.start / inner, range.start % inner);
    let len = range.len();
    (0..classes).map(move |c| {
        let first = (slice * classes + c) * inner + position;
        first..first + len
    })
}

impl Gathered {
    /// Gathers positions `range` (inside one outer slice) of `input` and of `alike`, both
    /// laid out `[N, classes, inner]`.
    pub(crate) fn new(
        input: Input<'_>,
        alike: Option<&[f32]>,
        (classes, inner): (usize, usize),
        range: &Range<usize>,
    ) -> Self {
        let gather = |v: &[u16]| -> Vec<u16> {
            class_ranges(range, classes, inner)
                .flat_map(|r| v[r].iter().copied())
                .collect()
        };
        let gather_f32 = |v: &[f32]| -> Vec<f32> {
            class_ranges(range, classes, inner)
                .flat_map(|r| v[r].iter().copied())
                .collect()
        };
        let input = match input {
            Input::F32(v) => Owned::F32(gather_f32(v)),
            Input::F16(v) => Owned::F16(gather(v)),
            Input::Bf16(v) => Owned::Bf16(gather(v)),
        };
        Self {
            input,
            alike: alike.map(gather_f32),
        }
    }

    /// The gathered input, `[1, C, len]`.
    pub(crate) fn input(&self) -> Input<'_> {
        match &self.input {
            Owned::F32(v) => Input::F32(v),
            Owned::F16(v) => Input::F16(v),
            Owned::Bf16(v) => Input::Bf16(v),
        }
    }

    /// The gathered array laid out like the input, if one was given.
    pub(crate) fn alike(&self) -> Option<&[f32]> {
        self.alike.as_deref()
    }
}

/// Writes a run's `[1, C, len]` tensor (a gradient, a softmax) into the whole call's `into`.
pub(crate) fn scatter(into: &mut [f32], part: &[f32], range: &Range<usize>, classes: usize, inner: usize) {
    for (r, values) in class_ranges(range, classes, inner).zip(part.chunks_exact(range.len())) {
        into[r].copy_from_slice(values);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_cover_every_position_once_and_scatter_inverts_the_gather() {
        let (slices, classes, inner) = (3, 4, 10);
        let groups = runs(slices * inner, inner, 4);
        let covered: Vec<usize> = groups.iter().flat_map(|g| g.range().clone()).collect();
        assert_eq!(covered, (0..slices * inner).collect::<Vec<_>>());
        assert!(groups
            .iter()
            .all(|g| g.range().start / inner == (g.range().end - 1) / inner));
        let x: Vec<f32> = (0..slices * classes * inner).map(|v| v as f32).collect();
        let (mut back, mut back_targets) = (vec![0.0; x.len()], vec![0.0; x.len()]);
        for group in &groups {
            let gathered = Gathered::new(Input::F32(&x), Some(&x), (classes, inner), group.range());
            let Input::F32(values) = gathered.input() else {
                panic!("f32")
            };
            scatter(&mut back, values, group.range(), classes, inner);
            let alike = gathered.alike().expect("gathered alike");
            scatter(&mut back_targets, alike, group.range(), classes, inner);
        }
        assert_eq!(back, x);
        assert_eq!(back_targets, x);
    }
}
