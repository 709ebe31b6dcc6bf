"""Write the README's generated tables from the registry, or check that they are up to date.

    python3 scripts/readme_tables.py           # rewrite each table between its markers
    python3 scripts/readme_tables.py --check   # exit 1 with a diff if README.md is out of date

A table lives between `<!-- begin generated table: NAME ... -->` and `<!-- end generated table:
NAME -->`; everything outside the markers is left as it is.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the deeparch next to this script, not an installed one
from deeparch.models import archs_in_gallery_order, create_model, get_arch  # noqa: E402

README = ROOT / "README.md"


def architecture_table() -> str:
    """One row per registered architecture, in Home's gallery order; parameters counted with
    sum(numel) of the model built at its defaults on its default dataset."""
    lines = [
        "| name | family | task | parameters | default dataset | what it is |",
        "|---|---|---|--:|---|---|",
    ]
    for name in archs_in_gallery_order():
        spec = get_arch(name)
        model, _ = create_model(name)
        params = sum(p.numel() for p in model.parameters())
        cells = [f"`{name}`", spec.family, spec.task, f"{params:,}", spec.default_dataset]
        cells.append(spec.summary.replace("|", "\\|"))  # a bar would end the cell
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


TABLES: dict[str, Callable[[], str]] = {"architectures": architecture_table}


def begin_marker(name: str) -> str:
    return f"<!-- begin generated table: {name} (python3 scripts/readme_tables.py) -->"


def end_marker(name: str) -> str:
    return f"<!-- end generated table: {name} -->"


def with_table(text: str, name: str, table: str) -> str:
    """`text` with the lines between the table's markers replaced by `table`."""
    begin, end = begin_marker(name), end_marker(name)
    if text.count(begin) != 1 or text.count(end) != 1 or text.index(begin) > text.index(end):
        raise SystemExit(f"README.md needs one line {begin!r} and, after it, one line {end!r}")
    head, rest = text.split(begin + "\n", 1)
    _, tail = rest.split(end, 1)
    return f"{head}{begin}\n{table}\n{end}{tail}"


def up_to_date(text: str) -> str:
    for name, make_table in TABLES.items():
        text = with_table(text, name, make_table())
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare only; exit 1 if different")
    parser.add_argument("--readme", type=Path, default=README, help="default: %(default)s")
    args = parser.parse_args(argv)
    current = args.readme.read_text(encoding="utf-8")
    wanted = up_to_date(current)
    if wanted == current:
        return 0
    if args.check:
        diff = difflib.unified_diff(
            current.splitlines(keepends=True),
            wanted.splitlines(keepends=True),
            fromfile=f"{args.readme} (committed)",
            tofile=f"{args.readme} (from the registry)",
        )
        sys.stdout.writelines(diff)
        print(f"\n{args.readme} is out of date: run python3 scripts/readme_tables.py")
        return 1
    args.readme.write_text(wanted, encoding="utf-8")
    print(f"rewrote the tables in {args.readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
