"""CPU training defaults: precision (fp32 vs bf16 autocast) × DataLoader workers, the trainer's own step, one run.

The question (issue 13, item 11): which precision and how many loader workers should `rsc-train` pick on a CPU?
The tiny model, B images × K = 5 captions of a scene world (the demo's batch), the trainer's step
(`forward_loss`, backward, `optimizer_step` with fused AdamW). Two parts, in one run:

  compute    the step alone on one batch, fp32 and bf16 autocast alternating REPS times each: the fastest and the
             median step. On a machine shared with other jobs the fastest of many short alternating steps is
             what contention disturbs least, and alternation spreads the disturbance over both.
  end to end each candidate of CANDIDATES as `train` runs it: accelerate's `Accelerator(mixed_precision)`,
             `make_loader` over the store (decode, resize, tokenise), one epoch of WARMUP + STEPS batches; the
             median images/s of the steps after the warm-up (worker start-up falls in it) and the CPU time of the
             training process and its workers together, per image. Candidates run in ROUNDS rounds, the order
             rotated; each keeps every round's figures and its best (what the quietest moment allowed).

The 1-minute load average is recorded before and after; the run also records what `rsc-train` itself chooses on
this machine (`train.machine_settings`) and its first log line.
Env: B (32), REPS (6), STEPS (4), WARMUP (2), ROUNDS (1), CANDIDATES (precision:workers, ';'-separated; default
"no:0;no:1;bf16:0;bf16:4", the last being the former CPU default), OUT (default bench/results; writes
OUT/cpu_train_defaults.json). Prints the JSON too.
"""
import gc, json, os, resource, statistics, sys, time
from pathlib import Path
import torch

B, REPS, STEPS, WARMUP, ROUNDS = (int(os.environ.get(k, d)) for k, d in
                                   (("B", 32), ("REPS", 6), ("STEPS", 4), ("WARMUP", 2), ("ROUNDS", 1)))
CANDIDATES = [(c.split(":")[0], int(c.split(":")[1]))
              for c in os.environ.get("CANDIDATES", "no:0;no:1;bf16:0;bf16:4").split(";")]
OUT = Path(os.environ.get("OUT", Path(__file__).parent/"results"))


def cpu_flags()->list[str]:
    "The CPU's bf16-relevant instruction sets (from /proc/cpuinfo)."
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    flags = next((l.split(":", 1)[1].split() for l in text.splitlines() if l.startswith("flags")), [])
    return sorted(f for f in flags if f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"))


def cpu_seconds(who)->float:
    "User + system CPU seconds of this process (RUSAGE_SELF) or of its finished children (RUSAGE_CHILDREN)."
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


def setup(precision:str):
    "The trainer's pieces for one precision: accelerator, prepared tiny model and optimizer, schedule, loss."
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState
    from role_synthclip.longclip import create_model
    from role_synthclip.loss import MultiPosClipLoss
    from role_synthclip.train import make_optimizer, make_scheduler
    AcceleratorState._reset_state(reset_partial_state=True)  # accelerate keeps one mixed precision per process state
    acc = Accelerator(mixed_precision=precision, cpu=True)
    torch.manual_seed(0)
    model, preprocess, tok = create_model("tiny")
    opt = make_optimizer(model, 1e-4, 0.1); sched = make_scheduler(opt, 1, 10_000)
    model, opt = acc.prepare(model, opt)
    return acc, model, opt, sched, MultiPosClipLoss(), preprocess, tok


def compute(table)->dict:
    "The step alone, fp32 and bf16 autocast alternating on one batch: fastest and median ms per step."
    from role_synthclip.data import make_loader
    from role_synthclip.train import forward_loss, optimizer_step
    acc, model, opt, sched, loss_fn, preprocess, tok = setup("no")
    batch = next(iter(make_loader(table, preprocess, tok, B, 5)))
    times = {"no": [], "bf16": []}
    for r in range(REPS + 2):  # two warm-up rounds
        for precision in times:
            t = time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):  # = accelerate bf16
                loss = forward_loss(model, loss_fn, batch)
            acc.backward(loss); optimizer_step(acc, model, opt, sched)
            if r >= 2: times[precision].append(time.perf_counter() - t)
    return {p: dict(fastest_ms=round(1000 * min(t), 1), median_ms=round(1000 * statistics.median(t), 1),
                    images_per_s_fastest=round(B / min(t), 1)) for p, t in times.items()}


