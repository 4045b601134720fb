"""`python -m startbench.workload`: the entry point of every framework image.

The first statement takes the interpreter_ready timestamp; nothing else is imported before it (the
package's __init__ files import nothing). The framework is imported later, as a measured phase.
"""

import time

_ANCHOR = (time.time_ns(), time.monotonic_ns())

import os  # noqa: E402
import sys  # noqa: E402

from startbench.workload.runner import main  # noqa: E402

if __name__ == "__main__":
    code = main(sys.argv[1:], anchor=_ANCHOR)
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip interpreter teardown: frameworks may log at exit, and the report must stay the last line.
    os._exit(code)
