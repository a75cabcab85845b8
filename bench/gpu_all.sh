#!/usr/bin/env bash
# Every GPU benchmark in one run (a lent GPU's time is short): filter scoring, COCO-5k-sized retrieval,
# the train step against open_clip's (the anchor's baseline, in the same run), and Qwen2.5-VL captioning
# with and without the shared image prefix. Each script has its own time limit; results land in $OUT.
#   bash bench/gpu_all.sh            (expects wheels for open_clip & co. in .whl/ when they are not installed)
set -u
export OUT=${OUT:-/tmp/rsc_bench}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; python3 -c "import torch, transformers, open_clip; print('torch', torch.__version__, 'transformers', transformers.__version__, 'open_clip', open_clip.__version__)"; } 2>&1 | tee "$OUT/env.txt"
run() { local name=$1 limit=$2; shift 2; echo "== $name (limit ${limit}s)"; local t=$(date +%s)
  timeout "$limit" "$@" > "$OUT/$name.log" 2>&1; echo "rc=$? in $(( $(date +%s) - t ))s"; tail -c 1500 "$OUT/$name.log"; echo; }
run filter_throughput 60 python3 bench/filter_throughput.py
run eval_speed 120 python3 bench/eval_speed.py --model_type clip-b16
run train_step 240 env BUDGET_S=${TRAIN_BUDGET_S:-210} PROFILE=1 python3 bench/train_step.py
run caption_throughput 150 env BUDGET_S=${CAPTION_BUDGET_S:-120} python3 bench/caption_throughput.py
ls -la "$OUT"
