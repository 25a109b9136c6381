#!/usr/bin/env bash
# Issue 15's GPU proof in one run on one GPU (at most 8 minutes on one H200): every part is
# time-boxed, and the results land under one folder as results.json and results.md.
#
#   bash bench/gpu_check.sh [DIR]      # default DIR: bench/results/gpu-check-<UTC time>
#   REHEARSE=1 bash bench/gpu_check.sh # the same flow on a CPU, with the tiny config
#
# 1. mfu      bench/gpu_mfu.sh: Qwen2.5-1.5B, T = 2048, bf16, ZeRO-2 through pretrain.sh,
#             activation checkpointing off and on (MFU_S seconds, default 270; STEPS 30)
# 2. memory   bench/gpu_memory.py: peak memory at micro-batch 1, 2, 4, checkpointing off and
#             on, against chapter 01's calculator (MEMORY_S, default 90)
# 3. trainer  chapters/04_trainer.ipynb executed in the llm-pretrain-gpu kernel (the Trainer
#             picks the GPU): it must run without error and its loss must fall (TRAINER_S, 120)
# Each part's stdout and stderr are kept as DIR/<part>.out and DIR/<part>.log. PYTHON names
# the interpreter (default: .venv/bin/python, else python3); it needs requirements.txt's packages,
# the course package (`make setup`, or `pip install --no-deps -e .`: bench/gpu_memory.py and
# chapter 04 import `llm_pretrain`) and, for part 3, the kernels of `python tools/course_kernel.py`.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
python="${PYTHON:-$([[ -x .venv/bin/python ]] && echo .venv/bin/python || echo python3)}"
out="${1:-bench/results/gpu-check-$(date -u +%Y%m%dT%H%M%SZ)}"
if [[ -n "${REHEARSE:-}" ]]; then  # gpu_mfu.sh sees REHEARSE too and takes its tiny defaults
  memory_args=(--config assets/tiny-qwen2 --block 128) kernel=llm-pretrain
else
  "$python" -c "import sys, torch; sys.exit(not torch.cuda.is_available())" 2>/dev/null || {
    echo "gpu_check.sh: error: no CUDA GPU visible to $python (rehearse on a CPU: REHEARSE=1)" >&2
    exit 2; }
  export STEPS="${STEPS:-30}"
  memory_args=() kernel=llm-pretrain-gpu
fi
mkdir -p "$out"
export PYTHON="$python" PYTHONUNBUFFERED=1

part() {  # name, seconds, command...: run it time-boxed, keep its output and exit status
  local name="$1" seconds="$2"; shift 2
  echo "== $name (at most $seconds s)" >&2
  timeout -k 10 "$seconds" "$@" > "$out/$name.out" 2> "$out/$name.log"
  echo $? > "$out/$name.rc"
}

part mfu "${MFU_S:-270}" bash bench/gpu_mfu.sh
part memory "${MEMORY_S:-90}" "$python" bench/gpu_memory.py "${memory_args[@]}"
part trainer "${TRAINER_S:-120}" "$python" - "$kernel" "$out/04_trainer.ipynb" <<'PY'
import json, re, sys
import nbformat
from nbclient import NotebookClient
kernel, dest = sys.argv[1:3]
nb = nbformat.read("chapters/04_trainer.ipynb", as_version=4)
try:
    NotebookClient(nb, kernel_name=kernel, allow_errors=True, timeout=600,
                   resources={"metadata": {"path": "chapters"}}).execute()
finally:
    nbformat.write(nb, dest)
outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
text = "".join(o.get("text", "") for o in outputs)
losses = re.search(r"first logged loss: ([\d.]+) \| last: ([\d.]+)", text)
device = re.search(r"device: (\S+) \|", text)
first, last = map(float, losses.groups()) if losses else (None, None)
print(json.dumps({"kernel": kernel, "device": device and device.group(1), "first_loss": first, "last_loss": last,
                  "loss_falls": bool(losses) and last < first,
                  "errors": [o.ename for o in outputs if o.output_type == "error"]}))
PY

"$python" - "$out" <<'PY'
import json, re, sys
from datetime import datetime, timezone
from pathlib import Path
out = Path(sys.argv[1])
def part(name):
    rc = int((out / f"{name}.rc").read_text())
    text = (out / f"{name}.out").read_text()
    return rc, text
results = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds")}
rc, text = part("mfu")
best = re.search(r"best_mfu=([\d.]+)", text)
results["mfu"] = {"rc": rc, "table": [l for l in text.splitlines() if l.startswith("|")],
                  "best_mfu": float(best.group(1)) if best else None}
for name in ("memory", "trainer"):
    rc, text = part(name)
    last = text.strip().splitlines()[-1:] if text.strip() else []
    results[name] = {"rc": rc, **(json.loads(last[0]) if rc == 0 and last else {})}
results["ok"] = (results["mfu"]["rc"] == 0 and results["memory"]["rc"] == 0
                 and results["trainer"]["rc"] == 0 and results["trainer"].get("loss_falls") is True
                 and not results["trainer"].get("errors"))
(out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
md = [f"# GPU check {results['date']}", "", "## MFU (bench/gpu_mfu.sh)", "",
      *(results["mfu"]["table"] or [f"failed (exit {results['mfu']['rc']}), see mfu.log"]), "",
      "## Memory: measured against chapter 01's calculator", "",
      "| micro-batch | checkpointing | measured GB | calculator GB | error |", "|---|---|---|---|---|"]
for r in results["memory"].get("rows", []):
    md.append(f"| {r['micro_batch']} | {r['checkpointing']} | {r['measured_gb']} | "
              f"{r['calculator_gb']} | {r['error']} |")
t = results["trainer"]
md += ["", f"## Chapter 04 in the kernel {t.get('kernel')}", "",
       f"exit {t['rc']} | device {t.get('device')} | loss {t.get('first_loss')} -> "
       f"{t.get('last_loss')} | errors {t.get('errors')}", "", f"all parts ok: {results['ok']}"]
(out / "results.md").write_text("\n".join(md) + "\n")
print("\n".join(md))
sys.exit(0 if results["ok"] else 1)
PY
