import collections
import sys


def main(argv=None):
    args = sys.argv[1:] if argv is None else argv
    counts = collections.Counter()
    for name in args:
        with open(name) as fh:
            counts.update(fh.read().split())
    for word, count in counts.most_common(10):
        print(f"{count}\t{word}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
