"""The `keyface` command line: one entry point, subcommands registered by each module of this package, and
the photo arguments checked (folders expanded) before any model loads."""
from __future__ import annotations

import argparse
import atexit
import io
import logging
import os
import sys
import threading
from pathlib import Path
from typing import Callable

from keyface.data.errors import KeyfaceError
from keyface.data.files import URL, shown
from keyface.data.paths import uris_masked
from keyface.recognition.cli.hints import with_hint
from keyface.runtime.networks import NATIVE_NOISE
from keyface.runtime.provenance import keyface_version

log = logging.getLogger("keyface")

KEYPOINT_VERBS = {"train", "eval", "predict", "-h", "--help"}
# Which module registers each command: a run builds only its own command's parser, so a mistake in the
# arguments is reported without importing the other commands' libraries (scikit-learn alone takes seconds).
MODULES = {"keypoints": "keypoints", "demo": "demo", "train": "train", "calibrate": "train", "bench": "bench",
           "weights": "weights", "export": "weights", "cluster": "cluster", "classify": "classify", "compare": "compare", "serve": "serve",
           **dict.fromkeys(["enroll", "enrol"], "enrolling"), "identify": "commands", "verify": "photos", "embed": "photos",
           **dict.fromkeys(["people", "rename", "remove", "train-head", "reindex", "check", "migrate"], "galleries")}
ORDER = ["keypoints", "enrolling", "commands", "photos", "galleries", "demo", "train", "bench", "weights", "cluster", "classify", "compare", "serve"]
# Commands that only run models on a few photos: on a machine with a GPU they stay on the CPU (as
# documented: "everything runs offline on a CPU") and CUDA's start-up messages never appear.
CPU_COMMANDS = {"enroll", "enrol", "identify", "verify", "embed", "cluster", "demo", "reindex", "train-head", "classify",
                "people", "rename", "remove", "check", "migrate"}
NOISY_LOGGERS = ("absl", "tensorflow", "keras", "h5py", "matplotlib", "PIL", "jax", "faiss")
PIPE_CLOSED = 128 + 13  # the reader went away (`| head`): the status a shell gives a tool SIGPIPE ended, never 1
# (which verify uses for "different people") nor 2 (an error)


class OneLineParser(argparse.ArgumentParser):
    """argparse with keyface's one-line errors (no usage block): `keyface: error: ...`, exit 2."""
    command: str | None = None  # the command named, whose help the top parser's errors point to

    def error(self, message: str):
        # argparse reports a command's extra arguments from the top parser: point to that command's help
        prog = f"{self.prog} {self.command}" if self.command and message.startswith("unrecognized") else self.prog
        self.exit(2, f"keyface: error: {uris_masked(message)} (see `{prog} --help`)\n")  # argparse echoes arguments


class VersionAction(argparse.Action):
    """--version, looked up only when asked for: the other commands never read the package's metadata."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings, dest, nargs=0, default=default, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"keyface {keyface_version()}")  # on stdout, as argparse's own version action prints it
        parser.exit()


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The argument parser with every subcommand (or, given a command's name, with only its module's)."""
    parser = OneLineParser(prog="keyface", description="Face recognition built on facial keypoints.")
    parser.command = command if command in MODULES else None
    parser.add_argument("--debug", action="store_true",
                        help="show tracebacks, debug logging and TensorFlow's own messages")
    parser.add_argument("--version", action=VersionAction, help="print keyface's version and exit")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in [MODULES[command]] if command in MODULES else ORDER:
        _command_module(name).register(sub)
    return parser


def _command_module(name: str):
    """The module that registers a group of commands, imported only when its commands are asked for."""
    if name == "keypoints":
        from keyface.recognition.cli import keypoints as module
    elif name == "commands":
        from keyface.recognition.cli import commands as module
    elif name == "enrolling":
        from keyface.recognition.cli import enrolling as module
    elif name == "photos":
        from keyface.recognition.cli import photos as module
    elif name == "galleries":
        from keyface.recognition.cli import galleries as module
    elif name == "demo":
        from keyface.recognition.cli import demo as module
    elif name == "train":
        from keyface.recognition.cli import train as module
    elif name == "bench":
        from keyface.recognition.cli import bench as module
    elif name == "weights":
        from keyface.recognition.cli import weights as module
    elif name == "cluster":
        from keyface.recognition.cli import cluster as module
    elif name == "classify":
        from keyface.recognition.cli import classify as module
    elif name == "compare":
        from keyface.recognition.cli import compare as module
    else:
        from keyface.recognition.cli import serve as module
    return module


def _command(argv: list[str]) -> str | None:
    """The command word: the first argument that is not a top-level flag."""
    return next((word for word in argv if not word.startswith("-")), None)


