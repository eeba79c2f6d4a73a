"""A Python rendition of Go's `text/template`, enough to check templates the way Kuma does.

Kuma accepts a few strings that are Go templates: a HostnameGenerator's `template` (parsed,
then rendered with stub values and checked to be a DNS name) and a MeshIdentity's SPIFFE ID
`trustDomain` / `path` (parsed only). Telling a user at commit time that such a template is
broken needs the same parser: its lexer, its grammar, its function check and its error
messages (`template: :1: bad character U+005B '['`).

`parse()` follows Go 1.24's `text/template/parse` closely. `execute()` covers what templates
over a flat record of strings can do (fields, variables, if/with/range/else, define/template/
block, break/continue and the builtin functions); when a template does something this module
does not model (ranging over a string, calling a method value, ...) it raises `Unsupported`
and the caller skips the rendering check rather than guess.
"""

from __future__ import annotations

import html
import math
import re
import unicodedata
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

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

BUILTIN_FUNCTIONS = frozenset(
    {
        "and",
        "call",
        "html",
        "index",
        "slice",
        "js",
        "len",
        "not",
        "or",
        "print",
        "printf",
        "println",
        "urlquery",
        "eq",
        "ge",
        "gt",
        "le",
        "lt",
        "ne",
    }
)


class TemplateError(Exception):
    """The template does not parse; the message is Go's (`template: :1: ...`)."""


class ExecError(Exception):
    """The template parsed but failed while rendering; the message is Go's."""


class Unsupported(Exception):
    """The template does something this module does not model; no verdict."""


# -- lexer -------------------------------------------------------------------------------------
# Item kinds, named after Go's itemType constants. Keywords sort after _KEYWORD.
ERROR, BOOL, CHAR, CHAR_CONSTANT, COMMENT, COMPLEX, ASSIGN, DECLARE, EOF, FIELD, IDENTIFIER = range(11)
LEFT_DELIM, LEFT_PAREN, NUMBER, PIPE, RAW_STRING, RIGHT_DELIM, RIGHT_PAREN, SPACE, STRING, TEXT, VARIABLE = range(11, 22)
_KEYWORD = 30
BLOCK, BREAK, CONTINUE, DOT, DEFINE, ELSE, END, IF, NIL, RANGE, TEMPLATE, WITH = range(31, 43)

_KEYWORDS = {
    ".": DOT,
    "block": BLOCK,
    "break": BREAK,
    "continue": CONTINUE,
    "define": DEFINE,
    "else": ELSE,
    "end": END,
    "if": IF,
    "range": RANGE,
    "nil": NIL,
    "template": TEMPLATE,
    "with": WITH,
}
_LEFT, _RIGHT = "{{", "}}"
_LEFT_COMMENT, _RIGHT_COMMENT = "/*", "*/"
_SPACE_CHARS = " \t\r\n"
_TRIM_LEN = 2


@dataclass(frozen=True, slots=True)
class Item:
    typ: int
    pos: int
    val: str
    line: int

    def __str__(self) -> str:
        if self.typ == EOF:
            return "EOF"
        if self.typ == ERROR:
            return self.val
        if self.typ > _KEYWORD:
            return f"<{self.val}>"
        if len(self.val) > 10:
            return go_quote(self.val[:10]) + "..."
        return go_quote(self.val)


def _is_space(r: str) -> bool:
    return r in _SPACE_CHARS and r != ""


def _is_alnum(r: str) -> bool:
    return r != "" and (r == "_" or r.isalpha() or unicodedata.category(r) == "Nd")


def go_quote(s: str) -> str:
    """Go's %q for a string: double quotes, Go escapes, printable runes kept."""
    out = ['"']
    for ch in s:
        code = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\a":
            out.append("\\a")
        elif ch == "\b":
            out.append("\\b")
        elif ch == "\f":
            out.append("\\f")
        elif ch == "\v":
            out.append("\\v")
        elif ch.isprintable():
            out.append(ch)
        elif code < 0x80:
            out.append(f"\\x{code:02x}")
        elif code <= 0xFFFF:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


def _go_rune(r: str) -> str:
    """Go's %#U: `U+005B '['`."""
    code = ord(r)
    text = f"U+{code:04X}"
    return f"{text} '{r}'" if r.isprintable() else text


