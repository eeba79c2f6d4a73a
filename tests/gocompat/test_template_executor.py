"""The template executor against the cases of Go's text/template/exec_test.go (Go 1.24).

Go's tables as data: a template, Go's output and whether Go's Execute succeeds. Go runs them
against a struct with many kinds of fields and methods; Kuma's templates see a struct of
strings, so the cases kept here are those over constants, variables, builtins and the string
fields `.X` ("x") and `.S` ("xyz") that Go's test struct also has. TestComparison's table
runs as Go runs it: `{{if EXPR}}true{{else}}false{{end}}`.

Where Go's result needs what this port does not model (the %g and %T verbs, printing a
complex number), the port must say `Unsupported` (no verdict, the caller skips its rendering
check) and never print something else than Go would.
"""

from __future__ import annotations

import pytest

from reconciler.gocompat.template import ExecError, Record, Unsupported, execute, parse

OK, ERR = True, False
DATA = Record({"X": "x", "S": "xyz"})

EXEC_CASES: list[tuple[str, str, str, bool]] = [
    (".X", "-{{.X}}-", "-x-", True),
    ("unparenthesized non-function", "{{1 2}}", "", False),
    ("parenthesized non-function", "{{(1) 2}}", "", False),
    ("parenthesized non-function with no args", "{{(1)}}", "1", True),
    ("ideal nil without type", "{{nil}}", "", False),
    ("simple assignment", "{{$x := 2}}{{$x = 3}}{{$x}}", "3", True),
    ("nested assignment", "{{$x := 2}}{{if true}}{{$x = 3}}{{end}}{{$x}}", "3", True),
    (
        "nested assignment changes the last declaration",
        "{{$x := 1}}{{if true}}{{$x := 2}}{{if true}}{{$x = 3}}{{end}}{{end}}{{$x}}",
        "1",
        True,
    ),
    ("if true", "{{if true}}TRUE{{end}}", "TRUE", True),
    ("if false", "{{if false}}TRUE{{else}}FALSE{{end}}", "FALSE", True),
    ("if nil", "{{if nil}}TRUE{{end}}", "", False),
    ("if 1", "{{if 1}}NON-ZERO{{else}}ZERO{{end}}", "NON-ZERO", True),
    ("if 0", "{{if 0}}NON-ZERO{{else}}ZERO{{end}}", "ZERO", True),
    ("if 1.5", "{{if 1.5}}NON-ZERO{{else}}ZERO{{end}}", "NON-ZERO", True),
    ("if 1.5i", "{{if 1.5i}}NON-ZERO{{else}}ZERO{{end}}", "NON-ZERO", True),
    ("if emptystring", "{{if ``}}NON-EMPTY{{else}}EMPTY{{end}}", "EMPTY", True),
    ("if string", "{{if `notempty`}}NON-EMPTY{{else}}EMPTY{{end}}", "NON-EMPTY", True),
    ("if else if", "{{if false}}FALSE{{else if true}}TRUE{{end}}", "TRUE", True),
    ("if else chain", "{{if eq 1 3}}1{{else if eq 2 3}}2{{else if eq 3 3}}3{{end}}", "3", True),
    ("print", '{{print "hello, print"}}', "hello, print", True),
    ("print 123", "{{print 1 2 3}}", "1 2 3", True),
    ("print nil", "{{print nil}}", "<nil>", True),
    ("println", "{{println 1 2 3}}", "1 2 3\n", True),
    ("printf int", '{{printf "%04x" 127}}', "007f", True),
    ("printf string", '{{printf "%s" "hello"}}', "hello", True),
    ("printf field", '{{printf "%s" .X}}', "x", True),
    ("printf var", '{{with $x := 17}}{{printf "%d" $x}}{{end}}', "17", True),
    ("html", '{{html "<script>alert(\\"XSS\\");</script>"}}', "&lt;script&gt;alert(&#34;XSS&#34;);&lt;/script&gt;", True),
    ("html pipeline", '{{printf "<script>alert(\\"XSS\\");</script>" | html}}', "&lt;script&gt;alert(&#34;XSS&#34;);&lt;/script&gt;", True),
    ("js", "{{js `It'd be nice.`}}", "It\\'d be nice.", True),
    ("urlquery", '{{"http://www.example.org/"|urlquery}}', "http%3A%2F%2Fwww.example.org%2F", True),
    ("not", "{{not true}} {{not false}}", "false true", True),
    ("and", "{{and false 0}} {{and 1 0}} {{and 0 true}} {{and 1 1}}", "false 0 0 1", True),
    ("or", "{{or 0 0}} {{or 1 0}} {{or 0 true}} {{or 1 1}}", "0 1 true 1", True),
    ("and pipe-true", "{{1 | and 1}}", "1", True),
    ("and pipe-false", "{{0 | and 1}}", "0", True),
    ("or pipe-true", "{{1 | or 0}}", "1", True),
    ("or pipe-false", "{{0 | or 0}}", "0", True),
    ("boolean if", "{{if and true 1 `hi`}}TRUE{{else}}FALSE{{end}}", "TRUE", True),
    ("boolean if not", "{{if and true 1 `hi` | not}}TRUE{{else}}FALSE{{end}}", "FALSE", True),
    ("boolean if pipe", "{{if true | not | and 1}}TRUE{{else}}FALSE{{end}}", "FALSE", True),
    ("nil[1]", "{{index nil 1}}", "", False),
    ("string[:]", "{{slice .S}}", "xyz", True),
    ("string[0:1]", "{{slice .S 0 1}}", "x", True),
    ("string[1:]", "{{slice .S 1}}", "yz", True),
    ("string[1:2]", "{{slice .S 1 2}}", "y", True),
    ("string out of range", "{{slice .S 1 5}}", "", False),
    ("3-index slice of string", "{{slice .S 1 2 2}}", "", False),
    ("len of int", "{{len 3}}", "", False),
    ("with true", "{{with true}}{{.}}{{end}}", "true", True),
    ("with false", "{{with false}}{{.}}{{else}}FALSE{{end}}", "FALSE", True),
    ("with 1", "{{with 1}}{{.}}{{else}}ZERO{{end}}", "1", True),
    ("with 0", "{{with 0}}{{.}}{{else}}ZERO{{end}}", "ZERO", True),
    ("with 1.5", "{{with 1.5}}{{.}}{{else}}ZERO{{end}}", "1.5", True),
    ("with emptystring", "{{with ``}}{{.}}{{else}}EMPTY{{end}}", "EMPTY", True),
    ("with string", "{{with `notempty`}}{{.}}{{else}}EMPTY{{end}}", "notempty", True),
    ("with $x struct.X", "{{with $x := $}}{{$x.X}}{{end}}", "x", True),
    ("with else with", "{{with 0}}{{.}}{{else with true}}{{.}}{{end}}", "true", True),
    ("with else with chain", "{{with 0}}{{.}}{{else with false}}{{.}}{{else with `notempty`}}{{.}}{{end}}", "notempty", True),
    ("decimal", "{{print 1234}}", "1234", True),
    ("decimal _", "{{print 12_34}}", "1234", True),
    ("binary", "{{print 0b101}}", "5", True),
    ("binary _", "{{print 0b_1_0_1}}", "5", True),
    ("BINARY", "{{print 0B101}}", "5", True),
    ("octal0", "{{print 0377}}", "255", True),
    ("octal", "{{print 0o377}}", "255", True),
    ("octal _", "{{print 0o_3_7_7}}", "255", True),
    ("OCTAL", "{{print 0O377}}", "255", True),
    ("hex", "{{print 0x123}}", "291", True),
    ("hex _", "{{print 0x1_23}}", "291", True),
    ("HEX", "{{print 0X123ABC}}", "1194684", True),
    ("float", "{{print 123.4}}", "123.4", True),
    ("float _", "{{print 0_0_1_2_3.4}}", "123.4", True),
    ("hex float", "{{print +0x1.ep+2}}", "7.5", True),
    ("hex float _", "{{print +0x_1.e_0p+0_2}}", "7.5", True),
    ("HEX float", "{{print +0X1.EP+2}}", "7.5", True),
    ("print multi", "{{print 1_2_3_4 7.5_00_00_00}}", "1234 7.5", True),
    ("print multi2", "{{print 1234 0x0_1.e_0p+02}}", "1234 7.5", True),
    ("bug7a", "{{3 2}}", "", False),
    ("bug7b", "{{$x := 1}}{{$x 2}}", "", False),
    ("bug7c", "{{$x := 1}}{{3 | $x}}", "", False),
    ("bug14a", "{{(nil).True}}", "", False),
    ("bug14b", "{{$x := nil}}{{$x.anything}}", "", False),
    ("bug14c", '{{$x := (1.0)}}{{$y := ("hello")}}{{$x.anything}}{{$y.true}}', "", False),
    ("bug16a", "{{true|printf}}", "", False),
    ("bug16b", "{{1|printf}}", "", False),
    ("bug16c", "{{1.1|printf}}", "", False),
    ("bug16d", "{{'x'|printf}}", "", False),
    ("bug16e", "{{0i|printf}}", "", False),
    ("bug16k", '{{"aaa"|printf }}', "aaa", True),
]

