"""The package's import graph: no cycle between its subpackages and top-level modules, and imports at the top.

Nodes are the parts directly under ``vidrestore`` (a subpackage such as ``train`` or ``io``, or a top-level
module such as ``engine``); an edge is any import from one to another, at module level or inside a function
(imports under ``if TYPE_CHECKING:`` are for annotations only and do not count).
"""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "src" / "vidrestore"
# in-function imports allowed: the CLI's lazy commands and a few deliberately lazy heavy imports
LAZY_OK = {"cli", "__init__", "weights"}


def _part(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "vidrestore" and len(parts) > 1 else None


def _imports(tree: ast.AST):
    """(module imported, inside a function) for every import, skipping ``if TYPE_CHECKING:`` blocks."""
    def walk(node, in_func):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            inner = in_func or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            if isinstance(child, ast.Import):
                for a in child.names:
                    yield a.name, inner
            elif isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
                yield child.module, inner
                for a in child.names:  # from vidrestore import runtime
                    yield f"{child.module}.{a.name}", inner
            yield from walk(child, inner)
    yield from walk(tree, False)


def graph() -> tuple[dict[str, set[str]], list[str]]:
    edges: dict[str, set[str]] = {}
    lazy: list[str] = []
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG.parent).with_suffix("")
        src = _part(".".join(rel.parts)) or "__init__"
        for module, in_func in _imports(ast.parse(path.read_text(encoding="utf-8"))):
            dst = _part(module)
            if dst is None or not (PKG / dst).exists() and not (PKG / f"{dst}.py").exists():
                continue
            if in_func and src not in LAZY_OK and dst != src:
                lazy.append(f"{rel}: {module}")
            if dst != src:
                edges.setdefault(src, set()).add(dst)
    return edges, lazy


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(edges.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state:
                found = visit(m)
                if found:
                    return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(edges):
        if n not in state:
            found = visit(n)
            if found:
                return found
    return None


def test_no_cycle_between_subpackages():
    edges, _ = graph()
    assert "model" in edges or "model" in {d for ds in edges.values() for d in ds}  # the graph is not empty
    cycle = find_cycle(edges)
    assert cycle is None, " -> ".join(cycle)


def test_the_cycle_finder_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}}) is None


def test_imports_between_parts_sit_at_module_top():
    _, lazy = graph()
    assert not lazy, "in-function imports of other parts: " + "; ".join(lazy)


def test_loading_the_weights_stays_light():
    """Building the network on the meta device (the weights' shape check) must not run torch's Python reference
    kernels: they pull in sympy and some 800 modules, 1.3 s and 60 MB of every run's start."""
    import subprocess
    import sys

    code = ("import sys, vidrestore; vidrestore.load_model(None, device='cpu'); "
            "print('sympy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_one_short_file_runs_straight_through_the_pipeline(tmp_path):
    """``vidrestore enhance`` of one short file calls the pipeline directly: chunks, workers and Ray
    (:mod:`vidrestore.scale`) are not even imported."""
    import subprocess
    import sys

    clip = PKG / "assets" / "example.mp4"
    code = ("import sys\nfrom vidrestore.cli import main\n"
            f"sys.argv = ['vidrestore', 'enhance', {str(clip)!r}, '-o', {str(tmp_path / 'o.mp4')!r}, '-q',"
            " '--device', 'cpu', '--fps-x', '2']\n"
            "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
            "print(sorted(m for m in sys.modules if m.startswith('vidrestore.scale')))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout
    assert (tmp_path / "o.mp4").is_file()
