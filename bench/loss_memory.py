"""Memory and time of the multi-positive loss (with its feature gather) per process, vs the global batch.

Each process holds a fixed local batch (b images x K captions) and the world grows, so the global batch is
G = world x b images. Global mode scores G x G*K logits on every process (quadratic in G); `local_loss` scores the
local rows against the global columns, b x G*K (linear in G). One process is measured, the gather simulated: the
other processes' features are extra tensors with gradients (what `all_gather` hands back), so communication time is
not included. Per configuration: peak extra memory of forward + backward (CPU: peak RSS growth of a fresh
subprocess, after a warm-up step; CUDA: `max_memory_allocated`), and the best-of-N time of forward + backward.

TINY=1 (or --tiny): CPU-sized (b=32, K=5, D=256, world 1..16). Default: b=256, K=5, D=512 (ViT-B/16), world
1..32 on the best device (CPU default: world 1..16 with b=64; CPU workers use one thread). Prints JSON; writes $OUT/loss_memory.json and a
log-log plot $OUT/loss_memory.png when OUT is set.
Usage: TINY=1 python bench/loss_memory.py   |   python bench/loss_memory.py
"""
import contextlib, json, math, os, platform, resource, subprocess, sys, time

import torch
import torch.nn.functional as F

import role_synthclip.loss as loss_module
from role_synthclip.loss import MultiPosClipLoss


@contextlib.contextmanager
def simulated_gather(world:int, n_images:int, dim:int, device:str):
    "Within the block, the module's gathers are single-process stand-ins for `world` processes (this one is rank 0)."
    others = {}
    def gather_features(x, world_size):
        key = tuple(x.shape)
        if key not in others:
            others[key] = F.normalize(torch.randn((world_size - 1) * x.shape[0], x.shape[1], device=device), dim=-1).requires_grad_()
        return torch.cat([x, others[key]])
    def gather_labels(x, world_size): return torch.cat([x + r * n_images for r in range(world_size)])
    saved = loss_module.gather_features, loss_module.gather_labels
    loss_module.gather_features, loss_module.gather_labels = gather_features, gather_labels
    try: yield
    finally: loss_module.gather_features, loss_module.gather_labels = saved  # the next configuration starts clean


def step(loss_fn, img, txt, scale):
    "One forward + backward of the loss."
    loss_fn(img, txt, scale)["contrastive_loss"].backward()
    img.grad = txt.grad = None


def measure(local:bool, world:int, b:int, k:int, dim:int, device:str, repeats:int)->dict:
    "Peak extra memory (MB) and best-of-`repeats` seconds of one forward + backward on rank 0 of `world` processes."
    torch.manual_seed(0)
    warm = [F.normalize(torch.randn(n, dim, device=device), dim=-1).requires_grad_() for n in (2, 2 * k)]
    step(MultiPosClipLoss(local_loss=local, rank=0, world_size=1), *warm, torch.tensor(10.0, device=device))  # load kernels, thread pools
    with simulated_gather(world, b, dim, device) if world > 1 else contextlib.nullcontext():
        return _measure_step(local, world, b, k, dim, device, repeats)


def _measure_step(local, world, b, k, dim, device, repeats)->dict:
    "The measurement itself, with the gathers already in place."
    img = F.normalize(torch.randn(b, dim, device=device), dim=-1).requires_grad_()
    txt = F.normalize(torch.randn(b * k, dim, device=device), dim=-1).requires_grad_()
    scale = torch.tensor(100.0, device=device, requires_grad=True)
    loss_fn = MultiPosClipLoss(local_loss=local, rank=0, world_size=world)
    if device.startswith("cuda"):
        step(loss_fn, img, txt, scale); torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats(); base = torch.cuda.memory_allocated()
        step(loss_fn, img, txt, scale); torch.cuda.synchronize()
        peak_mb = (torch.cuda.max_memory_allocated() - base) / 2**20
    else:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        step(loss_fn, img, txt, scale)
        peak_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    times = []
    for _ in range(repeats):
        if device.startswith("cuda"): torch.cuda.synchronize()
        t = time.perf_counter(); step(loss_fn, img, txt, scale)
        if device.startswith("cuda"): torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    g = world * b
    scores = 2 * b * g * k if local else g * g * k  # logits computed here: local rows x global columns, or global x global
    return dict(mode="local" if local else "global", world=world, global_images=g, global_texts=g * k,
                logits_mb=round(scores * 4 / 2**20, 1), peak_mb=round(peak_mb, 1), seconds=round(min(times), 4))


