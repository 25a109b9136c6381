# GENERATED from chapters/*.ipynb by tools/export.py: edit the notebooks instead.
"""`python -m llm_pretrain.launch TORCHRUN_ARGS`: torchrun for code/pretrain.sh, where a rank's
failure is one line and the exit status is the rank's (2 for bad input, 143 after a SIGTERM)."""

import sys

from torch.distributed import run as torchrun
from torch.distributed.elastic.multiprocessing import SignalException
from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

__all__ = ["main"]


# ---- chapters/05_script.ipynb, cell 37 ----
def main(argv: list[str] | None = None) -> None:
    """Run torchrun; end with the first failed rank's status instead of torchrun's traceback."""
    try:
        torchrun.run(torchrun.parse_args(argv))
    except ChildFailedError as err:
        rank, failure = err.get_first_failure()
        code = failure.exitcode if failure.exitcode > 0 else 128 - failure.exitcode
        print(f"pretrain.sh: rank {rank} exited with status {code}", file=sys.stderr)
        sys.exit(code)
    except SignalException as err:  # the agent has waited for its ranks (--shutdown-timeout)
        sys.exit(128 + err.sigval)


if __name__ == "__main__":
    main()
