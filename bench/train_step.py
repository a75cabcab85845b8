"""Train-step throughput: role_synthclip's step against open_clip's eager step, same model, batch and text length.

The baseline is the step of ../shared/bench/anchor_gpu.py (open_clip CLIP, bf16 autocast, fused AdamW, the
multi-positive loss written inline) measured the same way: 3 warm-up steps, then `STEPS` timed steps between
two device syncs; FLOPs of one eager step from `torch.utils.flop_counter`; peak memory from CUDA's allocator.

Ours is the trainer's own step (role_synthclip.train.forward_loss + accelerator.backward + optimizer_step):
accelerate bf16 autocast, fused AdamW with the device-side NaN guard, LongCLIP's towers (SDPA causal (flash)
attention in the text tower, last blocks computing only the pooled tokens), each distinct text encoded once,
optionally torch.compile.

Runs, side by side:
  full padding   B images × K captions × L=248 tokens, every caption 248 tokens long (the anchor's case)
  dynamic        the same captions at realistic lengths (token lengths of the scene world's oracle captions):
                 open_clip pads to 248, ours pads to the batch's longest caption (multiple of 8)

GPU: ViT-B/16, B=256, K=5, bf16.   TINY=1 (default without a GPU): a tiny ViT, B=8, fp32 on CPU; TINY=0 without a
GPU: ViT-B/16 in fp32 on CPU (set B small, e.g. B=4).
Env: ONLY (';'-separated name parts: run just those variants, plus the baseline), B (images per step), STEPS (10),
COMPILE (also the torch.compile variants; default 1 on GPU, 0 on CPU), PROFILE=1 (top kernels of one step of each
eager variant, in the JSON), BUDGET_S (540: skip variants that would overrun it), PEAK_TFLOPS (default by device),
OUT (writes $OUT/train_step.json). A variant of ours that runs out of memory is rerun with gradient checkpointing.
Prints one JSON object.
"""
import json, math, os, time, warnings
import torch, torch.nn.functional as F

TINY = os.environ.get("TINY", "0" if torch.cuda.is_available() else "1") == "1"
DEV = "cuda" if torch.cuda.is_available() and not TINY else "cpu"
STEPS = int(os.environ.get("STEPS", "10" if not TINY else "5"))
COMPILE = os.environ.get("COMPILE", "0" if DEV == "cpu" else "1") == "1"
PROFILE = os.environ.get("PROFILE") == "1"
BUDGET = float(os.environ.get("BUDGET_S", "540"))  # seconds; later variants are skipped when it runs out
B, K, L = int(os.environ.get("B", 8 if TINY else 256)), 5, 248
PRECISION = "bf16" if DEV == "cuda" else "no"
PEAKS = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L40S": 362e12}


def peak_flops():
    if "PEAK_TFLOPS" in os.environ: return float(os.environ["PEAK_TFLOPS"]) * 1e12
    if DEV != "cuda": return None
    name = torch.cuda.get_device_name()
    return next((v for k, v in PEAKS.items() if k in name), None)


def model_cfg():
    import open_clip
    cfg = open_clip.get_model_config("ViT-B-16")
    cfg["text_cfg"]["context_length"] = L
    if TINY:  # the anchor's tiny config
        cfg["vision_cfg"].update(layers=2, width=64, image_size=32)
        cfg["text_cfg"].update(layers=2, width=64, heads=2)
        cfg["embed_dim"] = 32
    return cfg


def sync():
    if DEV == "cuda": torch.cuda.synchronize()


