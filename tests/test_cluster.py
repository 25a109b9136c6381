"""The script on a cluster, simulated on one CPU machine: two hosts, launchers, preemption.

Two hosts are two network namespaces joined by a veth pair (addresses exist only inside them) on
one disk, which plays the shared filesystem. Each host runs its own launcher command, as Slurm's
`srun` or a Kubernetes pod would. The namespaces are removed even when a test fails.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
import torch

from helpers import (
    LAUNCHER,
    ROOT,
    SCRIPT,
    SHORT,
    TIMEOUT,
    TORCHRUN,
    check_outputs,
    losses,
    run_script,
    same_losses,
    signal_once_training,
    start_script,
)
from llm_pretrain.resume import is_complete_checkpoint, last_complete_checkpoint, saved_world_size

pytestmark = pytest.mark.slow  # every test here launches several processes
PORT = 29581  # the rendezvous port inside the namespaces (each has its own port space)
ETC_NETNS = Path("/etc/netns")
# Stand-ins for Slurm's commands. `scontrol show hostnames` names the hosts and `scontrol requeue`
# is recorded; `srun` starts SLURM_NTASKS_PER_NODE tasks on each simulated host with the task
# variables slurmstepd sets, forwards a SIGTERM to them and waits for all, as srun does.
FAKE_SCONTROL = """#!/usr/bin/env bash
case "$1" in
  show) printf '%s\\n' $SIMULATED_HOSTS | cut -d: -f1 ;;
  requeue) echo "requeue $2" >> "$SIMULATED_LOGS/scontrol.txt" ;;