class _Lexer:
    """Go's template lexer, pulled one item at a time."""

    def __init__(self, text: str, break_ok: bool = True, continue_ok: bool = True) -> None:
        self.input = text
        self.pos = 0
        self.start = 0
        self.at_eof = False
        self.paren_depth = 0
        self.line = 1
        self.start_line = 1
        self.item = Item(EOF, 0, "EOF", 1)
        self.inside_action = False
        self.break_ok = break_ok
        self.continue_ok = continue_ok

    # character access
    def next(self) -> str:
        if self.pos >= len(self.input):
            self.at_eof = True
            return ""
        r = self.input[self.pos]
        self.pos += 1
        if r == "\n":
            self.line += 1
        return r

    def peek(self) -> str:
        return self.input[self.pos] if self.pos < len(self.input) else ""

    def backup(self) -> None:
        if not self.at_eof and self.pos > 0:
            self.pos -= 1
            if self.input[self.pos] == "\n":
                self.line -= 1

    def this_item(self, typ: int) -> Item:
        item = Item(typ, self.start, self.input[self.start : self.pos], self.start_line)
        self.start = self.pos
        self.start_line = self.line
        return item

    def emit(self, typ: int) -> None:
        self.item = self.this_item(typ)

    def ignore(self) -> None:
        self.line += self.input[self.start : self.pos].count("\n")
        self.start = self.pos
        self.start_line = self.line

    def accept(self, valid: str) -> bool:
        r = self.next()
        if r != "" and r in valid:
            return True
        self.backup()
        return False

    def accept_run(self, valid: str) -> None:
        while True:
            r = self.next()
            if r == "" or r not in valid:
                break
        self.backup()

    def errorf(self, message: str) -> None:
        self.item = Item(ERROR, self.start, message, self.start_line)
        self.start = 0
        self.pos = 0
        self.input = ""

    def next_item(self) -> Item:
        self.item = Item(EOF, self.pos, "EOF", self.start_line)
        state: Callable[[], Any] | None = self.lex_inside_action if self.inside_action else self.lex_text
        # Each state either leaves an item in self.item (returns None) or names the next state.
        while state is not None:
            state = state()
        return self.item

    # states: each returns the next state, or None once an item is ready
    def lex_text(self) -> Callable[[], Any] | None:
        x = self.input.find(_LEFT, self.pos)
        if x >= 0:
            if x > self.pos:
                self.pos = x
                trim = 0
                delim_end = self.pos + len(_LEFT)
                if _has_left_trim(self.input[delim_end:]):
                    before = self.input[self.start : self.pos]
                    trim = len(before) - len(before.rstrip(_SPACE_CHARS))
                self.pos -= trim
                self.line += self.input[self.start : self.pos].count("\n")
                item = self.this_item(TEXT)
                self.pos += trim
                self.ignore()
                if item.val:
                    self.item = item
                    return None
            return self.lex_left_delim
        self.pos = len(self.input)
        if self.pos > self.start:
            self.line += self.input[self.start : self.pos].count("\n")
            self.emit(TEXT)
            return None
        self.emit(EOF)
        return None

    def at_right_delim(self) -> tuple[bool, bool]:
        rest = self.input[self.pos :]
        if _has_right_trim(rest) and rest[_TRIM_LEN:].startswith(_RIGHT):
            return True, True
        if rest.startswith(_RIGHT):
            return True, False
        return False, False

    def lex_left_delim(self) -> Callable[[], Any] | None:
        self.pos += len(_LEFT)
        trim = _has_left_trim(self.input[self.pos :])
        after = _TRIM_LEN if trim else 0
        if self.input[self.pos + after :].startswith(_LEFT_COMMENT):
            self.pos += after
            self.ignore()
            return self.lex_comment
        item = self.this_item(LEFT_DELIM)
        self.inside_action = True
        self.pos += after
        self.ignore()
        self.paren_depth = 0
        self.item = item
        return None

    def lex_comment(self) -> Callable[[], Any] | None:
        self.pos += len(_LEFT_COMMENT)
        x = self.input.find(_RIGHT_COMMENT, self.pos)
        if x < 0:
            self.errorf("unclosed comment")
            return None
        self.pos = x + len(_RIGHT_COMMENT)
        delim, trim = self.at_right_delim()
        if not delim:
            self.errorf("comment ends before closing delimiter")
            return None
        self.this_item(COMMENT)
        if trim:
            self.pos += _TRIM_LEN
        self.pos += len(_RIGHT)
        if trim:
            rest = self.input[self.pos :]
            self.pos += len(rest) - len(rest.lstrip(_SPACE_CHARS))
        self.ignore()
        return self.lex_text

    def lex_right_delim(self) -> Callable[[], Any] | None:
        _, trim = self.at_right_delim()
        if trim:
            self.pos += _TRIM_LEN
            self.ignore()
        self.pos += len(_RIGHT)
        item = self.this_item(RIGHT_DELIM)
        if trim:
            rest = self.input[self.pos :]
            self.pos += len(rest) - len(rest.lstrip(_SPACE_CHARS))
            self.ignore()
        self.inside_action = False
        self.item = item
        return None

    def lex_inside_action(self) -> Callable[[], Any] | None:
        delim, _ = self.at_right_delim()
        if delim:
            if self.paren_depth == 0:
                return self.lex_right_delim
            self.errorf("unclosed left paren")
            return None
        r = self.next()
        if r == "":
            self.errorf("unclosed action")
            return None
        if _is_space(r):
            self.backup()  # the space may start a " -}}"
            return self.lex_space
        if r == "=":
            self.emit(ASSIGN)
            return None
        if r == ":":
            if self.next() != "=":
                self.errorf("expected :=")
                return None
            self.emit(DECLARE)
            return None
        if r == "|":
            self.emit(PIPE)
            return None
        if r == '"':
            return self.lex_quote
        if r == "`":
            return self.lex_raw_quote
        if r == "$":
            return self.lex_variable
        if r == "'":
            return self.lex_char
        if r == "." and self.pos < len(self.input) and not ("0" <= self.input[self.pos] <= "9"):
            return self.lex_field
        if r in "+-." or "0" <= r <= "9":
            self.backup()
            return self.lex_number
        if _is_alnum(r):
            self.backup()
            return self.lex_identifier
        if r == "(":
            self.paren_depth += 1
            self.emit(LEFT_PAREN)
            return None
        if r == ")":
            self.paren_depth -= 1
            if self.paren_depth < 0:
                self.errorf("unexpected right paren")
                return None
            self.emit(RIGHT_PAREN)
            return None
        if ord(r) < 0x80 and r.isprintable():
            self.emit(CHAR)
            return None
        self.errorf(f"unrecognized character in action: {_go_rune(r)}")
        return None

    def lex_space(self) -> Callable[[], Any] | None:
        spaces = 0
        while _is_space(self.peek()):
            self.next()
            spaces += 1
        # A " -}}" ends the action: leave its space to the right delimiter.
        if _has_right_trim(self.input[self.pos - 1 :]) and self.input[self.pos - 1 + _TRIM_LEN :].startswith(_RIGHT):
            self.backup()
            if spaces == 1:
                return self.lex_right_delim
        self.emit(SPACE)
        return None

    def lex_identifier(self) -> Callable[[], Any] | None:
        while True:
            r = self.next()
            if _is_alnum(r):
                continue
            self.backup()
            word = self.input[self.start : self.pos]
            if not self.at_terminator():
                self.errorf(f"bad character {_go_rune(r)}")
                return None
            kw = _KEYWORDS.get(word, 0)
            if kw > _KEYWORD:
                if (kw == BREAK and not self.break_ok) or (kw == CONTINUE and not self.continue_ok):
                    self.emit(IDENTIFIER)
                else:
                    self.emit(kw)
            elif word[0] == ".":
                self.emit(FIELD)
            elif word in ("true", "false"):
                self.emit(BOOL)
            else:
                self.emit(IDENTIFIER)
            return None

    def lex_field(self) -> Callable[[], Any] | None:
        return self._field_or_variable(FIELD)

    def lex_variable(self) -> Callable[[], Any] | None:
        if self.at_terminator():
            self.emit(VARIABLE)
            return None
        return self._field_or_variable(VARIABLE)

    def _field_or_variable(self, typ: int) -> Callable[[], Any] | None:
        if self.at_terminator():
            self.emit(VARIABLE if typ == VARIABLE else DOT)
            return None
        r = ""
        while True:
            r = self.next()
            if not _is_alnum(r):
                self.backup()
                break
        if not self.at_terminator():
            self.errorf(f"bad character {_go_rune(r)}")
            return None
        self.emit(typ)
        return None

    def at_terminator(self) -> bool:
        r = self.peek()
        if r == "" or _is_space(r) or r in ".,|:)(":
            return True
        return self.input[self.pos :].startswith(_RIGHT)

    def lex_char(self) -> Callable[[], Any] | None:
        return self._lex_escaped("'", "character constant", CHAR_CONSTANT)

    def _lex_escaped(self, close: str, what: str, token: Any) -> Callable[[], Any] | None:
        """A 'c' or "s" literal: backslash escapes the next rune; a newline or the end is an error."""
        while True:
            r = self.next()
            if r == "\\":
                r2 = self.next()
                if r2 not in ("", "\n"):
                    continue
                self.errorf(f"unterminated {what}")
                return None
            if r in ("", "\n"):
                self.errorf(f"unterminated {what}")
                return None
            if r == close:
                break
        self.emit(token)
        return None

    def lex_number(self) -> Callable[[], Any] | None:
        if not self._scan_number():
            self.errorf(f"bad number syntax: {go_quote(self.input[self.start : self.pos])}")
            return None
        if self.peek() in ("+", "-") and self.peek() != "":
            if not self._scan_number() or self.input[self.pos - 1] != "i":
                self.errorf(f"bad number syntax: {go_quote(self.input[self.start : self.pos])}")
                return None
            self.emit(COMPLEX)
            return None
        self.emit(NUMBER)
        return None

    def _scan_number(self) -> bool:
        self.accept("+-")
        digits = "0123456789_"
        if self.accept("0"):
            if self.accept("xX"):
                digits = "0123456789abcdefABCDEF_"
            elif self.accept("oO"):
                digits = "01234567_"
            elif self.accept("bB"):
                digits = "01_"
        self.accept_run(digits)
        if self.accept("."):
            self.accept_run(digits)
        if len(digits) == 11 and self.accept("eE"):
            self.accept("+-")
            self.accept_run("0123456789_")
        if len(digits) == 23 and self.accept("pP"):
            self.accept("+-")
            self.accept_run("0123456789_")
        self.accept("i")
        if _is_alnum(self.peek()):
            self.next()
            return False
        return True

    def lex_quote(self) -> Callable[[], Any] | None:
        return self._lex_escaped('"', "quoted string", STRING)

    def lex_raw_quote(self) -> Callable[[], Any] | None:
        while True:
            r = self.next()
            if r == "":
                self.errorf("unterminated raw quoted string")
                return None
            if r == "`":
                break
        self.emit(RAW_STRING)
        return None


