#!/usr/bin/env bash
# Launch code/pretrain.py with the DeepSpeed launcher and ZeRO-2 (ds_config_zero2.json).
#
#   bash code/pretrain.sh                          # every visible GPU; 2 CPU processes if none
#   NUM_GPUS=4 bash code/pretrain.sh               # the first 4 GPUs
#   INCLUDE=localhost:2,3 bash code/pretrain.sh    # exactly GPUs 2 and 3
#   bash code/pretrain.sh --config_name Qwen/Qwen2.5-1.5B --bf16 true   # the rest goes to pretrain.py
#
# Several nodes, one command per node (Slurm's srun: code/pretrain.slurm; Kubernetes; by hand):
#   NNODES=2 NODE_RANK=0 MASTER_ADDR=10.0.0.1 bash code/pretrain.sh ...   # on node 0 (10.0.0.1)
#   NNODES=2 NODE_RANK=1 MASTER_ADDR=10.0.0.1 bash code/pretrain.sh ...   # on node 1
# Several nodes from one command, over ssh with pdsh (one "host slots=8" per line):
#   HOSTFILE=hostfile bash code/pretrain.sh ...
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

if "$python" -c "import sys, torch; sys.exit(not torch.cuda.is_available())"; then
  per_node="${NUM_GPUS:-}"  # empty: every visible GPU
else
  # No GPU: DeepSpeed's CPU accelerator and gloo; on a laptop this shows the mechanics, not speed.
  export DS_ACCELERATOR=cpu
  per_node="${NUM_GPUS:-${NUM_PROCS:-2}}"
  if [[ ! "$per_node" =~ ^[1-9][0-9]*$ ]]; then
    die "NUM_PROCS (or NUM_GPUS) must be a positive integer, got '$per_node'"
  fi
  if [[ -z "${NUM_GPUS:-}${INCLUDE:-}${NNODES:-}" ]]; then
    launcher+=(--num_gpus "$per_node")
  fi
  # An equal share of the cores per process: more threads than cores make every step slower.
  threads=$(( $(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN) / per_node ))
  export OMP_NUM_THREADS="${OMP_NUM_THREADS:-$(( threads > 0 ? threads : 1 ))}"
fi

if [[ -n "${NNODES:-}" ]]; then
  # This node's processes of an NNODES-node job: DeepSpeed's --no_ssh mode with a hostfile that
  # only gives the job's shape (node names are not looked up), rendezvous at MASTER_ADDR.
  [[ "$NNODES" =~ ^[1-9][0-9]*$ ]] || die "NNODES must be a positive integer, got '$NNODES'"
  [[ "${NODE_RANK:-}" =~ ^[0-9]+$ ]] && (( NODE_RANK < NNODES )) \
    || die "NODE_RANK must be one of 0..$(( NNODES - 1 )) with NNODES=$NNODES, got '${NODE_RANK:-}'"
  [[ -n "${MASTER_ADDR:-}" ]] || die "MASTER_ADDR (an address of node 0) is needed with NNODES"
  [[ -z "${HOSTFILE:-}${INCLUDE:-}" ]] || die "NNODES replaces HOSTFILE and INCLUDE: give one of them"
  per_node="${per_node:-$("$python" -c "import torch; print(torch.cuda.device_count())")}"
  fd_path hostfile < <(for (( n = 0; n < NNODES; n++ )); do echo "node$n slots=$per_node"; done)
  launcher+=(--hostfile "$hostfile" --no_ssh --node_rank "$NODE_RANK" --master_addr "$MASTER_ADDR")
elif [[ -n "${HOSTFILE:-}" ]]; then
  # pdsh starts the other nodes over ssh and forwards only NCCL*/PYTHON*/UCX* variables and what
  # .deepspeed_env lists: add what the job reads (hub, caches, offline mode, W&B, threads).
  env_names="$(compgen -e | grep -E '^(HF_|HUGGINGFACE_|TRANSFORMERS_|WANDB_|TOKENIZERS_PARALLELISM$|OMP_NUM_THREADS$|DS_ACCELERATOR$|PYTORCH_)' || true)"
  fd_path env_file < <(grep -hs '=' ~/.deepspeed_env .deepspeed_env || true  # the user's own
                       for name in $env_names; do echo "$name=${!name}"; done)
  export DS_ENV_FILE="$env_file"
  launcher+=(--hostfile "$HOSTFILE")
fi
if [[ -n "${INCLUDE:-}" ]]; then
  launcher+=(--include "$INCLUDE")
elif [[ -n "${NUM_GPUS:-}" && -z "${NNODES:-}" ]]; then
  launcher+=(--num_gpus "$NUM_GPUS")
fi
exec "${launcher[@]}" "$here/pretrain.py" --deepspeed "$ds_config" "$@" < /dev/null
