"""Run as ``python -I _exec_child.py PARENT_PID -- ARGV...``: exec ARGV so that it dies with
its parent.

Linux's ``prctl(PR_SET_PDEATHSIG, SIGTERM)`` asks the kernel to send SIGTERM when the
process that started us dies, even by SIGKILL (Ray kills a stopped trial's actor; nothing
in it runs afterwards). It survives ``exec``, so it holds for the training script itself.
It is set here rather than in ``subprocess``'s ``preexec_fn``, which is unsafe in a process
with threads (a Ray worker has many). Standard library only: nothing of the package is
imported, so this costs one bare interpreter start.
"""

import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def main() -> None:
    parent = int(sys.argv[1])
    argv = sys.argv[3:]
    if sys.platform.startswith("linux"):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
            print("orchestrator: prctl(PR_SET_PDEATHSIG) failed", file=sys.stderr)
    if os.getppid() != parent:
        # the parent died between fork and prctl: nobody would stop us later
        sys.exit(1)
    try:
        os.execvp(argv[0], argv)
    except OSError as exc:
        print(f"orchestrator: cannot run {argv[0]!r}: {exc}", file=sys.stderr)
        sys.exit(127)


if __name__ == "__main__":
    main()
