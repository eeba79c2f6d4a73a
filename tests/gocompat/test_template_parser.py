"""The template parser against the cases of Go's text/template/parse/parse_test.go (Go 1.24).

Go's tables as data: an input, whether Go's parser accepts it, and the tree printed back
(with text nodes quoted, as Go's test sets `textFormat = "%q"`); for refused input, a piece
of Go's error message. Go's test parses with only `printf` and `contains` defined; here the
text/template builtins are always defined too, which none of these cases depends on. Go's
error messages name the template; Kuma's templates have the empty name (`template: :2: ...`).
"""

from __future__ import annotations

import pytest

from reconciler.gocompat.template import TemplateError, nodes, parse

OK, ERROR = True, False
FUNCS = ("printf", "contains")

PARSE_CASES: list[tuple[str, str, bool, str]] = [
    ("empty", "", OK, ""),
    ("comment", "{{/*\n\n\n*/}}", OK, ""),
    ("spaces", " \t\n", OK, '" \\t\\n"'),
    ("text", "some text", OK, '"some text"'),
    ("emptyAction", "{{}}", ERROR, ""),
    ("field", "{{.X}}", OK, "{{.X}}"),
    ("simple command", "{{printf}}", OK, "{{printf}}"),
    ("$ invocation", "{{$}}", OK, "{{$}}"),
    ("variable invocation", "{{with $x := 3}}{{$x 23}}{{end}}", OK, "{{with $x := 3}}{{$x 23}}{{end}}"),
    ("variable with fields", "{{$.I}}", OK, "{{$.I}}"),
    ("multi-word command", "{{printf `%d` 23}}", OK, "{{printf `%d` 23}}"),
    ("pipeline", "{{.X|.Y}}", OK, "{{.X | .Y}}"),
    ("pipeline with decl", "{{$x := .X|.Y}}", OK, "{{$x := .X | .Y}}"),
    ("nested pipeline", "{{.X (.Y .Z) (.A | .B .C) (.E)}}", OK, "{{.X (.Y .Z) (.A | .B .C) (.E)}}"),
    ("field applied to parentheses", "{{(.Y .Z).Field}}", OK, "{{(.Y .Z).Field}}"),
    ("simple if", "{{if .X}}hello{{end}}", OK, '{{if .X}}"hello"{{end}}'),
    ("if with else", "{{if .X}}true{{else}}false{{end}}", OK, '{{if .X}}"true"{{else}}"false"{{end}}'),
    ("if with else if", "{{if .X}}true{{else if .Y}}false{{end}}", OK, '{{if .X}}"true"{{else}}{{if .Y}}"false"{{end}}{{end}}'),
    (
        "if else chain",
        "+{{if .X}}X{{else if .Y}}Y{{else if .Z}}Z{{end}}+",
        OK,
        '"+"{{if .X}}"X"{{else}}{{if .Y}}"Y"{{else}}{{if .Z}}"Z"{{end}}{{end}}{{end}}"+"',
    ),
    ("simple range", "{{range .X}}hello{{end}}", OK, '{{range .X}}"hello"{{end}}'),
    ("chained field range", "{{range .X.Y.Z}}hello{{end}}", OK, '{{range .X.Y.Z}}"hello"{{end}}'),
    ("nested range", "{{range .X}}hello{{range .Y}}goodbye{{end}}{{end}}", OK, '{{range .X}}"hello"{{range .Y}}"goodbye"{{end}}{{end}}'),
    ("range with else", "{{range .X}}true{{else}}false{{end}}", OK, '{{range .X}}"true"{{else}}"false"{{end}}'),
    ("range over pipeline", "{{range .X|.M}}true{{else}}false{{end}}", OK, '{{range .X | .M}}"true"{{else}}"false"{{end}}'),
    ("range []int", "{{range .SI}}{{.}}{{end}}", OK, "{{range .SI}}{{.}}{{end}}"),
    ("range 1 var", "{{range $x := .SI}}{{.}}{{end}}", OK, "{{range $x := .SI}}{{.}}{{end}}"),
    ("range 2 vars", "{{range $x, $y := .SI}}{{.}}{{end}}", OK, "{{range $x, $y := .SI}}{{.}}{{end}}"),
    ("range with break", "{{range .SI}}{{.}}{{break}}{{end}}", OK, "{{range .SI}}{{.}}{{break}}{{end}}"),
    ("range with continue", "{{range .SI}}{{.}}{{continue}}{{end}}", OK, "{{range .SI}}{{.}}{{continue}}{{end}}"),
    ("constants", "{{range .SI 1 -3.2i true false 'a' nil}}{{end}}", OK, "{{range .SI 1 -3.2i true false 'a' nil}}{{end}}"),
    ("template", "{{template `x`}}", OK, '{{template "x"}}'),
    ("template with arg", "{{template `x` .Y}}", OK, '{{template "x" .Y}}'),
    ("with", "{{with .X}}hello{{end}}", OK, '{{with .X}}"hello"{{end}}'),
    ("with with else", "{{with .X}}hello{{else}}goodbye{{end}}", OK, '{{with .X}}"hello"{{else}}"goodbye"{{end}}'),
    (
        "with with else with",
        "{{with .X}}hello{{else with .Y}}goodbye{{end}}",
        OK,
        '{{with .X}}"hello"{{else}}{{with .Y}}"goodbye"{{end}}{{end}}',
    ),
    (
        "with else chain",
        "{{with .X}}X{{else with .Y}}Y{{else with .Z}}Z{{end}}",
        OK,
        '{{with .X}}"X"{{else}}{{with .Y}}"Y"{{else}}{{with .Z}}"Z"{{end}}{{end}}{{end}}',
    ),
    ("trim left", "x \r\n\t{{- 3}}", OK, '"x"{{3}}'),
    ("trim right", "{{3 -}}\n\n\ty", OK, '{{3}}"y"'),
    ("trim left and right", "x \r\n\t{{- 3 -}}\n\n\ty", OK, '"x"{{3}}"y"'),
    ("trim with extra spaces", "x\n{{-  3   -}}\ny", OK, '"x"{{3}}"y"'),
    ("comment trim left", "x \r\n\t{{- /* hi */}}", OK, '"x"'),
    ("comment trim right", "{{/* hi */ -}}\n\n\ty", OK, '"y"'),
    ("comment trim left and right", "x \r\n\t{{- /* */ -}}\n\n\ty", OK, '"x""y"'),
    ("block definition", '{{block "foo" .}}hello{{end}}', OK, '{{template "foo" .}}'),
    ("newline in assignment", "{{ $x \n := \n 1 \n }}", OK, "{{$x := 1}}"),
    ("newline in empty action", "{{\n}}", ERROR, ""),
    ("newline in pipeline", '{{\n"x"\n|\nprintf\n}}', OK, '{{"x" | printf}}'),
    ("newline in comment", "{{/*\nhello\n*/}}", OK, ""),
    ("newline in trimmed comment", "{{-\n/*\nhello\n*/\n-}}", OK, ""),
    ("spaces around continue", "{{range .SI}}{{.}}{{ continue }}{{end}}", OK, "{{range .SI}}{{.}}{{continue}}{{end}}"),
    ("spaces around break", "{{range .SI}}{{.}}{{ break }}{{end}}", OK, "{{range .SI}}{{.}}{{break}}{{end}}"),
    # errors
    ("unclosed action", "hello{{range", ERROR, ""),
    ("unmatched end", "{{end}}", ERROR, ""),
    ("unmatched else", "{{else}}", ERROR, ""),
    ("unmatched else after if", "{{if .X}}hello{{end}}{{else}}", ERROR, ""),
    ("multiple else", "{{if .X}}1{{else}}2{{else}}3{{end}}", ERROR, ""),
    ("missing end", "hello{{range .x}}", ERROR, ""),
    ("missing end after else", "hello{{range .x}}{{else}}", ERROR, ""),
    ("undefined function", "hello{{undefined}}", ERROR, ""),
    ("undefined variable", "{{$x}}", ERROR, ""),
    ("variable undefined after end", "{{with $x := 4}}{{end}}{{$x}}", ERROR, ""),
    ("variable undefined in template", "{{template $v}}", ERROR, ""),
    ("declare with field", "{{with $x.Y := 4}}{{end}}", ERROR, ""),
    ("template with field ref", "{{template .X}}", ERROR, ""),
    ("template with var", "{{template $v}}", ERROR, ""),
    ("invalid punctuation", "{{printf 3, 4}}", ERROR, ""),
    ("multidecl outside range", "{{with $v, $u := 3}}{{end}}", ERROR, ""),
    ("too many decls in range", "{{range $u, $v, $w := 3}}{{end}}", ERROR, ""),
    ("dot applied to parentheses", "{{printf (printf .).}}", ERROR, ""),
    ("adjacent args", "{{printf 3`x`}}", ERROR, ""),
    ("adjacent args with .", "{{printf `x`.}}", ERROR, ""),
    ("extra end after if", "{{if .X}}a{{else if .Y}}b{{end}}{{end}}", ERROR, ""),
    ("break outside range", "{{range .}}{{end}} {{break}}", ERROR, ""),
    ("continue outside range", "{{range .}}{{end}} {{continue}}", ERROR, ""),
    ("break in range else", "{{range .}}{{else}}{{break}}{{end}}", ERROR, ""),
    ("continue in range else", "{{range .}}{{else}}{{continue}}{{end}}", ERROR, ""),
    ("bug0a", "{{$x := 0}}{{$x}}", OK, "{{$x := 0}}{{$x}}"),
    ("bug0b", "{{$x += 1}}{{$x}}", ERROR, ""),
    ("bug0c", "{{$x ! 2}}{{$x}}", ERROR, ""),
    ("bug0d", "{{$x % 3}}{{$x}}", ERROR, ""),
    ("bug0e", "{{range $x := $y := 3}}{{end}}", ERROR, ""),
    ("bug1a", "{{$x:=.}}{{$x!2}}", ERROR, ""),
    ("bug1b", "{{$x:=.}}{{$x+2}}", ERROR, ""),
    ("bug1c", "{{$x:=.}}{{$x +2}}", OK, "{{$x := .}}{{$x +2}}"),
    ("bug2a", "{{range $x := 0}}{{$x}}{{end}}", OK, "{{range $x := 0}}{{$x}}{{end}}"),
    ("bug2b", "{{range $x = 0}}{{$x}}{{end}}", OK, "{{range $x = 0}}{{$x}}{{end}}"),
    ("dot after integer", "{{1.E}}", ERROR, ""),
    ("dot after float", "{{0.1.E}}", ERROR, ""),
    ("dot after boolean", "{{true.E}}", ERROR, ""),
    ("dot after char", "{{'a'.any}}", ERROR, ""),
    ("dot after string", '{{"hello".guys}}', ERROR, ""),
    ("dot after dot", "{{..E}}", ERROR, ""),
    ("dot after nil", "{{nil.E}}", ERROR, ""),
    ("wrong pipeline dot", "{{12|.}}", ERROR, ""),
    ("wrong pipeline number", "{{.|12|printf}}", ERROR, ""),
    ("wrong pipeline string", '{{.|printf|"error"}}', ERROR, ""),
    ("wrong pipeline char", "{{12|printf|'e'}}", ERROR, ""),
    ("wrong pipeline boolean", "{{.|true}}", ERROR, ""),
    ("wrong pipeline nil", "{{'c'|nil}}", ERROR, ""),
    ("empty pipeline", '{{printf "%d" ( ) }}', ERROR, ""),
    ("block without pipeline", '{{block "foo"}}hello{{end}}', ERROR, ""),
]

