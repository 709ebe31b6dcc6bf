"""Text from a user or a file, made safe to show in Markdown (Markdown is code)."""

from __future__ import annotations

import re

# Characters that start Markdown as Streamlit renders it: CommonMark (emphasis, code, links,
# images, HTML, entities, headings), GitHub's extensions (strikethrough, tables, autolinks),
# :color[text] directives and $LaTeX$. Any ASCII punctuation may be escaped with a backslash.
SPECIAL = re.compile(r"([\\`*_\[\]<>~$|#&])")
# Marks that start a block only at the start of a line: a list, a quote, a heading underline.
LINE_START = re.compile(r"^(\s*)([-+=]|\d+(?=[.)]))")
WORD_JOINER = "\u2060"  # invisible, and no letter of a link
NEWLINES = re.compile(r"\s*[\r\n]+\s*")


def escape_markdown(text: str) -> str:
    """`text` as Markdown that shows it as written, on one line: no link, emphasis or HTML."""
    text = NEWLINES.sub(" ", str(text))
    text = SPECIAL.sub(r"\\\1", text)
    text = LINE_START.sub(_escape_block_start, text)
    # GitHub's extension turns bare URLs, www. names and e-mail addresses into links, after the
    # escapes are read (so a backslash cannot stop it): an invisible word joiner breaks each one.
    text = text.replace("://", f"{WORD_JOINER}://").replace("@", f"{WORD_JOINER}@")
    return re.sub(r"(?i)\b(www)\.", rf"\1{WORD_JOINER}.", text)


def _escape_block_start(match: re.Match) -> str:
    indent, mark = match.group(1), match.group(2)
    if mark.isdigit():  # "1." starts an ordered list: escape the full stop after the number
        return f"{indent}{mark}\\"
    return f"{indent}\\{mark}"


def code_span(text: str) -> str:
    """`text` as inline code on one line: fenced by more backticks than any run inside it, so no
    backtick in it can end the span (backslash escapes mean nothing inside code)."""
    text = NEWLINES.sub(" ", str(text))
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    padded = f" {text} " if text.startswith("`") or text.endswith("`") else text
    return f"{fence}{padded}{fence}"
