"""Grouping batches by caption length: padded text length per batch and train-step time, plain shuffle vs grouped.

A scene world of N images with its five role captions per image (the Role-SynthCLIP training set in
miniature). For B images per batch (K = 5 captions each), the plain image-grouped sampler and the sampler
with `group_by_length` (windows of 50 global batches) give one epoch of batches each; with dynamic padding a
batch's text is as long as its longest caption (rounded up to 8 tokens). Reported: the mean padded length,
and the mean time of the trainer's step (tiny model, fp32, this machine's CPU) over the first STEPS batches
of each, in the same run.
Env: N (4000 images), B (';'-separated batch sizes, "32;256"), STEPS (8), OUT (writes $OUT/length_grouping.json).
"""
import json, math, os, tempfile, time
import numpy as np, torch
from role_synthclip.data import ImageCaptions, GroupedBatchSampler, make_loader
from role_synthclip.longclip import create_model, get_tokenizer
from role_synthclip.loss import MultiPosClipLoss
from role_synthclip.roles import EXPERT_ROLES
from role_synthclip.scenes import write_world
from role_synthclip.train import forward_loss, make_optimizer

N, STEPS = int(os.environ.get("N", 4000)), int(os.environ.get("STEPS", 8))
SIZES = [int(b) for b in os.environ.get("B", "32;256").split(";")]


def padded_lengths(sampler, tokens):
    "Per batch: the longest caption's token count, rounded up to 8 (what dynamic padding keeps)."
    return [math.ceil(max(tokens[i] for i, _ in b) / 8) * 8 for b in sampler]


def step_time(table, batch_size, group):
    "Mean seconds of the tiny model's train step over the first STEPS batches of the epoch."
    torch.manual_seed(0)
    model, preprocess, tok = create_model("tiny")
    opt, loss_fn = make_optimizer(model, 1e-4, 0.1), MultiPosClipLoss()
    loader = make_loader(table, preprocess, tok, batch_size, 5, group_by_length=group)
    times = []
    for n, batch in enumerate(loader):
        if n == STEPS + 1: break
        t = time.perf_counter()
        forward_loss(model, loss_fn, batch).backward(); opt.step(); opt.zero_grad()
        if n: times.append(time.perf_counter() - t)  # the first step warms up
    return float(np.mean(times))


if __name__ == "__main__":
    world = write_world(tempfile.mkdtemp(), n_images=N, seed=0, image_size=16)
    table = ImageCaptions.read(world["captions"])
    keep = [[i for i, r in enumerate(rs) if r in EXPERT_ROLES] for rs in table.roles]
    table = ImageCaptions(table.image_ids, table.image_paths, [[c[i] for i in k] for c, k in zip(table.captions, keep)],
                          [[r[i] for i in k] for r, k in zip(table.roles, keep)])
    tok = get_tokenizer(248)
    tokens = [int((tok(caps).argmax(1) + 1).max()) for caps in table.captions]
    chars = [max(map(len, caps)) for caps in table.captions]
    res = dict(device=f"cpu ({os.cpu_count()} cores)", torch=torch.__version__, n_images=len(table), captions_per_image=5,
               corr_chars_tokens=round(float(np.corrcoef(chars, tokens)[0, 1]), 4), runs=[])
    for B in SIZES:
        for group in (0, 50):
            s = GroupedBatchSampler(len(table), B, seed=0, lengths=chars, group_by_length=group)
            L = padded_lengths(s, tokens)
            r = dict(batch_size=B, group_by_length=group, batches=len(L), mean_padded_tokens=round(float(np.mean(L)), 1),
                     max_padded_tokens=max(L))
            if B <= 64: r["step_s"] = round(step_time(table, B, group), 4)
            res["runs"].append(r); print(json.dumps(r), flush=True)
    for r in res["runs"]:
        plain = next(p for p in res["runs"] if p["batch_size"] == r["batch_size"] and p["group_by_length"] == 0)
        r["padded_tokens_vs_plain"] = round(r["mean_padded_tokens"] / plain["mean_padded_tokens"], 3)
        if "step_s" in r: r["speedup_vs_plain"] = round(plain["step_s"] / r["step_s"], 2)
    if os.environ.get("OUT"):
        os.makedirs(os.environ["OUT"], exist_ok=True)
        with open(os.path.join(os.environ["OUT"], "length_grouping.json"), "w") as f: json.dump(res, f, indent=1)
    print(json.dumps(res))
