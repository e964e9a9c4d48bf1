"""The house's layering, checked on the installed package: import-linter's contracts (setup.cfg) and no cycles."""
import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SUBPACKAGES = ("data", "runtime", "detection", "keypoints", "recognition", "facenet", "inception_finetune", "dlib_resnet")


@pytest.fixture(scope="module")
def package_copy(tmp_path_factory) -> Path:
    """The installed keyface's Python files in one tree (an editable install spreads them over the checkout)."""
    root = tmp_path_factory.mktemp("layers")
    skip = shutil.ignore_patterns("__pycache__", "weights", "demo", "*.keras")
    top = Path(importlib.util.find_spec("keyface").origin).parent
    shutil.copytree(top, root / "keyface", ignore=shutil.ignore_patterns(*SUBPACKAGES, "__pycache__"))
    for name in SUBPACKAGES:
        where = Path(importlib.util.find_spec(f"keyface.{name}").origin).parent
        shutil.copytree(where, root / "keyface" / name, ignore=skip)
    return root


def test_import_linter_contracts_hold(package_copy):
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    if lint is None:
        pytest.skip("import-linter is not installed (pip install '.[test]')")
    run = subprocess.run([lint, str(REPO / "setup.cfg")], cwd=package_copy, capture_output=True, text=True,
                         env={"PYTHONPATH": str(package_copy), "PATH": "/usr/bin:/bin"})
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert "0 broken" in run.stdout


def _cycles(graph) -> list[list[str]]:
    """Every import cycle between modules (depth-first search over direct imports)."""
    state, stack, found = {}, [], []

    def visit(module: str) -> None:
        state[module] = "open"
        stack.append(module)
        for nxt in sorted(graph.find_modules_directly_imported_by(module)):
            if state.get(nxt) == "open":
                found.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[module] = "done"

    for module in sorted(graph.modules):
        if module not in state:
            visit(module)
    return found


def test_no_module_imports_another_in_a_cycle(package_copy, monkeypatch):
    grimp = pytest.importorskip("grimp")
    monkeypatch.syspath_prepend(str(package_copy))
    for name in [m for m in sys.modules if m == "keyface" or m.startswith("keyface.")]:
        monkeypatch.delitem(sys.modules, name)  # grimp must find the copy, not the package already imported
    graph = grimp.build_graph("keyface", cache_dir=None)
    assert len(graph.modules) > 60
    assert _cycles(graph) == []


def test_cycle_finder_finds_a_cycle():
    class Graph:
        modules = {"a", "b", "c"}
        edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}}

        def find_modules_directly_imported_by(self, m):
            return self.edges[m]
    assert _cycles(Graph()) == [["a", "b", "c", "a"]]


ENTRY_POINTS = ("recognition/cli/*.py", "recognition/server/*.py", "api.py", "__init__.py")  # under keyface/
RECOGNITION_ONLY_THROUGH_THE_FACADE = {"Recogniser", "in_order", "*"}  # *: the whole module, so any name in it
PIPELINE = "keyface.recognition.core.pipeline"


def _names_taken_from_the_pipeline(source: str) -> set[str]:
    """The names a module imports from keyface.recognition.core.pipeline ("*" for the module itself)."""
    import ast
    taken = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module == PIPELINE:
            taken |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and f"{node.module}.pipeline" == PIPELINE:
            taken |= {"*" for alias in node.names if alias.name == "pipeline"}
        elif isinstance(node, ast.Import):
            taken |= {"*" for alias in node.names if alias.name == PIPELINE}
    return taken


def test_the_entry_points_reach_the_recogniser_only_through_the_facade(package_copy):
    """The pipeline module also holds the faces and detectors the entry points use; the recogniser and its
    photo loop in it are theirs only through recognition.facade (setup.cfg's one-way-in contract: the store)."""
    modules = [path for pattern in ENTRY_POINTS for path in (package_copy / "keyface").glob(pattern)]
    taken = {f"{path.relative_to(package_copy)}": names for path in modules
             if (names := _names_taken_from_the_pipeline(path.read_text()) & RECOGNITION_ONLY_THROUGH_THE_FACADE)}
    assert len(modules) > 20 and taken == {}
    sneaky = ("def f():\n    from keyface.recognition.core.pipeline import Recogniser as R\n"
              "from keyface.recognition.core import pipeline\nimport keyface.recognition.core.pipeline\n")
    assert _names_taken_from_the_pipeline(sneaky) == {"Recogniser", "*"}


def test_installed_under_one_import_name_only(tmp_path):
    script = ("import importlib.util, keyface, keyface.recognition.cli.main\n"
              "print([m for m in ('data', 'keypoints', 'recognition', 'facenet', 'inception_finetune', 'dlib_resnet')"
              " if importlib.util.find_spec(m) is not None])")
    run = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip() == "[]"  # outside the checkout, only `keyface` is importable