# Refused input and a piece of Go's message (Go's `name:line:` written as `:line:`).
ERROR_CASES: list[tuple[str, str, str]] = [
    ("unclosed1", "line1\n{{", ":2: unclosed action"),
    ("unclosed2", "line1\n{{define `x`}}line2\n{{", ":3: unclosed action"),
    ("unclosed3", 'line1\n{{"x"\n"y"\n', ":4: unclosed action started at :2"),
    ("unclosed4", "{{\n\n\n\n\n", ":6: unclosed action started at :1"),
    ("var1", "line1\n{{\nx\n}}", ':3: function "x" not defined'),
    ("function", "{{foo}}", 'function "foo" not defined'),
    ("comment1", "{{/*}}", ":1: unclosed comment"),
    ("comment2", "{{/*\nhello\n}}", ":1: unclosed comment"),
    ("lparen", "{{.X (1 2 3}}", "unclosed left paren"),
    ("rparen", "{{.X 1 2 3 ) }}", "unexpected right paren"),
    ("rparen2", "{{(.X 1 2 3", "unclosed action"),
    ("space", "{{`x`3}}", "in operand"),
    ("idchar", "{{a#}}", "'#'"),
    ("charconst", "{{'a}}", "unterminated character constant"),
    ("stringconst", '{{"a}}', "unterminated quoted string"),
    ("rawstringconst", "{{`a}}", "unterminated raw quoted string"),
    ("number", "{{0xi}}", "number syntax"),
    ("multidefine", "{{define `a`}}a{{end}}{{define `a`}}b{{end}}", "multiple definition of template"),
    ("eof", "{{range .X}}", "unexpected EOF"),
    ("variable", "{{$x := 23}}{{with $x.y := 3}}{{$x 23}}{{end}}", 'unexpected ":="'),
    ("multidecl", "{{$a,$b,$c := 23}}", "too many declarations"),
    ("undefvar", "{{$a}}", "undefined variable"),
    ("wrongdot", "{{true.any}}", "unexpected . after term"),
    ("wrongpipeline", "{{12|false}}", "non executable command in pipeline"),
    ("emptypipeline", "{{ ( ) }}", "missing value for parenthesized pipeline"),
    ("multilinerawstring", "{{ $v := `\n` }} {{", ":2: unclosed action"),
    ("rangeundefvar", "{{range $k}}{{end}}", "undefined variable"),
    ("rangeundefvars", "{{range $k, $v}}{{end}}", "undefined variable"),
    ("rangemissingvalue1", "{{range $k,}}{{end}}", "missing value for range"),
    ("rangemissingvalue2", "{{range $k, $v := }}{{end}}", "missing value for range"),
    ("rangenotvariable1", "{{range $k, .}}{{end}}", "range can only initialize variables"),
    ("rangenotvariable2", "{{range $k, 123 := .}}{{end}}", "range can only initialize variables"),
    # Found by Go's lexer table: lines inside a comment count.
    ("longcomment", '{{/*\n*/}}\n{{undefinedFunction "test"}}', ':3: function "undefinedFunction" not defined'),
]