BEYOND_THE_PORT: list[tuple[str, str, str]] = [
    ("printf float", '{{printf "%g" 3.5}}', "3.5"),
    ("printf complex", '{{printf "%g" 1+7i}}', "(1+7i)"),
    ("with 1.5i", "{{with 1.5i}}{{.}}{{else}}ZERO{{end}}", "(0+1.5i)"),
    ("range 5", '{{range $v := 5}}{{printf "%T%d" $v $v}}{{end}}', "int0int1int2int3int4"),
    ("bug12xe", "{{printf `%T` 0xef}}", "int"),
    ("bug12xE", "{{printf `%T` 0xEE}}", "int"),
    ("bug12Xe", "{{printf `%T` 0Xef}}", "int"),
    ("bug12XE", "{{printf `%T` 0XEE}}", "int"),
    ("bug16j", '{{1+2i|printf "%v"}}', "(1+2i)"),
]

COMPARISONS: list[tuple[str, str]] = [
    ("eq true true", "true"),
    ("eq true false", "false"),
    ("eq 1+2i 1+2i", "true"),
    ("eq 1+2i 1+3i", "false"),
    ("eq 1.5 1.5", "true"),
    ("eq 1.5 2.5", "false"),
    ("eq 1 1", "true"),
    ("eq 1 2", "false"),
    ("eq `xy` `xy`", "true"),
    ("eq `xy` `xyz`", "false"),
    ("eq 3 4 5 6 3", "true"),
    ("eq 3 4 5 6 7", "false"),
    ("ne true true", "false"),
    ("ne true false", "true"),
    ("ne 1+2i 1+2i", "false"),
    ("ne 1+2i 1+3i", "true"),
    ("ne 1.5 1.5", "false"),
    ("ne 1.5 2.5", "true"),
    ("ne 1 1", "false"),
    ("ne 1 2", "true"),
    ("ne `xy` `xy`", "false"),
    ("ne `xy` `xyz`", "true"),
    ("lt 1.5 1.5", "false"),
    ("lt 1.5 2.5", "true"),
    ("lt 1 1", "false"),
    ("lt 1 2", "true"),
    ("lt `xy` `xy`", "false"),
    ("lt `xy` `xyz`", "true"),
    ("le 1.5 1.5", "true"),
    ("le 1.5 2.5", "true"),
    ("le 2.5 1.5", "false"),
    ("le 1 1", "true"),
    ("le 1 2", "true"),
    ("le 2 1", "false"),
    ("le `xy` `xy`", "true"),
    ("le `xy` `xyz`", "true"),
    ("le `xyz` `xy`", "false"),
    ("gt 1.5 1.5", "false"),
    ("gt 1.5 2.5", "false"),
    ("gt 1 1", "false"),
    ("gt 2 1", "true"),
    ("gt 1 2", "false"),
    ("gt `xy` `xy`", "false"),
    ("gt `xy` `xyz`", "false"),
    ("ge 1.5 1.5", "true"),
    ("ge 1.5 2.5", "false"),
    ("ge 2.5 1.5", "true"),
    ("ge 1 1", "true"),
    ("ge 1 2", "false"),
    ("ge 2 1", "true"),
    ("ge `xy` `xy`", "true"),
    ("ge `xy` `xyz`", "false"),
    ("ge `xyz` `xy`", "true"),
    ("eq (index `x` 0) 'x'", "true"),
    ("eq (index `x` 0) 'y'", "false"),
]
REFUSED_COMPARISONS = [
    "eq `xy` 1",
    "eq 2 2.0",
    "lt true true",
    "lt 1+0i 1+0i",
]


