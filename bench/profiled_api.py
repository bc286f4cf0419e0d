"""`python -m bench.profiled_api OUT`: the API as `python -m api` runs it, profiled on demand.

cProfile starts on SIGUSR1 and stops on SIGUSR2, writing its stats to OUT, so that the profile
holds the wallet calls sent in between and not the imports and start-up before them.
"""

from __future__ import annotations

import cProfile
import signal
import sys
import time
from pathlib import Path

import api.__main__


def main() -> None:
    out = Path(sys.argv[1])
    profiler = cProfile.Profile(time.thread_time)  # CPU time: waits in epoll are not work

    def start(_signum: int, _frame: object) -> None:
        profiler.enable()

    def stop(_signum: int, _frame: object) -> None:
        profiler.disable()
        profiler.dump_stats(out)

    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, stop)
    api.__main__.main()


if __name__ == "__main__":
    main()
