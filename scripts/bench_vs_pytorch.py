"""PyTorch reference models for scripts/bench-vs-pytorch.sh.

The same shapes and the same work as `syncseg bench step` and `syncseg
bench vit`, timed the same way (warm-up runs, then the mean of the timed
runs), printed as one JSON object:

  python bench_vs_pytorch.py c2f --dim 1024 --frames 600 --classes 33 --batch 1
  python bench_vs_pytorch.py vit --size small --batch 8
  python bench_vs_pytorch.py gemm

The C2F-TCN is the reference architecture (Singhania et al.'s code, as the
sync paper's release reuses it): double convolutions k=5 with BatchNorm and
ReLU, six max-pool downs, the TPP block, linear ×2 upsampling with
align_corners, six heads. Its training step is the one syncseg times:
forward in train mode, the ensemble of the six heads' upsampled softmaxes,
cross-entropy on its log plus 0.15 × the truncated (τ = 4) MSE between
consecutive frames' log-probabilities, backward, Adam.

The ViT is DINOv2's block (pre-norm attention and MLP with LayerScale,
exact GELU), attention by `F.scaled_dot_product_attention`, at 224 px with
14-px patches (256 patches + the class token), batch-first; eval mode under
`torch.inference_mode()`.
"""

import argparse
import json
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def double_conv(cin, cout):
    return nn.Sequential(
        nn.Conv1d(cin, cout, 5, padding=2),
        nn.BatchNorm1d(cout),
        nn.ReLU(inplace=True),
        nn.Conv1d(cout, cout, 5, padding=2),
        nn.BatchNorm1d(cout),
        nn.ReLU(inplace=True),
    )


