"""Caption throughput: plain per-role `generate` vs shared-prefix generation (role_synthclip.captioner_hf).

Both paths caption the same images in the same 5 roles with the same forced answer length, in the same process:
- naive:  one prompt per (image, role), each carrying its image (`naive_generate`, i.e. `model.generate`), the
          method of ../shared/bench/anchor_gpu.py part B;
- shared: each image encoded once and its prefix prefilled once, role texts and answers decoded together over a
          static KV cache (`shared_prefix_generate`, what `TransformersEngine` runs).

GPU (default): Qwen2.5-VL-7B-Instruct's real architecture with random bf16 weights, built from its config (nothing
downloaded); 448x448 images (256 image tokens); 5 roles x 128 new tokens (min_new_tokens = max_new_tokens).
TINY=1: the tiny test model of 03a on CPU.

Env: TINY=1 (THREADS, default 1), OUT (write $OUT/caption_throughput.json), BUDGET_S (default 300), NEW_TOKENS (default 128; TINY 32),
REPEATS (best of; TINY 3), NAIVE_SIZES (images per batch, default 32,128; TINY 4,8), SHARED_SIZES (default 32,128,256; TINY 4,8).
Prints one JSON object (also after each measurement, so a cut-off run still leaves its figures).
"""
import json, os, tempfile, time

import numpy as np
import torch
from PIL import Image

from role_synthclip.captioner_hf import (Decoding, VisionCounter, build_qwen_processor, build_tiny_qwen25vl, load_vlm,
                                         naive_generate, qwen25vl_config, shared_prefix_generate, split_prompt)
from role_synthclip.roles import build_messages, get_roles

TINY = os.environ.get("TINY") == "1"
DEV = "cuda" if torch.cuda.is_available() and not TINY else "cpu"
BUDGET = float(os.environ.get("BUDGET_S", "300"))
if TINY: torch.set_num_threads(int(os.environ.get("THREADS", "1")))  # tiny tensors: more threads only spin
NEW = int(os.environ.get("NEW_TOKENS", "32" if TINY else "128"))
REPEATS = int(os.environ.get("REPEATS", "3" if TINY else "1"))
SIZES = {m: [int(x) for x in os.environ.get(f"{m.upper()}_SIZES", "4,8" if TINY else d).split(",")]
         for m, d in (("naive", "32,128"), ("shared", "32,128,256"))}
T0 = time.time()
results = {"device": torch.cuda.get_device_name() if DEV == "cuda" else "cpu", "torch": torch.__version__, "tiny": TINY,
           "roles": 5, "new_tokens": NEW, "runs": []}


def save(final=False):
    if os.environ.get("OUT"):
        with open(os.path.join(os.environ["OUT"], "caption_throughput.json"), "w") as f: json.dump(results, f, indent=1)
    if final: print(json.dumps(results), flush=True)


def sync():
    if DEV == "cuda": torch.cuda.synchronize()


def build():
    "The model and processor: tiny through load_vlm (CPU), or the 7B architecture built on the GPU."
    if TINY:
        path = build_tiny_qwen25vl(os.path.join(tempfile.mkdtemp(), "tiny-qwen2.5-vl"))
        model, processor = load_vlm(path, device="cpu", min_pixels=112 * 112, max_pixels=112 * 112)
        return model, processor, 112
    from transformers import Qwen2_5_VLForConditionalGeneration
    processor = build_qwen_processor(min_pixels=448 * 448, max_pixels=448 * 448)
    cfg = qwen25vl_config(processor, "7b")
    with torch.device(DEV):
        model = Qwen2_5_VLForConditionalGeneration._from_config(cfg, dtype=torch.bfloat16, attn_implementation="sdpa")
    tok = processor.tokenizer
    model.generation_config.eos_token_id = [tok.convert_tokens_to_ids("<|im_end|>"), tok.convert_tokens_to_ids("<|endoftext|>")]
    model.generation_config.pad_token_id = tok.pad_token_id
    return model.eval(), processor, 448


