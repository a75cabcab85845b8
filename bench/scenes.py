"""Benchmark: write the embedded scene world (images, the training split's six oracle captions, queries) and time it.

Target (issue 2): 2,000 scenes with all captions in <= 30 s on 2 cores. `TINY=1` runs 200 scenes.
Prints JSON; writes it to $OUT/scenes.json when OUT is set.
"""
import json, os, platform, resource, shutil, tempfile, time
from pathlib import Path

from role_synthclip.scenes import WRITERS, make_scene, oracle_caption, png_bytes, render_scene, write_world


def main():
    n = 200 if os.environ.get("TINY") else int(os.environ.get("N_IMAGES", 2000))
    tmp = Path(tempfile.mkdtemp(prefix="bench_scenes_"))
    try:
        t0, c0 = time.perf_counter(), time.process_time()
        write_world(tmp/"world", n_images=n, seed=0, image_size=64)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        t0 = time.perf_counter(); scenes = [make_scene(0, i) for i in range(n)]; t_graph = time.perf_counter() - t0
        t0 = time.perf_counter(); [oracle_caption(s, k, 0) for s in scenes for k in WRITERS]; t_caps = time.perf_counter() - t0
        t0 = time.perf_counter(); [png_bytes(render_scene(s, 64)) for s in scenes]; t_img = time.perf_counter() - t0
        t0 = time.perf_counter(); write_world(tmp/"world", n_images=n, seed=0, image_size=64); t_rerun = time.perf_counter() - t0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    res = dict(bench="scenes", n_images=n, captions_timed=n * len(WRITERS), image_size=64, wall_s=round(wall, 2), cpu_s=round(cpu, 2),
               scenes_per_s=round(n / wall, 1), target_s_for_2000=30, projected_s_for_2000=round(wall * 2000 / n, 2),
               parts_s=dict(scene_graphs=round(t_graph, 2), captions=round(t_caps, 2), render_png=round(t_img, 2), idempotent_rerun=round(t_rerun, 2)),
               cores=os.cpu_count(), load_avg=os.getloadavg()[0], machine=platform.node(), python=platform.python_version(),
               peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1))
    print(json.dumps(res))
    if os.environ.get("OUT"):
        Path(os.environ["OUT"]).mkdir(parents=True, exist_ok=True)
        (Path(os.environ["OUT"])/"scenes.json").write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