class Down(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.pool = nn.MaxPool1d(2)
        self.conv = double_conv(cin, cout)

    def forward(self, x):
        return self.conv(self.pool(x))


class Up(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv = double_conv(cin, cout)

    def forward(self, x, skip):
        x = F.interpolate(x, scale_factor=2, mode="linear", align_corners=True)
        diff = skip.size(2) - x.size(2)
        x = F.pad(x, [diff // 2, diff - diff // 2])
        return self.conv(torch.cat([skip, x], 1))


class Tpp(nn.Module):
    def __init__(self, cin, pools=(2, 3, 5, 6)):
        super().__init__()
        self.pools = pools
        self.conv = nn.Conv1d(cin, 1, 1)

    def forward(self, x):
        t = x.size(2)
        parts = [
            F.interpolate(
                self.conv(F.max_pool1d(x, k, k)), size=t, mode="linear", align_corners=True
            )
            for k in self.pools
        ]
        return torch.cat(parts + [x], 1)


class C2fTcn(nn.Module):
    def __init__(self, dim, classes, enc=(256, 256, 256, 128, 128, 128, 128), dec=128):
        super().__init__()
        self.inc = double_conv(dim, enc[0])
        self.downs = nn.ModuleList(Down(enc[i], enc[i + 1]) for i in range(6))
        self.tpp = Tpp(enc[6])
        ups_in = [enc[6] + 4 + enc[5], dec + enc[4], dec + enc[3], dec + enc[2], dec + enc[1], dec + enc[0]]
        self.ups = nn.ModuleList(Up(c, dec) for c in ups_in)
        self.heads = nn.ModuleList(nn.Conv1d(dec, classes, 1) for _ in range(6))

    def forward(self, x):
        skips = [self.inc(x)]
        for down in self.downs:
            skips.append(down(skips[-1]))
        h = self.tpp(skips[-1])
        outs = []
        for i, (up, head) in enumerate(zip(self.ups, self.heads)):
            h = up(h, skips[5 - i])
            outs.append(head(F.relu(h) if i < 5 else h))
        return outs[::-1]  # [y, y5, ..., y1]


def ensemble(heads, t):
    p = sum(
        F.softmax(F.interpolate(h, size=t, mode="linear", align_corners=True), 1) for h in heads
    )
    return p / len(heads)


def c2f_loss(probs, labels, mask, tau=4.0, smoothing=0.15):
    logp = torch.log(probs.clamp_min(1e-8))
    picked = logp.gather(1, labels.unsqueeze(1)).squeeze(1)
    ce = -(picked * mask).sum() / mask.sum().clamp_min(1.0)
    d = logp[:, :, 1:] - logp.detach()[:, :, :-1]
    pair = (mask[:, 1:] * mask[:, :-1]).unsqueeze(1)
    sq = d.pow(2).clamp(max=tau * tau) * pair
    return ce + smoothing * sq.sum() / (pair.sum() * probs.size(1)).clamp_min(1.0)


def timed(f, warmup, iters):
    for _ in range(warmup):
        f()
    start = time.perf_counter()
    for _ in range(iters):
        f()
    return (time.perf_counter() - start) / iters


def bench_c2f(a):
    torch.manual_seed(0)
    model = C2fTcn(a.dim, a.classes)
    x = torch.randn(a.batch, a.dim, a.frames)
    labels = torch.zeros(a.batch, a.frames, dtype=torch.long)
    mask = torch.ones(a.batch, a.frames)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)

    def infer():
        with torch.inference_mode():
            ensemble(model(x), a.frames).sum().item()

    def step():
        opt.zero_grad(set_to_none=True)
        loss = c2f_loss(ensemble(model(x), a.frames), labels, mask)
        loss.backward()
        opt.step()

    model.eval()
    infer_s = timed(infer, a.warmup, a.iters)
    model.train()
    step_s = timed(step, a.warmup, a.iters)
    return {"inference_ms": infer_s * 1e3, "train_step_ms": step_s * 1e3}


class Block(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.ls1 = nn.Parameter(torch.full((dim,), 1e-5))
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.fc1 = nn.Linear(dim, 4 * dim)
        self.fc2 = nn.Linear(4 * dim, dim)
        self.ls2 = nn.Parameter(torch.full((dim,), 1e-5))

    def forward(self, x):
        b, n, c = x.shape
        qkv = self.qkv(self.norm1(x)).reshape(b, n, 3, self.heads, c // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, c)
        x = x + self.ls1 * self.proj(a)
        return x + self.ls2 * self.fc2(F.gelu(self.fc1(self.norm2(x))))


class Vit(nn.Module):
    SIZES = {"small": (384, 12, 6), "base": (768, 12, 12), "large": (1024, 24, 16)}

    def __init__(self, size, image, patch=14):
        super().__init__()
        dim, depth, heads = self.SIZES[size]
        self.patch = nn.Conv2d(3, dim, patch, patch)
        n = (image // patch) ** 2
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(torch.randn(1, n + 1, dim) * 0.02)
        self.blocks = nn.ModuleList(Block(dim, heads) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)

    def forward(self, img):
        x = self.patch(img).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(x.size(0), -1, -1), x], 1) + self.pos
        for blk in self.blocks:
            x = blk(x)
        return self.norm(x)[:, 0]


def bench_vit(a):
    torch.manual_seed(0)
    model = Vit(a.size, a.image).eval()
    img = torch.randn(a.batch, 3, a.image, a.image)

    def embed():
        with torch.inference_mode():
            model(img).sum().item()

    secs = timed(embed, 1, a.iters)
    return {"frames_per_s": a.batch / secs}


def bench_gemm(a):
    """PyTorch's matmul at the shapes of core/examples/gemm_peak.rs."""
    out = {}
    for m, n, k in [(256, 600, 5120), (256, 600, 1280), (256, 300, 1280), (128, 75, 640), (256, 600, 1024)]:
        x, y = torch.ones(m, k), torch.ones(k, n)
        secs = timed(lambda: x @ y, 5, 50)
        out[f"{m}x{n}x{k}_gflops"] = 2 * m * n * k / secs / 1e9
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="what", required=True)
    c = sub.add_parser("c2f")
    c.add_argument("--dim", type=int, default=1024)
    c.add_argument("--frames", type=int, default=600)
    c.add_argument("--classes", type=int, default=33)
    c.add_argument("--batch", type=int, default=1)
    c.add_argument("--iters", type=int, default=10)
    c.add_argument("--warmup", type=int, default=2)
    v = sub.add_parser("vit")
    v.add_argument("--size", default="small", choices=sorted(Vit.SIZES))
    v.add_argument("--image", type=int, default=224)
    v.add_argument("--batch", type=int, default=8)
    v.add_argument("--iters", type=int, default=3)
    sub.add_parser("gemm")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: its default)")
    a = p.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    out = {"c2f": bench_c2f, "vit": bench_vit, "gemm": bench_gemm}[a.what](a)
    out.update({k: v for k, v in vars(a).items() if k not in ("what", "threads")})
    out.update({"torch": torch.__version__, "threads": torch.get_num_threads()})
    print(json.dumps(out))


if __name__ == "__main__":
    main()