@pytest.mark.parametrize(("text", "output", "ok"), [pytest.param(t, o, ok, id=n) for n, t, o, ok in EXEC_CASES])
def test_executes_like_go(text: str, output: str, ok: bool) -> None:
    template = parse(text)
    if not ok:
        with pytest.raises(ExecError):
            execute(template, DATA)
        return
    assert execute(template, DATA) == output


@pytest.mark.parametrize(("text", "go_output"), [pytest.param(t, o, id=n) for n, t, o in BEYOND_THE_PORT])
def test_what_the_port_does_not_model_gets_no_verdict(text: str, go_output: str) -> None:
    with pytest.raises(Unsupported):
        execute(parse(text), DATA)


@pytest.mark.parametrize(("expr", "truth"), COMPARISONS)
def test_comparisons_are_gos(expr: str, truth: str) -> None:
    assert execute(parse(f"{{{{if {expr}}}}}true{{{{else}}}}false{{{{end}}}}"), DATA) == truth


@pytest.mark.parametrize("expr", REFUSED_COMPARISONS)
def test_comparisons_go_refuses_fail(expr: str) -> None:
    with pytest.raises(ExecError, match="for comparison"):
        execute(parse(f"{{{{if {expr}}}}}true{{{{else}}}}false{{{{end}}}}"), DATA)


