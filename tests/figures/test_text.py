"""Text from a link or a file is shown as written, never run as Markdown."""

import html

import pytest

from deeparch.figures.text import WORD_JOINER, code_span, escape_markdown

ATTACKS = [
    "**bold** _italic_ `code`",
    "[click](http://evil.example) www.evil.example x@evil.example",
    "![picture](x.png)",
    "<b>html</b> &amp; an entity",
    "# a heading",
    "- a list",
    "1. an ordered list",
    "3) another",
    "> a quote",
    "~~struck~~",
    "$x^2$ in LaTeX",
    ":red[a coloured] word",
    "| a | table |",
    "back\\slash",
]


@pytest.mark.parametrize("text", ATTACKS)
def test_an_escaped_text_renders_as_itself(text):
    # markdown-it-py (CommonMark, here with GitHub's tables and strikethrough) is the oracle.
    markdown_it = pytest.importorskip("markdown_it")
    renderer = markdown_it.MarkdownIt("commonmark").enable(["strikethrough", "table"])
    rendered = renderer.render(escape_markdown(text)).replace(WORD_JOINER, "")
    assert rendered == f"<p>{html.escape(text, quote=False)}</p>\n"


def test_plain_messages_stay_readable():
    message = "Could not load weights.safetensors: it is 3.2 MB (limit 150 MB), 'lr'=0.01"
    assert escape_markdown(message) == message
    assert escape_markdown("hidden_sizes='1 6'") == r"hidden\_sizes='1 6'"


def test_newlines_cannot_start_a_block_and_bare_urls_are_no_links():
    assert escape_markdown("a\n\n# b\r\n- c") == r"a \# b - c"  # one line: "- c" is no list
    # Streamlit links bare URLs after reading escapes: an invisible word joiner breaks them.
    assert escape_markdown("see http://evil.example") == "see http\u2060://evil.example"
    assert escape_markdown("or WWW.evil.example") == "or WWW\u2060.evil.example"
    assert escape_markdown("mail x@evil.example") == "mail x\u2060@evil.example"


@pytest.mark.parametrize(
    "text", ["layers.fc1", "a`b", "``x``", "`start", "[link](http://evil.example)", "two\nlines"]
)
def test_a_code_span_shows_its_text_as_code_whatever_it_holds(text):
    markdown_it = pytest.importorskip("markdown_it")
    rendered = markdown_it.MarkdownIt("commonmark").render(code_span(text))
    shown = " ".join(text.split("\n"))
    assert rendered == f"<p><code>{html.escape(shown, quote=False)}</code></p>\n"
