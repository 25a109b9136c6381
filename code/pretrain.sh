#!/usr/bin/env bash
# Launch code/pretrain.py with the DeepSpeed launcher and ZeRO-2 (ds_config_zero2.json).
#
#   bash code/pretrain.sh                          # every visible GPU; 2 CPU processes if none
#   NUM_GPUS=4 bash code/pretrain.sh               # the first 4 GPUs
#   INCLUDE=localhost:2,3 bash code/pretrain.sh    # exactly GPUs 2 and 3
#   HOSTFILE=hostfile bash code/pretrain.sh        # several nodes, one "host slots=8" per line
#   bash code/pretrain.sh --config_name Qwen/Qwen2.5-1.5B --bf16 true   # the rest goes to pretrain.py
#
# DS_CONFIG replaces the DeepSpeed config, MASTER_PORT the rendezvous port (default 29500),
# NUM_PROCS the number of CPU processes when there is no GPU (default 2; NUM_GPUS wins if set; each
# process gets an equal share of the cores unless OMP_NUM_THREADS is set), PYTHON the interpreter.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ds_config="${DS_CONFIG:-$here/../ds_config_zero2.json}"
python="${PYTHON:-python}"
# `python -m deepspeed.launcher.runner` is the `deepspeed` command, bound to this interpreter.
launcher=("$python" -m deepspeed.launcher.runner --master_port "${MASTER_PORT:-29500}")

if [[ -n "${HOSTFILE:-}" ]]; then
  launcher+=(--hostfile "$HOSTFILE")
fi
if [[ -n "${INCLUDE:-}" ]]; then
  launcher+=(--include "$INCLUDE")
elif [[ -n "${NUM_GPUS:-}" ]]; then
  launcher+=(--num_gpus "$NUM_GPUS")
fi
if ! "$python" -c "import sys, torch; sys.exit(not torch.cuda.is_available())"; then
  # No GPU: DeepSpeed's CPU accelerator and gloo; on a laptop this shows the mechanics, not speed.
  export DS_ACCELERATOR=cpu
  procs="${NUM_GPUS:-${NUM_PROCS:-2}}"
  if [[ ! "$procs" =~ ^[1-9][0-9]*$ ]]; then
    echo "pretrain.sh: error: NUM_PROCS (or NUM_GPUS) must be a positive integer, got '$procs'" >&2
    exit 2
  fi
  if [[ -z "${NUM_GPUS:-}${INCLUDE:-}" ]]; then
    launcher+=(--num_gpus "$procs")
  fi
  # An equal share of the cores per process: more threads than cores make every step slower.
  threads=$(( $(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN) / procs ))
  export OMP_NUM_THREADS="${OMP_NUM_THREADS:-$(( threads > 0 ? threads : 1 ))}"
fi
exec "${launcher[@]}" "$here/pretrain.py" --deepspeed "$ds_config" "$@" < /dev/null
