"""A slow filesystem for the preemption tests: with SLOW_SAVE_SECONDS set, the first `torch.save`
of each process waits that long before it writes (a checkpoint on a busy network filesystem)."""

import os

if os.environ.get("SLOW_SAVE_SECONDS"):
    import time

    import torch

    _save = torch.save
    _waited = []

    def slow_save(*args, **kwargs):
        if not _waited:
            _waited.append(True)
            time.sleep(float(os.environ["SLOW_SAVE_SECONDS"]))
        return _save(*args, **kwargs)

    torch.save = slow_save
