#!/usr/bin/env bash
# Issue 15's GPU proof in one run on one GPU, made to run on a bare box (issue 29): a Python with
# torch and nothing else, no network, no .venv, no Jupyter kernel. Every part is time-boxed (the
# limits add up to 575 s, under the device tool's 600 s a command), and the results land under
# one folder as results.json and results.md.
#
#   bash bench/gpu_check.sh [DIR]      # default DIR: bench/results/gpu-check-<UTC time>
#   REHEARSE=1 bash bench/gpu_check.sh # the same flow on a CPU, with the tiny config
#
# 0. deps     the packages of bench/gpu_requirements.txt that this interpreter lacks (or has at
#             another version) are installed from the wheelhouse WHEELHOUSE (default .whl/cp<XY>,
#             built where PyPI is reachable by `bash bench/wheelhouse.sh 3.12 --lean`) with
#             `pip install --no-index --no-deps --target` into a folder of its own that goes first
#             on PYTHONPATH, then code/ (the course package, as code/pretrain.sh finds it): the
#             box's torch and its site-packages stay untouched (DEPS_S, default 60)
# 1. mfu      bench/gpu_mfu.sh: Qwen2.5-1.5B, T = 2048, bf16, ZeRO-2 through pretrain.sh, STEPS
#             20: activation checkpointing off and on, then --use_liger_kernel and
#             --torch_compile where they work (each run at most RUN_S 75 s / COMPILE_S 120 s,
#             all of them within MFU_S, default 350, which gpu_mfu.sh gets as BUDGET_S)
# 2. memory   bench/gpu_memory.py: peak memory at micro-batch 1, 2, 4, checkpointing off and
#             on, against chapter 01's calculator (MEMORY_S, default 65)
# 3. trainer  the code cells of chapters/04_trainer.ipynb, run in order in one plain Python
#             process with the environment of the course's llm-pretrain-gpu kernel (the Trainer
#             picks the GPU): no kernel, no nbclient. Every cell must run and the loss must fall
#             (TRAINER_S, default 80)
# Each part's stdout and stderr are kept as DIR/<part>.out and DIR/<part>.log. PYTHON names
# the interpreter (default: .venv/bin/python, else python3). A rehearsal has longer limits.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
python="${PYTHON:-$([[ -x .venv/bin/python ]] && echo .venv/bin/python || echo python3)}"
out="${1:-bench/results/gpu-check-$(date -u +%Y%m%dT%H%M%SZ)}"
if [[ -n "${REHEARSE:-}" ]]; then  # gpu_mfu.sh sees REHEARSE too and takes its tiny defaults
  memory_args=(--config assets/tiny-qwen2 --block 128) gpu=0
  limits=("${DEPS_S:-300}" "${MFU_S:-1200}" "${MEMORY_S:-300}" "${TRAINER_S:-1200}")
else
  "$python" -c "import sys, torch; sys.exit(not torch.cuda.is_available())" 2>/dev/null || {
    echo "gpu_check.sh: error: no CUDA GPU visible to $python (rehearse on a CPU: REHEARSE=1)" >&2
    exit 2; }
  export STEPS="${STEPS:-20}"
  memory_args=() gpu=1
  limits=("${DEPS_S:-60}" "${MFU_S:-350}" "${MEMORY_S:-65}" "${TRAINER_S:-80}")
fi
mkdir -p "$out"
out="$(cd "$out" && pwd)"
work="$(mktemp -d)"  # the installed wheels and chapter 04's runs; KEEP=1 keeps them
if [[ -n "${KEEP:-}" ]]; then echo "keeping $work" >&2; else trap 'rm -rf "$work"' EXIT; fi
export PYTHON="$python" PYTHONUNBUFFERED=1

part() {  # name, seconds, command...: run it time-boxed, keep its output and exit status
  local name="$1" seconds="$2" start=$SECONDS; shift 2
  echo "== $name (at most $seconds s)" >&2
  timeout -k 10 "$seconds" "$@" > "$out/$name.out" 2> "$out/$name.log"
  echo $? > "$out/$name.rc"
  echo $(( SECONDS - start )) > "$out/$name.seconds"
}

# 0. deps: what this interpreter lacks, from the wheelhouse, into a folder first on PYTHONPATH
# (named site-packages: dill, which datasets hashes with, pickles a module found elsewhere by
# value, and fails on pyarrow's types: "Can't pickle <class 'MonthDayNano'>")
part deps "${limits[0]}" bash bench/wheelhouse.sh --install "$work/site-packages"
export PYTHONPATH="$work/site-packages:$PWD/code${PYTHONPATH:+:$PYTHONPATH}"

# The course kernel's environment (tools/course_kernel.py: offline hub, quiet progress bars), with
# the GPU left visible as in its llm-pretrain-gpu kernel; a rehearsal keeps it CPU-only.
eval "$("$python" - "$gpu" <<'PY'
import shlex, sys
sys.path.insert(0, "tools")
from course_kernel import COURSE_ENV, GPU_OVERRIDES
for name, value in COURSE_ENV.items():
    if not (sys.argv[1] == "1" and name in GPU_OVERRIDES):
        print(f"export {name}={shlex.quote(value)}")
PY
)"

