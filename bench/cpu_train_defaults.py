"""CPU training defaults: precision (fp32 vs bf16 autocast) × DataLoader workers, the trainer's own step, one run.

The question (issue 13, item 11): which precision and how many loader workers should `rsc-train` pick on a CPU?
Each candidate runs the trainer's step exactly as `train` does (accelerate `Accelerator(mixed_precision=...)`,
`make_loader` over a scene world's caption store with the model's preprocessing, `forward_loss`,
`accelerator.backward`, `optimizer_step`) with the tiny model, B images × K = 5 captions (the demo's batch), over
one epoch of WARMUP + STEPS batches. Two figures per candidate:
  images_per_s   wall clock over the STEPS steps after WARMUP (worker start-up falls in the warm-up);
  cpu_ms_per_image   CPU time of the whole epoch, training process and loader workers together, per image.
On a machine shared with other jobs the wall figure measures the contention as much as the candidate, so
candidates run in ROUNDS rounds (every candidate once per round, the order rotated) and each keeps its best round;
the CPU figure is what a candidate costs whatever else runs. The 1-minute load average is recorded beside them.
The run also records what `rsc-train` itself picks here (`train.machine_settings`) and its first log line.
Env: B (32), STEPS (5), WARMUP (2), ROUNDS (2), WORKERS (';'-separated, default "0;1;2;4"), OUT (default
bench/results; writes OUT/cpu_train_defaults.json). Prints the JSON too.
"""
import gc, json, os, resource, sys, time
from pathlib import Path
import torch

B, STEPS, WARMUP, ROUNDS = (int(os.environ.get(k, d)) for k, d in
                            (("B", 32), ("STEPS", 5), ("WARMUP", 2), ("ROUNDS", 2)))
WORKERS = [int(w) for w in os.environ.get("WORKERS", "0;1;2;4").split(";")]
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


def run_candidate(table, precision:str, workers:int)->tuple[float, float]:
    "(images per second over STEPS steps after WARMUP, CPU milliseconds per image of the whole epoch)."
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState
    from role_synthclip.data import make_loader
    from role_synthclip.longclip import create_model
    from role_synthclip.loss import MultiPosClipLoss
    from role_synthclip.train import forward_loss, make_optimizer, make_scheduler, optimizer_step
    AcceleratorState._reset_state(reset_partial_state=True)  # one mixed precision per Accelerator state
    acc = Accelerator(mixed_precision=precision, cpu=True)
    torch.manual_seed(0)
    model, preprocess, tok = create_model("tiny")
    opt = make_optimizer(model, 1e-4, 0.1); sched = make_scheduler(opt, 1, 1000)
    model, opt = acc.prepare(model, opt)
    loader = make_loader(table, preprocess, tok, B, 5, workers=workers)
    cpu0, children0 = cpu_seconds(resource.RUSAGE_SELF), cpu_seconds(resource.RUSAGE_CHILDREN)
    it, t0 = iter(loader), None
    for n in range(WARMUP + STEPS):
        if n == WARMUP: t0 = time.perf_counter()
        batch = next(it)
        loss = forward_loss(model, MultiPosClipLoss(), batch)
        acc.backward(loss); optimizer_step(acc, model, opt, sched)
    seconds = time.perf_counter() - t0
    del it; gc.collect()  # joins the workers, so their CPU time is counted
    cpu = cpu_seconds(resource.RUSAGE_SELF) - cpu0 + cpu_seconds(resource.RUSAGE_CHILDREN) - children0
    return B * STEPS / seconds, 1000 * cpu / (B * (WARMUP + STEPS))


if __name__ == "__main__":
    from role_synthclip.core import scratch_dir
    from role_synthclip.data import ImageCaptions
    from role_synthclip.longclip import create_model
    from role_synthclip.scenes import write_world
    from role_synthclip.train import TrainConfig, machine_settings
    t_start, loads = time.time(), [os.getloadavg()[0]]
    world = write_world(scratch_dir("rsc-bench-"), n_images=B * (WARMUP + STEPS), seed=0, image_size=64)  # one epoch
    table = ImageCaptions.read(world["captions"])
    candidates = [(p, w) for p in ("no", "bf16") for w in WORKERS]
    best = {c: (0.0, float("inf")) for c in candidates}
    for r in range(ROUNDS):
        for c in candidates[r % len(candidates):] + candidates[:r % len(candidates)]:
            speed, cpu = run_candidate(table, *c)
            best[c] = (max(best[c][0], speed), min(best[c][1], cpu))
            loads.append(os.getloadavg()[0])
            print(f"round {r}: {c} {speed:.1f} images/s, {cpu:.1f} CPU ms/image ({time.time() - t_start:.0f} s)",
                  file=sys.stderr, flush=True)
    cfg = TrainConfig(data_path=str(world["captions"]), model_type="tiny", batch_size=B, captions_per_image=5)
    chosen, note = machine_settings(cfg, create_model("tiny")[0], torch.device("cpu"))  # what `rsc-train` picks
    res = dict(device=f"cpu ({os.cpu_count()} cores)", cpu_flags=cpu_flags(), torch=torch.__version__,
               torch_threads=torch.get_num_threads(), model="tiny", batch_size=B, captions_per_image=5,
               steps=STEPS, warmup=WARMUP, rounds=ROUNDS,
               load_avg_1min=dict(min=round(min(loads), 1), max=round(max(loads), 1)),
               runs=[dict(precision=p, workers=w, images_per_s=round(v[0], 1), cpu_ms_per_image=round(v[1], 1))
                     for (p, w), v in best.items()],
               fastest_wall=dict(zip(("precision", "workers"), max(best, key=lambda c: best[c][0]))),
               cheapest_cpu=dict(zip(("precision", "workers"), min(best, key=lambda c: best[c][1]))),
               chosen_by_rsc_train=dict(precision=chosen.precision, workers=chosen.workers, first_log_line=note),
               seconds=round(time.time() - t_start, 1))
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT/"cpu_train_defaults.json").write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps(res, indent=1))