def end_to_end(table, precision:str, workers:int)->dict:
    "One epoch as `train` runs it: median images/s after the warm-up, CPU ms per image (workers included)."
    from role_synthclip.data import make_loader
    from role_synthclip.train import forward_loss, optimizer_step
    acc, model, opt, sched, loss_fn, preprocess, tok = setup(precision)
    loader = make_loader(table, preprocess, tok, B, 5, workers=workers)
    cpu0, children0 = cpu_seconds(resource.RUSAGE_SELF), cpu_seconds(resource.RUSAGE_CHILDREN)
    it, steps = iter(loader), []
    for n in range(WARMUP + STEPS):
        t = time.perf_counter()
        batch = next(it)
        acc.backward(forward_loss(model, loss_fn, batch)); optimizer_step(acc, model, opt, sched)
        if n >= WARMUP: steps.append(time.perf_counter() - t)
    del it; gc.collect()  # joins the workers, so their CPU time is counted
    cpu = cpu_seconds(resource.RUSAGE_SELF) - cpu0 + cpu_seconds(resource.RUSAGE_CHILDREN) - children0
    return dict(images_per_s=round(B / statistics.median(steps), 1),
                cpu_ms_per_image=round(1000 * cpu / (B * (WARMUP + STEPS)), 1))


if __name__ == "__main__":
    from role_synthclip.core import scratch_dir
    from role_synthclip.data import ImageCaptions
    from role_synthclip.longclip import create_model
    from role_synthclip.scenes import write_world
    from role_synthclip.train import TrainConfig, machine_settings
    t_start, load_before = time.time(), os.getloadavg()[0]
    world = write_world(scratch_dir("rsc-bench-"), n_images=B * (WARMUP + STEPS), seed=0, image_size=64)  # one epoch
    table = ImageCaptions.read(world["captions"])
    step = compute(table)
    print(f"compute: {step} ({time.time() - t_start:.0f} s)", file=sys.stderr, flush=True)
    rounds = {c: [] for c in CANDIDATES}
    for r in range(ROUNDS):
        for c in CANDIDATES[r % len(CANDIDATES):] + CANDIDATES[:r % len(CANDIDATES)]:
            rounds[c].append(end_to_end(table, *c))
            print(f"end to end {c}: {rounds[c][-1]} ({time.time() - t_start:.0f} s)", file=sys.stderr, flush=True)
    runs = [dict(precision=p, workers=w, best_images_per_s=max(x["images_per_s"] for x in xs),
                 best_cpu_ms_per_image=min(x["cpu_ms_per_image"] for x in xs), rounds=xs)
            for (p, w), xs in rounds.items()]
    cfg = TrainConfig(data_path=str(world["captions"]), model_type="tiny", batch_size=B, captions_per_image=5)
    chosen, note = machine_settings(cfg, create_model("tiny")[0], torch.device("cpu"))  # what `rsc-train` picks
    res = dict(device=f"cpu ({os.cpu_count()} cores)", cpu_flags=cpu_flags(), torch=torch.__version__,
               torch_threads=torch.get_num_threads(), model="tiny", batch_size=B, captions_per_image=5,
               load_avg_1min=dict(before=round(load_before, 1), after=round(os.getloadavg()[0], 1)),
               compute=step, end_to_end=runs,
               chosen_by_rsc_train=dict(precision=chosen.precision, workers=chosen.workers, first_log_line=note),
               seconds=round(time.time() - t_start, 1))
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT/"cpu_train_defaults.json").write_text(json.dumps(res, indent=1, ensure_ascii=False) + "\n")
    print(json.dumps(res, indent=1, ensure_ascii=False))
