"""A stand-in for slurmstepd (or a container run by `tini -g`): runs one job step.

    python tests/stepd.py COMMAND...

COMMAND is the step's task leader. Every process it starts stays in the step, even after its
parent has exited (this process is their child subreaper), as in the step's cgroup. A SIGTERM to
stepd reaches every process of the step at once, launchers included, as `scancel`, a preemption or
`--signal` deliver it; once the task leader exits, whatever is left of the step is SIGKILLed.
stepd exits with the task leader's status and says on stderr what it did.
"""

import ctypes
import signal
import subprocess
import sys

import psutil

PR_SET_CHILD_SUBREAPER = 36


def step_processes() -> list[psutil.Process]:
    return psutil.Process().children(recursive=True)


def send(processes: list[psutil.Process], signum: int) -> list[str]:
    names = []
    for process in processes:
        try:
            names.append(" ".join(process.cmdline()[:3]))
            process.send_signal(signum)
        except psutil.NoSuchProcess:
            pass
    return names


def main() -> None:
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    leader = subprocess.Popen(sys.argv[1:])

    def terminate(signum, frame):
        names = send(step_processes(), signal.SIGTERM)
        print(f"stepd: SIGTERM to {len(names)} processes: {names}", file=sys.stderr, flush=True)

    signal.signal(signal.SIGTERM, terminate)
    status = leader.wait()
    left = step_processes()
    killed = send(left, signal.SIGKILL)
    psutil.wait_procs(left, timeout=30)
    print(f"stepd: task leader exited with {status}; SIGKILL to {len(killed)} left: {killed}",
          file=sys.stderr, flush=True)
    sys.exit(status if status >= 0 else 128 - status)


if __name__ == "__main__":
    main()
