# PyTorch's CPU cross-entropy on the shapes and data layout of `wgpu-loss bench`, for the
# side-by-side comparison in BENCHMARKS.md. Same machine, same thread count (2), same
# bytes counted (f32 logits + i64 targets). Run:
#   python3 -m pip install torch numpy && python3 benches/pytorch_cross_entropy.py
import time, torch, torch.nn.functional as F
torch.set_num_threads(2)
print("torch", torch.__version__, "threads", torch.get_num_threads())
for rows, classes in [(4096, 4096), (65536, 128), (2048, 32000)]:
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(rows, classes, generator=g) - 0.5) * 16
    y = torch.randint(0, classes, (rows,), generator=g)
    F.cross_entropy(x, y)
    times = []
    for _ in range(7):
        t = time.perf_counter(); F.cross_entropy(x, y); times.append(time.perf_counter() - t)
    times.sort(); med = times[len(times)//2]
    gb = (rows * classes * 4 + rows * 8) / med / 1e9
    print(f"{rows}x{classes}: median {med*1e3:.1f} ms, {gb:.2f} GB/s")
