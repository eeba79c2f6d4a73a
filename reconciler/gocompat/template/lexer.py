"""Go's text/template lexer (parse/lex.go): the template text as a stream of items, one at a time."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from reconciler.gocompat.template import items
from reconciler.gocompat.template.items import Item, go_quote, go_rune, is_alnum, is_space


class Lexer:
    """Go's template lexer, pulled one item at a time."""

    def __init__(self, text: str, break_ok: bool = True, continue_ok: bool = True) -> None:
        self.input = text
        self.pos = 0
        self.start = 0
        self.at_eof = False
        self.paren_depth = 0
        self.line = 1
        self.start_line = 1
        self.item = Item(items.EOF, 0, "EOF", 1)
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
        self.item = Item(items.ERROR, self.start, message, self.start_line)
        self.start = 0
        self.pos = 0
        self.input = ""

    def next_item(self) -> Item:
        self.item = Item(items.EOF, self.pos, "EOF", self.start_line)
        state: Callable[[], Any] | None = self.lex_inside_action if self.inside_action else self.lex_text
        # Each state either leaves an item in self.item (returns None) or names the next state.
        while state is not None:
            state = state()
        return self.item

    # states: each returns the next state, or None once an item is ready
    def lex_text(self) -> Callable[[], Any] | None:
        x = self.input.find(items.LEFT, self.pos)
        if x >= 0:
            if x > self.pos:
                self.pos = x
                trim = 0
                delim_end = self.pos + len(items.LEFT)
                if _has_left_trim(self.input[delim_end:]):
                    before = self.input[self.start : self.pos]
                    trim = len(before) - len(before.rstrip(items.SPACE_CHARS))
                self.pos -= trim
                self.line += self.input[self.start : self.pos].count("\n")
                item = self.this_item(items.TEXT)
                self.pos += trim
                self.ignore()
                if item.val:
                    self.item = item
                    return None
            return self.lex_left_delim
        self.pos = len(self.input)
        if self.pos > self.start:
            self.line += self.input[self.start : self.pos].count("\n")
            self.emit(items.TEXT)
            return None
        self.emit(items.EOF)
        return None

    def at_right_delim(self) -> tuple[bool, bool]:
        rest = self.input[self.pos :]
        if _has_right_trim(rest) and rest[items.TRIM_LEN :].startswith(items.RIGHT):
            return True, True
        if rest.startswith(items.RIGHT):
            return True, False
        return False, False

    def lex_left_delim(self) -> Callable[[], Any] | None:
        self.pos += len(items.LEFT)
        trim = _has_left_trim(self.input[self.pos :])
        after = items.TRIM_LEN if trim else 0
        if self.input[self.pos + after :].startswith(items.LEFT_COMMENT):
            self.pos += after
            self.ignore()
            return self.lex_comment
        item = self.this_item(items.LEFT_DELIM)
        self.inside_action = True
        self.pos += after
        self.ignore()
        self.paren_depth = 0
        self.item = item
        return None

    def lex_comment(self) -> Callable[[], Any] | None:
        self.pos += len(items.LEFT_COMMENT)
        x = self.input.find(items.RIGHT_COMMENT, self.pos)
        if x < 0:
            self.errorf("unclosed comment")
            return None
        self.pos = x + len(items.RIGHT_COMMENT)
        delim, trim = self.at_right_delim()
        if not delim:
            self.errorf("comment ends before closing delimiter")
            return None
        # The comment was skipped without next(), which counts lines: count its newlines here.
        self.line += self.input[self.start : self.pos].count("\n")
        self.this_item(items.COMMENT)
        if trim:
            self.pos += items.TRIM_LEN
        self.pos += len(items.RIGHT)
        if trim:
            rest = self.input[self.pos :]
            self.pos += len(rest) - len(rest.lstrip(items.SPACE_CHARS))
        self.ignore()
        return self.lex_text

    def lex_right_delim(self) -> Callable[[], Any] | None:
        _, trim = self.at_right_delim()
        if trim:
            self.pos += items.TRIM_LEN
            self.ignore()
        self.pos += len(items.RIGHT)
        item = self.this_item(items.RIGHT_DELIM)
        if trim:
            rest = self.input[self.pos :]
            self.pos += len(rest) - len(rest.lstrip(items.SPACE_CHARS))
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
        if is_space(r):
            self.backup()  # the space may start a " -}}"
            return self.lex_space
        if r == "=":
            self.emit(items.ASSIGN)
            return None
        if r == ":":
            if self.next() != "=":
                self.errorf("expected :=")
                return None
            self.emit(items.DECLARE)
            return None
        if r == "|":
            self.emit(items.PIPE)
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
        if is_alnum(r):
            self.backup()
            return self.lex_identifier
        if r == "(":
            self.paren_depth += 1
            self.emit(items.LEFT_PAREN)
            return None
        if r == ")":
            self.paren_depth -= 1
            if self.paren_depth < 0:
                self.errorf("unexpected right paren")
                return None
            self.emit(items.RIGHT_PAREN)
            return None
        if ord(r) < 0x80 and r.isprintable():
            self.emit(items.CHAR)
            return None
        self.errorf(f"unrecognized character in action: {go_rune(r)}")
        return None

    def lex_space(self) -> Callable[[], Any] | None:
        spaces = 0
        while is_space(self.peek()):
            self.next()
            spaces += 1
        # A " -}}" ends the action: leave its space to the right delimiter.
        if _has_right_trim(self.input[self.pos - 1 :]) and self.input[self.pos - 1 + items.TRIM_LEN :].startswith(items.RIGHT):
            self.backup()
            if spaces == 1:
                return self.lex_right_delim
        self.emit(items.SPACE)
        return None

    def lex_identifier(self) -> Callable[[], Any] | None:
        while True:
            r = self.next()
            if is_alnum(r):
                continue
            self.backup()
            word = self.input[self.start : self.pos]
            if not self.at_terminator():
                self.errorf(f"bad character {go_rune(r)}")
                return None
            kw = items.KEYWORDS.get(word, 0)
            if kw > items.KEYWORD:
                if (kw == items.BREAK and not self.break_ok) or (kw == items.CONTINUE and not self.continue_ok):
                    self.emit(items.IDENTIFIER)
                else:
                    self.emit(kw)
            elif word[0] == ".":
                self.emit(items.FIELD)
            elif word in ("true", "false"):
                self.emit(items.BOOL)
            else:
                self.emit(items.IDENTIFIER)
            return None

    def lex_field(self) -> Callable[[], Any] | None:
        return self._field_or_variable(items.FIELD)

    def lex_variable(self) -> Callable[[], Any] | None:
        if self.at_terminator():
            self.emit(items.VARIABLE)
            return None
        return self._field_or_variable(items.VARIABLE)

    def _field_or_variable(self, typ: int) -> Callable[[], Any] | None:
        if self.at_terminator():
            self.emit(items.VARIABLE if typ == items.VARIABLE else items.DOT)
            return None
        r = ""
        while True:
            r = self.next()
            if not is_alnum(r):
                self.backup()
                break
        if not self.at_terminator():
            self.errorf(f"bad character {go_rune(r)}")
            return None
        self.emit(typ)
        return None

    def at_terminator(self) -> bool:
        r = self.peek()
        if r == "" or is_space(r) or r in ".,|:)(":
            return True
        return self.input[self.pos :].startswith(items.RIGHT)

    def lex_char(self) -> Callable[[], Any] | None:
        return self._lex_escaped("'", "character constant", items.CHAR_CONSTANT)

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
            self.emit(items.COMPLEX)
            return None
        self.emit(items.NUMBER)
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
        if is_alnum(self.peek()):
            self.next()
            return False
        return True

    def lex_quote(self) -> Callable[[], Any] | None:
        return self._lex_escaped('"', "quoted string", items.STRING)

    def lex_raw_quote(self) -> Callable[[], Any] | None:
        while True:
            r = self.next()
            if r == "":
                self.errorf("unterminated raw quoted string")
                return None
            if r == "`":
                break
        self.emit(items.RAW_STRING)
        return None


def _has_left_trim(s: str) -> bool:
    return len(s) >= 2 and s[0] == "-" and is_space(s[1])


def _has_right_trim(s: str) -> bool:
    return len(s) >= 2 and is_space(s[0]) and s[1] == "-"
