#!/usr/bin/env bash
# The wheels bench/gpu_check.sh needs on a GPU box that cannot reach PyPI: built here, one folder
# per Python version, .whl/cp<XY>/ (ignored by git), from bench/gpu_requirements.txt, torch left
# out (the box's CUDA build stays). Send the folder with the run (device tool: carry .whl/cp312).
#
#   bash bench/wheelhouse.sh 3.12 --lean  # the lent GPU box's Python, without the wheels its
#                                          # image already has (lines "# box:"): fits the 64 MiB carry
#   bash bench/wheelhouse.sh 3.12         # every wheel, for a box with torch alone (over 64 MiB)
#   bash bench/wheelhouse.sh 3.11         # every wheel for Python 3.11: the CPU rehearsal's
#   bash bench/wheelhouse.sh --install DIR  # what gpu_check.sh runs: see below
#
# Build: manylinux x86_64 binaries or pure wheels (`pip download --only-binary=:all: --no-deps`).
# DeepSpeed has only an sdist on PyPI: it is built here into a pure wheel (DS_BUILD_OPS=0: no
# compiled ops; they are JIT-built on first use if ever needed), which needs torch in the building
# interpreter (BUILD_PYTHON, default .venv/bin/python). Prints each wheel's size and the total;
# exits 1 when a --lean folder is over 64 MiB.
#
# --install DIR: for the interpreter PYTHON (default python3), the lines of gpu_requirements.txt
# it does not meet (absent, or another version than the pin that a "# box:" range does not allow)
# are installed from WHEELHOUSE (default .whl/cp<XY> of that interpreter) with `pip install
# --no-index --no-deps --target DIR`, byte-compiled once; its site-packages are not touched. Put
# DIR first on PYTHONPATH afterwards; name it .../site-packages (dill, which datasets hashes with,
# pickles modules from anywhere else by value, and fails on pyarrow's types). Exit 1, with one
# line, when a needed wheel is not there; an "# optional" one (liger-kernel) is only reported.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [[ "${1:-}" == "--install" ]]; then
  [[ -n "${2:-}" ]] || { echo "wheelhouse.sh: error: --install needs a folder" >&2; exit 2; }
  python="${PYTHON:-python3}"
  exec "$python" - "$2" "${WHEELHOUSE:-}" <<'PY'
import importlib.metadata as md, os, re, subprocess, sys, time
from pathlib import Path
try:
    from packaging.specifiers import SpecifierSet
except ImportError:  # an interpreter with torch alone: the copy inside pip
    from pip._vendor.packaging.specifiers import SpecifierSet

site = Path(sys.argv[1]).resolve()
if site.name != "site-packages":
    sys.exit(f"wheelhouse.sh: error: name the folder .../site-packages, not {site.name} (dill)")
wheelhouse = Path(sys.argv[2] or f".whl/cp{sys.version_info[0]}{sys.version_info[1]}")
norm = lambda name: re.sub(r"[-_.]+", "_", name).lower()
lines = [m.groups() for line in open("bench/gpu_requirements.txt", encoding="utf-8")
         if (m := re.match(r"([A-Za-z0-9_.-]+)==(\S+)\s*(?:#\s*(?:box:\s*(.+)|(optional)))?", line))]

def unmet(path):
    """(name, pin, optional) of each line that the packages on `path` do not meet."""
    found = {}
    for dist in md.distributions(path=path):
        found.setdefault(norm(dist.metadata["Name"]), dist.version)  # first on the path wins
    return [(name, pin, bool(optional)) for name, pin, box, optional in lines
            if (have := found.get(norm(name))) != pin and not (have and box and have in SpecifierSet(box))]

print(f"interpreter: {sys.executable} (Python {sys.version.split()[0]})")
need = unmet(sys.path)
print(f"unmet: {len(need)}" + (f" ({' '.join(f'{n}=={p}' for n, p, _ in need)})" if need else ""))
if need:
    wheels = {}
    for f in wheelhouse.glob("*.whl") if wheelhouse.is_dir() else []:
        name, version = f.name.split("-")[:2]
        wheels[norm(name), version] = f
    todo = []
    for name, pin, optional in need:
        wheel = wheels.get((norm(name), pin))
        if wheel:
            todo.append(str(wheel))
        elif optional:
            print(f"not in {wheelhouse}, optional: {name}=={pin}")
        else:
            sys.exit(f"wheelhouse.sh: error: {name}=={pin} is needed and not in {wheelhouse} "
                     "(build it where PyPI is reachable: bash bench/wheelhouse.sh "
                     f"{sys.version_info[0]}.{sys.version_info[1]} [--lean])")
    if todo:
        start = time.monotonic()
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                        "--no-index", "--no-deps", "--no-compile", "--target", str(site), *todo],
                       check=True)
        # once, on every core, rather than in each process (PYTHONDONTWRITEBYTECODE may be set)
        subprocess.run([sys.executable, "-m", "compileall", "-q", "-j", "0", str(site)],
                       stdout=subprocess.DEVNULL, check=False)
        print(f"installed {len(todo)} wheels into {site} in {time.monotonic() - start:.0f} s")
