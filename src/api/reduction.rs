//! How row losses become the result, and the result itself.

/// PyTorch's `reduction` argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Reduction {
    /// One loss per row (`reduction='none'`).
    None,
    /// The sum of the row losses.
    Sum,
    /// The mean. For class-index cross-entropy and NLL, the weighted mean: the sum over
    /// the summed target weights of the rows not ignored; for probability targets, over N;
    /// for elementwise losses, over all elements. PyTorch's default.
    #[default]
    Mean,
    /// KL divergence only: the sum over the batch size N (the true KL per row).
    BatchMean,
}

impl Reduction {
    /// The name PyTorch uses (`"none"`, `"sum"`, `"mean"`).
    pub fn name(self) -> &'static str {
        match self {
            Reduction::None => "none",
            Reduction::Sum => "sum",
            Reduction::Mean => "mean",
            Reduction::BatchMean => "batchmean",
        }
    }
}

impl std::str::FromStr for Reduction {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "none" => Ok(Reduction::None),
            "sum" => Ok(Reduction::Sum),
            "mean" => Ok(Reduction::Mean),
            "batchmean" => Ok(Reduction::BatchMean),
            other => Err(format!(
                "unknown reduction {other:?}: expected none, sum, mean or batchmean"
            )),
        }
    }
}

/// The result of a loss or row operation: a scalar for `sum`, `mean` and `batchmean`, else
/// a tensor (row losses `[N]`, elementwise losses in the input's shape, softmax `[N, C]`).
#[derive(Debug, Clone, PartialEq)]
pub enum LossValue {
    /// The reduced loss.
    Scalar(f32),
    /// Unreduced values in C order.
    Tensor {
        /// The shape.
        shape: Vec<usize>,
        /// The values.
        values: Vec<f32>,
    },
}

impl LossValue {
    /// The scalar, or `None` for a tensor.
    pub fn scalar(&self) -> Option<f32> {
        match self {
            LossValue::Scalar(value) => Some(*value),
            LossValue::Tensor { .. } => None,
        }
    }

    /// The values: one for a scalar.
    pub fn values(&self) -> &[f32] {
        match self {
            LossValue::Scalar(value) => std::slice::from_ref(value),
            LossValue::Tensor { values, .. } => values,
        }
    }

    /// The shape as NumPy would give it: `[]` for a scalar.
    pub fn shape(&self) -> Vec<usize> {
        match self {
            LossValue::Scalar(_) => Vec::new(),
            LossValue::Tensor { shape, .. } => shape.clone(),
        }
    }

    /// The same values with `shape` when a tensor (a family computes rows and the caller's
    /// shape names them: `[N]`, 0-d for an unbatched input, the input's shape); a scalar
    /// stays as it is.
    pub(crate) fn with_tensor_shape(self, shape: Vec<usize>) -> Self {
        match self {
            LossValue::Tensor { values, .. } => LossValue::Tensor { shape, values },
            scalar => scalar,
        }
    }

    /// Values read back from the GPU: the first for a reduction, else all with `shape`.
    pub(crate) fn from_gpu(reduction: Reduction, shape: Vec<usize>, values: Vec<f32>) -> Self {
        match reduction {
            Reduction::None => LossValue::Tensor { shape, values },
            _ => LossValue::Scalar(values.first().copied().unwrap_or(f32::NAN)),
        }
    }
}
