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
import time
from pathlib import Path

import psutil
import pytest

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
    start_script,
)
from llm_pretrain.resume import last_complete_checkpoint, saved_world_size

pytestmark = pytest.mark.slow  # every test here launches several processes
PORT = 29581  # the rendezvous port inside the namespaces (each has its own port space)
ETC_NETNS = Path("/etc/netns")
# Stand-ins for Slurm's commands: `scontrol show hostnames` names the hosts, `srun` runs its
# command once on each simulated host with that node's SLURM_NODEID, as one task per node does.
FAKE_SCONTROL = """#!/usr/bin/env bash
printf '%s\\n' $SIMULATED_HOSTS | cut -d: -f1
"""
FAKE_SRUN = """#!/usr/bin/env bash
while [[ "$1" == -* ]]; do shift; done
node=0
for host in $SIMULATED_HOSTS; do
  SLURM_NODEID=$node GLOO_SOCKET_IFNAME=${host#*:} ip netns exec "${host%%:*}" "$@" \\
    > "$SIMULATED_LOGS/node$node.log" 2>&1 &
  node=$((node + 1))
done
status=0
for job in $(jobs -p); do wait "$job" || status=$?; done
exit $status
"""


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


@pytest.fixture(scope="module")
def slurm_two_hosts(hosts, tmp_path_factory):
    """code/pretrain.slurm as sbatch runs it, on two hosts with one process each."""
    out = tmp_path_factory.mktemp("slurm") / "run"
    bin_dir = out.parent / "bin"
    bin_dir.mkdir()
    for name, text in (("scontrol", FAKE_SCONTROL), ("srun", FAKE_SRUN)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    env = {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
           "SIMULATED_HOSTS": " ".join(f"{ns}:{device}" for ns, _, device in hosts),
           "SIMULATED_LOGS": str(out.parent), "SLURM_JOB_NODELIST": f"{hosts[0][0][:-2]}-[a-b]",
           "SLURM_JOB_NUM_NODES": "2", "SLURM_SUBMIT_DIR": str(ROOT), "MASTER_PORT": str(PORT),
           "NUM_PROCS": "1", "OMP_NUM_THREADS": "1"}
    done = run_script("--output_dir", out, *SHORT, launcher=["bash"],
                      script=ROOT / "code" / "pretrain.slurm", cwd=out.parent, env=env)
    logs = [(out.parent / f"node{n}.log").read_text() for n in range(2)]
    return out, done, logs


def test_torchrun_on_two_hosts_is_one_job(torchrun_two_hosts):
    out, done = torchrun_two_hosts
    for status, log in done:
        assert status == 0, log[-3000:]
    check_outputs(out, done[0][1] + done[1][1], world_size=2)
    events = list((out / "runs").rglob("events.out.tfevents.*"))  # ...<host>.<pid>.<n>
    assert events and len({p.name.split(".")[-2] for p in events}) == 1, "rank 0 logs alone"


def test_pretrain_slurm_runs_pretrain_sh_per_node_on_two_hosts(slurm_two_hosts, hosts):
    out, done, logs = slurm_two_hosts
    assert done.returncode == 0, done.stderr[-2000:] + "".join(log[-2000:] for log in logs)
    check_outputs(out, "".join(logs), world_size=2)
    assert (out / "checkpoint-8" / "global_step8").is_dir(), "a DeepSpeed (ZeRO) checkpoint"
    # the optimizer state is split between the two ranks, one on each host
    assert len(list((out / "checkpoint-8" / "global_step8").glob("*optim_states.pt"))) == 2
    for rank, log in enumerate(logs):  # DeepSpeed's per-node (--no_ssh) launch, node 0's name
        assert f"--master_addr={hosts[0][0]} --master_port={PORT} --node_rank={rank}" in log


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
                                        "TMPDIR": str(tmp),
                                        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"})
    assert done.returncode == 0, done.stderr[-3000:]
    command = (tmp_path / "pdsh.txt").read_text()
    assert "-w\nnode-a,node-b\n" in command
    for name, value in {**job, "MY_CLUSTER_SETTING": "1", "HF_HUB_OFFLINE": "1"}.items():
        assert f"export {name}={value};" in command, name
    assert not list(tmp.iterdir()), "the generated env file is not left behind"


def rank_processes(launched: subprocess.Popen) -> list[psutil.Process]:
    """The processes that run pretrain.py: the launched one itself or a launcher's children."""
    found = []
    launched = psutil.Process(launched.pid)
    for process in (launched, *launched.children(recursive=True)):
        cmdline = " ".join(process.cmdline())
        launcher = "deepspeed.launcher" in cmdline or "torch.distributed.run" in cmdline
        if str(SCRIPT) in cmdline and not launcher:
            found.append(process)
    return found


# How a job is launched: (the launcher's command line, the script it starts)
Launch = tuple[list[str], Path]


def sigterm_every_rank(launch: Launch, args: list, env: dict, ranks: int = 2) -> tuple[int, str]:
    """Start a run, SIGTERM each of its ranks once training runs, return (status, log)."""
    launcher, script = launch
    proc = start_script(*args, launcher=launcher, script=script, env=env)
    log = []
    for line in proc.stdout:  # wait until the ranks train
        log.append(line)
        if "'loss'" in line:
            break
    found = rank_processes(proc)
    assert len(found) == ranks, log[-20:]
    for rank in found:  # at slightly different moments, as a scheduler's signals arrive
        rank.send_signal(signal.SIGTERM)
        time.sleep(0.2)
    log.append(proc.stdout.read())
    return proc.wait(timeout=300), "".join(log)


def refuse_and_change_nothing(two: Launch, args: list, env: dict, out: Path, stop: str) -> None:
    """A micro-batch that cannot make `stop`'s 8 sequences per step: one line, no file touched."""
    files = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    refused = run_script(*args, "--per_device_train_batch_size", "3", launcher=two[0],
                         script=two[1], env=env)
    assert refused.returncode != 0 and f'File "{SCRIPT}"' not in refused.stderr  # no traceback
    assert (f"pretrain.py: error: --output_dir: {stop} trained 8 sequences per optimizer "
            "step, which 2 process(es) x micro-batch 3 cannot make") in refused.stderr
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == files


def stop_shrink_grow(two: Launch, one: Launch, out: Path, env: dict,
                     check_refusal: bool = False) -> tuple[int, str]:
    """A preempted job that comes back smaller, then at full size: world size 2 -> 1 -> 2.

    `two` (2 processes) trains from scratch until every rank gets a SIGTERM: all stop at one
    step, save one checkpoint and exit 143. With `check_refusal`, the same command with a
    micro-batch that cannot make that checkpoint's step size refuses in one line and changes no
    file (`keep_step_size` refuses before any launcher-specific step, such as DeepSpeed's
    universal conversion, so the DeepSpeed flow alone checks it). `one` (1 process) continues
    until its own SIGTERM, `two` runs to the planned step 8. Returns the status and log of the
    first, preempted run.
    """
    args = ["--output_dir", str(out), *SHORT]
    env = {"OMP_NUM_THREADS": "1", **env}  # the threads of the reference runs
    status_two, log_two = sigterm_every_rank(two, args, env)
    stops = re.findall(r"stopped at step (\d+) on SIGTERM", log_two)
    assert len(stops) == 1, log_two[-3000:]  # all ranks stop, rank 0 says so
    first_stop = f"checkpoint-{stops[0]}"
    newest, _ = last_complete_checkpoint(out)
    assert newest.name == first_stop and 1 <= int(stops[0]) < 8
    assert not (out / "all_results.json").exists(), "a stopped run is not reported as finished"
    if check_refusal:
        refuse_and_change_nothing(two, args, env, out, first_stop)

    status_one, log_one = sigterm_every_rank(one, args, env, ranks=1)
    assert status_one == 143, log_one[-3000:]
    assert (f"{first_stop} was saved by 2 process(es), this run has 1: gradient accumulation "
            "1 -> 2 keeps 8 sequences per optimizer step") in log_one
    second_stop, _ = last_complete_checkpoint(out)
    assert int(stops[0]) < int(second_stop.name[11:]) < 8, "the 1-process run trained and stopped"
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
        ([*TORCHRUN, "--nproc_per_node", "2", "--master_port", "29582"], SCRIPT),
        ([sys.executable, "-u"], SCRIPT), out, {})
    assert status == 1 and "exitcode  : 143" in log, log[-3000:]  # torchrun reports 143 as 1
    assert same_losses(losses(out), losses(reference))


def test_preempted_job_shrinks_and_grows_under_the_deepspeed_launcher(slurm_two_hosts, tmp_path):
    reference, out = slurm_two_hosts[0], tmp_path / "run"
    status, log = stop_shrink_grow((["bash"], LAUNCHER), (["env", "NUM_PROCS=1", "bash"], LAUNCHER),
                                   out, {"MASTER_PORT": "29583"}, check_refusal=True)
    assert status == 143, log[-3000:]
    # the 2-process run loaded the 1-process checkpoint through DeepSpeed's universal form (the
    # first change of world size did too; --save_total_limit 2 has deleted that checkpoint)
    saved_by_one = [c for c in out.glob("checkpoint-*") if saved_world_size(c) == 1]
    assert len(saved_by_one) == 1
    for checkpoint in saved_by_one:
        step = checkpoint.name.split("-")[1]
        assert (checkpoint / "latest_universal").read_text() == f"global_step{step}_universal"
    assert same_losses(losses(out), losses(reference))