def run_config(local, world, b, k, dim, device, repeats)->dict:
    "One measurement; on CPU in a fresh subprocess so peak RSS belongs to this configuration alone."
    if device.startswith("cuda"):
        try: return measure(local, world, b, k, dim, device, repeats)
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            return dict(mode="local" if local else "global", world=world, global_images=world * b, oom=True)
    args = json.dumps(dict(local=local, world=world, b=b, k=k, dim=dim, device=device, repeats=repeats))
    out = subprocess.run([sys.executable, __file__, "--worker", args], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def slope(rows)->float:
    "Log-log slope of peak memory vs global batch (2 = quadratic, 1 = linear), over the larger half of the worlds."
    pts = [(math.log(r["global_images"]), math.log(r["peak_mb"])) for r in rows if not r.get("oom") and r["peak_mb"] > 0][-3:]
    if len(pts) < 2: return float("nan")
    (x0, y0), (x1, y1) = pts[0], pts[-1]
    return round((y1 - y0) / (x1 - x0), 2)


def plot(results, path):
    "Log-log plot of peak memory and time vs global batch, both modes."
    import matplotlib; matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for mode in ("global", "local"):
        rows = [r for r in results if r["mode"] == mode and not r.get("oom")]
        axes[0].loglog([r["global_images"] for r in rows], [max(r["peak_mb"], 1e-1) for r in rows], "o-", label=mode)
        axes[1].loglog([r["global_images"] for r in rows], [r["seconds"] for r in rows], "o-", label=mode)
    for ax, label in zip(axes, ("peak extra memory per process (MB)", "forward + backward (s)")):
        ax.set_xscale("log", base=2); ax.set_xlabel("global batch (images)"); ax.set_ylabel(label); ax.legend()
    fig.tight_layout(); fig.savefig(path, dpi=120)


def main():
    if len(sys.argv) > 2 and sys.argv[1] == "--worker":
        torch.set_num_threads(1)  # steadier CPU timings on a shared machine
        print(json.dumps(measure(**json.loads(sys.argv[2])))); return
    tiny = os.environ.get("TINY") == "1" or "--tiny" in sys.argv
    device = "cuda" if torch.cuda.is_available() and not tiny else "cpu"
    if tiny: b, k, dim, worlds, repeats = 32, 5, 256, (1, 2, 4, 8, 16), 5
    elif device == "cuda": b, k, dim, worlds, repeats = 256, 5, 512, (1, 2, 4, 8, 16, 32), 5
    else: b, k, dim, worlds, repeats = 64, 5, 512, (1, 2, 4, 8, 16), 5
    results = [run_config(local, w, b, k, dim, device, repeats) for local in (False, True) for w in worlds]
    summary = {mode: slope([r for r in results if r["mode"] == mode]) for mode in ("global", "local")}
    report = dict(benchmark="loss_memory", device=torch.cuda.get_device_name() if device == "cuda" else platform.processor() or "cpu",
                  torch=torch.__version__, cpu=os.cpu_count(), tiny=tiny, local_images=b, captions_per_image=k, dim=dim,
                  memory_slope_loglog=summary, results=results)
    print(json.dumps(report, indent=1))
    if os.environ.get("OUT"):
        out = os.environ["OUT"]; os.makedirs(out, exist_ok=True)
        with open(os.path.join(out, "loss_memory.json"), "w") as f: json.dump(report, f, indent=1)
        plot(results, os.path.join(out, "loss_memory.png"))


if __name__ == "__main__":
    main()