left = unmet([str(site), *sys.path])
print(f"unmet after: {len(left)}" + (f" ({' '.join(f'{n}=={p}' for n, p, _ in left)})" if left else ""))
versions = {dist.metadata["Name"].lower(): dist.version  # the first on the path wins
            for dist in reversed(list(md.distributions(path=[str(site), *sys.path])))}
print("versions: " + ", ".join(f"{n} {versions.get(n)}" for n in ("torch", "transformers", "datasets", "accelerate",
                                                                  "deepspeed", "torchdata", "huggingface_hub", "liger_kernel")))
sys.exit(1 if any(not optional for _, _, optional in left) else 0)
PY
fi

version="${1:-3.12}" lean=""
[[ "${2:-}" == "--lean" ]] && lean=1
[[ "$version" =~ ^3\.[0-9]+$ ]] \
  || { echo "wheelhouse.sh: error: give a Python version like 3.12, got '$version'" >&2; exit 2; }
build_python="${BUILD_PYTHON:-$([[ -x .venv/bin/python ]] && echo .venv/bin/python || echo python3)}"
dest=".whl/cp${version/./}"
mkdir -p "$dest"

# name==version of every line, but deepspeed (built below) and, with --lean, the "# box:" lines
mapfile -t wanted < <(grep -E '^[A-Za-z0-9_.-]+==' bench/gpu_requirements.txt \
  | { if [[ -n "$lean" ]]; then grep -v '# box:'; else cat; fi; } \
  | sed 's/[[:space:]]*#.*//' | grep -v '^deepspeed==')
# A folder made for the other mode keeps wheels that this one leaves out: remove those.
norm() { tr '[:upper:]' '[:lower:]' | tr -- '-.' '__'; }
keep="$(printf '%s\n' "${wanted[@]}" deepspeed | sed 's/==.*//' | norm)"
for f in "$dest"/*.whl; do
  [[ -e "$f" ]] || continue
  name="$(basename "$f" | cut -d- -f1 | norm)"
  grep -qx "$name" <<< "$keep" || rm -f "$f"
done

platforms=()
for tag in manylinux_2_28 manylinux_2_27 manylinux_2_24 manylinux_2_17 manylinux2014 manylinux1; do
  platforms+=(--platform "${tag}_x86_64")
done
# (this machine's pip config names local indexes that do not hold every name: not an error)
"$build_python" -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
  --python-version "$version" --implementation cp "${platforms[@]}" -d "$dest" "${wanted[@]}" \
  2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)

ds="$(grep -E '^deepspeed==' bench/gpu_requirements.txt | sed 's/[[:space:]]*#.*//')"
if ! ls "$dest"/deepspeed-"${ds#*==}"-*.whl > /dev/null 2>&1; then
  DS_BUILD_OPS=0 "$build_python" -m pip wheel -q --disable-pip-version-check --no-deps \
    --no-build-isolation -w "$dest" "$ds" 2> >(grep -v "is ignored: it is neither" >&2)
fi
for f in "$dest"/deepspeed-*.whl; do
  [[ "$f" == *-py3-none-any.whl ]] || { echo "wheelhouse.sh: error: $f is not a pure wheel" >&2; exit 1; }
done

echo "== $dest (Python $version${lean:+, lean})"
du -b "$dest"/*.whl | sort -rn | awk '{ printf "%8.2f MiB  %s\n", $1 / 1048576, $2 }'
total="$(du -cb "$dest"/*.whl | tail -1 | cut -f1)"
awk -v t="$total" -v n="$(ls "$dest"/*.whl | wc -l)" \
  'BEGIN { printf "%8.2f MiB  in all, %d wheels (the device tool carries at most 64 MiB)\n", t / 1048576, n }'
[[ -z "$lean" ]] || (( total <= 64 * 1048576 )) || { echo "wheelhouse.sh: error: over 64 MiB" >&2; exit 1; }
