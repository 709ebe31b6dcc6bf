"""Markdown is code: no page shows a value from a user or a file through a Markdown call unescaped.

A rule over the pages' syntax trees, not a list of lines: the text given to st.markdown, warning,
error, info, caption, success, toast, write, title, header, subheader (and to st.progress as its
text) must be made only of

- string constants (the page's own Markdown),
- placeholders wrapped in escape_markdown(...) or code_span(...), or formatted as numbers
  (`{count:,}`, `{x:.3g}`: a format spec that only numbers accept),
- calls of functions that return numbers (len, int, float, round) or safe text (escape_markdown,
  code_span),
- texts the project writes in code as Markdown (TRUSTED_TEXTS: an architecture's description;
  an entry of an UPPER_CASE table such as CONV_FORMULAS),
- local names whose every assignment in the same function (or module) is made of the above.

Anything else (a dict entry, an attribute, a parameter, an exception's text) fails the test with
the file, line and expression, so a new page line that shows a link's value is caught the day it
is written.
"""

import ast
import re
from pathlib import Path

import pytest

from deeparch.figures.text import escape_markdown

ROOT = Path(__file__).resolve().parents[2]
PAGE_FILES = sorted([ROOT / "app.py", *(ROOT / "pages").glob("*.py")])
MARKDOWN_CALLS = {
    "markdown", "warning", "error", "info", "caption", "success", "toast", "write", "title",
    "header", "subheader", "exception",
}  # fmt: skip
TEXT_KEYWORDS = {"body", "text"}  # st.markdown(body=...), st.progress(..., text=...)
SAFE_FUNCTIONS = {"escape_markdown", "code_span", "len", "int", "float", "round", "abs"}
# Markdown written by the project in code, never from a user or a file: an architecture's or a
# view's description and summary, a layer's formula legend. (`spec` is a registry entry there.)
TRUSTED_TEXTS = {"spec.description", "spec.summary", "spec.hint"}
# A format spec that only numbers accept (a thousands separator or a numeric presentation type).
NUMERIC_SPEC = re.compile(r"[,_]|[bcdeEfFgGnoxX%]$")


