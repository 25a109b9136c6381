#!/usr/bin/env bash
# Launch code/pretrain.py with DeepSpeed ZeRO-2 (ds_config_zero2.json), one process per GPU.
#
#   bash code/pretrain.sh                          # every visible GPU; 2 CPU processes if none
#   NUM_GPUS=4 bash code/pretrain.sh               # the first 4 GPUs
#   CUDA_VISIBLE_DEVICES=2,3 bash code/pretrain.sh # exactly GPUs 2 and 3
#   bash code/pretrain.sh --config_name Qwen/Qwen2.5-1.5B --bf16 true   # the rest goes to pretrain.py
#
# Several nodes, one command per node (Kubernetes, by hand; Slurm runs one task per GPU instead,
# see code/pretrain.slurm):
#   NNODES=2 NODE_RANK=0 MASTER_ADDR=10.0.0.1 bash code/pretrain.sh ...   # on node 0 (10.0.0.1)
#   NNODES=2 NODE_RANK=1 MASTER_ADDR=10.0.0.1 bash code/pretrain.sh ...   # on node 1
# Several nodes from one command, over ssh with pdsh (one "host slots=8" per line):
#   HOSTFILE=hostfile bash code/pretrain.sh ...
#
# Preemption: a scheduler's SIGTERM reaches every process of the job, this launcher included.
# The ranks then save one checkpoint and exit 143. The launcher here is torchrun, which waits
# GRACE_SECONDS (default 300) for them before it kills anything; DeepSpeed's own launcher kills
# the ranks 30 s after a SIGTERM, and in its per-node mode dies at once, so only the HOSTFILE
# (pdsh) mode still uses it: there, signal the ranks, not the launcher (README, "Preemption").
#
# DS_CONFIG replaces the DeepSpeed config, MASTER_PORT the rendezvous port (default 29500),
# NUM_PROCS the number of CPU processes when there is no GPU (default 2; NUM_GPUS wins if set; each
# process gets an equal share of the cores unless OMP_NUM_THREADS is set), PYTHON the interpreter.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ds_config="${DS_CONFIG:-$here/../ds_config_zero2.json}"
python="${PYTHON:-python}"
port="${MASTER_PORT:-29500}"
grace="${GRACE_SECONDS:-300}"

die() {
  echo "pretrain.sh: error: $*" >&2
  exit 2
}

# A file the launcher reads at start-up, left nowhere on disk: it is deleted at once and read
# through this shell's open descriptor, which the launcher inherits (fd_path NAME < CONTENT).
fd_path() {
  local file fd
  file="$(mktemp)"
  cat > "$file"
  exec {fd}< "$file"
  rm -f "$file"
  printf -v "$1" '/proc/self/fd/%s' "$fd"
}

[[ "$grace" =~ ^[0-9]+$ ]] || die "GRACE_SECONDS must be a number of seconds, got '$grace'"
if "$python" -c "import sys, torch; sys.exit(not torch.cuda.is_available())"; then
  per_node="${NUM_GPUS:-$("$python" -c "import torch; print(torch.cuda.device_count())")}"
else
  # No GPU: DeepSpeed's CPU accelerator and gloo; on a laptop this shows the mechanics, not speed.
  export DS_ACCELERATOR=cpu
  per_node="${NUM_GPUS:-${NUM_PROCS:-2}}"
  # An equal share of the cores per process: more threads than cores make every step slower.
  if [[ "$per_node" =~ ^[1-9][0-9]*$ ]]; then
    threads=$(( $(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN) / per_node ))
    export OMP_NUM_THREADS="${OMP_NUM_THREADS:-$(( threads > 0 ? threads : 1 ))}"
  fi
fi
[[ "$per_node" =~ ^[1-9][0-9]*$ ]] \
  || die "NUM_PROCS (or NUM_GPUS) must be a positive integer, got '$per_node'"

if [[ -n "${HOSTFILE:-}" ]]; then
  [[ -z "${NNODES:-}" ]] || die "NNODES replaces HOSTFILE: give one of them"
  # pdsh starts the other nodes over ssh and forwards only NCCL*/PYTHON*/UCX* variables and what
  # .deepspeed_env lists: add what the job reads (hub, caches, offline mode, W&B, threads), but
  # never a secret: the runner puts each one on the pdsh command line, which `ps` shows and
  # DeepSpeed logs. Tokens reach the nodes as files (`hf auth login`, `wandb login`).
  secret='(TOKEN|KEY|SECRET|PASSWORD)$'
  env_names="$(compgen -e | grep -E '^(HF_|HUGGINGFACE_|TRANSFORMERS_|WANDB_|TOKENIZERS_PARALLELISM$|OMP_NUM_THREADS$|DS_ACCELERATOR$|PYTORCH_)' | grep -Ev "$secret" || true)"
  fd_path env_file < <(grep -hs '=' ~/.deepspeed_env .deepspeed_env || true  # the user's own
                       for name in $env_names; do echo "$name=${!name}"; done)
  export DS_ENV_FILE="$env_file"
  exec "$python" -m deepspeed.launcher.runner --master_port "$port" --hostfile "$HOSTFILE" \
    "$here/pretrain.py" --deepspeed "$ds_config" "$@" < /dev/null
fi

# torchrun: one agent per node starts its ranks; on SIGTERM it waits up to $grace seconds.
# llm_pretrain.launch runs it and turns a rank's failure into one line and that rank's status.
export PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}"  # the package beside this file
launcher=("$python" -m llm_pretrain.launch --nproc_per_node "$per_node"
          --shutdown-timeout "$grace" --master_port "$port")
if [[ -n "${NNODES:-}" ]]; then
  [[ "$NNODES" =~ ^[1-9][0-9]*$ ]] || die "NNODES must be a positive integer, got '$NNODES'"
  [[ "${NODE_RANK:-}" =~ ^[0-9]+$ ]] && (( NODE_RANK < NNODES )) \
    || die "NODE_RANK must be one of 0..$(( NNODES - 1 )) with NNODES=$NNODES, got '${NODE_RANK:-}'"
  [[ -n "${MASTER_ADDR:-}" ]] || die "MASTER_ADDR (an address of node 0) is needed with NNODES"
  launcher+=(--nnodes "$NNODES" --node_rank "$NODE_RANK" --master_addr "$MASTER_ADDR")
fi
exec "${launcher[@]}" "$here/pretrain.py" --deepspeed "$ds_config" "$@" < /dev/null
