"""The `keyface` command line: one entry point, subcommands registered by each module of this package."""
from __future__ import annotations

import argparse
import logging
import os
import sys

from keyface.data.errors import KeyfaceError

log = logging.getLogger("keyface")

KEYPOINT_VERBS = {"train", "eval", "predict", "-h", "--help"}


class OneLineParser(argparse.ArgumentParser):
    """argparse with keyface's one-line errors (no usage block): `keyface: error: ...`, exit 2."""

    def error(self, message: str):
        self.exit(2, f"keyface: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    from keyface.recognition.cli import (bench, classify, cluster, commands, compare, demo, keypoints, train,
                                         weights)

    parser = OneLineParser(prog="keyface", description="Face recognition built on facial keypoints.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    keypoints.register(sub)
    commands.register(sub)
    demo.register(sub)
    train.register(sub)
    bench.register(sub)
    weights.register(sub)
    cluster.register(sub)
    classify.register(sub)
    compare.register(sub)
    return parser


def _normalise_argv(argv: list[str]) -> list[str]:
    """`keyface keypoints PHOTO...` means `keyface keypoints predict PHOTO...`."""
    for i, word in enumerate(argv):
        if word == "keypoints":
            if i + 1 < len(argv) and argv[i + 1] not in KEYPOINT_VERBS:
                return argv[: i + 1] + ["predict"] + argv[i + 1:]
            return argv
        if not word.startswith("-"):
            return argv
    return argv


def main(argv: list[str] | None = None) -> int:
    """Run keyface; user errors print one line to stderr and return a non-zero exit code."""
    for stream in (sys.stdout, sys.stderr):  # a file name that is not UTF-8 must not crash a report
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    argv = _normalise_argv(list(sys.argv[1:] if argv is None else argv))
    debug = "--debug" in argv
    logging.basicConfig(level=logging.DEBUG if debug else logging.INFO, format="%(message)s")
    if not debug:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error already printed in one line
        return int(exc.code or 0)
    try:
        return int(args.func(args) or 0)
    except KeyfaceError as exc:
        print(f"keyface: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("keyface: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug, not bad input: still one line unless --debug asks for more
        if debug:
            raise
        first = (str(exc).splitlines() or [""])[0][:300]  # one line, however long the exception's text
        print(f"keyface: internal error: {exc.__class__.__name__}: {first} (run with --debug for details)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
