#!/usr/bin/env bash
# GPU benchmark: MFU of the Qwen2.5-1.5B architecture on one GPU, trained through
# code/pretrain.py under code/pretrain.sh (torchrun, DeepSpeed ZeRO-2): bf16, SDPA attention,
# T = 2048, the full 151,936-wide output layer, random token ids. An A/B of four runs:
#
#   no-checkpointing   micro-batch BATCH_PLAIN (default 4)
#   checkpointing      --activation_checkpointing true, micro-batch BATCH_CKPT (default 16 on a
#                      GPU of 120 GB or more, such as the H200; 8 on an 80 GB H100, where 16
#                      would need about 60 GB of fp32 logits alone)
#   liger-kernel       --use_liger_kernel true, micro-batch BATCH_PLAIN: only if liger_kernel
#                      imports (a wheel of bench/gpu_requirements.txt; it needs Triton)
#   torch-compile      --torch_compile true, micro-batch BATCH_PLAIN: only if a probe function
#                      compiles and runs within PROBE_S seconds (60; a rehearsal 120)
#
#   bash bench/gpu_mfu.sh              # one H200: about 4 minutes; goal: best MFU >= 45%
#   REHEARSE=1 bash bench/gpu_mfu.sh   # the same flow on a CPU: tiny config, T = 128, 12 steps
#
# Without a CUDA GPU (and without REHEARSE) it stops at once with one line: the 1.5B job on a CPU
# would take hours and 14 GB of memory. Each run is time-boxed (RUN_S, default 75 s; COMPILE_S
# for torch-compile, default 120 s; a CPU rehearsal 300 / 400 s), and BUDGET_S, if set, bounds
# them all: a run gets at most what is left of it (less 15 s for the table), and is skipped with
# under 30 s left. A run stopped at its limit is a "timed out" row, and with --save_strategy no it
# stops without saving. Knobs (environment): STEPS (default 40), BATCH_PLAIN / BATCH_CKPT,
# LIGER=0 / COMPILE=0 (skip those runs), KEEP=1
# (keep the runs' folders and logs), PYTHON, CONFIG and BLOCK. On a bare box the packages come
# from the wheelhouse: run it through bench/gpu_check.sh, which installs them first.
# A run's tokens/s and MFU are the medians of ThroughputCallback's log lines (one every 5 steps)
# after the first one, which includes the warm-up (and torch.compile's compilation); STEPS must
# be at least 10.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
python="${PYTHON:-$([[ -x .venv/bin/python ]] && echo .venv/bin/python || echo python)}"
if [[ -n "${REHEARSE:-}" ]]; then
  config="${CONFIG:-assets/tiny-qwen2}" block="${BLOCK:-128}" steps="${STEPS:-12}"
  run_s="${RUN_S:-300}" compile_s="${COMPILE_S:-400}" probe_s="${PROBE_S:-120}" big_gpu=1
elif big_gpu="$("$python" -c "import sys, torch
sys.exit(1) if not torch.cuda.is_available() else print(int(torch.cuda.get_device_properties(0).total_memory >= 120e9))" 2>/dev/null)"; then
  config="${CONFIG:-assets/qwen2.5-1.5b}" block="${BLOCK:-2048}" steps="${STEPS:-40}"
  run_s="${RUN_S:-75}" compile_s="${COMPILE_S:-120}" probe_s="${PROBE_S:-60}"
else
  echo "gpu_mfu.sh: error: no CUDA GPU visible to $python (torch.cuda.is_available() is False);" \
    "rehearse on a CPU with REHEARSE=1" >&2
  exit 2
fi
if (( steps < 10 )); then echo "gpu_mfu.sh: error: STEPS must be at least 10" >&2; exit 2; fi
deadline=$(( ${BUDGET_S:+SECONDS + BUDGET_S - 15} ))  # 0: no budget
batch_plain="${BATCH_PLAIN:-4}"
batch_ckpt="${BATCH_CKPT:-$( (( big_gpu )) && echo 16 || echo 8)}"
work="$(mktemp -d)"
if [[ -n "${KEEP:-}" ]]; then echo "keeping the runs in $work" >&2; else trap 'rm -rf "$work"' EXIT; fi

# A corpus of random token ids: each document decodes ids drawn uniformly from the bundled
# tokenizer's 4,096 tokens, so the packed blocks are token soup of the right length. Throughput
# does not depend on which ids they are: the model's 151,936-wide output layer runs for every
# token regardless, and the Qwen tokenizer is not needed offline.
"$python" - "$work/random.jsonl" "$block" "$steps" "$(( batch_ckpt > batch_plain ? batch_ckpt : batch_plain ))" <<'PY'
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