def _has_left_trim(s: str) -> bool:
    return len(s) >= 2 and s[0] == "-" and _is_space(s[1])


def _has_right_trim(s: str) -> bool:
    return len(s) >= 2 and _is_space(s[0]) and s[1] == "-"


# -- nodes -------------------------------------------------------------------------------------
@dataclass(slots=True)
class Node:
    pos: int

    def __str__(self) -> str:  # pragma: no cover - every node overrides it
        return ""


@dataclass(slots=True)
class TextNode(Node):
    text: str


@dataclass(slots=True)
class ListNode(Node):
    nodes: list[Node] = field(default_factory=list)

    def __str__(self) -> str:
        return "".join(str(n) for n in self.nodes)


@dataclass(slots=True)
class DotNode(Node):
    def __str__(self) -> str:
        return "."


@dataclass(slots=True)
class NilNode(Node):
    def __str__(self) -> str:
        return "nil"


@dataclass(slots=True)
class BoolNode(Node):
    value: bool

    def __str__(self) -> str:
        return "true" if self.value else "false"


@dataclass(slots=True)
class NumberNode(Node):
    text: str
    value: int | float | complex

    def __str__(self) -> str:
        return self.text


@dataclass(slots=True)
class StringNode(Node):
    quoted: str
    text: str

    def __str__(self) -> str:
        return self.quoted


@dataclass(slots=True)
class FieldNode(Node):
    ident: list[str]

    def __str__(self) -> str:
        return "".join("." + i for i in self.ident)


@dataclass(slots=True)
class VariableNode(Node):
    ident: list[str]

    def __str__(self) -> str:
        return ".".join(self.ident)


@dataclass(slots=True)
class IdentifierNode(Node):
    name: str

    def __str__(self) -> str:
        return self.name


@dataclass(slots=True)
class ChainNode(Node):
    node: Node
    fields: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        head = f"({self.node})" if isinstance(self.node, PipeNode) else str(self.node)
        return head + "".join("." + f for f in self.fields)


@dataclass(slots=True)
class CommandNode(Node):
    args: list[Node] = field(default_factory=list)

    def __str__(self) -> str:
        return " ".join(f"({a})" if isinstance(a, PipeNode) else str(a) for a in self.args)


@dataclass(slots=True)
class PipeNode(Node):
    line: int
    is_assign: bool = False
    decl: list[VariableNode] = field(default_factory=list)
    cmds: list[CommandNode] = field(default_factory=list)

    def __str__(self) -> str:
        out = ""
        if self.decl:
            out = ", ".join(str(d) for d in self.decl) + (" = " if self.is_assign else " := ")
        return out + " | ".join(str(c) for c in self.cmds)


@dataclass(slots=True)
class ActionNode(Node):
    pipe: PipeNode

    def __str__(self) -> str:
        return "{{" + str(self.pipe) + "}}"


@dataclass(slots=True)
class BranchNode(Node):
    keyword: str
    pipe: PipeNode
    list: ListNode
    else_list: ListNode | None

    def __str__(self) -> str:
        out = "{{" + self.keyword + " " + str(self.pipe) + "}}" + str(self.list)
        if self.else_list is not None:
            out += "{{else}}" + str(self.else_list)
        return out + "{{end}}"


@dataclass(slots=True)
class TemplateNode(Node):
    name: str
    pipe: PipeNode | None

    def __str__(self) -> str:
        if self.pipe is None:
            return "{{template " + go_quote(self.name) + "}}"
        return "{{template " + go_quote(self.name) + " " + str(self.pipe) + "}}"


@dataclass(slots=True)
class BreakNode(Node):
    def __str__(self) -> str:
        return "{{break}}"


@dataclass(slots=True)
class ContinueNode(Node):
    def __str__(self) -> str:
        return "{{continue}}"


@dataclass(slots=True)
class _EndNode(Node):
    def __str__(self) -> str:
        return "{{end}}"


@dataclass(slots=True)
class _ElseNode(Node):
    def __str__(self) -> str:
        return "{{else}}"


# -- parser ------------------------------------------------------------------------------------
@dataclass(slots=True)
class Template:
    """A parsed template: its text (for error positions) and every tree it defines."""

    text: str
    trees: dict[str, ListNode]