if [[ "$(cat "$out/deps.rc")" == 0 ]]; then
  part mfu $(( limits[1] + 20 )) env BUDGET_S="${limits[1]}" bash bench/gpu_mfu.sh
  part memory "${limits[2]}" "$python" bench/gpu_memory.py "${memory_args[@]}"
  mkdir -p "$work/chapter04"
  part trainer "${limits[3]}" "$python" - chapters/04_trainer.ipynb "$work/chapter04" <<'PY'
# Chapter 04 as a kernel would run it, minus the kernel: every code cell in order, in one
# namespace, in a fresh folder (the notebook writes runs/04_trainer/ where it runs). A cell that
# raises is recorded and the next one runs, as nbclient's allow_errors did.
import contextlib, io, json, os, sys, traceback
notebook, cwd = os.path.abspath(sys.argv[1]), sys.argv[2]
os.environ.setdefault("MPLBACKEND", "Agg")  # no screen; plt.show() draws nowhere
with open(notebook, encoding="utf-8") as f:
    cells = [c for c in json.load(f)["cells"] if c["cell_type"] == "code"]
os.chdir(cwd)
namespace, errors = {"__name__": "__main__"}, []
for n, cell in enumerate(cells, 1):
    source = "".join(cell["source"])
    print(f"---- cell {n}: {source.splitlines()[0][:80] if source else ''}", flush=True)
    try:
        exec(compile(source, f"<04_trainer.ipynb code cell {n}>", "exec"), namespace)
    except BaseException as e:  # SystemExit and KeyboardInterrupt from a cell end only that cell
        if isinstance(e, KeyboardInterrupt):
            raise
        traceback.print_exc()
        errors.append(f"cell {n}: {type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}")
    sys.stdout.flush()
losses = namespace.get("train_losses") or []
args = namespace.get("training_args")
print(json.dumps({"runner": "plain Python, the notebook's code cells in order", "cells": len(cells),
                  "device": str(args.device) if args is not None else None,
                  "first_loss": losses[0][1] if losses else None,
                  "last_loss": losses[-1][1] if losses else None,
                  "loss_falls": bool(losses) and losses[-1][1] < losses[0][1], "errors": errors}))
PY
else
  echo "== deps failed: see $out/deps.out and $out/deps.log; no part ran" >&2
  for name in mfu memory trainer; do echo 1 > "$out/$name.rc"; : > "$out/$name.out"; done
fi

"$python" - "$out" "$gpu" <<'PY'
import json, re, sys
from datetime import datetime, timezone
from pathlib import Path
out = Path(sys.argv[1])
def part(name):
    rc = int((out / f"{name}.rc").read_text())
    seconds = out / f"{name}.seconds"
    return rc, (out / f"{name}.out").read_text(), int(seconds.read_text()) if seconds.exists() else None
results = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
           "rehearsal": sys.argv[2] == "0"}
rc, text, seconds = part("deps")
results["deps"] = {"rc": rc, "seconds": seconds, "log": text.strip().splitlines()}
rc, text, seconds = part("mfu")
best = re.search(r"best_mfu=([\d.]+)", text)
results["mfu"] = {"rc": rc, "seconds": seconds, "table": [l for l in text.splitlines() if l.startswith("|")],
                  "best_mfu": float(best.group(1)) if best else None}
for name in ("memory", "trainer"):
    rc, text, seconds = part(name)
    last = text.strip().splitlines()[-1:] if text.strip() else []
    try:
        report = json.loads(last[0]) if last else {}
    except json.JSONDecodeError:
        report = {}
    results[name] = {"rc": rc, "seconds": seconds, **report}
results["ok"] = (all(results[p]["rc"] == 0 for p in ("deps", "mfu", "memory", "trainer"))
                 and results["trainer"].get("loss_falls") is True and not results["trainer"].get("errors"))
(out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
secs = lambda p: f"{results[p]['seconds']} s" if results[p]["seconds"] is not None else "not run"
md = [f"# GPU check {results['date']}{' (CPU rehearsal)' if results['rehearsal'] else ''}", "",
      f"## Packages: exit {results['deps']['rc']}, {secs('deps')}", "",
      *(f"    {l}" for l in results["deps"]["log"]), "",
      f"## MFU (bench/gpu_mfu.sh): exit {results['mfu']['rc']}, {secs('mfu')}", "",
      *(results["mfu"]["table"] or [f"failed (exit {results['mfu']['rc']}), see mfu.log"]), "",
      f"## Memory: measured against chapter 01's calculator: exit {results['memory']['rc']}, {secs('memory')}", "",
      "| micro-batch | checkpointing | measured GB | calculator GB | error |", "|---|---|---|---|---|"]
for r in results["memory"].get("rows", []):
    md.append(f"| {r['micro_batch']} | {r['checkpointing']} | {r['measured_gb']} | "
              f"{r['calculator_gb']} | {r['error']} |")
t = results["trainer"]
md += ["", f"## Chapter 04's code cells in plain Python: exit {t['rc']}, {secs('trainer')}", "",
       f"device {t.get('device')} | cells {t.get('cells')} | loss {t.get('first_loss')} -> "
       f"{t.get('last_loss')} | errors {t.get('errors')}", "", f"all parts ok: {results['ok']}"]
(out / "results.md").write_text("\n".join(md) + "\n")
print("\n".join(md))
sys.exit(0 if results["ok"] else 1)
PY