MAX_FUNCTION_LINES = 50


def _long_functions(source: str) -> list[tuple[str, int]]:
    """(name, lines) of each function longer than MAX_FUNCTION_LINES whose body is not a declaration list
    (argument-parser registrations: nothing but calls, assignments and docstrings)."""
    import ast
    long = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            lines = node.end_lineno - node.lineno + 1
            declarations = all(isinstance(s, (ast.Expr, ast.Assign)) for s in node.body)
            if lines > MAX_FUNCTION_LINES and not declarations:
                long.append((node.name, lines))
    return long


def test_no_function_is_over_fifty_lines(package_copy):
    found = {f"{path.relative_to(package_copy)}:{name}": lines for path in package_copy.rglob("*.py")
             for name, lines in _long_functions(path.read_text())}
    assert found == {}


def test_the_long_function_check_sees_a_long_function():
    body = "\n".join(f"    if x == {i}:\n        x += 1" for i in range(30))
    assert _long_functions(f"def f(x):\n{body}\n    return x\n") == [("f", 62)]
    declarations = "\n".join(f"    p.add_argument('--a{i}')" for i in range(60))
    assert _long_functions(f"def register(p):\n{declarations}\n") == []


IDENTIFY_WAY = ["recognition/cli/main.py", "recognition/cli/commands.py", "data/paths.py", "data/images.py",
                "recognition/facade.py", "recognition/approaches/registry.py", "recognition/core/pipeline.py",
                "detection/detector.py", "keypoints/predictor.py", "runtime/networks.py", "recognition/core/store.py",
                "recognition/core/search.py"]
PROFILE_IDENTIFY = """
import collections, json, sys
from pathlib import Path
from keyface.recognition.cli import main
folders = json.loads(sys.argv[1])  # each subpackage's folder: its name
entries = collections.Counter()
if sys.argv[2] == "--loaded":  # one photo's identification once the models are loaded, not the command
    import keyface
    gallery = keyface.Gallery(sys.argv[4])
    gallery.identify(sys.argv[3])
    main.main = lambda argv: len(gallery.identify(argv[0])) - 1  # 0: one face

def entered(frame, event, arg):
    if event != "call" or frame.f_back is None:
        return
    here, caller = frame.f_code.co_filename, frame.f_back.f_code.co_filename
    where = next((f"{name}/{Path(here).relative_to(folder).as_posix()}" for folder, name in folders.items()
                  if here.startswith(folder)), None)
    if where is not None and caller != here:
        entries[where] += 1

sys.setprofile(entered)
code = main.main(sys.argv[3:] if sys.argv[2] == "--loaded" else sys.argv[2:])
sys.setprofile(None)
print(json.dumps({"code": code, "entries": entries}))
"""


def test_identify_enters_the_files_docs_architecture_lists(tmp_path, youtube_sample):
    """`keyface identify photo.jpg` on the shipped models, profiled in a fresh process (imports counted): the
    files it enters, each call from another file an entry (docs/architecture.md gives the same list)."""
    from keyface.recognition.cli.main import main
    (photo, _), db = youtube_sample[0], tmp_path / "g.db"
    assert main(["enroll", "--name", "Kristen", str(photo), "--gallery", str(db)]) == 0
    folders = {str(Path(importlib.util.find_spec(f"keyface.{name}").origin).parent) + "/": name
               for name in SUBPACKAGES}
    folders[str(Path(importlib.util.find_spec("keyface").origin).parent) + "/"] = "keyface"  # last: the API
    entered = _profiled(folders, "identify", str(photo), "--gallery", str(db))
    assert sorted(entered) == sorted(IDENTIFY_WAY), entered
    assert sum(entered.values()) <= 48 and max(entered.values()) <= 9, entered
    # a photo once the models are loaded: each file once or twice, the runtime once for each network run
    entered = _profiled(folders, "--loaded", str(photo), str(db))
    runs = entered.pop("runtime/networks.py")
    assert len(entered) == 7 and max(entered.values()) <= 2 and runs <= 4, entered


def _profiled(folders: dict, *argv: str) -> dict[str, int]:
    """The entries into each project file of one profiled run of PROFILE_IDENTIFY in a fresh process."""
    import json
    run = subprocess.run([sys.executable, "-c", PROFILE_IDENTIFY, json.dumps(folders), *argv], capture_output=True,
                         text=True, timeout=300)
    found = json.loads(run.stdout.strip().splitlines()[-1])
    assert found["code"] == 0, run.stderr[-2000:]
    return found["entries"]