class _Parser:
    """Go's parse.Tree for one tree; nested define/block trees get their own instance."""

    def __init__(self, name: str, text: str, lexer: _Lexer, funcs: frozenset[str], trees: dict[str, ListNode]) -> None:
        self.name = name
        self.text = text
        self.lex = lexer
        self.funcs = funcs
        self.trees = trees
        self.token: list[Item] = [Item(EOF, 0, "", 1)] * 3
        self.peek_count = 0
        self.vars = ["$"]
        self.action_line = 0
        self.range_depth = 0
        self.root: ListNode | None = None

    # token stream
    def next(self) -> Item:
        if self.peek_count > 0:
            self.peek_count -= 1
        else:
            self.token[0] = self.lex.next_item()
        return self.token[self.peek_count]

    def backup(self) -> None:
        self.peek_count += 1

    def backup2(self, t1: Item) -> None:
        self.token[1] = t1
        self.peek_count = 2

    def backup3(self, t2: Item, t1: Item) -> None:
        self.token[1] = t1
        self.token[2] = t2
        self.peek_count = 3

    def peek(self) -> Item:
        if self.peek_count > 0:
            return self.token[self.peek_count - 1]
        self.peek_count = 1
        self.token[0] = self.lex.next_item()
        return self.token[0]

    def next_non_space(self) -> Item:
        while True:
            token = self.next()
            if token.typ != SPACE:
                return token

    def peek_non_space(self) -> Item:
        token = self.next_non_space()
        self.backup()
        return token

    # errors
    def errorf(self, message: str) -> None:
        raise TemplateError(f"template: :{self.token[0].line}: {message}")

    def expect(self, expected: int, context: str) -> Item:
        token = self.next_non_space()
        if token.typ != expected:
            self.unexpected(token, context)
        return token

    def expect_one_of(self, e1: int, e2: int, context: str) -> Item:
        token = self.next_non_space()
        if token.typ not in (e1, e2):
            self.unexpected(token, context)
        return token

    def unexpected(self, token: Item, context: str) -> None:
        if token.typ == ERROR:
            extra = ""
            if self.action_line != 0 and self.action_line != token.line:
                extra = f" in action started at :{self.action_line}"
                if token.val.endswith(" action"):
                    extra = extra[len(" in action") :]
            self.errorf(f"{token}{extra}")
        self.errorf(f"unexpected {token} in {context}")

    # grammar
    def parse(self) -> None:
        self.root = ListNode(self.peek().pos)
        while self.peek().typ != EOF:
            if self.peek().typ == LEFT_DELIM:
                delim = self.next()
                if self.next_non_space().typ == DEFINE:
                    sub = _Parser("definition", self.text, self.lex, self.funcs, self.trees)
                    sub.parse_definition()
                    continue
                self.backup2(delim)
            n = self.text_or_action()
            if isinstance(n, (_EndNode, _ElseNode)):
                self.errorf(f"unexpected {n}")
            elif n is not None:
                self.root.nodes.append(n)

    def add(self) -> None:
        existing = self.trees.get(self.name)
        if existing is None or _is_empty_tree(existing):
            self.trees[self.name] = self.root or ListNode(0)
            return
        if self.root is not None and not _is_empty_tree(self.root):
            self.errorf(f"template: multiple definition of template {go_quote(self.name)}")

    def parse_definition(self) -> None:
        context = "define clause"
        name = self.expect_one_of(STRING, RAW_STRING, context)
        self.name = self._unquote(name.val)
        self.expect(RIGHT_DELIM, context)
        self.root, end = self.item_list()
        if not isinstance(end, _EndNode):
            self.errorf(f"unexpected {end} in {context}")
        self.add()

    def item_list(self) -> tuple[ListNode, Node]:
        lst = ListNode(self.peek_non_space().pos)
        while self.peek_non_space().typ != EOF:
            n = self.text_or_action()
            if isinstance(n, (_EndNode, _ElseNode)):
                return lst, n
            if n is not None:
                lst.nodes.append(n)
        self.errorf("unexpected EOF")
        raise AssertionError("unreachable")

    def text_or_action(self) -> Node | None:
        token = self.next_non_space()
        if token.typ == TEXT:
            return TextNode(token.pos, token.val)
        if token.typ == LEFT_DELIM:
            self.action_line = token.line
            try:
                return self.action()
            finally:
                self.action_line = 0
        if token.typ == COMMENT:
            return None
        self.unexpected(token, "input")
        return None

    def action(self) -> Node:
        token = self.next_non_space()
        typ = token.typ
        if typ == BLOCK:
            return self.block_control()
        if typ == BREAK:
            return self.break_control(token, "{{break}}", BreakNode)
        if typ == CONTINUE:
            return self.break_control(token, "{{continue}}", ContinueNode)
        if typ == ELSE:
            return self.else_control()
        if typ == END:
            return _EndNode(self.expect(RIGHT_DELIM, "end").pos)
        if typ in (IF, RANGE, WITH):
            return self.branch({IF: "if", RANGE: "range", WITH: "with"}[typ])
        if typ == TEMPLATE:
            return self.template_control()
        self.backup()
        token = self.peek()
        return ActionNode(token.pos, self.pipeline("command", RIGHT_DELIM))

    def break_control(self, token: Item, what: str, cls: type[BreakNode] | type[ContinueNode]) -> Node:
        nxt = self.next_non_space()
        if nxt.typ != RIGHT_DELIM:
            self.unexpected(nxt, what)
        if self.range_depth == 0:
            self.errorf(f"{what} outside {{{{range}}}}")
        return cls(token.pos)

    def pipeline(self, context: str, end: int) -> PipeNode:
        token = self.peek_non_space()
        pipe = PipeNode(token.pos, token.line)
        while True:  # declarations: `$x :=`, `$x =`, `$i, $v :=`
            v = self.peek_non_space()
            if v.typ != VARIABLE:
                break
            self.next()
            after = self.peek()
            nxt = self.peek_non_space()
            if nxt.typ in (ASSIGN, DECLARE):
                pipe.is_assign = nxt.typ == ASSIGN
                self.next_non_space()
                pipe.decl.append(VariableNode(v.pos, v.val.split(".")))
                self.vars.append(v.val)
            elif nxt.typ == CHAR and nxt.val == ",":
                self.next_non_space()
                pipe.decl.append(VariableNode(v.pos, v.val.split(".")))
                self.vars.append(v.val)
                if context == "range" and len(pipe.decl) < 2:
                    if self.peek_non_space().typ in (VARIABLE, RIGHT_DELIM, RIGHT_PAREN):
                        continue
                    self.errorf("range can only initialize variables")
                self.errorf(f"too many declarations in {context}")
            elif after.typ == SPACE:
                self.backup3(v, after)
            else:
                self.backup2(v)
            break
        while True:
            token = self.next_non_space()
            if token.typ == end:
                self.check_pipeline(pipe, context)
                return pipe
            if token.typ in (BOOL, CHAR_CONSTANT, COMPLEX, DOT, FIELD, IDENTIFIER, NUMBER, NIL, RAW_STRING, STRING, VARIABLE, LEFT_PAREN):
                self.backup()
                pipe.cmds.append(self.command())
            else:
                self.unexpected(token, context)

    def check_pipeline(self, pipe: PipeNode, context: str) -> None:
        if not pipe.cmds:
            self.errorf(f"missing value for {context}")
        for i, cmd in enumerate(pipe.cmds[1:]):
            if isinstance(cmd.args[0], (BoolNode, DotNode, NilNode, NumberNode, StringNode)):
                self.errorf(f"non executable command in pipeline stage {i + 2}")

    def branch(self, context: str) -> Node:
        saved = len(self.vars)
        try:
            pipe = self.pipeline(context, RIGHT_DELIM)
            if context == "range":
                self.range_depth += 1
            lst, nxt = self.item_list()
            if context == "range":
                self.range_depth -= 1
            else_list: ListNode | None = None
            if isinstance(nxt, _ElseNode):
                # `{{else if ...}}` / `{{else with ...}}` nest a new branch that ends at the same {{end}}.
                if context in ("if", "with") and self.peek().typ == (IF if context == "if" else WITH):
                    self.next()
                    else_list = ListNode(nxt.pos, [self.branch(context)])
                else:
                    else_list, nxt = self.item_list()
                    if not isinstance(nxt, _EndNode):
                        self.errorf(f"expected end; found {nxt}")
            return BranchNode(pipe.pos, context, pipe, lst, else_list)
        finally:
            del self.vars[saved:]

    def else_control(self) -> Node:
        peek = self.peek_non_space()
        if peek.typ in (IF, WITH):
            return _ElseNode(peek.pos)
        token = self.expect(RIGHT_DELIM, "else")
        return _ElseNode(token.pos)

    def block_control(self) -> Node:
        context = "block clause"
        token = self.next_non_space()
        name = self.template_name(token, context)
        pipe = self.pipeline(context, RIGHT_DELIM)
        sub = _Parser(name, self.text, self.lex, self.funcs, self.trees)
        sub.root, end = sub.item_list()
        if not isinstance(end, _EndNode):
            self.errorf(f"unexpected {end} in {context}")
        sub.add()
        return TemplateNode(token.pos, name, pipe)

    def template_control(self) -> Node:
        context = "template clause"
        token = self.next_non_space()
        name = self.template_name(token, context)
        pipe: PipeNode | None = None
        if self.next_non_space().typ != RIGHT_DELIM:
            self.backup()
            pipe = self.pipeline(context, RIGHT_DELIM)
        return TemplateNode(token.pos, name, pipe)

    def template_name(self, token: Item, context: str) -> str:
        if token.typ in (STRING, RAW_STRING):
            return self._unquote(token.val)
        self.unexpected(token, context)
        return ""

    def command(self) -> CommandNode:
        cmd = CommandNode(self.peek_non_space().pos)
        while True:
            self.peek_non_space()
            operand = self.operand()
            if operand is not None:
                cmd.args.append(operand)
            token = self.next()
            if token.typ == SPACE:
                continue
            if token.typ in (RIGHT_DELIM, RIGHT_PAREN):
                self.backup()
            elif token.typ != PIPE:
                self.unexpected(token, "operand")
            break
        if not cmd.args:
            self.errorf("empty command")
        return cmd

    def operand(self) -> Node | None:
        node = self.term()
        if node is None:
            return None
        if self.peek().typ == FIELD:
            chain = ChainNode(self.peek().pos, node)
            while self.peek().typ == FIELD:
                chain.fields.append(self.next().val[1:])
            if isinstance(node, FieldNode):
                return FieldNode(chain.pos, node.ident + chain.fields)
            if isinstance(node, VariableNode):
                return VariableNode(chain.pos, node.ident + chain.fields)
            if isinstance(node, (BoolNode, StringNode, NumberNode, NilNode, DotNode)):
                self.errorf(f"unexpected . after term {go_quote(str(node))}")
            return chain
        return node

    def term(self) -> Node | None:
        token = self.next_non_space()
        typ = token.typ
        if typ == IDENTIFIER:
            if token.val not in self.funcs:
                self.errorf(f"function {go_quote(token.val)} not defined")
            return IdentifierNode(token.pos, token.val)
        if typ == DOT:
            return DotNode(token.pos)
        if typ == NIL:
            return NilNode(token.pos)
        if typ == VARIABLE:
            return self.use_var(token)
        if typ == FIELD:
            return FieldNode(token.pos, token.val[1:].split("."))
        if typ == BOOL:
            return BoolNode(token.pos, token.val == "true")
        if typ in (CHAR_CONSTANT, COMPLEX, NUMBER):
            return self.number(token)
        if typ == LEFT_PAREN:
            return self.pipeline("parenthesized pipeline", RIGHT_PAREN)
        if typ in (STRING, RAW_STRING):
            return StringNode(token.pos, token.val, self._unquote(token.val))
        self.backup()
        return None

    def use_var(self, token: Item) -> Node:
        ident = token.val.split(".")
        if ident[0] not in self.vars:
            self.errorf(f"undefined variable {go_quote(ident[0])}")
        return VariableNode(token.pos, ident)

    def number(self, token: Item) -> Node:
        text = token.val
        if token.typ == CHAR_CONSTANT:
            try:
                value = _unquote_char(text)
            except ValueError:
                self.errorf(f"malformed character constant: {text}")
                raise AssertionError("unreachable") from None
            return NumberNode(token.pos, text, value)
        if token.typ == COMPLEX:
            try:
                return NumberNode(token.pos, text, complex(text.replace("_", "").replace("i", "j")))
            except ValueError:
                self.errorf(f"illegal number syntax: {go_quote(text)}")
        parsed = _parse_go_number(text)
        if parsed is None:
            self.errorf(f"illegal number syntax: {go_quote(text)}")
        assert parsed is not None
        return NumberNode(token.pos, text, parsed)

    def _unquote(self, quoted: str) -> str:
        try:
            return _go_unquote(quoted)
        except ValueError:
            self.errorf("invalid syntax")
            raise AssertionError("unreachable") from None


