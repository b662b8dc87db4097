"""No import cycle among seqlstm's modules: read with `ast` (nothing is imported or executed).

An edge `a -> b` is a module-level `import b` / `from b import x` in `a` (into the module `b.x`
when that is a module), `if TYPE_CHECKING:` blocks left out; an import inside a function runs
when called, after every module has loaded, so it is not an edge. A package's `__init__` is the
module named after the package.
"""

import ast
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def module_files(package: str = "seqlstm") -> dict[str, str]:
    """`{module name: file path}` of every module under `package`."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(os.path.join(ROOT, package)):
        dirnames[:] = [d for d in dirnames if not d.startswith((".", "__"))]
        for name in filenames:
            if name.endswith(".py"):
                rel = os.path.relpath(os.path.join(dirpath, name), ROOT)[: -len(".py")]
                parts = rel.split(os.sep)
                if parts[-1] == "__init__":
                    parts = parts[:-1]
                out[".".join(parts)] = os.path.join(dirpath, name)
    return out


def _top_level(body):
    for node in body:
        if isinstance(node, ast.If):
            test = ast.unparse(node.test)
            if "TYPE_CHECKING" not in test:
                yield from _top_level(node.body + node.orelse)
        elif isinstance(node, ast.Try):
            yield from _top_level(node.body + node.orelse + node.finalbody)
            for handler in node.handlers:
                yield from _top_level(handler.body)
        else:
            yield node


def import_edges(name: str, path: str, modules) -> set[str]:
    """The modules of `modules` that module `name` imports at its top level."""
    with open(path) as f:
        tree = ast.parse(f.read())
    package = name if path.endswith("__init__.py") else name.rpartition(".")[0]
    edges = set()
    for node in _top_level(tree.body):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                       for a in node.names]  # fmt: skip
        else:
            continue
        edges.update(t for t in targets if t in modules and t != name)
    return edges


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of `graph` as `[a, b, ..., a]`, or None (depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node):
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node] = 2
        path.pop()
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_cycle_finder_finds_a_cycle_and_only_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_edges_follow_imports_of_modules_and_of_names(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("from pkg.b import f\n")
    (pkg / "a.py").write_text(
        "import os\nfrom pkg import b\nfrom . import c\nif TYPE_CHECKING:\n    import pkg.d\n"
        "def g():\n    import pkg.d\n"
    )
    modules = {"pkg", "pkg.a", "pkg.b", "pkg.c", "pkg.d"}
    assert import_edges("pkg.a", str(pkg / "a.py"), modules) == {"pkg.b", "pkg.c"}
    assert import_edges("pkg", str(pkg / "__init__.py"), modules) == {"pkg.b"}


def test_no_import_cycle_among_seqlstm_modules():
    modules = module_files()
    assert "seqlstm.tasks.registry" in modules and "seqlstm.task" in modules
    graph = {name: import_edges(name, path, modules) for name, path in modules.items()}
    assert "seqlstm.tasks.g2p" in graph["seqlstm.tasks.registry"]
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_old_import_paths_are_kept_for_one_release():
    import seqlstm.data
    import seqlstm.data.g2p
    import seqlstm.data.registry
    import seqlstm.data.seq2seq_tasks
    import seqlstm.data.synthetic
    import seqlstm.data.text
    import seqlstm.g2p_scoring
    from seqlstm.data import corpus
    from seqlstm.tasks import g2p, hooks, registry, reverse, seq2seq, text

    assert seqlstm.data.g2p.make_g2p_task is g2p.make_g2p_task
    assert seqlstm.data.g2p._cmudict_lexicon is g2p._cmudict_lexicon
    assert seqlstm.g2p_scoring.score_tsv is g2p.score_tsv
    assert seqlstm.data.registry.get_task is registry.get_task
    assert seqlstm.data.seq2seq_tasks.decoding_accuracy is hooks.decoding_accuracy
    assert seqlstm.data.seq2seq_tasks.parse_source is seq2seq.parse_source
    assert seqlstm.data.synthetic.make_reverse_task is reverse.make_reverse_task
    assert seqlstm.data.text.make_text_task is text.make_text_task
    assert seqlstm.data.text.load_corpus is corpus.load_corpus
    for name, module in seqlstm.data._MOVED.items():
        assert getattr(seqlstm.data, name) is getattr(__import__(module, fromlist=[name]), name)
