"""The template lexer against the cases of Go's text/template/parse/lex_test.go (Go 1.24).

The tables are Go's test facts written as data: an input and the items Go's lexer emits
(kind and text; for the position table also offset and line). This lexer runs as Go's does
inside `Parse`, which drops comments instead of emitting them, so Go's comment items are
left out of the expected lists; cases with other delimiters than `{{ }}` are not ported
(Kuma's fields use the default ones).
"""

from __future__ import annotations

import pytest

from reconciler.gocompat.template import items
from reconciler.gocompat.template.lexer import Lexer

L, R, SP, EOF = ("LEFT_DELIM", "{{"), ("RIGHT_DELIM", "}}"), ("SPACE", " "), ("EOF", "")
RAW = '`abc\\n\\t\\" `'
RAW_NL = "`now is{{\n}}the time`"

LEX_CASES: list[tuple[str, str, list[tuple[str, str]]]] = [
    ("empty", "", [EOF]),
    ("spaces", " \t\n", [("TEXT", " \t\n"), EOF]),
    ("text", "now is the time", [("TEXT", "now is the time"), EOF]),
    ("text with comment", "hello-{{/* this is a comment */}}-world", [("TEXT", "hello-"), ("TEXT", "-world"), EOF]),
    ("punctuation", "{{,@% }}", [L, ("CHAR", ","), ("CHAR", "@"), ("CHAR", "%"), SP, R, EOF]),
    (
        "parens",
        "{{((3))}}",
        [L, ("LEFT_PAREN", "("), ("LEFT_PAREN", "("), ("NUMBER", "3"), ("RIGHT_PAREN", ")"), ("RIGHT_PAREN", ")"), R, EOF],
    ),
    ("empty action", "{{}}", [L, R, EOF]),
    ("for", "{{for}}", [L, ("IDENTIFIER", "for"), R, EOF]),
    ("block", '{{block "foo" .}}', [L, ("BLOCK", "block"), SP, ("STRING", '"foo"'), SP, ("DOT", "."), R, EOF]),
    ("quote", '{{"abc \\n\\t\\" "}}', [L, ("STRING", '"abc \\n\\t\\" "'), R, EOF]),
    ("raw quote", "{{" + RAW + "}}", [L, ("RAW_STRING", RAW), R, EOF]),
    ("raw quote with newline", "{{" + RAW_NL + "}}", [L, ("RAW_STRING", RAW_NL), R, EOF]),
    (
        "numbers",
        "{{1 02 0x14 0X14 -7.2i 1e3 1E3 +1.2e-4 4.2i 1+2i 1_2 0x1.e_fp4 0X1.E_FP4}}",
        [L]
        + [x for n in ("1", "02", "0x14", "0X14", "-7.2i", "1e3", "1E3", "+1.2e-4", "4.2i") for x in (("NUMBER", n), SP)]
        + [("COMPLEX", "1+2i"), SP, ("NUMBER", "1_2"), SP, ("NUMBER", "0x1.e_fp4"), SP, ("NUMBER", "0X1.E_FP4"), R, EOF],
    ),
    (
        "characters",
        "{{'a' '\\n' '\\'' '\\\\' '\\u00FF' '\\xFF' '本'}}",
        [L]
        + [x for c in ("'a'", "'\\n'", "'\\''", "'\\\\'", "'\\u00FF'") for x in (("CHAR_CONSTANT", c), SP)]
        + [("CHAR_CONSTANT", "'\\xFF'"), SP, ("CHAR_CONSTANT", "'本'"), R, EOF],
    ),
    ("bools", "{{true false}}", [L, ("BOOL", "true"), SP, ("BOOL", "false"), R, EOF]),
    ("dot", "{{.}}", [L, ("DOT", "."), R, EOF]),
    ("nil", "{{nil}}", [L, ("NIL", "nil"), R, EOF]),
    (
        "dots",
        "{{.x . .2 .x.y.z}}",
        [L, ("FIELD", ".x"), SP, ("DOT", "."), SP, ("NUMBER", ".2"), SP, ("FIELD", ".x"), ("FIELD", ".y"), ("FIELD", ".z"), R, EOF],
    ),
    (
        "keywords",
        "{{range if else end with}}",
        [L, ("RANGE", "range"), SP, ("IF", "if"), SP, ("ELSE", "else"), SP, ("END", "end"), SP, ("WITH", "with"), R, EOF],
    ),
    (
        "variables",
        "{{$c := printf $ $hello $23 $ $var.Field .Method}}",
        [
            L,
            ("VARIABLE", "$c"),
            SP,
            ("DECLARE", ":="),
            SP,
            ("IDENTIFIER", "printf"),
            SP,
            ("VARIABLE", "$"),
            SP,
            ("VARIABLE", "$hello"),
            SP,
            ("VARIABLE", "$23"),
            SP,
            ("VARIABLE", "$"),
            SP,
            ("VARIABLE", "$var"),
            ("FIELD", ".Field"),
            SP,
            ("FIELD", ".Method"),
            R,
            EOF,
        ],
    ),
    ("variable invocation", "{{$x 23}}", [L, ("VARIABLE", "$x"), SP, ("NUMBER", "23"), R, EOF]),
    (
        "pipeline",
        'intro {{echo hi 1.2 |noargs|args 1 "hi"}} outro',
        [
            ("TEXT", "intro "),
            L,
            ("IDENTIFIER", "echo"),
            SP,
            ("IDENTIFIER", "hi"),
            SP,
            ("NUMBER", "1.2"),
            SP,
            ("PIPE", "|"),
            ("IDENTIFIER", "noargs"),
            ("PIPE", "|"),
            ("IDENTIFIER", "args"),
            SP,
            ("NUMBER", "1"),
            SP,
            ("STRING", '"hi"'),
            R,
            ("TEXT", " outro"),
            EOF,
        ],
    ),
    ("declaration", "{{$v := 3}}", [L, ("VARIABLE", "$v"), SP, ("DECLARE", ":="), SP, ("NUMBER", "3"), R, EOF]),
    (
        "2 declarations",
        "{{$v , $w := 3}}",
        [L, ("VARIABLE", "$v"), SP, ("CHAR", ","), SP, ("VARIABLE", "$w"), SP, ("DECLARE", ":="), SP, ("NUMBER", "3"), R, EOF],
    ),
    (
        "field of parenthesized expression",
        "{{(.X).Y}}",
        [L, ("LEFT_PAREN", "("), ("FIELD", ".X"), ("RIGHT_PAREN", ")"), ("FIELD", ".Y"), R, EOF],
    ),
    ("trimming spaces before and after", "hello- {{- 3 -}} -world", [("TEXT", "hello-"), L, ("NUMBER", "3"), R, ("TEXT", "-world"), EOF]),
    ("trimming spaces before and after comment", "hello- {{- /* hello */ -}} -world", [("TEXT", "hello-"), ("TEXT", "-world"), EOF]),
    # errors: the error item ends the stream
    ("badchar", "#{{\x01}}", [("TEXT", "#"), L, ("ERROR", "unrecognized character in action: U+0001")]),
    ("unclosed action", "{{", [L, ("ERROR", "unclosed action")]),
    ("EOF in action", "{{range", [L, ("RANGE", "range"), ("ERROR", "unclosed action")]),
    ("unclosed quote", '{{"\n"}}', [L, ("ERROR", "unterminated quoted string")]),
    ("unclosed raw quote", "{{`xx}}", [L, ("ERROR", "unterminated raw quoted string")]),
    ("unclosed char constant", "{{'\n}}", [L, ("ERROR", "unterminated character constant")]),
    ("bad number", "{{3k}}", [L, ("ERROR", 'bad number syntax: "3k"')]),
    ("unclosed paren", "{{(3}}", [L, ("LEFT_PAREN", "("), ("NUMBER", "3"), ("ERROR", "unclosed left paren")]),
    ("extra right paren", "{{3)}}", [L, ("NUMBER", "3"), ("ERROR", "unexpected right paren")]),
    # fixed bugs in Go
    ("long pipeline deadlock", "{{|||||}}", [L] + [("PIPE", "|")] * 5 + [R, EOF]),
    ("text with bad comment", "hello-{{/*/}}-world", [("TEXT", "hello-"), ("ERROR", "unclosed comment")]),
    (
        "text with comment close separated from delim",
        "hello-{{/* */ }}-world",
        [("TEXT", "hello-"), ("ERROR", "comment ends before closing delimiter")],
    ),
    ("unmatched right delimiter", "hello-{.}}-world", [("TEXT", "hello-{.}}-world"), EOF]),
]

