"""Go's `text/template`, as far as Kuma's template fields need it: parse like Go, render a flat record.

Kuma parses a HostnameGenerator's `template` and a MeshIdentity's SPIFFE id `trustDomain` and
`path` with the full `text/template` (`template.New("").Funcs(...).Parse(...)`) and renders
them with `Execute`. `parse()` follows Go 1.24's `text/template/parse` closely (lexer, grammar,
function check and error messages such as `template: :1: bad character U+005B '['`).
`execute()` covers what templates over a flat record of strings can do (fields, variables,
if/with/range/else, define/template/block, break/continue and the builtin functions); when a
template does something this package does not model (ranging over a string, calling a method
value, ...) it raises `Unsupported` and the caller skips the rendering check rather than guess.

Modules, in the order text flows through them: `items` (item kinds, Go's %q), `lexer`,
`literals` (number and string literals), `nodes`, `parser`, then `values`, `funcs` (builtins
and fmt verbs) and `executor`.
"""

from __future__ import annotations

from collections.abc import Sequence

from reconciler.gocompat.template.errors import ExecError, TemplateError, Unsupported
from reconciler.gocompat.template.executor import execute
from reconciler.gocompat.template.items import BUILTIN_FUNCTIONS, go_quote
from reconciler.gocompat.template.lexer import Lexer
from reconciler.gocompat.template.nodes import ListNode, Template
from reconciler.gocompat.template.parser import Parser
from reconciler.gocompat.template.values import Record

__all__ = [
    "TemplateError",
    "ExecError",
    "Unsupported",
    "BUILTIN_FUNCTIONS",
    "Template",
    "Record",
    "parse",
    "execute",
    "go_quote",
]


def parse(text: str, funcs: Sequence[str] = ()) -> Template:
    """Parse like Go's `template.New("").Funcs(funcs).Parse(text)`.

    Raises TemplateError with Go's message, or Unsupported when the text is beyond this port.
    """
    names = BUILTIN_FUNCTIONS | frozenset(funcs)
    lexer = Lexer(text, break_ok="break" not in names, continue_ok="continue" not in names)
    trees: dict[str, ListNode] = {}
    parser = Parser("", text, lexer, names, trees)
    try:
        parser.parse()
        parser.add()
    except RecursionError:
        # Go allows 10000 nested parentheses; Python's stack gives out sooner.
        raise Unsupported("expression nesting too deep") from None
    return Template(text, trees)
