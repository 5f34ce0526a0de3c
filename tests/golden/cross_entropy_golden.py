# Produces the PyTorch golden values in tests/golden.rs (PyTorch 2.15.0, CPU): inputs are
# rounded to float32 first (as the Rust side holds them), then computed in float64. Run: python3 tests/golden/cross_entropy_golden.py
import math
import torch
import torch.nn.functional as F

inf = math.inf
x = torch.tensor([[2.0, 0.5, -1.0], [0.0, 3.0, 0.1], [-2.0, 1.5, 0.25], [4.0, 4.0, 4.0]], dtype=torch.float32).double()
y = torch.tensor([0, 1, 2, -100])
w = torch.tensor([1.0, 2.0, 0.5], dtype=torch.float32).double()
cases = {
    "plain_mean": F.cross_entropy(x, y),
    "plain_sum": F.cross_entropy(x, y, reduction="sum"),
    "plain_none": F.cross_entropy(x, y, reduction="none"),
    "weighted_mean": F.cross_entropy(x, y, weight=w),
    "weighted_smooth_mean": F.cross_entropy(x, y, weight=w, label_smoothing=0.1),
    "weighted_smooth_none": F.cross_entropy(x, y, weight=w, label_smoothing=0.1, reduction="none"),
    "smooth_sum_ignore_1": F.cross_entropy(x, torch.tensor([0, 1, 2, 1]), ignore_index=1, label_smoothing=0.25, reduction="sum"),
    "large_1234": F.cross_entropy(torch.tensor([[1234.0, 0.0]], dtype=torch.float32).double(), torch.tensor([1]), reduction="none"),
    "large_1e4": F.cross_entropy(torch.tensor([[1e4, 0.0], [0.0, 1e4]], dtype=torch.float32).double(), torch.tensor([0, 0]), reduction="none"),
    "masked_neg_inf": F.cross_entropy(torch.tensor([[-inf, 0.0, 1.0]], dtype=torch.float32).double(), torch.tensor([2]), reduction="none"),
    "target_neg_inf": F.cross_entropy(torch.tensor([[-inf, 0.0, 1.0]], dtype=torch.float32).double(), torch.tensor([0]), reduction="none"),
    "all_neg_inf": F.cross_entropy(torch.tensor([[-inf, -inf]], dtype=torch.float32).double(), torch.tensor([0]), reduction="none"),
    "smooth_neg_inf": F.cross_entropy(torch.tensor([[-inf, 0.0, 1.0]], dtype=torch.float32).double(), torch.tensor([2]), label_smoothing=0.1, reduction="none"),
    "all_ignored_mean": F.cross_entropy(x[:2], torch.tensor([-100, -100])),
    "one_class": F.cross_entropy(torch.tensor([[3.5], [-7.0]], dtype=torch.float32).double(), torch.tensor([0, 0]), reduction="none"),
    "softmax_6_6_m6": F.softmax(torch.tensor([6.0, 6.0, -6.0], dtype=torch.float32).double(), dim=0),
    "softmax_1234_0": F.softmax(torch.tensor([1234.0, 0.0], dtype=torch.float32).double(), dim=0),
}
print(f"torch {torch.__version__}")
for name, value in cases.items():
    print(name, [repr(v) for v in value.reshape(-1).tolist()])