POSITION_CASES: list[tuple[str, str, list[tuple[str, int, str, int]]]] = [
    ("empty", "", [("EOF", 0, "", 1)]),
    (
        "punctuation",
        "{{,@%#}}",
        [("LEFT_DELIM", 0, "{{", 1), ("CHAR", 2, ",", 1), ("CHAR", 3, "@", 1), ("CHAR", 4, "%", 1), ("CHAR", 5, "#", 1)]
        + [("RIGHT_DELIM", 6, "}}", 1), ("EOF", 8, "", 1)],
    ),
    (
        "sample",
        "0123{{hello}}xyz",
        [("TEXT", 0, "0123", 1), ("LEFT_DELIM", 4, "{{", 1), ("IDENTIFIER", 6, "hello", 1), ("RIGHT_DELIM", 11, "}}", 1)]
        + [("TEXT", 13, "xyz", 1), ("EOF", 16, "", 1)],
    ),
    (
        "trimafter",
        "{{x -}}\n{{y}}",
        [("LEFT_DELIM", 0, "{{", 1), ("IDENTIFIER", 2, "x", 1), ("RIGHT_DELIM", 5, "}}", 1), ("LEFT_DELIM", 8, "{{", 2)]
        + [("IDENTIFIER", 10, "y", 2), ("RIGHT_DELIM", 11, "}}", 2), ("EOF", 13, "", 2)],
    ),
    (
        "trimbefore",
        "{{x}}\n{{- y}}",
        [("LEFT_DELIM", 0, "{{", 1), ("IDENTIFIER", 2, "x", 1), ("RIGHT_DELIM", 3, "}}", 1), ("LEFT_DELIM", 6, "{{", 2)]
        + [("IDENTIFIER", 10, "y", 2), ("RIGHT_DELIM", 11, "}}", 2), ("EOF", 13, "", 2)],
    ),
    (
        "longcomment",
        '{{/*\n*/}}\n{{undefinedFunction "test"}}',
        [("TEXT", 9, "\n", 2), ("LEFT_DELIM", 10, "{{", 3), ("IDENTIFIER", 12, "undefinedFunction", 3), ("SPACE", 29, " ", 3)]
        + [("STRING", 30, '"test"', 3), ("RIGHT_DELIM", 36, "}}", 3), ("EOF", 38, "", 3)],
    ),
]