def _is_empty_tree(node: Node) -> bool:
    if isinstance(node, ListNode):
        return all(_is_empty_tree(n) for n in node.nodes)
    if isinstance(node, TextNode):
        return node.text.strip() == ""
    return False


_GO_INT = re.compile(r"^[+-]?(0[xX][0-9a-fA-F_]+|0[oO][0-7_]+|0[bB][01_]+|0[0-7_]*|[1-9][0-9_]*)$")


def _parse_go_number(text: str) -> int | float | None:
    t = text.replace("_", "")
    if text.endswith("i"):
        try:
            return float(t[:-1]) if t[:-1] else None
        except ValueError:
            return None
    if _GO_INT.match(text):
        sign = -1 if t.startswith("-") else 1
        body = t.lstrip("+-")
        lower = body.lower()
        if lower.startswith("0x"):
            return sign * int(body[2:], 16)
        if lower.startswith("0o"):
            return sign * int(body[2:], 8)
        if lower.startswith("0b"):
            return sign * int(body[2:], 2)
        if len(body) > 1 and body.startswith("0"):
            return sign * int(body, 8)
        return sign * int(body)
    try:
        if t.lower().startswith(("0x", "+0x", "-0x")):
            return float.fromhex(t)
        value = float(t)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\", "'": "'", '"': '"'}


def _go_unquote(quoted: str) -> str:
    """Go's strconv.Unquote for "..." and `...` literals."""
    if len(quoted) < 2:
        raise ValueError(quoted)
    if quoted[0] == "`":
        if quoted[-1] != "`":
            raise ValueError(quoted)
        return quoted[1:-1].replace("\r", "")
    if quoted[0] != '"' or quoted[-1] != '"':
        raise ValueError(quoted)
    return _unescape(quoted[1:-1], '"')


def _unquote_char(quoted: str) -> int:
    body = _unescape(quoted[1:-1], "'")
    if len(body) != 1:
        raise ValueError(quoted)
    return ord(body)


def _unescape(body: str, quote: str) -> str:
    out = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == quote or ch == "\n":
            raise ValueError(body)
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        if i + 1 >= len(body):
            raise ValueError(body)
        esc = body[i + 1]
        if esc in _ESCAPES and (esc not in "'\"" or esc == quote):
            out.append(_ESCAPES[esc])
            i += 2
        elif esc in "xuU":
            width = {"x": 2, "u": 4, "U": 8}[esc]
            digits = body[i + 2 : i + 2 + width]
            if len(digits) != width or not all(c in "0123456789abcdefABCDEF" for c in digits):
                raise ValueError(body)
            out.append(chr(int(digits, 16)))
            i += 2 + width
        elif esc in "01234567":
            digits = body[i + 1 : i + 4]
            if len(digits) != 3 or not all(c in "01234567" for c in digits) or int(digits, 8) > 255:
                raise ValueError(body)
            out.append(chr(int(digits, 8)))
            i += 4
        else:
            raise ValueError(body)
    return "".join(out)


def parse(text: str, funcs: Sequence[str] = ()) -> Template:
    """Parse like Go's `template.New("").Funcs(funcs).Parse(text)`.

    Raises TemplateError with Go's message, or Unsupported when the text is beyond this port.
    """
    names = BUILTIN_FUNCTIONS | frozenset(funcs)
    lexer = _Lexer(text, break_ok="break" not in names, continue_ok="continue" not in names)
    trees: dict[str, ListNode] = {}
    parser = _Parser("", text, lexer, names, trees)
    try:
        parser.parse()
        parser.add()
    except RecursionError:
        # Go allows 10000 nested parentheses; Python's stack gives out sooner.
        raise Unsupported("expression nesting too deep") from None
    return Template(text, trees)


# -- execution ---------------------------------------------------------------------------------
class Record:
    """A Go struct of string fields (the stub Kuma renders a template against)."""

    def __init__(self, fields: Mapping[str, str]) -> None:
        self.fields = dict(fields)

    @property
    def type_name(self) -> str:
        return "struct { " + "; ".join(f"{k} string" for k in self.fields) + " }"

    def __str__(self) -> str:
        return "{" + " ".join(self.fields.values()) + "}"


class _Missing:
    """No value (Go's missingVal): distinguishes "no final argument" from nil."""


_MISSING = _Missing()


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


def _type_name(value: Any) -> str:
    if isinstance(value, Record):
        return value.type_name
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, complex):
        return "complex128"
    if isinstance(value, str):
        return "string"
    if value is None:
        return "<nil>"
    raise Unsupported(type(value).__name__)