def caption_lengths(n):
    "Token lengths (EOT included) of the scene world's oracle captions for the five expert roles."
    from role_synthclip.scenes import make_scene, oracle_caption
    from role_synthclip.roles import EXPERT_ROLES
    from role_synthclip.longclip import get_tokenizer
    tok = get_tokenizer(L)
    texts = [oracle_caption(make_scene(0, i // len(EXPERT_ROLES)), EXPERT_ROLES[i % len(EXPERT_ROLES)], 0) for i in range(n)]
    return (tok(texts).argmax(dim=1) + 1).tolist()


def make_batch(lengths):
    "Random images and distinct token rows, each ending in EOT (49407) at its length, padded to L."
    g = torch.Generator().manual_seed(0)
    S = model_cfg()["vision_cfg"]["image_size"]
    images = torch.randn(B, 3, S, S, generator=g)
    text = torch.zeros(B * K, L, dtype=torch.long)
    for i, n in enumerate(lengths):
        text[i, :n - 1] = torch.randint(1, 49000, (n - 1,), generator=g)
        text[i, n - 1] = 49407
    return images.to(DEV), text.to(DEV)


def measure(step, flops=None, warmup=3):
    if DEV == "cuda": torch.cuda.empty_cache(); torch.cuda.reset_peak_memory_stats()
    for _ in range(warmup): step()
    sync(); t = time.perf_counter()
    for _ in range(STEPS): step()
    sync(); dt = (time.perf_counter() - t) / STEPS
    r = dict(step_s=round(dt, 4), images_per_s=round(B / dt, 2), captions_per_s=round(B * K / dt, 2),
             peak_gib=round(torch.cuda.max_memory_allocated() / 2**30, 2) if DEV == "cuda" else None)
    if flops:
        r["tflop_per_step"] = round(flops / 1e12, 3)
        r["achieved_tflops"] = round(flops / dt / 1e12, 1)
        if peak_flops(): r["mfu"] = round(flops / dt / peak_flops(), 3)
    return r


def count_flops(step):
    from torch.utils.flop_counter import FlopCounterMode
    fc = FlopCounterMode(display=False)
    with fc: step()
    return fc.get_total_flops()


def openclip_step(images, text, compile_=False):
    "The anchor's step: open_clip CLIP, autocast, inline multi-positive loss, fused AdamW."
    import open_clip
    torch.manual_seed(0)
    model = open_clip.model.CLIP(**model_cfg(), output_dict=True).to(DEV).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-6, weight_decay=0.01, fused=True)
    fwd = torch.compile(model) if compile_ else model
    idx = torch.arange(B, device=DEV)

    def step():
        with torch.autocast(DEV, dtype=torch.bfloat16, enabled=PRECISION == "bf16"):
            out = fwd(images, text)
            i, t, s = out["image_features"], out["text_features"], out["logit_scale"]
            li = s * i @ t.t()
            tgt = torch.zeros_like(li)
            for k in range(K): tgt[idx, idx * K + k] = 1.0 / K
            loss = (-(tgt * F.log_softmax(li.float(), 1)).sum(1).mean() + F.cross_entropy(li.t().float(), idx.repeat_interleave(K))) / 2
        loss.backward(); opt.step(); opt.zero_grad(set_to_none=True)
    return step, (model, opt)


def ours_step(images, text, compile_=False, dynamic=False, grad_checkpointing=False):
    "role_synthclip's trainer step on the same config (LongCLIP = open_clip CLIP taking any text length ≤ L)."
    from accelerate import Accelerator
    from role_synthclip.longclip import build_model, pad_to_longest
    from role_synthclip.loss import MultiPosClipLoss
    from role_synthclip.train import make_optimizer, make_scheduler, forward_loss, optimizer_step
    torch.manual_seed(0)
    accelerator = Accelerator(mixed_precision=PRECISION, cpu=DEV == "cpu")
    model = build_model(model_cfg())
    model.set_grad_checkpointing(grad_checkpointing)
    opt = make_optimizer(model, 1e-6, 0.01)
    sched = make_scheduler(opt, 0, 10**6)
    model, opt = accelerator.prepare(model, opt)
    if compile_: accelerator.unwrap_model(model).compile()  # as the trainer does: in place
    loss_fn = MultiPosClipLoss(rank=0, world_size=1)
    batch = dict(images=images, text=pad_to_longest(text) if dynamic else text, text_index=torch.arange(B * K, device=DEV),
                 image_index=torch.arange(B, device=DEV))

    def step():
        loss = forward_loss(model, loss_fn, batch)
        accelerator.backward(loss)
        optimizer_step(accelerator, model, opt, sched)
    return step, (model, opt, batch["text"].shape[1])


def kernel_table(step, rows=15):
    "The top kernels of one step by device (or CPU) time, as text: where the time goes."
    from torch.profiler import profile, ProfilerActivity
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if DEV == "cuda" else [])
    with profile(activities=acts) as prof:
        step(); sync()
    return prof.key_averages().table(sort_by="self_cuda_time_total" if DEV == "cuda" else "self_cpu_time_total", row_limit=rows)


def run(name, make, flops_from_eager=True, **kw):
    try:
        step, keep = make(**kw)
        flops = count_flops(step) if flops_from_eager and not kw.get("compile_") else None
        r = dict(name=name, **measure(step, flops, warmup=3 if not kw.get("compile_") else 5))
        if len(keep) == 3: r["text_len"] = keep[2]
        if PROFILE and not kw.get("compile_"): r["kernels"] = kernel_table(step)
    except Exception as e:  # one failing variant must not hide the others
        r = dict(name=name, error=repr(e)[:400])
    if DEV == "cuda": torch.cuda.empty_cache()
    print(json.dumps({k: v for k, v in r.items() if k != "kernels"}), flush=True)
    if "kernels" in r: print(r["kernels"], flush=True)
    return r


if __name__ == "__main__":
    warnings.filterwarnings("ignore")
    T0 = time.time()
    res = dict(device=torch.cuda.get_device_name() if DEV == "cuda" else f"cpu ({os.cpu_count()} cores)", torch=torch.__version__,
               B=B, K=K, L=L, precision=PRECISION, tiny=TINY, peak_tflops=(peak_flops() or 0) / 1e12 or None, runs=[])
    full = make_batch([L] * (B * K))
    lengths = caption_lengths(B * K)
    res["dynamic_lengths"] = dict(mean=round(sum(lengths) / len(lengths), 1), max=max(lengths), min=min(lengths))
    real = make_batch(lengths)
    F_, R_ = dict(images=full[0], text=full[1]), dict(images=real[0], text=real[1])
    plan = [("open_clip eager, full 248", openclip_step, F_, False),  # the baseline first, then our target
            ("ours compile, full 248", ours_step, F_ | dict(compile_=True), True),
            ("open_clip compile, full 248", openclip_step, F_ | dict(compile_=True), True),
            ("ours eager, full 248", ours_step, F_, False),
            ("ours compile, real lengths, dynamic padding", ours_step, R_ | dict(compile_=True, dynamic=True), True),
            ("open_clip eager, real lengths padded to 248", openclip_step, R_, False),
            ("ours eager, real lengths, dynamic padding", ours_step, R_ | dict(dynamic=True), False)]
    only = [x.strip() for x in os.environ.get("ONLY", "").split(";") if x.strip()]
    if only: plan = [p for p in plan if p[0] == plan[0][0] or any(o in p[0] for o in only)]  # the baseline always runs
    for name, make, kw, compiled in plan:
        if compiled and not COMPILE: continue
        if time.time() - T0 > BUDGET - (120 if compiled else 40):
            res["runs"].append(dict(name=name, skipped="time budget (BUDGET_S)")); continue
        r = run(name, make, **kw)
        if "out of memory" in r.get("error", "").lower() and make is ours_step:  # e.g. 5 × 248 on an 80 GB card
            r = run(name + ", grad checkpointing", make, **kw, grad_checkpointing=True)
        res["runs"].append(r)
    by_name = {r["name"]: r for r in res["runs"]}
    for r in res["runs"]:  # a compiled step does the FLOPs of its eager twin
        twin = by_name.get(r["name"].replace(" compile,", " eager,").replace(", grad checkpointing", ""), {})
        if "step_s" in r and "tflop_per_step" in twin and "tflop_per_step" not in r:
            r["tflop_per_step"] = twin["tflop_per_step"]
            r["achieved_tflops"] = round(twin["tflop_per_step"] / r["step_s"], 1)
            if peak_flops(): r["mfu"] = round(twin["tflop_per_step"] * 1e12 / r["step_s"] / peak_flops(), 3)
    ref = next((r.get("step_s") for r in res["runs"] if r["name"] == "open_clip eager, full 248"), None)
    if ref:
        for r in res["runs"]:
            if r.get("step_s"): r["speedup_vs_open_clip_eager"] = round(ref / r["step_s"], 2)
    res["total_s"] = round(time.time() - T0, 1)
    if os.environ.get("OUT"):
        os.makedirs(os.environ["OUT"], exist_ok=True)
        with open(os.path.join(os.environ["OUT"], "train_step.json"), "w") as f: json.dump(res, f, indent=1)
    print(json.dumps(res))
