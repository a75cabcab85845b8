"""Student filter throughput once embeddings exist: (image, role, caption) pairs scored per second.

TINY=1 (or --tiny): CPU-sized run (tiny CLIP width 64, 200k pairs). Default: the real setting (ViT-B/16 width 512,
2M pairs, 5 captions per image) on the best device. Two cases: embeddings already on the device, and embeddings
in (pinned) host memory streamed to the device batch by batch, as when they come from the safetensors cache.
DEVICE=cpu forces the CPU with the real width; N_PAIRS overrides the number of pairs.
Target (issue 4): >= 10,000 pairs/s on one GPU. Prints JSON; writes $OUT/filter_throughput.json when OUT is set.
"""
import json, os, platform, sys, time

import torch

from role_synthclip.core import get_device
from role_synthclip.filter import StudentHead, score_pairs


def bench(head, table, index, text, role, feats, batch_size, repeats):
    "Best-of-`repeats` pairs/s of `score_pairs` over all pairs."
    score_pairs(head, table, index[:batch_size], text[:batch_size], role[:batch_size], feats[:batch_size], batch_size)  # warm-up
    best = float("inf")
    for _ in range(repeats):
        if torch.cuda.is_available(): torch.cuda.synchronize()
        t = time.perf_counter()
        score_pairs(head, table, index, text, role, feats, batch_size)
        if torch.cuda.is_available(): torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    return len(text) / best, best


def main():
    tiny = os.environ.get("TINY") == "1" or "--tiny" in sys.argv
    device = "cpu" if tiny else get_device(os.environ.get("DEVICE"))
    dim, n_pairs, per_image, batch_size = (64, 200_000, 5, 65_536) if tiny else (512, 2_000_000, 5, 262_144)
    n_pairs = int(os.environ.get("N_PAIRS", n_pairs))
    torch.manual_seed(0)
    torch.set_float32_matmul_precision("high")
    head = StudentHead(dim, n_roles=5).to(device).eval()
    n_images = n_pairs // per_image
    host = dict(table=torch.randn(n_images, dim), index=torch.arange(n_pairs) // per_image, text=torch.randn(n_pairs, dim),
                role=torch.randint(0, 5, (n_pairs,)), feats=torch.randn(n_pairs, 3))
    result = dict(benchmark="filter_throughput", tiny=tiny, device=device, device_name=torch.cuda.get_device_name() if device.startswith("cuda") else platform.processor() or platform.machine(),
                  torch_threads=torch.get_num_threads(), embed_dim=dim, n_pairs=n_pairs, batch_size=batch_size,
                  head_parameters=sum(p.numel() for p in head.parameters()), target_pairs_per_s_gpu=10_000)
    args = lambda d: (d["table"], d["index"], d["text"], d["role"], d["feats"])
    if device.startswith("cuda"):
        pinned = {k: v.pin_memory() for k, v in host.items()}
        result["pairs_per_s_host_memory"], result["seconds_host_memory"] = bench(head, *args(pinned), batch_size, 3)
        on_device = {k: v.to(device) for k, v in host.items()}
        result["pairs_per_s_on_device"], result["seconds_on_device"] = bench(head, *args(on_device), batch_size, 5)
    else:
        result["pairs_per_s_host_memory"], result["seconds_host_memory"] = bench(head, *args(host), batch_size, 3)
    print(json.dumps(result, indent=1))
    if os.environ.get("OUT"):
        os.makedirs(os.environ["OUT"], exist_ok=True)
        with open(os.path.join(os.environ["OUT"], "filter_throughput.json"), "w") as f: json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