class Checker:
    """Finds the Markdown arguments of one file that are not made of safe parts."""

    def __init__(self, path: Path, source: str | None = None) -> None:
        self.path = path
        text = source if source is not None else path.read_text()
        self.tree = ast.parse(text, filename=str(path))
        self.assignments: dict[tuple[ast.AST, str], list[ast.AST]] = {}
        self._collect(self.tree, self.tree)
        # The file's own text builders (Inspect's counts_text): safe when all they return is.
        self.builders = {f.name: f for f in self.tree.body if isinstance(f, ast.FunctionDef)}
        self.problems: list[str] = []

    def _collect(self, scope: ast.AST, node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                for arg in ast.walk(child.args):
                    if isinstance(arg, ast.arg):  # a parameter: its value is unknown here
                        self.assignments.setdefault((child, arg.arg), []).append(arg)
                self._collect(child, child)
                continue
            if isinstance(child, ast.Assign | ast.AnnAssign | ast.AugAssign):
                targets = child.targets if isinstance(child, ast.Assign) else [child.target]
                for target in targets:
                    for name in ast.walk(target):
                        if isinstance(name, ast.Name):
                            value = child.value if isinstance(target, ast.Name) else target
                            self.assignments.setdefault((scope, name.id), []).append(value)
            elif isinstance(child, ast.For | ast.comprehension | ast.With | ast.NamedExpr):
                targets = []
                if isinstance(child, ast.For | ast.comprehension):
                    targets = [child.target]
                elif isinstance(child, ast.With):
                    targets = [item.optional_vars for item in child.items if item.optional_vars]
                else:
                    targets = [child.target]
                for target in targets:
                    for name in ast.walk(target):
                        if isinstance(name, ast.Name):  # bound from data: unknown
                            self.assignments.setdefault((scope, name.id), []).append(target)
            self._collect(scope, child)

    def scopes_of(self, node: ast.AST) -> list[ast.AST]:
        """The function scopes enclosing `node`, innermost first, then the module."""
        chain = []
        for candidate in ast.walk(self.tree):
            if isinstance(candidate, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                if any(inner is node for inner in ast.walk(candidate)):
                    chain.append(candidate)
        chain.sort(key=lambda scope: -scope.lineno)
        return [*chain, self.tree]

    def safe(self, node: ast.AST, scopes: list[ast.AST], seen: frozenset = frozenset()) -> bool:
        if isinstance(node, ast.Constant):
            return True
        if isinstance(node, ast.JoinedStr):
            return all(self.safe(part, scopes, seen) for part in node.values)
        if isinstance(node, ast.FormattedValue):
            spec = node.format_spec
            if isinstance(spec, ast.JoinedStr) and all(
                isinstance(v, ast.Constant) for v in spec.values
            ):
                text = "".join(str(v.value) for v in spec.values)
                if NUMERIC_SPEC.search(text):
                    return True
            return self.safe(node.value, scopes, seen)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            return self.safe(node.left, scopes, seen) and self.safe(node.right, scopes, seen)
        if isinstance(node, ast.IfExp):
            return self.safe(node.body, scopes, seen) and self.safe(node.orelse, scopes, seen)
        if isinstance(node, ast.Call):
            function = node.func
            name = function.id if isinstance(function, ast.Name) else getattr(function, "attr", "")
            if name in SAFE_FUNCTIONS:
                return True
            if name == "join" and isinstance(getattr(function, "value", None), ast.Constant):
                return all(self.safe(arg, scopes, seen) for arg in node.args)  # "\n".join(lines)
            builder = self.builders.get(name) if isinstance(function, ast.Name) else None
            if builder is None or ("builder", name) in seen:
                return False
            returned = [r.value for r in ast.walk(builder) if isinstance(r, ast.Return) and r.value]
            inner = seen | {("builder", name)}
            return bool(returned) and all(
                self.safe(value, [builder, self.tree], inner) for value in returned
            )
        if isinstance(node, ast.ListComp | ast.GeneratorExp):
            return self.safe(node.elt, scopes, seen)
        if isinstance(node, ast.Dict | ast.DictComp | ast.List):  # st.write shows them as JSON
            return True
        if ast.unparse(node) in TRUSTED_TEXTS:
            return True
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name):
            return node.value.id.isupper()  # an entry of a table written in code (CONV_FORMULAS)
        if isinstance(node, ast.Name):
            for scope in scopes:
                values = self.assignments.get((scope, node.id))
                if values is None:
                    continue
                if (scope, node.id) in seen:
                    return False
                inner = seen | {(scope, node.id)}
                return all(
                    isinstance(value, ast.expr) and self.safe(value, scopes, inner)
                    for value in values
                )
            return node.id.isupper()  # an imported constant (MAPS_CAPTION), written in code
        return False

    def check(self) -> list[str]:
        for node in ast.walk(self.tree):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
                continue
            shown = []
            if node.func.attr in MARKDOWN_CALLS and node.args:
                shown.append(node.args[0])
            if node.func.attr in MARKDOWN_CALLS | {"progress"}:
                shown += [kw.value for kw in node.keywords if kw.arg in TEXT_KEYWORDS]
            scopes = self.scopes_of(node)
            for argument in shown:
                if not self.safe(argument, scopes):
                    where = f"{self.path.relative_to(ROOT)}:{node.lineno}"
                    self.problems.append(f"{where}: {ast.unparse(argument)}")
        return self.problems


def problems_in(source: str, tmp_path: Path) -> list[str]:
    return Checker(ROOT / "pages" / "_probe_for_the_test.py", source).check()


@pytest.mark.parametrize("path", PAGE_FILES, ids=lambda p: p.name)
def test_no_page_shows_an_unescaped_value_as_markdown(path):
    assert Checker(path).check() == []


@pytest.mark.parametrize(
    "line",
    [
        "st.warning(problem)",
        "st.error(str(error))",
        'st.warning(f"The link\'s value was not used: {problem}")',
        'st.caption(f"Showing {job.id}")',
        'slot.error("bad: " + str(error))',
        "st.markdown(f\"**{snap['arch']}**\")",
        'st.progress(0.5, text=f"{state} · {count:,}")',
        "def f(reason):\n    st.warning(reason)",
        'text = snap["reason"]\nst.caption(text)',
        "for name in names:\n    st.info(name)",
        'st.write(f"{value!r}")',
        "def label(snap):\n    return f\"run {snap['arch']}\"\nst.markdown(label(snap))",
        'def rows(parts):\n    return "\\n".join(f"| {p} |" for p in parts)\nst.markdown(rows(x))',
    ],
)
def test_the_rule_catches_each_way_a_value_reaches_markdown(line, tmp_path):
    assert len(problems_in(line, tmp_path)) == 1


@pytest.mark.parametrize(
    "line",
    [
        'st.info("Press **Start** to train.")',
        'st.warning(f"The link\'s value was not used: {escape_markdown(problem)}")',
        'st.caption(f"{count:,} mult-adds · {ratio:.2f}")',
        'text = f"step {int(step)}"\nst.progress(0.1, text=text)',
        'name = escape_markdown(upload.name)\nst.success(f"Loaded {name}")',
        "st.caption(spec.description)",
        "st.caption(MAPS_CAPTION)",
        'st.write({"a": 1})',
        'def count(t):\n    return f"**{t.total:,}** parameters"\nst.markdown(count(table))',
        'def rows(parts):\n    return "\\n".join(f"| {escape_markdown(p)} |" for p in parts)\n'
        "st.markdown(rows(x))",
    ],
)
def test_the_rule_lets_safe_text_through(line, tmp_path):
    assert problems_in(line, tmp_path) == []


def test_escaped_link_values_show_as_text_not_as_links():
    # What the rule guards: the share-link attack of issue 10 rendered harmless.
    phish = "[Click here to fix your settings](https://evil.example/phish)"
    pixel = "![x](https://evil.example/pixel.png)"
    for value in (phish, pixel):
        escaped = escape_markdown(value)
        assert "](" not in escaped.replace("\\](", "")
        assert "https://" not in escaped