_KINDS = [
    "ERROR",
    "BOOL",
    "CHAR",
    "CHAR_CONSTANT",
    "COMMENT",
    "COMPLEX",
    "ASSIGN",
    "DECLARE",
    "EOF",
    "FIELD",
    "IDENTIFIER",
    "LEFT_DELIM",
    "LEFT_PAREN",
    "NUMBER",
    "PIPE",
    "RAW_STRING",
    "RIGHT_DELIM",
    "RIGHT_PAREN",
    "SPACE",
    "STRING",
    "TEXT",
    "VARIABLE",
    "BLOCK",
    "BREAK",
    "CONTINUE",
    "DOT",
    "DEFINE",
    "ELSE",
    "END",
    "IF",
    "NIL",
    "RANGE",
    "TEMPLATE",
    "WITH",
]


def _lex(text: str) -> list[tuple[str, int, str, int]]:
    names = {getattr(items, n): n for n in _KINDS}
    lexer = Lexer(text)
    out = []
    while True:
        item = lexer.next_item()
        # Go's EOF item has an empty value; this lexer's says "EOF" for error messages.
        out.append((names[item.typ], item.pos, "" if item.typ == items.EOF else item.val, item.line))
        if item.typ in (items.EOF, items.ERROR):
            return out


@pytest.mark.parametrize(("text", "expected"), [pytest.param(t, e, id=n) for n, t, e in LEX_CASES])
def test_lexer_emits_the_items_go_emits(text: str, expected: list[tuple[str, str]]) -> None:
    assert [(kind, value) for kind, _, value, _ in _lex(text)] == expected


@pytest.mark.parametrize(("text", "expected"), [pytest.param(t, e, id=n) for n, t, e in POSITION_CASES])
def test_lexer_positions_and_lines_are_gos(text: str, expected: list[tuple[str, int, str, int]]) -> None:
    assert _lex(text) == expected
