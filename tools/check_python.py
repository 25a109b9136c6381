"""Refuse, in one line, an interpreter the course is not pinned for (`make setup` runs this first).

The pins in requirements.txt (torch 2.13.0, deepspeed 0.19.8, ...) are tested on Python 3.11 only.
Kept to syntax every Python 3 can parse, so an old interpreter gets the message, not an error.
"""

import sys

if sys.version_info[:2] != (3, 11):
    found = "{}.{}.{}".format(*sys.version_info[:3])
    sys.stderr.write(
        "make setup: error: the course needs Python 3.11, found {} at {}; get 3.11 with "
        "`conda env create -f environment.yml`, `uv python install 3.11` or `pyenv install 3.11`, "
        "then `make setup PYTHON=/path/to/python3.11` (or delete .venv if it was made with "
        "another Python)\n".format(found, sys.executable))
    sys.exit(2)
