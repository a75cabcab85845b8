"""Speed of `role_synthclip.diversity.diversity_report` on a large synthetic caption table (CPU only).

100,000 captions (5 expert roles + generic over 16,667 images, 10 to 160 words each) by default; `TINY=1` uses
6,000. Prints JSON and writes it to `$OUT/diversity_speed.json` when `OUT` is set.
Usage: python bench/diversity_speed.py   |   TINY=1 python bench/diversity_speed.py
"""
import json, os, tempfile, time
from pathlib import Path

import numpy as np
import pandas as pd

from role_synthclip.diversity import HashingEncoder, tokenize_captions, diversity_report, load_captions, role_metrics, self_bleu

ROLES = ("details", "context", "composition", "narrative", "emotion", "generic")


def synthetic_captions(n_images:int, seed:int=0)->pd.DataFrame:
    "One caption per (image, role): real English words (from CLIP's BPE vocabulary), a shared and a role-specific set, Zipf-distributed."
    from open_clip.tokenizer import SimpleTokenizer
    rng = np.random.default_rng(seed)
    english = sorted(w[:-4] for w in SimpleTokenizer().encoder if w.endswith("</w>") and w[:-4].isalpha() and w[:-4].isascii() and len(w) > 6)
    english = list(rng.permutation(english)[:2000 + 1000 * len(ROLES)])
    shared, rows = english[:2000], []
    for k, role in enumerate(ROLES):
        vocab = np.array(shared + english[2000 + 1000 * k: 3000 + 1000 * k])
        p = 1 / np.arange(1, len(vocab) + 1); p = p[rng.permutation(len(vocab))]; p /= p.sum()
        lengths = rng.integers(10, 26 if role == "generic" else 160, n_images)
        for i, n in enumerate(lengths):
            rows.append((f"img{i:06d}", role, " ".join(rng.choice(vocab, n, p=p))))
    return pd.DataFrame(rows, columns=["image_id", "role", "caption"])


CPU = {}

def timed(fn, *args, **kwargs):
    "Run `fn`; return its result and wall seconds (its process CPU seconds go to `CPU`, keyed by function name)."
    t, c = time.perf_counter(), time.process_time(); out = fn(*args, **kwargs)
    CPU[fn.__name__] = round(time.process_time() - c, 2)
    return out, time.perf_counter() - t


def main():
    n_images = 1000 if os.environ.get("TINY") == "1" else 16_667
    df = synthetic_captions(n_images)
    df, t_load = timed(load_captions, df)
    tokenized, t_len = timed(tokenize_captions, df)
    _, t_roles = timed(role_metrics, tokenized, sample=1000)
    _, t_bleu = timed(self_bleu, df["caption"].tolist(), sample=1000)
    out_dir = Path(tempfile.mkdtemp())
    m, t_report = timed(diversity_report, df, HashingEncoder(), out_dir, sample=1000)
    result = dict(benchmark="diversity_speed", captions=len(df), images=n_images, roles=len(ROLES), sample=1000,
                  words=int(tokenized["n_words"].sum()), seconds=dict(load=round(t_load, 2), tokenize=round(t_len, 2),
                  role_metrics=round(t_roles, 2), self_bleu_one_corpus=round(t_bleu, 2), report_with_files=round(t_report, 2)),
                  cpu_seconds=CPU, captions_per_s=round(len(df) / t_report), cpu=os.cpu_count(),
                  load_average=round(os.getloadavg()[0], 1), tiny=os.environ.get("TINY") == "1")
    print(json.dumps(result))
    if os.environ.get("OUT"): Path(os.environ["OUT"], "diversity_speed.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__": main()
