"""Generate a seeded, reproducible sample of one-line mutants (used by scripts/mutate.py).

A mutant is one node of one line of the source changed the way a plausible bug would change
it. The operators (``KINDS``):

- ``cmp``: a comparison flipped at its boundary or negated (``<`` / ``<=``, ``>`` / ``>=``,
  ``==`` / ``!=``, ``in`` / ``not in``, ``is`` / ``is not``);
- ``const``: an integer constant off by one (``n`` becomes ``n + 1``), a boolean flipped;
- ``arith``: ``+`` / ``-``, ``<<`` / ``>>``, ``*`` / ``//`` swapped;
- ``range``: the end of a ``range()`` one lower (``range(a, b)`` becomes ``range(a, b - 1)``);
- ``drop``: a statement with an effect (a call, an ``x += y``, an attribute or item store)
  replaced by ``pass``;
- ``branch``: an ``if``'s condition negated (its branches swapped), ``and`` / ``or`` swapped.

Candidates are every such node on a line of the target files outside docstrings,
annotations, f-strings, ``assert`` statements and ``__slots__``/``__repr__``; at most one
mutant per line and group is drawn: those whose hash of (seed, file, kind, old and new line)
is lowest, so the sample is the same for the same source and seed, and an edit to one
function changes the draws in that function only. The rewritten line is the
node's own text replaced with ``ast.unparse`` of the mutated node; a mutant whose module
parses to the same tree as the original is not a mutant and is never drawn.
"""

from __future__ import annotations

import ast
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

KINDS = ("cmp", "const", "arith", "range", "drop", "branch")

_CMP_FLIP: dict[type[ast.cmpop], type[ast.cmpop]] = {
    ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.In: ast.NotIn, ast.NotIn: ast.In,
    ast.Is: ast.IsNot, ast.IsNot: ast.Is,
}
_ARITH_FLIP: dict[type[ast.operator], type[ast.operator]] = {
    ast.Add: ast.Sub, ast.Sub: ast.Add, ast.LShift: ast.RShift, ast.RShift: ast.LShift,
    ast.Mult: ast.FloorDiv, ast.FloorDiv: ast.Mult,
}
_SKIP_FUNCS = frozenset({"__repr__", "__str__", "__slots__"})


class Generated(NamedTuple):
    """One mutant: line ``line`` (1-based) of ``path`` becomes ``new`` (was ``old``)."""

    path: str
    line: int
    kind: str
    old: str
    new: str

    @property
    def key(self) -> str:
        """Stable name: the file, the kind and both lines' text (not the line number, which
        moves when code above it changes)."""
        return f"{self.path}|{self.kind}|{self.old.strip()}|{self.new.strip()}"


def _skipped_ids(tree: ast.Module) -> set[int]:
    """ids of nodes never mutated: docstrings, annotations, f-strings, asserts, slots."""
    skip: set[int] = set()

    def mark(node: ast.AST | None) -> None:
        if node is not None:
            skip.update(id(n) for n in ast.walk(node))

    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                and isinstance(body[0].value, ast.Constant) \
                and isinstance(body[0].value.value, str):
            mark(body[0])
        if isinstance(node, ast.AnnAssign):
            mark(node.annotation)
        elif isinstance(node, ast.arg):
            mark(node.annotation)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            mark(node.returns)
            if node.name in _SKIP_FUNCS:
                mark(node)
        elif isinstance(node, ast.JoinedStr | ast.Assert):
            mark(node)
        elif isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "__slots__" for t in node.targets):
            mark(node)
        elif isinstance(node, ast.If) and isinstance(node.test, ast.Name) \
                and node.test.id == "TYPE_CHECKING":
            mark(node)
    return skip