def quiet(command: str | None) -> None:
    """Keep stderr for keyface's own messages: TensorFlow's C++ and absl logs, CUDA probing, oneDNN notes,
    Keras and Python warnings all silenced. Must run before TensorFlow is imported."""
    import warnings
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"  # whatever the environment says: 3 hides all but fatal
    os.environ["TF_CPP_MAX_VLOG_LEVEL"] = "-1"
    os.environ["GLOG_minloglevel"] = "3"
    os.environ["ABSL_MIN_LOG_LEVEL"] = "3"
    os.environ.setdefault("GRPC_VERBOSITY", "NONE")
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # FFmpeg's notes on a broken video: keyface says it in one line
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    if command in CPU_COMMANDS and "CUDA_VISIBLE_DEVICES" not in os.environ:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    warnings.filterwarnings("default", module=r"keyface(\.|$)")  # keyface's own warnings still show


def filter_native_stderr() -> None:
    """Route file descriptor 2 through a filter that drops native libraries' info and warning lines.
    TensorFlow 2.21 logs (oneDNN, CUDA probing, XLA) through absl before it reads TF_CPP_MIN_LOG_LEVEL,
    straight to the file descriptor, where no Python setting reaches; Python's own stderr keeps the real
    terminal or file. The pipe's write end is not inherited: a child process keeps no copy of it, so exit
    never waits on one (a child started without its own stderr gets none)."""
    original = os.dup(2)
    sys.stderr.flush()
    sys.stderr = io.TextIOWrapper(io.BufferedWriter(io.FileIO(original, "w", closefd=False)),
                                  encoding=sys.stderr.encoding, errors="backslashreplace", line_buffering=True)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2, inheritable=False)
    os.close(write_end)
    thread = threading.Thread(target=_forward, args=(read_end, original), daemon=True)
    thread.start()

    def restore() -> None:  # at exit: close the pipe's last writer, let the filter pass on what is left
        try:
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        os.dup2(original, 2)
        thread.join(timeout=2)
    atexit.register(restore)


def filter_native(data: bytes) -> tuple[bytes, bytes]:
    """The complete lines of `data` that are not native info or warning lines, and the unfinished rest."""
    *lines, pending = data.split(b"\n")
    return b"".join(line + b"\n" for line in lines if not NATIVE_NOISE.match(line)), pending