EXEC_ERROR_TEXT = """line 1
line 2
line 3
{{template "one" .}}
{{define "one"}}{{template "two" .}}{{end}}
{{define "two"}}{{template "three" .}}{{end}}
{{define "three"}}{{index "hi" 5}}{{end}}"""


@pytest.mark.xfail(
    strict=True,
    reason='Go\'s evalCall names the whole command (`at <index "hi" 5>`); the port names the function (`at <index>`). '
    "Kept as it is: tests/security/test_identity_binding.py pins the port's message for `label`; a fix is a behaviour change.",
)
def test_a_failed_call_names_the_template_line_column_and_command_as_go_does() -> None:
    """Go's TestExecError (with `5` written in the template: Kuma's data is a struct of strings)."""
    with pytest.raises(ExecError) as failed:
        execute(parse(EXEC_ERROR_TEXT), DATA)
    assert str(failed.value) == 'template: :7:20: executing "three" at <index "hi" 5>: error calling index: index out of range: 5'


def test_a_wrong_argument_count_names_the_function() -> None:
    """The message Kuma prints for `{{ label }}` (tests/cases/HostnameGenerator): the function, not the command."""
    with pytest.raises(ExecError) as failed:
        execute(parse("x{{label}}", ("label",)), DATA, {"label": lambda key: key})
    assert str(failed.value) == 'template: :1:3: executing "" at <label>: wrong number of args for label: want 1 got 0'
