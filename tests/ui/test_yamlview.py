"""The YAML highlighter: tokens, comments, escaping, problem lines."""

from __future__ import annotations

from flowtime.ui.yamlview import highlight, highlight_line


def test_keys_numbers_strings_and_comments_get_their_classes() -> None:
    assert highlight_line('  - id: served  # out') == (
        '  - <span class="y-key">id</span>: served  <span class="y-com"># out</span>')
    assert highlight_line('expr: "MIN(a, 2)"') == (
        '<span class="y-key">expr</span>: <span class="y-str">&quot;MIN(a, 2)&quot;</span>')
    assert highlight_line("values: [1, -2.5, 3e2]") == (
        '<span class="y-key">values</span>: [<span class="y-num">1</span>, <span class="y-num">-2.5</span>, '
        '<span class="y-num">3e2</span>]')


def test_a_hash_inside_quotes_or_a_word_is_not_a_comment() -> None:
    assert "y-com" not in highlight_line('title: "a # b"')
    assert "y-com" not in highlight_line("title: a#b")
    assert highlight_line("title: it's # c").endswith('<span class="y-com"># c</span>')


def test_html_is_escaped() -> None:
    assert "<script>" not in highlight_line("title: <script>alert(1)</script>")


def test_problems_attach_to_their_lines() -> None:
    lines = highlight("a: 1\nb: 2\n", [(2, "bad b"), (None, "nowhere")])
    assert [(line.number, line.problems) for line in lines] == [(1, ()), (2, ("bad b",))]
