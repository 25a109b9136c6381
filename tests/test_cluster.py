"""The script on a cluster, simulated on one CPU machine: two hosts, launchers, preemption.

Two hosts are two network namespaces joined by a veth pair (addresses exist only inside them) on
one disk, which plays the shared filesystem. Each host runs its own launcher command, as Slurm's
`srun` or a Kubernetes pod would. The namespaces are removed even when a test fails.
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import time

import psutil
import pytest

from conftest import ROOT, SHORT, check_outputs, losses, same_losses

SCRIPT = ROOT / "code" / "pretrain.py"
LAUNCHER = ROOT / "code" / "pretrain.sh"
TORCHRUN = [sys.executable, "-m", "torch.distributed.run"]
PORT = 29581  # the rendezvous port inside the namespaces (each has its own port space)


def sh(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True, timeout=30)


@pytest.fixture(scope="module")
def hosts():
    """[(namespace, address, interface)] of two simulated hosts; node 0 is the first."""
    if os.geteuid() != 0 or not shutil.which("ip"):
        pytest.skip("simulated hosts need root and iproute2 (`ip netns`)")
    tag = f"pt{os.getpid() % 100000}"
    pair = [(f"{tag}-a", "10.77.0.1", f"{tag}a"), (f"{tag}-b", "10.77.0.2", f"{tag}b")]
    try:
        for ns, _, _ in pair:
            sh("ip", "netns", "add", ns)
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


def on_each_host(hosts, logs, command, **env) -> list[tuple[int, str]]:
    """Run `command(node_rank)` on every host at once, one thread per process: (status, log)."""
    procs = []
    for rank, (ns, _, device) in enumerate(hosts):
        host_env = {**os.environ, "GLOO_SOCKET_IFNAME": device, "OMP_NUM_THREADS": "1", **env}
        with (logs / f"node{rank}.log").open("w") as log:
            procs.append(subprocess.Popen(["ip", "netns", "exec", ns, *command(rank)], cwd=ROOT,
                                          env=host_env, stdin=subprocess.DEVNULL, stdout=log,
                                          stderr=subprocess.STDOUT))
    try:
        return [(p.wait(timeout=600), (logs / f"node{rank}.log").read_text())
                for rank, p in enumerate(procs)]
    finally:
        for p in procs:
            p.kill()


@pytest.fixture(scope="module")
def torchrun_two_hosts(hosts, tmp_path_factory):
    out = tmp_path_factory.mktemp("torchrun") / "run"
    master = hosts[0][1]
    done = on_each_host(hosts, out.parent, lambda rank: [
        *TORCHRUN, "--nnodes", "2", "--node_rank", str(rank), "--nproc_per_node", "1",
        "--master_addr", master, "--master_port", str(PORT), str(SCRIPT), "--output_dir", str(out),
        "--report_to", "tensorboard", *SHORT])
    return out, done


@pytest.fixture(scope="module")
def deepspeed_two_hosts(hosts, tmp_path_factory):
    out = tmp_path_factory.mktemp("deepspeed") / "run"
    done = on_each_host(hosts, out.parent, lambda rank: [
        "env", f"NODE_RANK={rank}", "bash", str(LAUNCHER), "--output_dir", str(out), *SHORT],
                        NNODES="2", MASTER_ADDR=hosts[0][1], MASTER_PORT=str(PORT), NUM_PROCS="1")
    return out, done


def test_torchrun_on_two_hosts_is_one_job(torchrun_two_hosts):
    out, done = torchrun_two_hosts
    for status, log in done:
        assert status == 0, log[-3000:]
    check_outputs(out, done[0][1] + done[1][1], world_size=2)
    events = list((out / "runs").rglob("events.out.tfevents.*"))  # ...<host>.<pid>.<n>
    assert events and len({p.name.split(".")[-2] for p in events}) == 1, "rank 0 logs alone"


def test_pretrain_sh_per_node_on_two_hosts_is_one_job(deepspeed_two_hosts):
    out, done = deepspeed_two_hosts
    for status, log in done:
        assert status == 0, log[-3000:]
    log = done[0][1] + done[1][1]
    check_outputs(out, log, world_size=2)
    assert (out / "checkpoint-8" / "global_step8").is_dir(), "a DeepSpeed (ZeRO) checkpoint"
    # the optimizer state is split between the two ranks, one on each host
    assert len(list((out / "checkpoint-8" / "global_step8").glob("*optim_states.pt"))) == 2
    assert "ds_config_zero2.json" in log
    for rank, (_, node_log) in enumerate(done):  # DeepSpeed's per-node (--no_ssh) launch
        assert f"--master_addr=10.77.0.1 --master_port={PORT} --node_rank={rank}" in node_log


def rank_processes(launcher: subprocess.Popen) -> list[psutil.Process]:
    """The processes that run pretrain.py under a launcher (not the launcher's own)."""
    found = []
    for child in psutil.Process(launcher.pid).children(recursive=True):
        cmdline = " ".join(child.cmdline())
        if str(SCRIPT) in cmdline and "deepspeed.launcher" not in cmdline:
            found.append(child)
    return found


def sigterm_every_rank(command: list[str], env: dict) -> tuple[int, str]:
    """Start a 2-process run, SIGTERM each rank once training runs, return (status, log)."""
    proc = subprocess.Popen(command, cwd=ROOT, env=env, text=True, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    log = []
    for line in proc.stdout:  # wait until the ranks train
        log.append(line)
        if "'loss'" in line:
            break
    ranks = rank_processes(proc)
    assert len(ranks) == 2, log[-20:]
    for rank in ranks:  # at slightly different moments, as a scheduler's signals arrive
        rank.send_signal(signal.SIGTERM)
        time.sleep(0.2)
    log.append(proc.stdout.read())
    return proc.wait(timeout=300), "".join(log)


def stop_and_rerun(pretrain, command: list[str], out, other_world=None, **env):
    """SIGTERM every rank, check the one agreed checkpoint, rerun the same command to the end.

    `other_world` (extra environment) first reruns with another world size, which must refuse.
    """
    env = {**os.environ, "OMP_NUM_THREADS": "1", **env}  # the threads of the reference runs
    status, log = sigterm_every_rank(command, env)
    stops = re.findall(r"stopped at step (\d+) on SIGTERM", log)
    assert len(stops) == 1, log[-3000:]  # all ranks stop, rank 0 says so
    newest, _ = pretrain.last_complete_checkpoint(out)
    assert newest.name == f"checkpoint-{stops[0]}" and 1 <= int(stops[0]) < 8
    assert not (out / "all_results.json").exists(), "a stopped run is not reported as finished"
    if other_world:
        files = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
        refused = subprocess.run(command, cwd=ROOT, env={**env, **other_world}, text=True,
                                 capture_output=True, timeout=600, stdin=subprocess.DEVNULL)
        assert refused.returncode == 2 and "Traceback" not in refused.stderr, refused.stderr
        assert (f"pretrain.py: error: --output_dir: {newest.name} was saved by 2 process(es) at "
                "micro-batch 4, this run has 1 at 4") in refused.stderr
        assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == files
    rerun = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                           timeout=600, stdin=subprocess.DEVNULL)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    return status, log


def test_sigterm_to_every_rank_under_torchrun(torchrun_two_hosts, tmp_path, pretrain):
    reference, _ = torchrun_two_hosts
    out = tmp_path / "run"
    status, log = stop_and_rerun(pretrain, [
        *TORCHRUN, "--nproc_per_node", "2", "--master_port", "29582", str(SCRIPT),
        "--output_dir", str(out), *SHORT], out)
    assert status == 1 and "exitcode  : 143" in log, log[-3000:]  # torchrun reports 143 as 1
    assert same_losses(losses(out), losses(reference))


def test_sigterm_to_every_rank_under_the_deepspeed_launcher(deepspeed_two_hosts, tmp_path,
                                                           pretrain):
    reference, _ = deepspeed_two_hosts
    out = tmp_path / "run"
    status, log = stop_and_rerun(pretrain, ["bash", str(LAUNCHER), "--output_dir", str(out),
                                            *SHORT], out, other_world={"NUM_PROCS": "1"},
                                 MASTER_PORT="29583")
    assert status == 143, log[-3000:]
    assert same_losses(losses(out), losses(reference))