IS_EMPTY_CASES: list[tuple[str, str, bool]] = [
    ("empty", "", True),
    ("nonempty", "hello", False),
    ("spaces only", " \t\n \t\n", True),
    ("comment only", "{{/* comment */}}", True),
    ("definition", '{{define "x"}}something{{end}}', True),
    ("definitions and space", "{{define `x`}}something{{end}}\n\n{{define `y`}}something{{end}}\n\n", True),
    ("definitions and text", "{{define `x`}}something{{end}}\nx\n{{define `y`}}something{{end}}\ny\n", False),
    ("definition and action", "{{define `x`}}something{{end}}{{if 3}}foo{{end}}", False),
]


@pytest.mark.parametrize(("text", "ok", "printed"), [pytest.param(t, ok, r, id=n) for n, t, ok, r in PARSE_CASES])
def test_parser_accepts_and_prints_what_go_does(text: str, ok: bool, printed: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nodes, "text_format", "%q")
    if not ok:
        with pytest.raises(TemplateError):
            parse(text, FUNCS)
        return
    assert str(parse(text, FUNCS).trees[""]) == printed


@pytest.mark.parametrize(("text", "message"), [pytest.param(t, m, id=n) for n, t, m in ERROR_CASES])
def test_parse_errors_carry_gos_message_and_line(text: str, message: str) -> None:
    with pytest.raises(TemplateError) as refused:
        parse(text)
    assert message in str(refused.value)
    assert str(refused.value).startswith("template: :")