def _write_all(fd: int, data: bytes) -> None:
    """os.write until every byte is out (a pipe or terminal may take part of it)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _forward(read_end: int, original: int) -> None:
    """Pass every line from the pipe on to the real stderr, except native info and warning lines. Once the
    real stderr fails (closed: EPIPE), keep draining the pipe and discard, so no native writer blocks."""
    broken = False
    with os.fdopen(read_end, "rb", buffering=0) as pipe:
        pending = b""
        while chunk := pipe.read(65536):
            kept, pending = filter_native(pending + chunk)
            if kept and not broken:
                try:
                    _write_all(original, kept)
                except OSError:
                    broken = True
        if pending and not broken and not NATIVE_NOISE.match(pending):
            try:
                _write_all(original, pending)
            except OSError:
                pass


# Photo arguments, checked and folders expanded before any model loads (so before TensorFlow is
# imported): a mistake costs a fraction of a second, not the seconds a model takes to load.

SKIPPED_NAMED = 3  # files a folder's note names among those skipped: enough to spot a pattern, still one line


class AboveBars(logging.StreamHandler):
    """Log lines on stderr, written above a progress bar when one is drawn (tqdm's own write), never onto the end
    of its line."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            from tqdm import tqdm
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # as logging's own handlers do: a failing log line never ends the command
            self.handleError(record)


class ArgumentError(Exception):
    """A photo argument that cannot be used: main prints it as `keyface: error: ...` and exits 2."""


def check_file(text: str) -> str:
    """A photo file argument as given, once it is known to exist and be readable."""
    if URL.match(text):
        raise ArgumentError(f"{text}: keyface does not download; save the photo first")
    if not text.strip():  # Path("") is the current folder: an unset variable in a script must not mean all of it
        raise ArgumentError("a photo path is empty (an unset variable?): give a photo file")
    path = Path(text)
    if not path.exists():
        raise ArgumentError(f"{shown(text)}: no such file or folder")
    if path.is_dir():
        raise ArgumentError(f"{shown(text)} is a folder: give a photo file")
    if not path.is_file():
        raise ArgumentError(f"{shown(text)}: not a regular file")
    try:
        with open(path, "rb") as fh:
            fh.read(1)
    except OSError as exc:
        raise ArgumentError(f"{shown(text)}: cannot read ({exc.strerror})") from None
    return text


def folder_photos(folder: Path, videos: bool = False) -> tuple[list[str], list[str]]:
    """Every file under folder that Pillow can open (and every video file, with `videos`), recursively, in sorted
    order; and the other files, skipped. Dot-files and dot-folders (.git, .DS_Store) are never photos."""
    photos, skipped = [], []
    for root, dirs, files in os.walk(folder, onerror=_walk_error):  # links to folders are not followed: no loops
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            path = Path(root) / name
            if name.startswith("."):
                continue
            if _taken(path, videos):
                photos.append(str(path))
            else:
                skipped.append(str(path.relative_to(folder)))
    return sorted(photos, key=lambda p: Path(p).parts), skipped


def _taken(path: Path, videos: bool) -> bool:
    """Whether a file in a folder is one of its photos (or videos): one that can be read and opened as such, or one
    named as a photo that cannot be read (no permission, a link to nothing), so that the command says why."""
    from keyface.data.folders import IMAGE_SUFFIXES
    from keyface.data.images import is_image_file, is_video_file
    if not (path.is_file() and os.access(path, os.R_OK)):
        return (path.is_symlink() or path.is_file()) and path.suffix.lower() in IMAGE_SUFFIXES
    return is_image_file(path) or videos and is_video_file(path)


def _walk_error(exc: OSError) -> None:
    raise ArgumentError(f"{shown(exc.filename)}: cannot read the folder ({exc.strerror})")


def expand(args: list[str], note: Callable[[str], object] | None = None, videos: bool = False) -> list[str]:
    """Photo arguments with every folder replaced by the photos in it (and its videos, for a command that takes
    videos); one ArgumentError for the first bad one. `note(text)` hears of files skipped in folders (default: a
    line on stderr)."""
    note = note or (lambda text: print(f"keyface: {text}", file=sys.stderr))
    photos = []
    for text in args:
        if text.strip() and not URL.match(text) and Path(text).is_dir():
            found, skipped = folder_photos(Path(text), videos)
            if not found:
                raise ArgumentError(f"{shown(text)}: no images in this folder"
                                    + (f" ({len(skipped)} other file(s))" if skipped else ""))
            if skipped:
                named = ", ".join([shown(name) for name in skipped[:SKIPPED_NAMED]]
                                  + (["..."] if len(skipped) > SKIPPED_NAMED else []))
                heic = sum(Path(name).suffix.lower() in (".heic", ".heif") for name in skipped)
                note(f"{shown(text)}: {len(found)} photo(s){' and video(s)' if videos else ''}; {len(skipped)} file(s) "
                     f"skipped (not images Pillow can open{', nor videos' if videos else ''}: {named})"
                     + (f"; {heic} HEIC photo(s) among them: convert them to JPEG" if heic else ""))
            photos.extend(found)
        else:
            photos.append(check_file(text))
    return photos


def _checked_for_verify(args: argparse.Namespace, photo: str) -> None:
    """One of verify's photos checked before any model loads; with --json a script hears of a refusal on stdout
    too, as of any other (no threshold yet: no model is loaded)."""
    try:
        check_file(photo)
    except ArgumentError as exc:
        if getattr(args, "json", False):
            import json
            from keyface.recognition.answers import verify_json
            print(json.dumps(verify_json(None, None, None, str(exc)), separators=(",", ":")))
        raise


def prepare(args: argparse.Namespace) -> None:
    """Check (and expand, in place) the photo arguments of whichever command was parsed."""
    if isinstance(getattr(args, "photos", None), list):  # PHOTO... arguments (a count of photos is not)
        args.photos = expand(args.photos, videos=getattr(args, "takes_videos", False))
    for name in ("photo_a", "photo_b"):  # verify: exactly two files
        if getattr(args, name, None) is not None:
            _checked_for_verify(args, getattr(args, name))
    folders = getattr(args, "folders", None)
    if isinstance(folders, str):  # enroll --folders, compare --folders
        if URL.match(folders):
            raise ArgumentError(f"{folders}: keyface does not download; save the photos first")
        if not folders.strip() or not Path(folders).is_dir():
            what = ("--folders is empty" if not folders.strip() else f"--folders {shown(folders)}: "
                    + ("a file, not a folder" if Path(folders).exists() else "no such folder"))
            raise ArgumentError(f"{what} (give a folder with a subfolder of photos per person)")


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
    as_process = argv is None  # the `keyface` program itself, not a call from Python (tests, notebooks)
    argv = _normalise_argv(list(sys.argv[1:] if argv is None else argv))
    debug = "--debug" in argv
    if as_process and not debug:
        filter_native_stderr()
    # library messages read as keyface's own lines on stderr, like the CLI's notes, above any progress bar
    logging.basicConfig(level=logging.DEBUG if debug else logging.INFO, format="keyface: %(message)s",
                        handlers=[AboveBars()])
    command = _command(argv)
    if command is None and "--version" in argv:  # no command: no need to import every command's libraries
        print(f"keyface {keyface_version()}")
        return 0
    if not debug:
        quiet(command)
    try:
        args = build_parser(command).parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error already printed in one line
        return int(exc.code or 0)
    try:
        prepare(args)  # photo arguments: before any model (and TensorFlow) loads
    except ArgumentError as exc:
        print(f"keyface: error: {exc}", file=sys.stderr)
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyfaceError as exc:
        print(f"keyface: error: {with_hint(exc)}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("keyface: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader of our output went away (`| head`): nothing more to say to anyone
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return PIPE_CLOSED
    except Exception as exc:  # a bug, not bad input: still one line unless --debug asks for more
        if debug:
            raise
        first = (str(exc).splitlines() or [""])[0][:300]  # one line, however long the exception's text
        print(f"keyface: internal error: {exc.__class__.__name__}: {first} (run with --debug for details)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