def _truth(value: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, (bool, int, float, complex, str)):
        return bool(value)
    if isinstance(value, Record):
        return True
    raise Unsupported(type(value).__name__)


def _go_format_float(value: float) -> str:
    """Go's %v for a float64: shortest representation, exponent below 1e-4 or from 1e21."""
    if value == 0:
        return "0"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    # Python's repr is the shortest round-tripping form, as Go's; only the layout differs.
    shortest = Decimal(repr(value))
    magnitude = shortest.adjusted()
    digits = "".join(str(d) for d in shortest.as_tuple().digits).rstrip("0") or "0"
    if -4 <= magnitude < 21:
        return f"{value:.{max(0, len(digits) - 1 - magnitude)}f}"
    mant = digits[0] + ("." + digits[1:] if digits[1:] else "")
    sign = "-" if value < 0 else ""
    return f"{sign}{mant}e{'+' if magnitude >= 0 else '-'}{abs(magnitude):02d}"


def _print_value(value: Any) -> str:
    """fmt.Print of one value."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _go_format_float(value)
    if isinstance(value, str):
        return value
    if isinstance(value, Record):
        return str(value)
    raise Unsupported(type(value).__name__)


def _sprint(args: Sequence[Any]) -> str:
    """fmt.Sprint: a space between operands when neither is a string."""
    out = []
    for i, arg in enumerate(args):
        if i > 0 and not isinstance(arg, str) and not isinstance(args[i - 1], str):
            out.append(" ")
        out.append(_print_value(arg))
    return "".join(out)


def _sprintln(args: Sequence[Any]) -> str:
    return " ".join(_print_value(a) for a in args) + "\n"


_VERB = re.compile(r"%([-+# 0]*)(\d+|\*)?(?:\.(\d+|\*)?)?([a-zA-Z%])")


def _sprintf(fmt: str, args: Sequence[Any]) -> str:
    """fmt.Sprintf for the verbs a hostname template plausibly uses."""
    out = []
    pos = 0
    argi = 0
    for m in _VERB.finditer(fmt):
        out.append(fmt[pos : m.start()])
        pos = m.end()
        flags, width, precision, verb = m.groups()
        if verb == "%":
            out.append("%")
            continue
        if width == "*" or precision == "*" or "#" in flags:
            raise Unsupported("printf flags")
        if argi >= len(args):
            out.append(f"%!{verb}(MISSING)")
            continue
        arg = args[argi]
        argi += 1
        text = _format_verb(verb, arg, precision)
        if width:
            pad = int(width) - len(text)
            if pad > 0:
                if "-" in flags:
                    text = text + " " * pad
                elif "0" in flags and not isinstance(arg, str):
                    text = ("-" + "0" * pad + text[1:]) if text.startswith("-") else "0" * pad + text
                else:
                    text = " " * pad + text
        out.append(text)
    out.append(fmt[pos:])
    if argi < len(args):
        extra = ", ".join(f"{_type_name(a)}={_print_value(a)}" for a in args[argi:])
        out.append(f"%!(EXTRA {extra})")
    return "".join(out)


def _format_verb(verb: str, arg: Any, precision: str | None) -> str:
    def bad() -> str:
        return f"%!{verb}({_type_name(arg)}={_print_value(arg)})"

    if verb == "v":
        return _print_value(arg)
    if verb == "s":
        if isinstance(arg, str):
            return arg[: int(precision)] if precision is not None else arg
        return _print_value(arg) if isinstance(arg, Record) else bad()
    if verb == "q":
        if isinstance(arg, str):
            return go_quote(arg)
        if isinstance(arg, int) and not isinstance(arg, bool):
            return "'" + chr(arg) + "'"
        return bad()
    if verb == "d":
        return str(arg) if isinstance(arg, int) and not isinstance(arg, bool) else bad()
    if verb in "xX":
        if isinstance(arg, str):
            text = arg.encode().hex()
        elif isinstance(arg, int) and not isinstance(arg, bool):
            text = format(arg, "x")
        else:
            return bad()
        return text.upper() if verb == "X" else text
    if verb == "t":
        return _print_value(arg) if isinstance(arg, bool) else bad()
    if verb == "c":
        return chr(arg) if isinstance(arg, int) and not isinstance(arg, bool) else bad()
    raise Unsupported(f"printf verb %{verb}")


def _js_escape(s: str) -> str:
    out = []
    for ch in s:
        if ch == "\\":
            out.append("\\\\")
        elif ch == "'":
            out.append("\\'")
        elif ch == '"':
            out.append("\\u0022")
        elif ch == "<":
            out.append("\\u003C")
        elif ch == ">":
            out.append("\\u003E")
        elif ch == "&":
            out.append("\\u0026")
        elif ch == "=":
            out.append("\\u003D")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20 or not ch.isprintable():
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return "".join(out)


def _html_escape(s: str) -> str:
    s = html.escape(s, quote=False).replace('"', "&#34;").replace("'", "&#39;")
    return s.replace("\x00", "\ufffd")


def _basic_kind(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float"
    if isinstance(v, complex):
        return "complex"
    if isinstance(v, str):
        return "string"
    if v is None:
        return "nil"
    if isinstance(v, Record):
        return "struct"
    raise Unsupported(type(v).__name__)


def _eq(arg1: Any, *args: Any) -> bool:
    if not args:
        raise ExecError("missing argument for comparison")
    k1 = _basic_kind(arg1)
    for arg in args:
        k2 = _basic_kind(arg)
        if k1 == "nil" or k2 == "nil":
            if k1 != k2:
                raise ExecError("incompatible types for comparison")
            return True
        if k1 == "struct" or k2 == "struct":
            if k1 != k2:
                raise ExecError("incompatible types for comparison")
            if arg1 is arg or (isinstance(arg, Record) and arg1.fields == arg.fields):
                return True
            continue
        if k1 != k2:
            raise ExecError("incompatible types for comparison")
        if arg1 == arg:
            return True
    return False


def _lt(a: Any, b: Any) -> bool:
    ka, kb = _basic_kind(a), _basic_kind(b)
    if ka in ("bool", "complex", "nil", "struct"):
        raise ExecError("invalid type for comparison")
    if ka != kb:
        raise ExecError("incompatible types for comparison")
    return bool(a < b)


class _State:
    def __init__(self, template: Template, funcs: Mapping[str, Callable[..., Any]]) -> None:
        self.template = template
        self.funcs = funcs
        self.vars: list[tuple[str, Any]] = []
        self.node: Node | None = None
        self.tree_name = ""
        self.out: list[str] = []
        self.depth = 0

    def at(self, node: Node) -> None:
        self.node = node

    def errorf(self, message: str) -> None:
        node = self.node
        if node is None:
            raise ExecError(f"template: {self.tree_name}: {message}")
        text = self.template.text[: node.pos]
        newline = text.rfind("\n")
        col = node.pos if newline < 0 else node.pos - newline - 1
        line = 1 + text.count("\n")
        context = str(node)
        if len(context) > 20:
            context = context[:20] + "..."
        raise ExecError(f"template: :{line}:{col}: executing {go_quote(self.tree_name)} at <{context}>: {message}")

    # variables
    def push(self, name: str, value: Any) -> None:
        self.vars.append((name, value))

    def set_var(self, name: str, value: Any) -> None:
        for i in range(len(self.vars) - 1, -1, -1):
            if self.vars[i][0] == name:
                self.vars[i] = (name, value)
                return
        self.errorf(f"undefined variable: {name}")

    def var_value(self, name: str) -> Any:
        for i in range(len(self.vars) - 1, -1, -1):
            if self.vars[i][0] == name:
                return self.vars[i][1]
        self.errorf(f"undefined variable: {name}")
        return None

    # walking
    def walk(self, dot: Any, node: Node) -> None:
        self.at(node)
        if isinstance(node, ActionNode):
            value = self.eval_pipeline(dot, node.pipe)
            if not node.pipe.decl:
                self.print_value(node, value)
        elif isinstance(node, BreakNode):
            raise _Break()
        elif isinstance(node, ContinueNode):
            raise _Continue()
        elif isinstance(node, BranchNode):
            if node.keyword == "range":
                self.walk_range(dot, node)
            else:
                self.walk_if_or_with(node.keyword, dot, node)
        elif isinstance(node, ListNode):
            for n in node.nodes:
                self.walk(dot, n)
        elif isinstance(node, TemplateNode):
            self.walk_template(dot, node)
        elif isinstance(node, TextNode):
            self.out.append(node.text)
        else:
            raise Unsupported(type(node).__name__)

    def walk_if_or_with(self, keyword: str, dot: Any, node: BranchNode) -> None:
        mark = len(self.vars)
        try:
            value = self.eval_pipeline(dot, node.pipe)
            if _truth(value):
                self.walk(value if keyword == "with" else dot, node.list)
            elif node.else_list is not None:
                self.walk(dot, node.else_list)
        finally:
            del self.vars[mark:]

    def walk_range(self, dot: Any, node: BranchNode) -> None:
        mark = len(self.vars)
        try:
            value = self.eval_pipeline(dot, node.pipe)
            if isinstance(value, int) and not isinstance(value, bool):
                if len(node.pipe.decl) > 1:
                    self.errorf("can't use int to iterate over more than one variable")
                for i in range(value):
                    if node.pipe.decl:
                        self.set_top_var(1, i)
                    try:
                        self.walk(i, node.list)
                    except _Continue:
                        continue
                    except _Break:
                        break
                if value <= 0 and node.else_list is not None:
                    self.walk(dot, node.else_list)
                return
            if value is None:
                if node.else_list is not None:
                    self.walk(dot, node.else_list)
                return
            if isinstance(value, (str, Record, bool, float, complex)):
                self.errorf(f"range can't iterate over {_print_value(value)}")
            raise Unsupported("range")
        finally:
            del self.vars[mark:]

    def set_top_var(self, n: int, value: Any) -> None:
        name, _ = self.vars[len(self.vars) - n]
        self.vars[len(self.vars) - n] = (name, value)

    def walk_template(self, dot: Any, node: TemplateNode) -> None:
        tree = self.template.trees.get(node.name)
        if tree is None:
            self.errorf(f"template {go_quote(node.name)} not defined")
            return
        self.depth += 1
        if self.depth > 1000:
            self.errorf("exceeded maximum template depth (100000)")
        new_dot = self.eval_pipeline(dot, node.pipe) if node.pipe is not None else dot
        saved = (self.vars, self.tree_name)
        self.vars = [("$", new_dot)]
        self.tree_name = node.name
        try:
            self.walk(new_dot, tree)
        finally:
            self.vars, self.tree_name = saved
            self.depth -= 1

    def eval_pipeline(self, dot: Any, pipe: PipeNode | None) -> Any:
        if pipe is None:
            return _MISSING
        self.at(pipe)
        value: Any = _MISSING
        for cmd in pipe.cmds:
            value = self.eval_command(dot, cmd, value)
        for var in pipe.decl:
            if pipe.is_assign:
                self.set_var(var.ident[0], value)
            else:
                self.push(var.ident[0], value)
        return value

    def not_a_function(self, args: Sequence[Node], final: Any) -> None:
        if len(args) > 1 or final is not _MISSING:
            self.errorf(f"can't give argument to non-function {args[0]}")

    def eval_command(self, dot: Any, cmd: CommandNode, final: Any) -> Any:
        first = cmd.args[0]
        if isinstance(first, FieldNode):
            self.at(first)
            return self.eval_field_chain(dot, dot, first, first.ident, cmd.args, final)
        if isinstance(first, ChainNode):
            return self.eval_chain(dot, first, cmd.args, final)
        if isinstance(first, IdentifierNode):
            return self.eval_function(dot, first, cmd, cmd.args, final)
        if isinstance(first, PipeNode):
            self.not_a_function(cmd.args, final)
            return self.eval_pipeline(dot, first)
        if isinstance(first, VariableNode):
            return self.eval_variable(dot, first, cmd.args, final)
        self.at(first)
        self.not_a_function(cmd.args, final)
        if isinstance(first, BoolNode):
            return first.value
        if isinstance(first, DotNode):
            return dot
        if isinstance(first, NilNode):
            self.errorf("nil is not a command")
        if isinstance(first, NumberNode):
            return self.ideal_constant(first)
        if isinstance(first, StringNode):
            return first.text
        self.errorf(f"can't evaluate command {go_quote(str(first))}")
        return None

    def ideal_constant(self, node: NumberNode) -> Any:
        value = node.value
        if isinstance(value, complex):
            return value
        if isinstance(value, float) or any(c in node.text for c in ".eEpP") and not node.text.lower().startswith(("0x", "-0x", "+0x")):
            return float(value)
        if isinstance(value, int) and not -(2**63) <= value < 2**63:
            self.errorf(f"{node.text} overflows int")
        return value

    def eval_chain(self, dot: Any, chain: ChainNode, args: Sequence[Node], final: Any) -> Any:
        if not chain.fields:
            self.errorf("internal error: no fields in evalChainNode")
        if isinstance(chain.node, NilNode):
            self.errorf(f"indirection through explicit nil in {chain}")
        pipe = self.eval_arg(dot, chain.node)
        return self.eval_field_chain(dot, pipe, chain, chain.fields, args, final)

    def eval_variable(self, dot: Any, var: VariableNode, args: Sequence[Node], final: Any) -> Any:
        self.at(var)
        value = self.var_value(var.ident[0])
        if len(var.ident) == 1:
            self.not_a_function(args, final)
            return value
        return self.eval_field_chain(dot, value, var, var.ident[1:], args, final)

    def eval_field_chain(self, dot: Any, receiver: Any, node: Node, idents: Sequence[str], args: Sequence[Node], final: Any) -> Any:
        for ident in idents[:-1]:
            receiver = self.eval_field(dot, ident, node, (), _MISSING, receiver)
        return self.eval_field(dot, idents[-1], node, args, final, receiver)

    def eval_field(self, dot: Any, name: str, node: Node, args: Sequence[Node], final: Any, receiver: Any) -> Any:
        if receiver is None or receiver is _MISSING:
            self.errorf(f"nil pointer evaluating interface {{}}.{name}")
        has_args = len(args) > 1 or final is not _MISSING
        if isinstance(receiver, Record):
            if name in receiver.fields:
                if has_args:
                    self.errorf(f"{name} has arguments but cannot be invoked as function")
                return receiver.fields[name]
            self.errorf(f"can't evaluate field {name} in type {receiver.type_name}")
        self.errorf(f"can't evaluate field {name} in type {_type_name(receiver)}")
        return None

    def eval_function(self, dot: Any, node: IdentifierNode, cmd: Node, args: Sequence[Node], final: Any) -> Any:
        self.at(node)
        name = node.name
        call_args = list(args[1:])
        if name in ("and", "or"):
            return self.eval_and_or(dot, name, call_args, final)
        if name == "call":
            raise Unsupported("call")
        fn = self.funcs.get(name) or _BUILTINS.get(name)
        if fn is None:
            self.errorf(f"{go_quote(name)} is not a defined function")
            return None
        fixed, variadic = _ARITY.get(name, (1, False))
        given = len(call_args) + (0 if final is _MISSING else 1)
        if variadic:
            if given < fixed:
                self.errorf(f"wrong number of args for {name}: want at least {fixed} got {given}")
        elif given != fixed:
            self.errorf(f"wrong number of args for {name}: want {fixed} got {given}")
        string_params = _STRING_PARAMS.get(name, ())
        values = []
        for i, a in enumerate(call_args):
            if i in string_params:
                values.append(self.eval_string_arg(dot, a))
            else:
                values.append(self.eval_arg(dot, a))
        if final is not _MISSING:
            if len(values) in string_params and not isinstance(final, str):
                self.errorf(f"wrong type for value; expected string; got {_type_name(final)}")
            values.append(final)
        self.at(node)
        try:
            return fn(*values)
        except ExecError as e:
            self.errorf(f"error calling {name}: {e}")
        return None

    def eval_and_or(self, dot: Any, name: str, args: Sequence[Node], final: Any) -> Any:
        given = len(args) + (0 if final is _MISSING else 1)
        if given < 1:
            self.errorf(f"wrong number of args for {name}: want at least 1 got 0")
        value: Any = None
        for a in args:
            value = self.eval_arg(dot, a)
            if _truth(value) != (name == "and"):
                return value
        if final is not _MISSING:
            value = final
        return value

    def eval_string_arg(self, dot: Any, node: Node) -> str:
        """An argument for a `string` parameter: literals are checked by kind, values by type."""
        self.at(node)
        if isinstance(node, StringNode):
            return node.text
        if isinstance(node, NilNode):
            self.errorf("cannot assign nil to string")
        if isinstance(node, (BoolNode, NumberNode)):
            self.errorf(f"expected string; found {node}")
        value = self.eval_arg(dot, node)
        if not isinstance(value, str):
            self.errorf(f"wrong type for value; expected string; got {_type_name(value)}")
        return str(value)

    def eval_arg(self, dot: Any, node: Node) -> Any:
        self.at(node)
        if isinstance(node, DotNode):
            return dot
        if isinstance(node, NilNode):
            return None
        if isinstance(node, FieldNode):
            return self.eval_field_chain(dot, dot, node, node.ident, [node], _MISSING)
        if isinstance(node, VariableNode):
            return self.eval_variable(dot, node, [node], _MISSING)
        if isinstance(node, PipeNode):
            return self.eval_pipeline(dot, node)
        if isinstance(node, IdentifierNode):
            return self.eval_function(dot, node, node, [node], _MISSING)
        if isinstance(node, ChainNode):
            return self.eval_chain(dot, node, [node], _MISSING)
        if isinstance(node, BoolNode):
            return node.value
        if isinstance(node, NumberNode):
            return self.ideal_constant(node)
        if isinstance(node, StringNode):
            return node.text
        raise Unsupported(type(node).__name__)

    def print_value(self, node: Node, value: Any) -> None:
        self.at(node)
        if value is _MISSING or value is None:
            self.out.append("<no value>")
            return
        self.out.append(_print_value(value))


def _len(item: Any) -> int:
    if isinstance(item, str):
        return len(item.encode())
    raise ExecError(f"len of type {_type_name(item)}")


def _index(item: Any, *indexes: Any) -> Any:
    if item is None:
        raise ExecError("index of untyped nil")
    for idx in indexes:
        if not isinstance(item, str):
            raise ExecError(f"can't index item of type {_type_name(item)}")
        if not isinstance(idx, int) or isinstance(idx, bool):
            raise ExecError(f"cannot index slice/array with type {_type_name(idx)}")
        data = item.encode()
        if not 0 <= idx < len(data):
            raise ExecError(f"index out of range: {idx}")
        item = data[idx]
    return item


def _slice(item: Any, *indexes: Any) -> Any:
    if item is None:
        raise ExecError("slice of untyped nil")
    if len(indexes) > 3:
        raise ExecError(f"too many slice indexes: {len(indexes)}")
    if not isinstance(item, str):
        raise ExecError(f"can't slice item of type {_type_name(item)}")
    if len(indexes) == 3:
        raise ExecError("cannot 3-index slice a string")
    data = item.encode()
    bounds = [0, len(data)]
    for i, idx in enumerate(indexes):
        if not isinstance(idx, int) or isinstance(idx, bool):
            raise ExecError(f"cannot index slice/array with type {_type_name(idx)}")
        if not 0 <= idx <= len(data):
            raise ExecError(f"index out of range: {idx}")
        bounds[i] = idx
    if bounds[0] > bounds[1]:
        raise ExecError(f"invalid slice index: {bounds[0]} > {bounds[1]}")
    try:
        return data[bounds[0] : bounds[1]].decode()
    except UnicodeDecodeError:
        raise Unsupported("byte slice of a multi-byte string") from None


def _not(value: Any) -> bool:
    return not _truth(value)


_BUILTINS: dict[str, Callable[..., Any]] = {
    "eq": _eq,
    "ne": lambda a, b: not _eq(a, b),
    "lt": _lt,
    "le": lambda a, b: _lt(a, b) or _eq(a, b),
    "gt": lambda a, b: not (_lt(a, b) or _eq(a, b)),
    "ge": lambda a, b: not _lt(a, b),
    "html": lambda *a: _html_escape(_sprint(a)),
    "js": lambda *a: _js_escape(_sprint(a)),
    "urlquery": lambda *a: urllib.parse.quote_plus(_sprint(a), safe="-_.~"),
    "index": _index,
    "slice": _slice,
    "len": _len,
    "not": _not,
    "print": lambda *a: _sprint(a),
    "println": lambda *a: _sprintln(a),
    "printf": lambda f, *a: _sprintf(f, a),
}
# (fixed parameters, variadic) per function, as Go's reflection sees them.
_ARITY: dict[str, tuple[int, bool]] = {
    "eq": (1, True),
    "ne": (2, False),
    "lt": (2, False),
    "le": (2, False),
    "gt": (2, False),
    "ge": (2, False),
    "html": (0, True),
    "js": (0, True),
    "urlquery": (0, True),
    "index": (1, True),
    "slice": (1, True),
    "len": (1, False),
    "not": (1, False),
    "print": (0, True),
    "println": (0, True),
    "printf": (1, True),
    "label": (1, False),
}
_STRING_PARAMS: dict[str, tuple[int, ...]] = {"printf": (0,), "label": (0,)}


def execute(template: Template, data: Record, funcs: Mapping[str, Callable[..., Any]] | None = None) -> str:
    """Render the template's main tree against `data`; raises ExecError or Unsupported."""
    state = _State(template, funcs or {})
    state.push("$", data)
    tree = template.trees.get("")
    if tree is None:
        raise ExecError('template: : "" is an incomplete or empty template')
    try:
        state.walk(data, tree)
    except (_Break, _Continue):
        raise Unsupported("break outside range") from None
    except RecursionError:
        raise Unsupported("template recursion") from None
    return "".join(state.out)
