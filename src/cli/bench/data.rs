//! The generated batches of `bench`: reproducible (SplitMix64), the same for a shape and
//! loss on every run, with the targets the loss's family reads.

use wgpu_loss::Batch;

use crate::cli::args::LossName;
use crate::cli::data::TargetData;
use crate::cli::family::Family;

/// SplitMix64, for reproducible generated batches.
pub(super) struct Rng(pub(super) u64);

impl Rng {
    pub(super) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub(super) fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }
}

/// Each row's log-softmax (f32, for generating inputs only).
fn log_softmax(x: &[f32], classes: usize) -> Vec<f32> {
    x.chunks(classes)
        .flat_map(|row| {
            let m = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
            let lse = m + row.iter().map(|v| (v - m).exp()).sum::<f32>().ln();
            row.iter().map(move |v| v - lse).collect::<Vec<_>>()
        })
        .collect()
}

/// Log-softmax along the class axis of a cross-entropy `shape` (axis 1, or 0 for `[C]`),
/// as nll's generated input.
fn log_probabilities(logits: &[f32], shape: &[usize]) -> Vec<f32> {
    use wgpu_loss::{Backend, Loss, RowOp};
    let axis = i64::from(shape.len() > 1);
    RowOp::LogSoftmax
        .along(axis)
        .forward(Backend::Cpu, &Batch::input(logits, shape.to_vec()))
        .map_or_else(|_| logits.to_vec(), |out| out.values().to_vec())
}

/// The generated host data of one shape, for one loss: `rows` positions of `classes`
/// classes (along axis 1 of a cross-entropy input of rank 3 or more, else the last).
pub struct Generated {
    pub shape: Vec<usize>,
    pub rows: usize,
    pub classes: usize,
    pub input: Vec<f32>,
    pub targets: TargetData,
}

/// Host bytes a shape's generated data and results take per element, about: the input, the
/// values it is made from, an f32 target, and the outputs of each backend.
const HOST_BYTES_PER_ELEMENT: u64 = 32;

/// `[rows, classes]` if a shape can be generated: both at least 1, their product without
/// overflow, and its data within the host memory available now (checked before anything is
/// allocated from them).
pub fn check_shape(rows: usize, classes: usize) -> Result<Vec<usize>, String> {
    if rows == 0 || classes == 0 {
        return Err(format!(
            "--rows and --classes must be at least 1, got {rows} x {classes}"
        ));
    }
    let needed = (rows as u64)
        .checked_mul(classes as u64)
        .and_then(|n| n.checked_mul(HOST_BYTES_PER_ELEMENT))
        .filter(|&bytes| usize::try_from(bytes).is_ok())
        .ok_or_else(|| format!("--rows {rows} x --classes {classes} overflows"))?;
    if let Some(available) = available_memory() {
        if needed > available {
            return Err(format!(
                "--rows {rows} x --classes {classes} needs about {needed} bytes of host memory; {available} are available"
            ));
        }
    }
    Ok(vec![rows, classes])
}

/// `--shape` if it can be generated: every axis at least 1, then as [`check_shape`] over its
/// positions and classes.
pub fn check_any_shape(shape: &[usize], loss: LossName) -> Result<Vec<usize>, String> {
    if shape.is_empty() || shape.contains(&0) {
        return Err(format!("--shape must have every axis at least 1, got {shape:?}"));
    }
    let (rows, classes) = rows_and_classes(shape, loss).ok_or_else(|| format!("--shape {shape:?} overflows"))?;
    check_shape(rows, classes).map_err(|e| format!("--shape {shape:?}: {e}"))?;
    Ok(shape.to_vec())
}

/// Positions and classes of `shape` for `loss`: class axis 1 for cross-entropy and nll
/// (rank ≥ 2), else the last axis; `None` on overflow.
fn rows_and_classes(shape: &[usize], loss: LossName) -> Option<(usize, usize)> {
    let axis = match loss.family() {
        Family::CrossEntropy(_) if shape.len() > 1 => 1,
        _ => shape.len() - 1,
    };
    let len = shape.iter().try_fold(1_usize, |acc, &d| acc.checked_mul(d))?;
    Some((len / shape[axis].max(1), shape[axis]))
}

/// `MemAvailable` of /proc/meminfo, in bytes (Linux; `None` elsewhere).
fn available_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

impl Generated {
    /// Logits in [-8, 8), class indices and values in [0.01, 0.99), made into what `loss`
    /// reads: log-probabilities for nll and kl-div, probabilities for bce (whose target is
    /// 1 - input), probabilities for kl-div's target.
    pub fn new(loss: LossName, shape: Vec<usize>) -> Self {
        let (rows, classes) = rows_and_classes(&shape, loss).unwrap_or((0, 1));
        let mut rng = Rng(rows as u64 * 1_000_003 + classes as u64);
        let n = rows * classes;
        let logits: Vec<f32> = (0..n).map(|_| (rng.unit() - 0.5) * 16.0).collect();
        let indices: Vec<i64> = (0..rows).map(|_| (rng.next() % classes as u64) as i64).collect();
        let unit: Vec<f32> = (0..n).map(|_| rng.unit() * 0.98 + 0.01).collect();
        let (input, target) = match loss {
            LossName::Nll => (log_probabilities(&logits, &shape), Vec::new()),
            LossName::Bce => {
                let target = unit.iter().map(|u| 1.0 - u).collect();
                (unit, target)
            }
            LossName::KlDiv => {
                let target = log_softmax(&unit, classes).iter().map(|v| v.exp()).collect();
                (log_softmax(&logits, classes), target)
            }
            _ => (logits, unit),
        };
        let targets = match loss.family() {
            Family::CrossEntropy(_) => TargetData::I64(indices),
            Family::Elementwise(_) => TargetData::F32(target),
            Family::RowOp(_) => TargetData::None,
        };
        Self {
            shape,
            rows,
            classes,
            input,
            targets,
        }
    }

    /// The shape as generated.
    pub fn shape(&self) -> Vec<usize> {
        self.shape.clone()
    }

    /// The shape as a label: `8x21x512x512`.
    pub fn label(&self) -> String {
        let dims: Vec<String> = self.shape.iter().map(ToString::to_string).collect();
        dims.join("x")
    }

    /// The batch as the library takes it.
    pub fn batch(&self) -> Batch<'_> {
        Batch::new(&self.input, self.shape(), self.targets.as_targets())
    }

    /// Bytes of input the loss reads: the input, and its targets.
    pub fn bytes_read(&self) -> usize {
        self.input.len() * 4 + self.targets.bytes().len()
    }

    /// Bytes a call moves: those read, and the f32 tensor written per input element: the
    /// gradient with `grad`, or the output of a softmax / log-softmax (`writes_tensor`).
    pub fn bytes_moved(&self, grad: bool, writes_tensor: bool) -> usize {
        self.bytes_read() + if grad || writes_tensor { self.input.len() * 4 } else { 0 }
    }
}