def _variants(node: ast.AST) -> Iterator[tuple[str, ast.AST]]:
    """Each (kind, mutated copy of node) the operators make of this node."""
    if isinstance(node, ast.Compare) and len(node.ops) == 1:
        flip = _CMP_FLIP.get(type(node.ops[0]))
        if flip is not None:
            yield "cmp", ast.Compare(node.left, [flip()], node.comparators)
    elif isinstance(node, ast.Constant) and type(node.value) is bool:
        yield "const", ast.Constant(not node.value)
    elif isinstance(node, ast.Constant) and type(node.value) is int:
        yield "const", ast.Constant(node.value + 1)
    elif isinstance(node, ast.BinOp) and type(node.op) in _ARITH_FLIP:
        yield "arith", ast.BinOp(node.left, _ARITH_FLIP[type(node.op)](), node.right)
    elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
            and node.func.id == "range" and node.args and not node.keywords:
        end = node.args[0] if len(node.args) == 1 else node.args[1]
        args = list(node.args)
        args[0 if len(node.args) == 1 else 1] = ast.BinOp(end, ast.Sub(), ast.Constant(1))
        yield "range", ast.Call(node.func, args, [])
    elif isinstance(node, ast.BoolOp):
        yield "branch", ast.BoolOp(ast.Or() if isinstance(node.op, ast.And) else ast.And(),
                                   node.values)
    elif isinstance(node, ast.If | ast.While):
        yield "branch", ast.UnaryOp(ast.Not(), node.test)


def _is_effect(stmt: ast.stmt) -> bool:
    if isinstance(stmt, ast.AugAssign):
        return True
    if isinstance(stmt, ast.Expr):
        return isinstance(stmt.value, ast.Call)
    if isinstance(stmt, ast.Assign):
        return all(isinstance(t, ast.Attribute | ast.Subscript) for t in stmt.targets)
    return False


def _replace(line: str, start: int, end: int, text: str) -> str:
    """``line`` with its UTF-8 byte columns start..end replaced (ast counts bytes)."""
    raw = line.encode("utf-8")
    return (raw[:start] + text.encode("utf-8") + raw[end:]).decode("utf-8")


def candidates(root: Path, rel: str) -> list[Generated]:
    """Every mutant the operators make of file ``rel`` (under ``root``), in line order."""
    source = (root / rel).read_text(encoding="utf-8")
    tree = ast.parse(source)
    lines = source.splitlines(keepends=True)
    skip = _skipped_ids(tree)
    original = ast.dump(tree)
    out: list[Generated] = []
    for node in ast.walk(tree):
        if id(node) in skip or not isinstance(node, ast.expr | ast.stmt):
            continue
        muts: list[tuple[str, int, int, str]] = []
        if isinstance(node, ast.If | ast.While):
            test = node.test
            if test.lineno == test.end_lineno:
                for kind, changed in _variants(node):
                    muts.append((kind, test.col_offset, test.end_col_offset or 0,
                                 ast.unparse(changed)))
        elif node.lineno == node.end_lineno:
            for kind, changed in _variants(node):
                muts.append((kind, node.col_offset, node.end_col_offset or 0,
                             "(" + ast.unparse(changed) + ")" if kind != "const"
                             else ast.unparse(changed)))
            if isinstance(node, ast.stmt) and _is_effect(node):
                muts.append(("drop", node.col_offset, node.end_col_offset or 0, "pass"))
        lineno = node.test.lineno if isinstance(node, ast.If | ast.While) else node.lineno
        for kind, start, end, text in muts:
            old = lines[lineno - 1]
            new = _replace(old, start, end, text)
            mutated = "".join([*lines[:lineno - 1], new, *lines[lineno:]])
            try:
                if ast.dump(ast.parse(mutated)) == original:
                    continue
            except SyntaxError:
                continue
            out.append(Generated(rel, lineno, kind, old.rstrip("\n"), new.rstrip("\n")))
    out.sort(key=lambda g: (g.line, g.kind, g.new))
    return out


def _rank(seed: int, g: Generated) -> str:
    """A candidate's place in the draw: a hash of the seed and its key, so an edit elsewhere
    in the files (new lines, other candidates) leaves the other draws as they were."""
    return hashlib.sha256(f"{seed}|{g.key}".encode()).hexdigest()


def sample(root: Path, files: list[str], size: int, seed: int) -> list[Generated]:
    """``size`` mutants of ``files``, at most one per line: the candidates of lowest
    :func:`_rank` for ``seed``."""
    pool: list[Generated] = []
    for rel in sorted(files):
        pool.extend(candidates(root, rel))
    pool.sort(key=lambda g: _rank(seed, g))
    seen: set[tuple[str, int]] = set()
    picked: list[Generated] = []
    for g in pool:
        if (g.path, g.line) in seen:
            continue
        seen.add((g.path, g.line))
        picked.append(g)
        if len(picked) == size:
            break
    return sorted(picked, key=lambda g: (g.path, g.line))
