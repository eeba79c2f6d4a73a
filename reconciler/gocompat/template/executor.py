"""Go's text/template executor (exec.go) over a flat record of strings."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from reconciler.gocompat.template.errors import ExecError, Unsupported
from reconciler.gocompat.template.funcs import ARITY, BUILTINS, STRING_PARAMS
from reconciler.gocompat.template.items import go_quote
from reconciler.gocompat.template.nodes import (
    ActionNode,
    BoolNode,
    BranchNode,
    BreakNode,
    ChainNode,
    CommandNode,
    ContinueNode,
    DotNode,
    FieldNode,
    IdentifierNode,
    ListNode,
    NilNode,
    Node,
    NumberNode,
    PipeNode,
    StringNode,
    Template,
    TemplateNode,
    TextNode,
    VariableNode,
)
from reconciler.gocompat.template.values import MISSING_VALUE, Break, Continue, Record, format_value, go_type_name, is_true


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
            raise Break()
        elif isinstance(node, ContinueNode):
            raise Continue()
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
            if is_true(value):
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
                    except Continue:
                        continue
                    except Break:
                        break
                if value <= 0 and node.else_list is not None:
                    self.walk(dot, node.else_list)
                return
            if value is None:
                if node.else_list is not None:
                    self.walk(dot, node.else_list)
                return
            if isinstance(value, (str, Record, bool, float, complex)):
                self.errorf(f"range can't iterate over {format_value(value)}")
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
            return MISSING_VALUE
        self.at(pipe)
        value: Any = MISSING_VALUE
        for cmd in pipe.cmds:
            value = self.eval_command(dot, cmd, value)
        for var in pipe.decl:
            if pipe.is_assign:
                self.set_var(var.ident[0], value)
            else:
                self.push(var.ident[0], value)
        return value

    def not_a_function(self, args: Sequence[Node], final: Any) -> None:
        if len(args) > 1 or final is not MISSING_VALUE:
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
            receiver = self.eval_field(dot, ident, node, (), MISSING_VALUE, receiver)
        return self.eval_field(dot, idents[-1], node, args, final, receiver)

    def eval_field(self, dot: Any, name: str, node: Node, args: Sequence[Node], final: Any, receiver: Any) -> Any:
        if receiver is None or receiver is MISSING_VALUE:
            self.errorf(f"nil pointer evaluating interface {{}}.{name}")
        has_args = len(args) > 1 or final is not MISSING_VALUE
        if isinstance(receiver, Record):
            if name in receiver.fields:
                if has_args:
                    self.errorf(f"{name} has arguments but cannot be invoked as function")
                return receiver.fields[name]
            self.errorf(f"can't evaluate field {name} in type {receiver.type_name}")
        self.errorf(f"can't evaluate field {name} in type {go_type_name(receiver)}")
        return None

    def eval_function(self, dot: Any, node: IdentifierNode, cmd: Node, args: Sequence[Node], final: Any) -> Any:
        self.at(node)
        name = node.name
        call_args = list(args[1:])
        if name in ("and", "or"):
            return self.eval_and_or(dot, name, call_args, final)
        if name == "call":
            raise Unsupported("call")
        fn = self.funcs.get(name) or BUILTINS.get(name)
        if fn is None:
            self.errorf(f"{go_quote(name)} is not a defined function")
            return None
        fixed, variadic = ARITY.get(name, (1, False))
        given = len(call_args) + (0 if final is MISSING_VALUE else 1)
        if variadic:
            if given < fixed:
                self.errorf(f"wrong number of args for {name}: want at least {fixed} got {given}")
        elif given != fixed:
            self.errorf(f"wrong number of args for {name}: want {fixed} got {given}")
        string_params = STRING_PARAMS.get(name, ())
        values = []
        for i, a in enumerate(call_args):
            if i in string_params:
                values.append(self.eval_string_arg(dot, a))
            else:
                values.append(self.eval_arg(dot, a))
        if final is not MISSING_VALUE:
            if len(values) in string_params and not isinstance(final, str):
                self.errorf(f"wrong type for value; expected string; got {go_type_name(final)}")
            values.append(final)
        self.at(node)
        try:
            return fn(*values)
        except ExecError as e:
            self.errorf(f"error calling {name}: {e}")
        return None

    def eval_and_or(self, dot: Any, name: str, args: Sequence[Node], final: Any) -> Any:
        given = len(args) + (0 if final is MISSING_VALUE else 1)
        if given < 1:
            self.errorf(f"wrong number of args for {name}: want at least 1 got 0")
        value: Any = None
        for a in args:
            value = self.eval_arg(dot, a)
            if is_true(value) != (name == "and"):
                return value
        if final is not MISSING_VALUE:
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
            self.errorf(f"wrong type for value; expected string; got {go_type_name(value)}")
        return str(value)

    def eval_arg(self, dot: Any, node: Node) -> Any:
        self.at(node)
        if isinstance(node, DotNode):
            return dot
        if isinstance(node, NilNode):
            return None
        if isinstance(node, FieldNode):
            return self.eval_field_chain(dot, dot, node, node.ident, [node], MISSING_VALUE)
        if isinstance(node, VariableNode):
            return self.eval_variable(dot, node, [node], MISSING_VALUE)
        if isinstance(node, PipeNode):
            return self.eval_pipeline(dot, node)
        if isinstance(node, IdentifierNode):
            return self.eval_function(dot, node, node, [node], MISSING_VALUE)
        if isinstance(node, ChainNode):
            return self.eval_chain(dot, node, [node], MISSING_VALUE)
        if isinstance(node, BoolNode):
            return node.value
        if isinstance(node, NumberNode):
            return self.ideal_constant(node)
        if isinstance(node, StringNode):
            return node.text
        raise Unsupported(type(node).__name__)

    def print_value(self, node: Node, value: Any) -> None:
        self.at(node)
        if value is MISSING_VALUE or value is None:
            self.out.append("<no value>")
            return
        self.out.append(format_value(value))


def execute(template: Template, data: Record, funcs: Mapping[str, Callable[..., Any]] | None = None) -> str:
    """Render the template's main tree against `data`; raises ExecError or Unsupported."""
    state = _State(template, funcs or {})
    state.push("$", data)
    tree = template.trees.get("")
    if tree is None:
        raise ExecError('template: : "" is an incomplete or empty template')
    try:
        state.walk(data, tree)
    except (Break, Continue):
        raise Unsupported("break outside range") from None
    except RecursionError:
        raise Unsupported("template recursion") from None
    return "".join(state.out)