esac
"""
FAKE_SRUN = """#!/usr/bin/env bash
while [[ "$1" == -* ]]; do shift; done
env > "$SIMULATED_LOGS/srun.env"
printf '%s\\n' "$@" > "$SIMULATED_LOGS/srun.args"
per_node=${SLURM_NTASKS_PER_NODE:-1}
hosts=($SIMULATED_HOSTS)
tasks=()
for node in "${!hosts[@]}"; do
  host=${hosts[$node]}
  for (( local = 0; local < per_node; local++ )); do
    SLURM_NODEID=$node SLURM_LOCALID=$local SLURM_PROCID=$(( node * per_node + local )) \\
      SLURM_NTASKS=$(( ${#hosts[@]} * per_node )) GLOO_SOCKET_IFNAME=${host#*:} \\
      ip netns exec "${host%%:*}" "$@" &
    tasks+=($!)
  done
done
trap 'kill -TERM "${tasks[@]}" 2> /dev/null' TERM
status=0
for task in "${tasks[@]}"; do
  until wait "$task"; s=$?; ! kill -0 "$task" 2> /dev/null; do :; done
  (( s > status )) && status=$s
done
exit $status
"""
SLURM = ROOT / "code" / "pretrain.slurm"
STEPD = (sys.executable, str(ROOT / "tests" / "stepd.py"))  # a job step, as slurmstepd runs it
# pretrain.sh's per-node mode (one command per node), here for a job of one node
PER_NODE = {"NNODES": "1", "NODE_RANK": "0", "MASTER_ADDR": "127.0.0.1"}
SLOW_SAVE = {"PYTHONPATH": str(ROOT / "tests" / "faults"), "SLOW_SAVE_SECONDS": "40"}


def sh(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True, timeout=30)


@pytest.fixture(scope="module")
def hosts():
    """[(name, address, interface)] of two simulated hosts; node 0 is the first.

    Each name is a network namespace and, inside both, a host name (`ip netns exec` shows them
    /etc/netns/NAME/hosts as /etc/hosts).
    """
    if os.geteuid() != 0 or not shutil.which("ip"):
        pytest.skip("simulated hosts need root and iproute2 (`ip netns`)")
    tag = f"pt{os.getpid() % 100000}"
    pair = [(f"{tag}-a", "10.77.0.1", f"{tag}a"), (f"{tag}-b", "10.77.0.2", f"{tag}b")]
    names = "127.0.0.1 localhost\n" + "".join(f"{a} {n}\n" for n, a, _ in pair)
    try:
        for ns, _, _ in pair:
            sh("ip", "netns", "add", ns)
            (ETC_NETNS / ns).mkdir(parents=True, exist_ok=True)
            (ETC_NETNS / ns / "hosts").write_text(names)
        sh("ip", "link", "add", pair[0][2], "type", "veth", "peer", "name", pair[1][2])
        for ns, address, device in pair:
            sh("ip", "link", "set", device, "netns", ns)
            sh("ip", "-n", ns, "addr", "add", f"{address}/24", "dev", device)
            sh("ip", "-n", ns, "link", "set", device, "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        yield pair
    finally:
        for ns, _, _ in pair:  # deleting a namespace deletes its end of the veth pair, and the pair
            subprocess.run(["ip", "netns", "delete", ns], capture_output=True, timeout=30)
            shutil.rmtree(ETC_NETNS / ns, ignore_errors=True)


def torchrun_on_each_host(hosts, logs, args) -> list[tuple[int, str]]:
    """`torchrun ... code/pretrain.py ARGS` on every host at once, with `args(node_rank)`, one
    process of one thread per host, node 0 the master: [(status, log)] by node."""
    procs = []
    for rank, (ns, _, device) in enumerate(hosts):
        launcher = ["ip", "netns", "exec", ns, *TORCHRUN, "--nnodes", "2", "--node_rank", rank,
                    "--nproc_per_node", "1", "--master_addr", hosts[0][1], "--master_port", PORT]
        with (logs / f"node{rank}.log").open("w") as log:
            procs.append(start_script(*args(rank), launcher=launcher, stdout=log,
                                      env={"GLOO_SOCKET_IFNAME": device, "OMP_NUM_THREADS": "1"}))
    try:
        return [(p.wait(timeout=TIMEOUT), (logs / f"node{rank}.log").read_text())
                for rank, p in enumerate(procs)]
    finally:
        for p in procs:
            p.kill()


@pytest.fixture(scope="module")
def torchrun_two_hosts(hosts, tmp_path_factory):
    out = tmp_path_factory.mktemp("torchrun") / "run"
    done = torchrun_on_each_host(hosts, out.parent, lambda rank: [
        "--output_dir", out, "--report_to", "tensorboard", *SHORT])
    return out, done


def slurm_job(hosts, folder: Path) -> tuple[list[str], dict]:
    """The command (under a stand-in slurmstepd) and environment of `sbatch code/pretrain.slurm`
    on the two simulated hosts, one task per host; the stand-ins record into `folder`."""
    bin_dir = folder / "bin"
    bin_dir.mkdir()
    for name, text in (("scontrol", FAKE_SCONTROL), ("srun", FAKE_SRUN)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    env = {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "PYTHON": sys.executable,
           "SIMULATED_HOSTS": " ".join(f"{ns}:{device}" for ns, _, device in hosts),
           "SIMULATED_LOGS": str(folder), "SLURM_JOB_NODELIST": f"{hosts[0][0][:-2]}-[a-b]",
           "SLURM_JOB_ID": str(PORT - 20000), "SLURM_CPUS_PER_TASK": "1",
           "SLURM_SUBMIT_DIR": str(ROOT), "OMP_NUM_THREADS": "1", "MASTER_PORT": None,
           "HF_TOKEN": "hf_secret_not_for_command_lines"}
    return [*STEPD, "bash"], env


@pytest.fixture(scope="module")
def slurm_two_hosts(hosts, tmp_path_factory):
    """code/pretrain.slurm as sbatch runs it, on two hosts with one task (one rank) each."""
    out = tmp_path_factory.mktemp("slurm") / "run"
    launcher, env = slurm_job(hosts, out.parent)
    done = run_script("--output_dir", out, *SHORT, launcher=launcher, script=SLURM, env=env)
    return out, done


def test_torchrun_on_two_hosts_is_one_job(torchrun_two_hosts):
    out, done = torchrun_two_hosts
    for status, log in done:
        assert status == 0, log[-3000:]
    check_outputs(out, done[0][1] + done[1][1], world_size=2)
    events = list((out / "runs").rglob("events.out.tfevents.*"))  # ...<host>.<pid>.<n>
    assert events and len({p.name.split(".")[-2] for p in events}) == 1, "rank 0 logs alone"


def test_pretrain_slurm_runs_one_task_per_rank_on_two_hosts(slurm_two_hosts, hosts):
    out, done = slurm_two_hosts
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-3000:]
    check_outputs(out, log, world_size=2)
    assert (out / "checkpoint-8" / "global_step8").is_dir(), "a DeepSpeed (ZeRO) checkpoint"
    # the optimizer state is split between the two ranks, one on each host
    assert len(list((out / "checkpoint-8" / "global_step8").glob("*optim_states.pt"))) == 2
    srun_env = (out.parent / "srun.env").read_text().splitlines()
    for setting in (f"MASTER_PORT={PORT}",  # derived from the job id
                    "SRUN_CPUS_PER_TASK=1", f"MASTER_ADDR={hosts[0][0]}"):
        assert setting in srun_env, setting
    task_command = (out.parent / "srun.args").read_text()
    assert "pretrain.py" in task_command and "deepspeed.launcher" not in task_command
    assert "hf_secret" not in task_command, "secrets travel in the environment only"
    assert not (out.parent / "scontrol.txt").exists(), "a job that finished is not requeued"


def test_output_folders_that_are_not_shared_stop_the_job_in_one_line(hosts, torchrun_two_hosts,
                                                                     tmp_path):
    """Node 1 writes to a folder node 0 cannot see (no shared filesystem): rank 0's choice of
    checkpoint is missing there, and the job ends with one line instead of a hang."""
    shared = tmp_path / "node0"
    shutil.copytree(torchrun_two_hosts[0] / "checkpoint-4", shared / "checkpoint-4")
    folders = [shared, tmp_path / "node1"]
    done = torchrun_on_each_host(hosts, tmp_path, lambda rank: [
        "--output_dir", folders[rank], *SHORT])
    assert [status for status, _ in done] == [1, 1]  # torchrun's status for a rank's exit 2
    assert ("pretrain.py: error: --output_dir: rank 0 resumes from checkpoint-4, which rank(s) 1 "
            "cannot see in") in done[0][1]
    assert "the output folder must be on a filesystem shared by every node" in done[0][1]
    assert "pretrain.py: error" not in done[1][1], "rank 0 alone prints the error"
    assert not folders[1].exists() or not list(folders[1].iterdir())


def test_hostfile_launch_forwards_the_job_environment_to_every_node(tmp_path):
    """The pdsh path starts remote nodes with only the variables it is told about: the job's
    hub, cache, offline and W&B settings and the user's own .deepspeed_env must be among them."""
    bin_dir, tmp = tmp_path / "bin", tmp_path / "tmp"
    bin_dir.mkdir()
    tmp.mkdir()
    stand_ins = {"ssh": "echo 127.0.0.1",  # the reachability check and `hostname -I`
                 "pdsh": f'printf "%s\\n" "$@" > {tmp_path}/pdsh.txt'}  # records the command
    for name, body in stand_ins.items():
        (bin_dir / name).write_text(f"#!/usr/bin/env bash\n{body}\n")
        (bin_dir / name).chmod(0o755)
    (tmp_path / "hostfile").write_text("node-a slots=1\nnode-b slots=1\n")
    (tmp_path / ".deepspeed_env").write_text("MY_CLUSTER_SETTING=1")  # no final newline
    job = {"HF_ENDPOINT": "https://hf-mirror.example", "HF_HOME": "/data/hf",
           "WANDB_MODE": "offline", "WANDB_PROJECT": "pretrain", "TOKENIZERS_PARALLELISM": "false"}
    done = run_script("--output_dir", "out", launcher=["bash"], script=LAUNCHER, cwd=tmp_path,
                      timeout=120, env={**job, "HOSTFILE": "hostfile", "NUM_PROCS": "1",
                                        "TMPDIR": str(tmp), "HF_TOKEN": "hf_secret",
                                        "WANDB_API_KEY": "secret",
                                        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"})
    assert done.returncode == 0, done.stderr[-3000:]
    command = (tmp_path / "pdsh.txt").read_text()
    assert "-w\nnode-a,node-b\n" in command
    for name, value in {**job, "MY_CLUSTER_SETTING": "1", "HF_HUB_OFFLINE": "1"}.items():
        assert f"export {name}={value};" in command, name
    assert "secret" not in command, "tokens are not put on the pdsh command line"
    assert not list(tmp.iterdir()), "the generated env file is not left behind"


# How a job is launched: (the launcher's command line, the script it starts)
Launch = tuple[list[str], Path]


def preempt(launch: Launch, args: list, env: dict, only=None) -> tuple[int, str]:
    """Start a job step as a scheduler runs it (under `stepd`) and, once it trains, SIGTERM every
    process of the step, launchers included; whatever is left when the task leader exits is
    killed. With `only`, signal just the step's processes whose command line it accepts instead
    (Slurm's `--signal` reaches the tasks of the job steps, not the batch shell). Returns the
    step's (status, log)."""
    launcher, script = launch
    proc = start_script(*args, launcher=[*STEPD, *launcher], script=script, env=env)

    def the_tasks():
        for process in psutil.Process(proc.pid).children(recursive=True):
            if only(process.cmdline()):
                process.send_signal(signal.SIGTERM)

    log = signal_once_training(proc, send=the_tasks if only else None)
    return proc.wait(timeout=TIMEOUT), log


def one_stop(log: str, out: Path) -> Path:
    """The checkpoint a preempted run saved: all ranks stopped at one step, rank 0 said so."""
    stops = re.findall(r"stopped at step (\d+) on SIGTERM", log)
    assert len(stops) == 1, log[-3000:]
    newest, _ = last_complete_checkpoint(out)
    assert newest is not None and newest.name == f"checkpoint-{stops[0]}", log[-3000:]
    assert not (out / "all_results.json").exists(), "a stopped run is not reported as finished"
    return newest


def refuse_and_change_nothing(two: Launch, args: list, env: dict, out: Path, stop: str) -> None:
    """A micro-batch that cannot make `stop`'s 8 sequences per step: one line, no file touched."""
    files = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    refused = run_script(*args, "--per_device_train_batch_size", "3", launcher=two[0],
                         script=two[1], env=env)
    assert refused.returncode != 0 and f'File "{SCRIPT}"' not in refused.stderr  # no traceback
    assert (f"pretrain.py: error: --output_dir: {stop} trained 8 sequences per optimizer "
            "step, which 2 process(es) x micro-batch 3 cannot make") in refused.stderr
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == files


def stop_shrink_grow(two: Launch, one: Launch, out: Path, env: dict, extra: tuple = (),
                     check_refusal: bool = False) -> tuple[int, str]:
    """A preempted job that comes back smaller, then at full size: world size 2 -> 1 -> 2.

    `two` (2 processes) trains from scratch until the scheduler preempts it, signalling every
    process of the step: all ranks stop at one step, save one checkpoint and exit 143. With
    `check_refusal`, the same command with a micro-batch that cannot make that checkpoint's step
    size refuses in one line and changes no file (`keep_step_size` refuses before any
    launcher-specific step, such as DeepSpeed's universal conversion, so the DeepSpeed flow alone
    checks it). `one` (1 process) continues until its own preemption, `two` runs to the planned
    step 8 (`extra`: more arguments). Returns the status and log of the first, preempted run.
    """
    args = ["--output_dir", str(out), *SHORT, *extra]
    env = {"OMP_NUM_THREADS": "1", **env}  # the threads of the reference runs
    status_two, log_two = preempt(two, args, env)
    first_stop = one_stop(log_two, out).name
    assert 1 <= int(first_stop[11:]) < 8
    if check_refusal:
        refuse_and_change_nothing(two, args, env, out, first_stop)

    status_one, log_one = preempt(one, args, env)
    assert status_one == 143, log_one[-3000:]
    assert (f"{first_stop} was saved by 2 process(es), this run has 1: gradient accumulation "
            "1 -> 2 keeps 8 sequences per optimizer step") in log_one
    second_stop, _ = last_complete_checkpoint(out)
    assert int(first_stop[11:]) < int(second_stop.name[11:]) < 8, "the 1 process trained, stopped"
    on_one = json.loads((second_stop / "trainer_state.json").read_text())
    assert on_one["num_input_tokens_seen"] == on_one["global_step"] * 8 * 128  # each token once
    assert saved_world_size(second_stop) == 1

    done = run_script(*args, launcher=two[0], script=two[1], env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    log_end = done.stdout + done.stderr
    assert f"{second_stop.name} was saved by 1 process(es), this run has 2" in log_end
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 8 and state["num_input_tokens_seen"] == 8 * 8 * 128
    return status_two, log_two


def test_preempted_job_shrinks_and_grows_under_torchrun(torchrun_two_hosts, tmp_path):
    reference, out = torchrun_two_hosts[0], tmp_path / "run"
    status, log = stop_shrink_grow(
        ([*TORCHRUN, "--shutdown-timeout", "300", "--nproc_per_node", "2",
          "--master_port", "29582"], SCRIPT), ([sys.executable, "-u"], SCRIPT), out, {})
    # torchrun, signalled too, waited for its ranks (--shutdown-timeout), then ends with status 1
    assert status == 1 and "SignalException: Process" in log, log[-3000:]
    assert same_losses(losses(out), losses(reference))


def test_preempted_bf16_deepspeed_job_shrinks_and_grows_under_pretrain_sh(slurm_two_hosts,
                                                                         tmp_path):
    """Per-node pretrain.sh (its torchrun in the signal path), DeepSpeed ZeRO-2 in bf16 with fp32
    gradient accumulation: 2 -> 1 -> 2 processes, each step's tokens counted once."""
    reference, out = slurm_two_hosts[0], tmp_path / "run"
    status, log = stop_shrink_grow((["bash"], LAUNCHER), (["env", "NUM_PROCS=1", "bash"], LAUNCHER),
                                   out, {**PER_NODE, "MASTER_PORT": "29583"},
                                   extra=("--bf16", "true"), check_refusal=True)
    assert status == 143, log[-3000:]  # llm_pretrain.launch exits with its ranks' status
    assert re.search(r"stepd: SIGTERM to \d+ processes: .*llm_pretrain\.launch", log)
    # the 2-process run loaded the 1-process checkpoint through DeepSpeed's universal form (the
    # first change of world size did too; --save_total_limit 2 has deleted that checkpoint)
    saved_by_one = [c for c in out.glob("checkpoint-*") if saved_world_size(c) == 1]
    assert len(saved_by_one) == 1
    for checkpoint in saved_by_one:
        step = checkpoint.name.split("-")[1]
        assert (checkpoint / "latest_universal").read_text() == f"global_step{step}_universal"
    final = sorted(out.glob("checkpoint-*/global_step*/mp_rank_00_model_states.pt"))[-1]
    weights = torch.load(final, weights_only=False)["module"]
    assert {t.dtype for t in weights.values()} == {torch.bfloat16}, "DeepSpeed trains in bf16"
    bf16, fp32 = losses(out), losses(reference)
    assert [s for s, _ in bf16] == [s for s, _ in fp32] == list(range(1, 9))
    assert max(abs(a - b) for (_, a), (_, b) in zip(bf16, fp32, strict=True)) < 0.1, (bf16, fp32)


def test_preemption_waits_for_a_save_longer_than_30_seconds(slurm_two_hosts, tmp_path):
    """Each rank's first write takes 40 s (a busy network filesystem): a launcher that kills 30 s
    after the signal (torchrun's default, DeepSpeed's launcher) would leave half a checkpoint."""
    reference, out = slurm_two_hosts[0], tmp_path / "run"
    args = ["--output_dir", str(out), *SHORT]
    env = {**PER_NODE, "MASTER_PORT": "29584", "OMP_NUM_THREADS": "1"}
    status, log = preempt((["bash"], LAUNCHER), args, {**env, **SLOW_SAVE})
    assert status == 143, log[-3000:]
    assert is_complete_checkpoint(one_stop(log, out))
    done = run_script(*args, launcher=["bash"], script=LAUNCHER, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert same_losses(losses(out), losses(reference))


def test_slurm_requeues_at_the_time_limit_not_after_scancel(hosts, slurm_two_hosts, tmp_path):
    """--signal=TERM@300 reaches the tasks of the step: the ranks save and the batch shell requeues
    the job. A preemption or `scancel` signals every process of the job, the batch shell too: the
    ranks save, and the script does not requeue. The requeued job finishes with the same losses."""
    reference, out = slurm_two_hosts[0], tmp_path / "run"
    launcher, env = slurm_job(hosts, tmp_path)
    args = ["--output_dir", str(out), *SHORT]
    requeued = tmp_path / "scontrol.txt"

    status, log = preempt((launcher, SLURM), args, env,
                          only=lambda cmd: len(cmd) > 1 and cmd[1].endswith("pretrain.py"))
    assert status == 143, log[-3000:]
    one_stop(log, out)
    assert requeued.read_text() == f"requeue {PORT - 20000}\n"

    status, log = preempt((launcher, SLURM), args, env)
    assert status == 143 and "pretrain.slurm: SIGTERM, waiting for the ranks to save" in log
    one_stop(log, out)
    assert requeued.read_text() == f"requeue {PORT - 20000}\n", "scancel does not requeue"

    done = run_script(*args, launcher=launcher, script=SLURM, env=env)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert same_losses(losses(out), losses(reference))


def stream_state(checkpoint: Path, rank: int) -> tuple[int, int]:
    """(pass, documents of the rank's share read in it) from a saved data-loader state."""
    state = torch.load(checkpoint / f"dataloader_rank{rank}.pt", weights_only=False)

    def positions(node):
        if isinstance(node, dict):
            yield node.get("shard_example_idx", 0)
            for value in node.values():
                yield from positions(value)

    return state["dataset_state"]["epoch"], max(positions(state["dataset_state"]))


def test_unequal_stream_files_on_two_ranks_are_read_evenly(tmp_path):
    """Files of 100 and 300 documents, streamed by 2 ranks for more steps than one pass holds.
    Split by files, one rank would read the small file three times while the other read the big
    one once, and the steps where a pass ends would be short. Each rank gets every second
    document of both files instead (200 each), the ranks end each pass together, and every step
    trains 2 x 4 full blocks."""
    lines = (ROOT / "assets" / "corpus" / "seq_monkey_sample.jsonl").read_text().splitlines()
    files = [tmp_path / "small.jsonl", tmp_path / "big.jsonl"]
    files[0].write_text("\n".join(lines[:100]) + "\n")
    files[1].write_text("\n".join(lines[100:400]) + "\n")
    out = tmp_path / "run"
    done = run_script("--output_dir", out, "--train_files", *files, "--streaming", "true",
                      "--max_steps", "70", "--per_device_train_batch_size", "4",
                      "--logging_steps", "1", "--save_steps", "70", "--eval_strategy", "no",
                      "--validation_split_percentage", "0", "--warmup_steps", "2",
                      launcher=[*TORCHRUN, "--nproc_per_node", "2", "--master_port", "29585"],
                      env={"OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    state = json.loads((out / "trainer_state.json").read_text())
    seen = [h["num_input_tokens_seen"] for h in state["log_history"] if "loss" in h]
    steps = {b - a for a, b in zip([0, *seen[:-1]], seen, strict=True)}
    assert len(seen) == 70 and steps == {2 * 4 * 128}, "every step trains 8 full blocks"
    # one pass holds 55 steps (221 blocks a rank): both ranks are in their second pass, and
    # each has read its whole share of 200 documents once before
    assert [stream_state(out / "checkpoint-70", rank) for rank in (0, 1)] == [(1, 200), (1, 200)]
