"""Child process for the crash and concurrency tests (run as a script, not collected).

toggle PATH N: alternate nested enable/disable N times (N=0: forever), print
how many calls succeeded.  Prints "ready" first so the parent knows the
interpreter is up before it starts killing.
"""

from __future__ import annotations

import sys

from hostrefresh.l0 import AlreadyError, open_l0


def main() -> None:
    path, n = sys.argv[1], int(sys.argv[2])
    ok = queries = 0
    with open_l0("sim", path) as l0:
        print("ready", flush=True)
        i = 0
        while n == 0 or i < n:
            try:
                if l0.query().nested:
                    l0.nested_disable()
                else:
                    l0.nested_enable()
                ok += 1
            except AlreadyError:
                pass  # another process flipped it between our query and our call
            queries += 1
            i += 1
    print(f"{ok} {queries}", flush=True)


if __name__ == "__main__":
    main()
