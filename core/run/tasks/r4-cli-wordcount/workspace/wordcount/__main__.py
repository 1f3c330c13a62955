"""`python -m wordcount`: see TASK.md."""

import sys


def main(argv=None):
    print("wordcount: not written yet", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