def measure(method, model, processor, images, roles):
    fn = shared_prefix_generate if method == "shared" else naive_generate
    rows = [(i, r) for i in range(len(images)) for r in roles]
    if DEV == "cuda": torch.cuda.empty_cache(); torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(REPEATS):  # best of REPEATS (CPU timings on a shared machine are noisy)
        with VisionCounter(model) as count:
            sync(); t = time.time()
            out = fn(model, processor, images, rows, Decoding(max_new_tokens=NEW, min_new_tokens=NEW))
            sync(); times.append(time.time() - t)
    dt = min(times)
    t = time.time()  # the CPU preprocessing inside the timed call, measured alone (the anchor fed ready tensors)
    if method == "shared":
        processor(text=[split_prompt(processor, roles[0])[0]] * len(images), images=list(images), return_tensors="pt", padding=True, padding_side="left")
    else:
        texts = [processor.apply_chat_template(build_messages(r, None), tokenize=False, add_generation_prompt=True) for _, r in rows]
        processor(text=texts, images=[images[i] for i, _ in rows], return_tensors="pt", padding=True, padding_side="left")
    pre = time.time() - t
    generated = sum(len(toks) for toks, _ in out)
    return dict(method=method, images=len(images), rows=len(rows), seconds=round(dt, 3), images_per_s=round(len(images) / dt, 3),
                captions_per_s=round(len(rows) / dt, 3), preprocess_s=round(pre, 3), images_per_s_excl_preprocess=round(len(images) / max(dt - pre, 1e-9), 3), gen_tok_per_s=round(generated / dt, 1), generated_tokens=generated,
                vision_calls=count.calls, vision_images=count.images,
                peak_gib=round(torch.cuda.max_memory_allocated() / 2**30, 2) if DEV == "cuda" else None)


def main():
    model, processor, side = build()
    results["build_s"] = round(time.time() - T0, 1)
    roles = get_roles()
    prefix, suffix = split_prompt(processor, roles[0])
    n_img_tok = (side // 28) ** 2
    results["prompt_tokens"] = [len(processor.tokenizer(prefix + s, add_special_tokens=False).input_ids) - 1 + n_img_tok
                                for s in (split_prompt(processor, r)[1] for r in roles)]
    rng = np.random.default_rng(0)
    pool = [Image.fromarray(rng.integers(0, 255, (side, side, 3), dtype=np.uint8)) for _ in range(max(max(v) for v in SIZES.values()))]
    for method in ("naive", "shared"):  # warm-up: kernels, allocator
        fn = shared_prefix_generate if method == "shared" else naive_generate
        fn(model, processor, pool[:2], [(i, r) for i in range(2) for r in roles], Decoding(max_new_tokens=2, min_new_tokens=2))
    plan = sorted([(n, m) for m, sizes in SIZES.items() for n in sizes])  # smallest batches first, methods side by side
    last = {}
    for n, method in plan:
        guess = last.get(method, 0) * n  # seconds per image so far x images
        if time.time() - T0 + guess > BUDGET:
            results["runs"].append(dict(method=method, images=n, skipped=f"budget: ~{guess:.0f}s left too little"))
            continue
        try:
            r = measure(method, model, processor, pool[:n], roles)
            last[method] = r["seconds"] / n
        except torch.cuda.OutOfMemoryError as e:
            r = dict(method=method, images=n, error=f"out of memory: {str(e)[:200]}")
            torch.cuda.empty_cache()
        print(method, r, flush=True)
        results["runs"].append(r)
        best = {m: max((x["images_per_s"] for x in results["runs"] if x.get("method") == m and "images_per_s" in x), default=None)
                for m in ("naive", "shared")}
        results["best_images_per_s"] = best
        if best["naive"] and best["shared"]: results["speedup_best_vs_best"] = round(best["shared"] / best["naive"], 2)
        save()
    results["total_s"] = round(time.time() - T0, 1)
    save(final=True)


if __name__ == "__main__":
    main()
