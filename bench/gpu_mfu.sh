#!/usr/bin/env bash
# GPU benchmark: MFU of the Qwen2.5-1.5B architecture on one GPU, trained through
# code/pretrain.py under the DeepSpeed launcher with ZeRO-2: bf16, SDPA attention, T = 2048, the
# full 151,936-wide output layer, random token ids; activation checkpointing off, then on.
#
#   bash bench/gpu_mfu.sh          # one NVIDIA H200: about 5 minutes; goal: best MFU >= 45%
#
#   REHEARSE=1 bash bench/gpu_mfu.sh   # the same flow on a CPU: tiny config, T = 128, 12 steps
#
# Without a CUDA GPU (and without REHEARSE) it stops at once with one line: the 1.5B job on a CPU
# would take hours and 14 GB of memory. Knobs (environment): STEPS (default 40), BATCH_PLAIN /
# BATCH_CKPT (micro-batch per GPU without / with checkpointing, default 4 / 16), KEEP=1 (keep the
# runs' folders and logs), PYTHON, CONFIG and BLOCK.
# A run's tokens/s and MFU are the medians of ThroughputCallback's log lines (one every 5 steps)
# after the first one, which includes the warm-up; STEPS must be at least 10.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
python="${PYTHON:-$([[ -x .venv/bin/python ]] && echo .venv/bin/python || echo python)}"
if [[ -n "${REHEARSE:-}" ]]; then
  config="${CONFIG:-assets/tiny-qwen2}" block="${BLOCK:-128}" steps="${STEPS:-12}"
elif "$python" -c "import sys, torch; sys.exit(not torch.cuda.is_available())" 2>/dev/null; then
  config="${CONFIG:-assets/qwen2.5-1.5b}" block="${BLOCK:-2048}" steps="${STEPS:-40}"
else
  echo "gpu_mfu.sh: error: no CUDA GPU visible to $python (torch.cuda.is_available() is False);" \
    "rehearse on a CPU with REHEARSE=1" >&2
  exit 2
fi
if (( steps < 10 )); then echo "gpu_mfu.sh: error: STEPS must be at least 10" >&2; exit 2; fi
work="$(mktemp -d)"
if [[ -n "${KEEP:-}" ]]; then echo "keeping the runs in $work" >&2; else trap 'rm -rf "$work"' EXIT; fi

# A corpus of random token ids: each document decodes ids drawn uniformly from the bundled
# tokenizer's 4,096 tokens, so the packed blocks are token soup of the right length. Throughput
# does not depend on which ids they are: the model's 151,936-wide output layer runs for every
# token regardless, and the Qwen tokenizer is not needed offline.
"$python" - "$work/random.jsonl" "$block" "$steps" "${BATCH_CKPT:-16}" <<'PY'
import json, random, sys
from transformers import AutoTokenizer
path, block, steps, batch = sys.argv[1], *map(int, sys.argv[2:])
tokenizer = AutoTokenizer.from_pretrained("assets/tokenizer")
rng, need, made = random.Random(0), 2 * steps * batch * block, 0
with open(path, "w", encoding="utf-8") as f:
    while made < need:
        ids = [rng.randrange(len(tokenizer) - 8) for _ in range(block)]
        f.write(json.dumps({"text": tokenizer.decode(ids)}, ensure_ascii=False) + "\n")
        made += block
PY

run() {  # name, micro-batch, extra flags
  local name="$1" batch="$2"; shift 2
  echo "== $name: micro-batch $batch x $block tokens, $steps steps" >&2
  NUM_GPUS=1 PYTHON="$python" bash code/pretrain.sh --config_name "$config" \
    --train_files "$work/random.jsonl" --block_size "$block" --bf16 true \
    --per_device_train_batch_size "$batch" --max_steps "$steps" --logging_steps 5 \
    --warmup_steps 5 --learning_rate 3e-4 --eval_strategy no --validation_split_percentage 0 \
    --save_strategy no --output_dir "$work/$name" "$@" > "$work/$name.log" 2>&1 \
    || { echo "$name failed; the end of its log:" >&2; tail -20 "$work/$name.log" >&2; }
}
run no-checkpointing "${BATCH_PLAIN:-4}"
run checkpointing "${BATCH_CKPT:-16}" --activation_checkpointing true

"$python" - "$work" "no-checkpointing:${BATCH_PLAIN:-4}" "checkpointing:${BATCH_CKPT:-16}" <<'PY'
import json, statistics, sys
from pathlib import Path
print("| setting | micro-batch | tokens/s per GPU | MFU |")
print("|---|---|---|---|")
mfus = []
for setting in sys.argv[2:]:
    name, batch = setting.split(":")
    path = Path(sys.argv[1]) / name / "trainer_state.json"
    if not path.exists():
        print(f"| {name} | {batch} | failed | - |")
        continue
    state = json.loads(path.read_text())
    logs = [h for h in state["log_history"] if "tokens_per_second" in h][1:]  # 1st: warm-up
    rate = statistics.median(h["tokens_per_second"] for h in logs)
    mfu = statistics.median(h["mfu"] for h in logs) if all("mfu" in h for h in logs) else None
    print(f"| {name} | {batch} | {rate:,.0f} | {'n/a (no peak known)' if mfu is None else f'{mfu:.1%}'} |")
    mfus += [] if mfu is None else [mfu]
print(f"result: best_mfu={max(mfus):.3f} (goal >= 0.45)" if mfus else "result: best_mfu=n/a (goal >= 0.45)")
PY
