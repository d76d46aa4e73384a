"""The Jinja environments templates run in, and the sandbox rules checked when they load."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from jinja2 import ChainableUndefined, Environment, Template, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

# Largest string or list a template may build with `*`, and largest exponent for `**`.
_MAX_REPEAT = 1_000_000
_MAX_EXPONENT = 1_000


class MissingValue(ChainableUndefined):
    """A value the context lacks: renders empty, iterates as empty, and counts as 0 in the
    `int` and `float` filters, so `{{ "%.2f" | format(item.price | float) }}` never fails."""

    __slots__ = ()

    def __int__(self) -> int:
        return 0

    def __float__(self) -> float:
        return 0.0


class MailSandbox(ImmutableSandboxedEnvironment):
    """Jinja as email service providers run Liquid: missing values render empty, nothing escapes.

    A trait a contact never set renders as "" (MissingValue, and `None` prints as ""),
    so one incomplete profile never stops a send. Reaching an unsafe attribute raises at once
    instead of quietly rendering empty, so the author learns of it.
    """

    intercepted_binops = frozenset({"*", "**"})

    def __init__(self, *, autoescape: bool) -> None:
        super().__init__(
            autoescape=autoescape,
            undefined=MissingValue,
            finalize=_none_as_empty,
            keep_trailing_newline=True,
        )

    def getattr(self, obj: Any, attribute: str) -> Any:
        # `event.properties.items` means the data, not dict.items.
        if isinstance(obj, dict) and attribute in obj:
            return obj[attribute]
        return super().getattr(obj, attribute)

    def unsafe_undefined(self, obj: Any, attribute: str) -> Any:
        raise SecurityError(
            f"access to attribute {attribute!r} of a {type(obj).__name__} value is not allowed"
        )

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            for sized, count in ((left, right), (right, left)):
                if (
                    isinstance(sized, str | list | tuple)
                    and isinstance(count, int)
                    and len(sized) * count > _MAX_REPEAT
                ):
                    raise SecurityError(f"'*' would build a value over {_MAX_REPEAT} long")
        if operator == "**" and isinstance(right, int | float) and abs(right) > _MAX_EXPONENT:
            raise SecurityError(f"'**' with an exponent over {_MAX_EXPONENT} is not allowed")
        return super().call_binop(context, operator, left, right)


def _none_as_empty(value: Any) -> Any:
    return "" if value is None else value


def _no_catalog(catalog: Any = None, item_id: Any = None) -> dict[str, Any]:
    """`catalog(name, id)` where no catalog is wired in (a preview, a test): every item is
    missing. A send passes the real one in its context (see mailpulse.catalog.lookup)."""
    return {}


HTML_ENV = MailSandbox(autoescape=True)
TEXT_ENV = MailSandbox(autoescape=False)
for _env in (HTML_ENV, TEXT_ENV):
    _env.globals["catalog"] = _no_catalog


def template_of(env: Environment, source: str) -> Template:
    """`env.from_string(source)` with its globals in one plain dict. Jinja keeps them as a
    ChainMap (the template's over the environment's), which every render copies key by key
    in Python: 5 of the 7 us a one-line subject took, four renders a message. Ours are all
    set when this module loads."""
    template = env.from_string(source)
    template.globals = dict(template.globals)
    return template


def sandbox_violations(tree: nodes.Template) -> Iterator[tuple[int, str]]:
    """What the sandbox would refuse at render time that can already be seen in the source."""
    for node in tree.find_all(
        (
            nodes.Getattr,
            nodes.Getitem,
            nodes.Filter,
            nodes.Include,
            nodes.Extends,
            nodes.Import,
            nodes.FromImport,
        )
    ):
        if isinstance(node, nodes.Include | nodes.Extends | nodes.Import | nodes.FromImport):
            yield (
                node.lineno,
                "include, extends and import are not supported: each template is one file",
            )
        elif isinstance(node, nodes.Getattr):
            if node.attr.startswith("_"):
                yield node.lineno, _private(node.attr)
        elif isinstance(node, nodes.Getitem):
            if _private_const(node.arg):
                yield node.lineno, _private(node.arg.value)  # type: ignore[attr-defined]
        elif node.name == "attr" and node.args and _private_const(node.args[0]):
            yield node.lineno, _private(node.args[0].value)  # type: ignore[attr-defined]


def _private_const(node: nodes.Node) -> bool:
    return (
        isinstance(node, nodes.Const) and isinstance(node.value, str) and node.value.startswith("_")
    )


def _private(name: str) -> str:
    return f"'{name}': names starting with '_' are internal to Python and not allowed in templates"
