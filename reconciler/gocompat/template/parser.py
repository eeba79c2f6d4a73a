"""Go's text/template parser (parse/parse.go): items to trees, with Go's error messages."""

from __future__ import annotations

from reconciler.gocompat.template import items
from reconciler.gocompat.template.items import Item, go_quote
from reconciler.gocompat.template.lexer import Lexer
from reconciler.gocompat.template.literals import go_unquote, parse_go_number, unquote_char
from reconciler.gocompat.template.nodes import (
    ActionNode,
    BoolNode,
    BranchNode,
    BreakNode,
    ChainNode,
    CommandNode,
    ContinueNode,
    DotNode,
    ElseNode,
    EndNode,
    FieldNode,
    IdentifierNode,
    ListNode,
    NilNode,
    Node,
    NumberNode,
    PipeNode,
    StringNode,
    TemplateNode,
    TextNode,
    VariableNode,
    is_empty_tree,
)
from reconciler.gocompat.template.stream import ItemStream


class Parser(ItemStream):
    """Go's parse.Tree for one tree; nested define/block trees get their own instance."""

    def __init__(self, name: str, text: str, lexer: Lexer, funcs: frozenset[str], trees: dict[str, ListNode]) -> None:
        self.name = name
        self.text = text
        super().__init__(lexer)
        self.funcs = funcs
        self.trees = trees
        self.vars = ["$"]
        self.range_depth = 0
        self.root: ListNode | None = None

    # grammar
    def parse(self) -> None:
        self.root = ListNode(self.peek().pos)
        while self.peek().typ != items.EOF:
            if self.peek().typ == items.LEFT_DELIM:
                delim = self.next()
                if self.next_non_space().typ == items.DEFINE:
                    sub = Parser("definition", self.text, self.lex, self.funcs, self.trees)
                    sub.parse_definition()
                    continue
                self.backup2(delim)
            n = self.text_or_action()
            if isinstance(n, (EndNode, ElseNode)):
                self.errorf(f"unexpected {n}")
            elif n is not None:
                self.root.nodes.append(n)

    def add(self) -> None:
        existing = self.trees.get(self.name)
        if existing is None or is_empty_tree(existing):
            self.trees[self.name] = self.root or ListNode(0)
            return
        if self.root is not None and not is_empty_tree(self.root):
            self.errorf(f"template: multiple definition of template {go_quote(self.name)}")

    def parse_definition(self) -> None:
        context = "define clause"
        name = self.expect_one_of(items.STRING, items.RAW_STRING, context)
        self.name = self._unquote(name.val)
        self.expect(items.RIGHT_DELIM, context)
        self.root, end = self.item_list()
        if not isinstance(end, EndNode):
            self.errorf(f"unexpected {end} in {context}")
        self.add()

    def item_list(self) -> tuple[ListNode, Node]:
        lst = ListNode(self.peek_non_space().pos)
        while self.peek_non_space().typ != items.EOF:
            n = self.text_or_action()
            if isinstance(n, (EndNode, ElseNode)):
                return lst, n
            if n is not None:
                lst.nodes.append(n)
        self.errorf("unexpected EOF")
        raise AssertionError("unreachable")

    def text_or_action(self) -> Node | None:
        token = self.next_non_space()
        if token.typ == items.TEXT:
            return TextNode(token.pos, token.val)
        if token.typ == items.LEFT_DELIM:
            self.action_line = token.line
            try:
                return self.action()
            finally:
                self.action_line = 0
        if token.typ == items.COMMENT:
            return None
        self.unexpected(token, "input")
        return None

    def action(self) -> Node:
        token = self.next_non_space()
        typ = token.typ
        if typ == items.BLOCK:
            return self.block_control()
        if typ == items.BREAK:
            return self.break_control(token, "{{break}}", BreakNode)
        if typ == items.CONTINUE:
            return self.break_control(token, "{{continue}}", ContinueNode)
        if typ == items.ELSE:
            return self.else_control()
        if typ == items.END:
            return EndNode(self.expect(items.RIGHT_DELIM, "end").pos)
        if typ in (items.IF, items.RANGE, items.WITH):
            return self.branch({items.IF: "if", items.RANGE: "range", items.WITH: "with"}[typ])
        if typ == items.TEMPLATE:
            return self.template_control()
        self.backup()
        token = self.peek()
        return ActionNode(token.pos, self.pipeline("command", items.RIGHT_DELIM))

    def break_control(self, token: Item, what: str, cls: type[BreakNode] | type[ContinueNode]) -> Node:
        nxt = self.next_non_space()
        if nxt.typ != items.RIGHT_DELIM:
            self.unexpected(nxt, what)
        if self.range_depth == 0:
            self.errorf(f"{what} outside {{{{range}}}}")
        return cls(token.pos)

    def pipeline(self, context: str, end: int) -> PipeNode:
        token = self.peek_non_space()
        pipe = PipeNode(token.pos, token.line)
        while True:  # declarations: `$x :=`, `$x =`, `$i, $v :=`
            v = self.peek_non_space()
            if v.typ != items.VARIABLE:
                break
            self.next()
            after = self.peek()
            nxt = self.peek_non_space()
            if nxt.typ in (items.ASSIGN, items.DECLARE):
                pipe.is_assign = nxt.typ == items.ASSIGN
                self.next_non_space()
                pipe.decl.append(VariableNode(v.pos, v.val.split(".")))
                self.vars.append(v.val)
            elif nxt.typ == items.CHAR and nxt.val == ",":
                self.next_non_space()
                pipe.decl.append(VariableNode(v.pos, v.val.split(".")))
                self.vars.append(v.val)
                if context == "range" and len(pipe.decl) < 2:
                    if self.peek_non_space().typ in (items.VARIABLE, items.RIGHT_DELIM, items.RIGHT_PAREN):
                        continue
                    self.errorf("range can only initialize variables")
                self.errorf(f"too many declarations in {context}")
            elif after.typ == items.SPACE:
                self.backup3(v, after)
            else:
                self.backup2(v)
            break
        while True:
            token = self.next_non_space()
            if token.typ == end:
                self.check_pipeline(pipe, context)
                return pipe
            if token.typ in (
                items.BOOL,
                items.CHAR_CONSTANT,
                items.COMPLEX,
                items.DOT,
                items.FIELD,
                items.IDENTIFIER,
                items.NUMBER,
                items.NIL,
                items.RAW_STRING,
                items.STRING,
                items.VARIABLE,
                items.LEFT_PAREN,
            ):
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
            pipe = self.pipeline(context, items.RIGHT_DELIM)
            if context == "range":
                self.range_depth += 1
            lst, nxt = self.item_list()
            if context == "range":
                self.range_depth -= 1
            else_list: ListNode | None = None
            if isinstance(nxt, ElseNode):
                # `{{else if ...}}` / `{{else with ...}}` nest a new branch that ends at the same {{end}}.
                if context in ("if", "with") and self.peek().typ == (items.IF if context == "if" else items.WITH):
                    self.next()
                    else_list = ListNode(nxt.pos, [self.branch(context)])
                else:
                    else_list, nxt = self.item_list()
                    if not isinstance(nxt, EndNode):
                        self.errorf(f"expected end; found {nxt}")
            return BranchNode(pipe.pos, context, pipe, lst, else_list)
        finally:
            del self.vars[saved:]

    def else_control(self) -> Node:
        peek = self.peek_non_space()
        if peek.typ in (items.IF, items.WITH):
            return ElseNode(peek.pos)
        token = self.expect(items.RIGHT_DELIM, "else")
        return ElseNode(token.pos)

    def block_control(self) -> Node:
        context = "block clause"
        token = self.next_non_space()
        name = self.template_name(token, context)
        pipe = self.pipeline(context, items.RIGHT_DELIM)
        sub = Parser(name, self.text, self.lex, self.funcs, self.trees)
        sub.root, end = sub.item_list()
        if not isinstance(end, EndNode):
            self.errorf(f"unexpected {end} in {context}")
        sub.add()
        return TemplateNode(token.pos, name, pipe)

    def template_control(self) -> Node:
        context = "template clause"
        token = self.next_non_space()
        name = self.template_name(token, context)
        pipe: PipeNode | None = None
        if self.next_non_space().typ != items.RIGHT_DELIM:
            self.backup()
            pipe = self.pipeline(context, items.RIGHT_DELIM)
        return TemplateNode(token.pos, name, pipe)

    def template_name(self, token: Item, context: str) -> str:
        if token.typ in (items.STRING, items.RAW_STRING):
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
            if token.typ == items.SPACE:
                continue
            if token.typ in (items.RIGHT_DELIM, items.RIGHT_PAREN):
                self.backup()
            elif token.typ != items.PIPE:
                self.unexpected(token, "operand")
            break
        if not cmd.args:
            self.errorf("empty command")
        return cmd

    def operand(self) -> Node | None:
        node = self.term()
        if node is None:
            return None
        if self.peek().typ == items.FIELD:
            chain = ChainNode(self.peek().pos, node)
            while self.peek().typ == items.FIELD:
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
        if typ == items.IDENTIFIER:
            if token.val not in self.funcs:
                self.errorf(f"function {go_quote(token.val)} not defined")
            return IdentifierNode(token.pos, token.val)
        if typ == items.DOT:
            return DotNode(token.pos)
        if typ == items.NIL:
            return NilNode(token.pos)
        if typ == items.VARIABLE:
            return self.use_var(token)
        if typ == items.FIELD:
            return FieldNode(token.pos, token.val[1:].split("."))
        if typ == items.BOOL:
            return BoolNode(token.pos, token.val == "true")
        if typ in (items.CHAR_CONSTANT, items.COMPLEX, items.NUMBER):
            return self.number(token)
        if typ == items.LEFT_PAREN:
            return self.pipeline("parenthesized pipeline", items.RIGHT_PAREN)
        if typ in (items.STRING, items.RAW_STRING):
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
        if token.typ == items.CHAR_CONSTANT:
            try:
                value = unquote_char(text)
            except ValueError:
                self.errorf(f"malformed character constant: {text}")
                raise AssertionError("unreachable") from None
            return NumberNode(token.pos, text, value)
        if token.typ == items.COMPLEX:
            try:
                return NumberNode(token.pos, text, complex(text.replace("_", "").replace("i", "j")))
            except ValueError:
                self.errorf(f"illegal number syntax: {go_quote(text)}")
        parsed = parse_go_number(text)
        if parsed is None:
            self.errorf(f"illegal number syntax: {go_quote(text)}")
        assert parsed is not None
        return NumberNode(token.pos, text, parsed)

    def _unquote(self, quoted: str) -> str:
        try:
            return go_unquote(quoted)
        except ValueError:
            self.errorf("invalid syntax")
            raise AssertionError("unreachable") from None
