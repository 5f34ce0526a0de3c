# Produces the PyTorch golden values in tests/loss_family.rs (PyTorch 2.15.0, CPU): inputs
# are rounded to float32 first (as the Rust side holds them), then computed in float64.
# Run: python3 tests/golden/loss_family_golden.py
import math
import torch
import torch.nn.functional as F

inf = math.inf
def t(v):
    return torch.tensor(v, dtype=torch.float32).double()

x = t([[2.0, 0.5, -1.0], [0.0, 3.0, 0.1], [-2.0, 1.5, 0.25], [4.0, 4.0, 4.0]])
w = t([1.0, 2.0, 0.5])
tp = t([[0.7, 0.2, 0.1], [0.0, 1.0, 0.0], [0.25, 0.25, 0.5], [0.1, 0.1, 0.8]])
p = t([[0.1, 0.05, 0.05, 0.8], [0.1, 0.8, 0.05, 0.05]])
tp4 = t([[0.0, 1.0, 0.0, 0.0], [0.5, 0.5, 0.0, 0.0]])
logp = F.log_softmax(x, dim=1).float().double()  # held as f32 by the Rust side
bp = t([[0.0, 0.3, 1.0], [0.9, 1e-8, 0.5]])
by = t([[0.0, 1.0, 1.0], [0.25, 0.0, 1.0]])
bx = t([[1000.0, -1000.0, 0.5], [1e4, -3.0, -1e4]])
bw = t([0.5, 2.0, 1.0])
pw = t([3.0, 0.5, 1.0])
kt = t([[0.5, 0.0, 0.5], [0.2, 0.3, 0.5], [1.0, 0.0, 0.0], [0.1, 0.6, 0.3]])
cases = {
    "ce_probs_none": F.cross_entropy(x, tp, reduction="none"),
    "ce_probs_weighted_smooth_mean": F.cross_entropy(x, tp, weight=w, label_smoothing=0.2),
    "ce_probs_sum": F.cross_entropy(x, tp, reduction="sum"),
    # the seeds' -Σ t log(y + 1e-7), with class-index and probability targets
    "ce_on_probs_index_none": -(torch.log(p + 1e-7).gather(1, torch.tensor([[1], [1]]))).reshape(-1),
    "ce_on_probs_targets_none": -(tp4 * torch.log(p + 1e-7)).sum(1),
    "nll_weighted_none": F.nll_loss(logp, torch.tensor([0, 1, -100, 2]), weight=w, reduction="none"),
    "nll_weighted_mean": F.nll_loss(logp, torch.tensor([0, 1, -100, 2]), weight=w),
    "bce_none": F.binary_cross_entropy(bp, by, reduction="none"),
    "bce_weighted_mean": F.binary_cross_entropy(bp, by, weight=bw.expand(2, 3)),
    "bce_logits_none": F.binary_cross_entropy_with_logits(bx, by, reduction="none"),
    "bce_logits_weighted_pos_mean": F.binary_cross_entropy_with_logits(bx, by, weight=bw, pos_weight=pw),
    "mse_none": F.mse_loss(bp, by, reduction="none"),
    "mse_sum": F.mse_loss(bp, by, reduction="sum"),
    "kl_none": F.kl_div(logp, kt, reduction="none"),
    "kl_batchmean": F.kl_div(logp, kt, reduction="batchmean"),
    "kl_mean": F.kl_div(logp, kt, reduction="mean"),
    "kl_log_target_sum": F.kl_div(logp, torch.log(kt + 0.1).float().double(), reduction="sum", log_target=True),
    "softmax_rows": F.softmax(t([[6.0, 6.0, -6.0], [1234.0, 0.0, -inf]]), dim=1),
    "log_softmax_rows": F.log_softmax(t([[6.0, 6.0, -6.0], [1234.0, 0.0, -inf]]), dim=1),
    "entropy_rows": torch.distributions.Categorical(logits=t([[6.0, 6.0, -6.0], [1.0, 0.0, -inf], [0.0, 0.0, 0.0]])).entropy(),
}
print(f"torch {torch.__version__}")
for name, value in cases.items():
    print(name, [repr(v) for v in value.reshape(-1).tolist()])
