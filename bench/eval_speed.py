"""COCO-5k-sized zero-shot retrieval, end to end: 5,000 images and 25,000 captions in the COCO val2017 layout.

Writes a synthetic COCO val2017 folder (640x480 JPEGs, captions_val2017.json), then times what `rsc-eval --dataset coco`
does: load the annotations, decode + preprocess every image in DataLoader workers, encode images and captions
(bf16 autocast on CUDA), compute the 5,000 x 25,000 similarity matrix and Recall@1/5/10 both ways. The model is a
random-weight long-text CLIP (248 tokens) from `longclip.create_model`. A second run shows the embedding-cache hit.

    TINY=1 python bench/eval_speed.py                       # CPU, tiny model
    python bench/eval_speed.py --model_type clip-b16        # GPU, ViT-B/16 at 224 px (target: <= 60 s end to end)

Prints JSON; writes it to $OUT/eval_speed.json when OUT is set.
"""
import argparse, json, os, tempfile, time
from multiprocessing import Pool
from pathlib import Path

import numpy as np
from PIL import Image

WORDS = ("a man woman dog cat bus train plate pizza table street person sitting standing next to on the with of red "
         "blue green white black small large two three group people riding holding near in front field water sky").split()


def write_image(args):
    "One smooth random 640x480 JPEG (about the size and decode cost of a COCO photo)."
    path, seed = args
    rng = np.random.default_rng(seed)
    small = Image.fromarray(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)).resize((640, 480), Image.BICUBIC)
    noisy = np.clip(np.asarray(small, np.int16) + rng.integers(-12, 13, (480, 640, 3)), 0, 255).astype(np.uint8)
    Image.fromarray(noisy).save(path, quality=90)


def write_coco(root: Path, n_images: int, captions_per_image: int, workers: int):
    "A COCO val2017 folder: val2017/*.jpg and annotations/captions_val2017.json (reused when already complete)."
    ann = root/"annotations"/"captions_val2017.json"
    if ann.exists() and len(json.loads(ann.read_text())["images"]) == n_images: return
    (root/"val2017").mkdir(parents=True, exist_ok=True); ann.parent.mkdir(parents=True, exist_ok=True)
    names = [f"{i:012d}.jpg" for i in range(n_images)]
    with Pool(workers) as pool: pool.map(write_image, [(root/"val2017"/n, i) for i, n in enumerate(names)], chunksize=16)
    rng = np.random.default_rng(0)
    anns = [{"image_id": i, "id": i * captions_per_image + k, "caption": " ".join(rng.choice(WORDS, rng.integers(8, 16)))}
            for i in range(n_images) for k in range(captions_per_image)]
    ann.write_text(json.dumps({"images": [{"id": i, "file_name": n} for i, n in enumerate(names)], "annotations": anns}))


def main():
    tiny = os.environ.get("TINY") == "1"
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model_type", default="tiny" if tiny else "clip-b16", help="tiny | clip-b16 | clip-l14 (random weights)")
    p.add_argument("--n_images", type=int, default=5000)
    p.add_argument("--captions_per_image", type=int, default=5)
    p.add_argument("--batch_size", type=int, default=256)
    p.add_argument("--num_workers", type=int, default=min(16, os.cpu_count() or 1))
    p.add_argument("--device", default=None)
    p.add_argument("--data_dir", default=os.path.join(tempfile.gettempdir(), "rsc_eval_speed_coco"), help="synthetic COCO folder (reused)")
    a = p.parse_args()

    import torch
    from role_synthclip.core import get_device, set_seed
    from role_synthclip.evaluate import evaluate, load_benchmark, model_fingerprint
    from role_synthclip.longclip import create_model

    device = get_device(a.device)
    t = time.perf_counter()
    write_coco(Path(a.data_dir), a.n_images, a.captions_per_image, a.num_workers or 1)
    prep_s = time.perf_counter() - t

    set_seed(0)
    model, preprocess, tokenizer = create_model(a.model_type, pretrained="none", context_length=248, device=device)
    cache = Path(tempfile.mkdtemp(prefix="rsc_eval_cache_"))
    runs = []
    for attempt in ("cold", "cached"):
        if device.startswith("cuda"): torch.cuda.synchronize()
        t = time.perf_counter()
        ds = load_benchmark("coco", a.data_dir)[0]
        load_s = time.perf_counter() - t
        r = evaluate(model, tokenizer, preprocess, ds, device, a.batch_size, a.num_workers, cache_dir=cache, progress=False)
        if device.startswith("cuda"): torch.cuda.synchronize()
        runs.append({"run": attempt, "end_to_end_s": round(time.perf_counter() - t, 2), "load_s": round(load_s, 2),
                     "encode_s": r["encode_s"], "metric_s": r["metric_s"], "cache_hit": r["cache_hit"],
                     "i2t_recall@1": round(r["i2t_recall@1"], 3), "t2i_recall@1": round(r["t2i_recall@1"], 3)})
    t = time.perf_counter(); model_fingerprint(model, preprocess, tokenizer); fp_s = time.perf_counter() - t

    out = {"bench": "eval_speed", "device": torch.cuda.get_device_name() if device.startswith("cuda") else f"cpu ({os.cpu_count()} cores)",
           "torch": torch.__version__, "model_type": a.model_type, "image_size": model.visual.image_size, "context_length": 248,
           "n_images": len(ds.images), "n_texts": len(ds.captions), "batch_size": a.batch_size, "num_workers": a.num_workers,
           "data_prep_s": round(prep_s, 1), "fingerprint_s": round(fp_s, 2), "runs": runs,
           "target": "<= 60 s end to end (cold) on one GPU with clip-b16",
           "images_per_s_cold": round(len(ds.images) / runs[0]["end_to_end_s"], 1)}
    print(json.dumps(out, indent=1))
    if os.environ.get("OUT"): Path(os.environ["OUT"], "eval_speed.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