skip() {  # name, batch, why: a table row instead of a run
  echo "== $1: skipped: $3" >&2
  echo "skipped: $3" > "$work/$1.status"
}
run() {  # name, micro-batch, seconds, extra flags
  local name="$1" batch="$2" seconds="$3" rc=0; shift 3
  if (( deadline )); then
    (( deadline - SECONDS >= 30 )) || { skip "$name" "$batch" "no time left of BUDGET_S=$BUDGET_S"; return; }
    (( seconds <= deadline - SECONDS )) || seconds=$(( deadline - SECONDS ))
  fi
  echo "== $name: micro-batch $batch x $block tokens, $steps steps (at most $seconds s)" >&2
  local start=$SECONDS
  NUM_GPUS=1 PYTHON="$python" timeout -k 15 "$seconds" bash code/pretrain.sh \
    --config_name "$config" --train_files "$work/random.jsonl" --block_size "$block" \
    --bf16 true --per_device_train_batch_size "$batch" --max_steps "$steps" --logging_steps 5 \
    --warmup_steps 5 --learning_rate 3e-4 --eval_strategy no --validation_split_percentage 0 \
    --save_strategy no --output_dir "$work/$name" "$@" > "$work/$name.log" 2>&1 || rc=$?
  echo "== $name: exit $rc after $(( SECONDS - start )) s" >&2
  if (( rc == 124 || rc == 137 )); then
    echo "timed out after $seconds s" > "$work/$name.status"
  elif (( rc != 0 )); then
    echo "failed (exit $rc): $(grep -v '^\s*$' "$work/$name.log" | tail -1 | cut -c1-160 | tr '|' '/')" \
      > "$work/$name.status"
  fi
  (( rc == 0 )) || { echo "$name: the end of its log:" >&2; tail -20 "$work/$name.log" >&2; }
}

run no-checkpointing "$batch_plain" "$run_s"
run checkpointing "$batch_ckpt" "$run_s" --activation_checkpointing true
if [[ "${LIGER:-1}" == 0 ]]; then
  skip liger-kernel "$batch_plain" "LIGER=0"
elif why="$("$python" -c "import liger_kernel.transformers" 2>&1)"; then
  run liger-kernel "$batch_plain" "$run_s" --use_liger_kernel true
else
  skip liger-kernel "$batch_plain" "liger_kernel does not import here ($(tail -1 <<< "$why" | cut -c1-120))"
fi
if [[ "${COMPILE:-1}" == 0 ]]; then
  skip torch-compile "$batch_plain" "COMPILE=0"
elif why="$(timeout -k 5 "$probe_s" "$python" -c "
import torch
device = 'cuda' if torch.cuda.is_available() else 'cpu'
f = torch.compile(lambda x: torch.nn.functional.gelu(x) * 2)
assert f(torch.ones(8, device=device)).sum().item() > 0" 2>&1)"; then
  run torch-compile "$batch_plain" "$compile_s" --torch_compile true
else
  skip torch-compile "$batch_plain" "torch.compile does not work here ($(grep -v '^\s*$' <<< "$why" | tail -1 | cut -c1-120))"
fi

"$python" - "$work" "no-checkpointing:$batch_plain" "checkpointing:$batch_ckpt" \
  "liger-kernel:$batch_plain" "torch-compile:$batch_plain" <<'PY'
import json, statistics, sys
from pathlib import Path
work = Path(sys.argv[1])
print("| setting | micro-batch | tokens/s per GPU | MFU |")
print("|---|---|---|---|")
mfus = []
for setting in sys.argv[2:]:
    name, batch = setting.split(":")
    status, state = work / f"{name}.status", work / name / "trainer_state.json"
    if status.exists() or not state.exists():
        why = status.read_text().strip() if status.exists() else "failed: no trainer_state.json"
        print(f"| {name} | {batch} | {why} | - |")
        continue
    logs = [h for h in json.loads(state.read_text())["log_history"] if "tokens_per_second" in h][1:]
    if not logs:  # the first log line includes the warm-up
        print(f"| {name} | {batch} | failed: no log line after the warm-up | - |")
        continue
    rate = statistics.median(h["tokens_per_second"] for h in logs)
    mfu = statistics.median(h["mfu"] for h in logs) if all("mfu" in h for h in logs) else None
    print(f"| {name} | {batch} | {rate:,.0f} | {'n/a (no peak known)' if mfu is None else f'{mfu:.1%}'} |")
    mfus += [] if mfu is None else [mfu]
print(f"result: best_mfu={max(mfus):.3f} (goal >= 0.45)" if mfus else "result: best_mfu=n/a (goal >= 0.45)")
ran = [s.split(":")[0] for s in sys.argv[2:4]]  # the A/B's two required runs
sys.exit(0 if all((work / n / "trainer_state.json").exists() and not (work / f"{n}.status").exists()
                  for n in ran) else 1)
PY
