"""The layer contract of minifinn's packages (docs/conventions.md, "Layers").

Every import of a project module counts, at module level or inside a function: a module may import its own layer
and the layers below it, never a layer above. Lazy (function-level) imports are few and each says why in a comment on
its line or the line above (``# lazy: ...``): they keep a heavy dependency (torch, brevitas, finn.builder, which needs
Vivado) out of paths that do not use it.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("compiler", "custom_ops", "passes", "build_flows")

#: bottom first; a module belongs to the layer of the longest prefix that names it
LAYERS = (
    ("core", ("compiler.errors", "compiler.numerics", "compiler.boards", "compiler.qonnx_formats",
              "compiler.finn_env")),
    ("ops", ("custom_ops",)),
    ("passes", ("passes",)),
    ("frontend", ("compiler.zoo", "compiler.data", "compiler.training", "compiler.ptq", "compiler.quantize_model",
                  "compiler.export", "compiler.golden")),
    ("build", ("compiler",)),
    ("flows", ("build_flows",)),
)
LAYER_INDEX = {name: i for i, (name, _) in enumerate(LAYERS)}
MAX_LAZY_IMPORTS = 60


def module_name(path):
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def layer_of(module):
    best = None
    for name, prefixes in LAYERS:
        for prefix in prefixes:
            if module == prefix or module.startswith(prefix + "."):
                if best is None or len(prefix) > len(best[1]):
                    best = (name, prefix)
    return None if best is None else best[0]


def project_modules():
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


def imports_of(path):
    """[(imported module, line, lazy)] of the project modules ``path`` imports (relative imports resolved)."""
    return imports_in(path.read_text(), module_name(path), path.name == "__init__.py")


def imports_in(source, here, is_package):
    tree = ast.parse(source)
    lazy_lines = {node.lineno for fn in ast.walk(tree) if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef))
                  for node in ast.walk(fn) if isinstance(node, (ast.Import, ast.ImportFrom))}
    package = here if is_package else here.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            # ``from pkg import submodule`` imports the submodule
            names = [f"{module}.{a.name}" if _is_module(f"{module}.{a.name}") else module for a in node.names]
        else:
            continue
        for name in names:
            if name.split(".")[0] in PACKAGES:
                found.append((name, node.lineno, node.lineno in lazy_lines))
    return found


def _is_module(name):
    path = ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def lazy_imports(path):
    """[(line, text)] of every import inside a function (project or not)."""
    tree = ast.parse(path.read_text())
    return sorted({(node.lineno, ast.unparse(node)) for fn in ast.walk(tree)
                   if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef))
                   for node in ast.walk(fn) if isinstance(node, (ast.Import, ast.ImportFrom))})


def test_every_module_has_a_layer():
    assert [module_name(p) for p in project_modules() if layer_of(module_name(p)) is None] == []


def test_layer_of_examples():
    assert layer_of("compiler.numerics") == "core"
    assert layer_of("compiler.zoo.vit") == "frontend"
    assert layer_of("compiler.steps") == "build"
    assert layer_of("custom_ops.hls.minifloat_mvau_hls") == "ops"


def test_imports_go_down_the_layers():
    violations = []
    for path in project_modules():
        here = module_name(path)
        mine = LAYER_INDEX[layer_of(here)]
        for target, line, lazy in imports_of(path):
            theirs = layer_of(target)
            if theirs is not None and LAYER_INDEX[theirs] > mine:
                violations.append(f"{path.relative_to(ROOT)}:{line} ({layer_of(here)}) imports {target} "
                                  f"({theirs}){' in a function' if lazy else ''}")
    assert violations == []


def test_no_import_cycles_between_modules():
    graph = {}
    for path in project_modules():
        here = module_name(path)
        graph.setdefault(here, set()).update(t for t, _, _ in imports_of(path) if t != here and _is_module(t))
    cycles = _cycles(graph)
    assert cycles == []


def _cycles(graph):
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_few_lazy_imports_each_with_a_reason():
    total, unexplained = 0, []
    for path in project_modules():
        lines = path.read_text().splitlines()
        for line, text in lazy_imports(path):
            total += 1
            own, above = lines[line - 1], lines[line - 2] if line >= 2 else ""
            if "# lazy:" not in own and "# lazy:" not in above:
                unexplained.append(f"{path.relative_to(ROOT)}:{line}: {text}")
    assert unexplained == []
    assert total <= MAX_LAZY_IMPORTS


@pytest.mark.parametrize("source, expected", [
    ("import compiler.numerics\n", [("compiler.numerics", False)]),
    ("from custom_ops.general import common\n", [("custom_ops.general.common", False)]),
    ("from .numerics import FormatError\n", [("compiler.numerics", False)]),
    ("import numpy\ndef f():\n    from passes import lower_qonnx  # lazy: test\n", [("passes", True)]),
])
def test_imports_in_finds_module_and_function_imports(source, expected):
    assert [(name, lazy) for name, _, lazy in imports_in(source, "compiler.probe", False)] == expected
