"""`python -m wordcount [--top N] [--ignore-case] FILE...`: the most common words."""

import argparse
import collections
import re
import sys

WORD = re.compile(r"[A-Za-z0-9']+")


def positive(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def main(argv=None):
    parser = argparse.ArgumentParser(prog="wordcount")
    parser.add_argument("--top", type=positive, default=10)
    parser.add_argument("--ignore-case", action="store_true")
    parser.add_argument("files", nargs="+", metavar="FILE")
    args = parser.parse_args(argv)
    counts = collections.Counter()
    for name in args.files:
        try:
            if name == "-":
                text = sys.stdin.read()
            else:
                with open(name, encoding="utf-8") as fh:
                    text = fh.read()
        except (OSError, UnicodeDecodeError):
            print(f"wordcount: cannot read {name}", file=sys.stderr)
            return 2
        words = WORD.findall(text)
        counts.update(w.lower() for w in words) if args.ignore_case else counts.update(words)
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    for word, count in ranked[: args.top]:
        print(f"{count}\t{word}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
