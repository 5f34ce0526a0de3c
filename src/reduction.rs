//! How row losses become the result, and the result itself.

/// PyTorch's `reduction` argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Reduction {
    /// One loss per row (`reduction='none'`).
    None,
    /// The sum of the row losses.
    Sum,
    /// The weighted mean: the sum over the summed target weights of the rows not ignored
    /// (over the row count when there are no weights). PyTorch's default.
    #[default]
    Mean,
}

impl Reduction {
    /// The name PyTorch uses (`"none"`, `"sum"`, `"mean"`).
    pub fn name(self) -> &'static str {
        match self {
            Reduction::None => "none",
            Reduction::Sum => "sum",
            Reduction::Mean => "mean",
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
            other => Err(format!("unknown reduction {other:?}: expected none, sum or mean")),
        }
    }
}

/// The result of a loss: a scalar for `sum` and `mean`, one value per row for `none`.
#[derive(Debug, Clone, PartialEq)]
pub enum LossValue {
    /// The reduced loss.
    Scalar(f32),
    /// The row losses, in row order.
    PerRow(Vec<f32>),
}

impl LossValue {
    /// The scalar, or `None` for per-row results.
    pub fn scalar(&self) -> Option<f32> {
        match self {
            LossValue::Scalar(value) => Some(*value),
            LossValue::PerRow(_) => None,
        }
    }

    /// The values: one for a scalar, N for per-row results.
    pub fn values(&self) -> &[f32] {
        match self {
            LossValue::Scalar(value) => std::slice::from_ref(value),
            LossValue::PerRow(values) => values,
        }
    }

    /// The shape as NumPy would give it: `[]` for a scalar, `[N]` per row.
    pub fn shape(&self) -> Vec<usize> {
        match self {
            LossValue::Scalar(_) => Vec::new(),
            LossValue::PerRow(values) => vec![values.len()],
        }
    }
}