@pytest.mark.parametrize(("text", "empty"), [pytest.param(t, e, id=n) for n, t, e in IS_EMPTY_CASES])
def test_empty_tree_is_what_go_calls_empty(text: str, empty: bool) -> None:
    assert nodes.is_empty_tree(parse(text).trees[""]) is empty


def test_a_function_named_like_a_keyword_is_a_function() -> None:
    """Go's TestKeywordsAndFuncs: `break` is a keyword only when no function has that name."""
    text = "{{range .X}}{{break 20}}{{end}}"
    assert str(parse(text, ("break",)).trees[""]) == "{{range .X}}{{break 20}}{{end}}"
    with pytest.raises(TemplateError):
        parse(text)


# Go's numberTests: literals the parser takes as numbers, and broken ones it refuses.
NUMBERS = ["0", "-0", "73", "073", "0x73", "-73", "+73", "100", "1e9", "-1e9", "-1.2", "1e19", "-1e19", "4i", "-1.2+4.2i"]
NUMBERS += ["073i", "0i", "-1.2+0i", "-12+0i", "13+0i", "0123", "-0x0", "0xdeadbeef", "0xef"]
NUMBERS += ["'a'", "'\\n'", "'\\\\'", "'\\''", "'\\xFF'", "'パ'", "'\\u30d1'", "'\\U000030d1'"]
BROKEN_NUMBERS = ["+-2", "0x123.", "1e.", "0xi.", "1+2.", "'x", "'xx'", "'433937734937734969526500969526500'"]


@pytest.mark.parametrize("literal", NUMBERS)
def test_number_literals_go_reads(literal: str) -> None:
    assert str(parse("{{print " + literal + "}}").trees[""]) == "{{print " + literal + "}}"


@pytest.mark.parametrize("literal", BROKEN_NUMBERS)
def test_number_literals_go_refuses(literal: str) -> None:
    with pytest.raises(TemplateError):
        parse("{{print " + literal + "}}")
