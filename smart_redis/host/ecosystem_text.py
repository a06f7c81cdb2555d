"""The text edit of a PM2 ecosystem file: REDIS_URL set, no other byte changed.

    set_redis_url(text, url, apps=None, blocks=("env", "env_production")) -> new text

Understands `module.exports = { apps: [...] }`, apps in a `const` exported later, JSON
files, the three JS quotes, // and /* */ comments and trailing commas. Apps it cannot reach
with a text edit (built by a function, spread from another module) raise EcosystemError.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

KEY = "REDIS_URL"


class EcosystemError(Exception):
    """The file cannot be edited safely; nothing was changed."""


# --- Tokens ------------------------------------------------------------------------------


@dataclass
class Token:
    kind: str  # str, ident, num, punct, spread, other
    start: int
    end: int
    text: str

    @property
    def quote(self) -> str:
        return self.text[0] if self.kind == "str" else ""

    @property
    def value(self) -> str:
        """The name a key token stands for (quotes removed)."""
        return self.text[1:-1] if self.kind == "str" else self.text


IDENT = re.compile(r"[A-Za-z_$][\w$]*")
NUMBER = re.compile(r"-?\d[\d_.eExXa-fA-F]*")


def tokenize(text: str) -> list[Token]:
    tokens, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
        elif text.startswith("//", i):
            end = text.find("\n", i)
            i = n if end < 0 else end
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            if end < 0:
                raise EcosystemError("a /* comment is never closed")
            i = end + 2
        elif c in "'\"`":
            j = i + 1
            while j < n and text[j] != c:
                if text[j] == "\\":
                    j += 1
                elif c != "`" and text[j] == "\n":
                    raise EcosystemError(f"a string opened at line {text.count(chr(10), 0, i) + 1} is never closed")
                j += 1
            if j >= n:
                raise EcosystemError(f"a string opened at line {text.count(chr(10), 0, i) + 1} is never closed")
            tokens.append(Token("str", i, j + 1, text[i : j + 1]))
            i = j + 1
        elif text.startswith("...", i):
            tokens.append(Token("spread", i, i + 3, "..."))
            i += 3
        elif m := IDENT.match(text, i):
            tokens.append(Token("ident", i, m.end(), m.group()))
            i = m.end()
        elif c.isdigit():
            m = NUMBER.match(text, i)
            assert m is not None  # NUMBER starts with \d, and c is a digit
            tokens.append(Token("num", i, m.end(), m.group()))
            i = m.end()
        elif c in "{}[](),:;=.":
            tokens.append(Token("punct", i, i + 1, c))
            i += 1
        else:
            tokens.append(Token("other", i, i + 1, c))
            i += 1
    return tokens


# --- Structure -----------------------------------------------------------------------------

CLOSERS = {"{": "}", "[": "]", "(": ")"}


def _match(tokens: list[Token], open_index: int) -> int:
    """Index of the token closing the bracket at open_index."""
    depth = 0
    for k in range(open_index, len(tokens)):
        t = tokens[k]
        if t.kind == "punct" and t.text in CLOSERS:
            depth += 1
        elif t.kind == "punct" and t.text in CLOSERS.values():
            depth -= 1
            if depth == 0:
                return k
    raise EcosystemError("unbalanced brackets: the file does not parse")


@dataclass
class Prop:
    key: Token
    value_first: int  # token indexes of the value expression
    value_last: int
    comma: int | None  # index of the comma after the value, if any


def _items(tokens: list[Token], open_index: int, close_index: int) -> list[tuple[int, int, int | None]]:
    """Top-level items between brackets as (first, last, comma) token indexes."""
    items, k = [], open_index + 1
    while k < close_index:
        first = k
        while k < close_index and not (tokens[k].kind == "punct" and tokens[k].text == ","):
            if tokens[k].kind == "punct" and tokens[k].text in CLOSERS:
                k = _match(tokens, k)
            k += 1
        items.append((first, k - 1, k if k < close_index else None))
        k += 1
    return items


def _object(tokens: list[Token], open_index: int, what: str) -> tuple[list[Prop], list[str]]:
    """Properties of an object literal, and a description of anything that is not a plain property."""
    props, odd = [], []
    for first, last, comma in _items(tokens, open_index, _match(tokens, open_index)):
        key = tokens[first]
        if key.kind in ("ident", "str", "num") and first + 1 <= last and tokens[first + 1].text == ":":
            props.append(Prop(key, first + 2, last, comma))
        else:
            odd.append(f"{what} contains `{''.join(t.text for t in tokens[first : min(first + 2, last + 1)])}`")
    return props, odd


def _check_balanced(tokens: list[Token]) -> None:
    stack = []
    for t in tokens:
        if t.kind != "punct":
            continue
        if t.text in CLOSERS:
            stack.append(CLOSERS[t.text])
        elif t.text in CLOSERS.values() and (not stack or stack.pop() != t.text):
            raise EcosystemError("unbalanced brackets: the file does not parse")
    if stack:
        raise EcosystemError("unbalanced brackets: the file does not parse")


def _find_apps_array(tokens: list[Token]) -> int:
    """Token index of the `[` that opens the apps array."""
    for k, t in enumerate(tokens):
        if t.value != "apps" or t.kind not in ("ident", "str") or k == 0:
            continue
        if not (tokens[k - 1].kind == "punct" and tokens[k - 1].text in "{,"):
            continue
        after = tokens[k + 1] if k + 1 < len(tokens) else None
        if after is not None and after.text == ":":
            value = k + 2
        elif after is not None and after.text in ",}" and t.kind == "ident":
            value = k  # shorthand { apps }
        else:
            continue
        head = tokens[value]
        if head.text == "[":
            return value
        if head.kind == "ident" and (value + 1 >= len(tokens) or tokens[value + 1].text in ",}"):
            return _find_const_array(tokens, head.text)
        raise EcosystemError(f"apps is built by `{head.text}...`, which no text edit can safely reach")
    raise EcosystemError("no `apps` array found")


def _find_const_array(tokens: list[Token], name: str) -> int:
    for k in range(len(tokens) - 3):
        if tokens[k].text in ("const", "let", "var") and tokens[k + 1].text == name and tokens[k + 2].text == "=":
            if tokens[k + 3].text == "[":
                return k + 3
            raise EcosystemError(
                f"apps comes from `{name} = {tokens[k + 3].text}...`, which no text edit can safely reach"
            )
    raise EcosystemError(f"apps refers to `{name}`, which is not defined in this file")


# --- Editing -------------------------------------------------------------------------------


@dataclass
class Edit:
    start: int
    end: int
    text: str


def _line_indent(text: str, pos: int) -> str:
    line_start = text.rfind("\n", 0, pos) + 1
    indent = re.match(r"[ \t]*", text[line_start:])
    assert indent is not None  # [ \t]* matches every string, the empty one too
    return indent.group()


def _indent_unit(text: str) -> str:
    m = re.search(r"\n([ \t]+)\S", text)
    return "\t" if m and m.group(1).startswith("\t") else " " * (len(m.group(1)) if m and len(m.group(1)) <= 4 else 2)


def _quote_for(tokens: list[Token], first: int, last: int, default: str) -> str:
    for t in tokens[first : last + 1]:
        if t.kind == "str" and t.quote in "'\"":
            return t.quote
    return default


def _literal(quote_char: str, url: str) -> str:
    return f"{quote_char}{url}{quote_char}"


def _newline(text: str) -> str:
    """The file's own line ending: a CRLF file stays CRLF where lines are added."""
    crlf = text.count("\r\n")
    return "\r\n" if crlf and crlf * 2 >= text.count("\n") else "\n"


def _insert_property(text: str, tokens: list[Token], open_i: int, props: list[Prop], key: str, value: str) -> Edit:
    """Add `key: value` as the last property of the object opened at open_i, in its own style."""
    nl = _newline(text)
    close_i = _match(tokens, open_i)
    open_t, close_t = tokens[open_i], tokens[close_i]
    if not props:
        if "\n" in text[open_t.end : close_t.start]:
            indent = _line_indent(text, close_t.start) + _indent_unit(text)
            return Edit(open_t.end, open_t.end, f"{nl}{indent}{key}: {value},")
        return Edit(open_t.end, close_t.start, f" {key}: {value} ")
    last = props[-1]
    after_value = tokens[last.comma].end if last.comma is not None else tokens[last.value_last].end
    comma_first = "" if last.comma is not None else ","
    multiline = "\n" in text[tokens[last.value_last].end : close_t.start] or "\n" in text[open_t.end : last.key.start]
    if not multiline:
        return Edit(after_value, after_value, f"{comma_first} {key}: {value}")
    indent = _line_indent(text, last.key.start)
    trailing = "," if last.comma is not None else ""
    line_end = text.find("\n", after_value)
    if line_end < 0 or line_end > close_t.start:
        line_end = after_value
    elif text[line_end - 1] == "\r" and line_end - 1 >= after_value:
        line_end -= 1
    # A comment after the last value stays on its line; the new property goes after it.
    return Edit(after_value, line_end, f"{comma_first}{text[after_value:line_end]}{nl}{indent}{key}: {value}{trailing}")


def _key_text(props: list[Prop], json_file: bool, quote_char: str, name: str) -> str:
    if json_file:
        return f'"{name}"'
    quoted = [p.key.quote for p in props if p.key.kind == "str"]
    if quoted and len(quoted) == len(props):
        return f"{quoted[0]}{name}{quoted[0]}"
    return name


def set_redis_url(
    text: str,
    url: str,
    apps: list[str] | None = None,
    blocks: tuple[str, ...] = ("env", "env_production"),
    json_file: bool = False,
    extra: dict[str, str] | None = None,
) -> str:
    """Return the text with REDIS_URL = url (and each extra KEY = value) in the targeted apps' env
    blocks; raises EcosystemError."""
    for key, value in {KEY: url, **(extra or {})}.items():
        text = _set_one(text, key, value, apps, blocks, json_file)
    return text


def _set_one(
    text: str, key_name: str, url: str, apps: list[str] | None, blocks: tuple[str, ...], json_file: bool
) -> str:
    if json_file:
        try:
            json.loads(text)
        except ValueError as exc:
            raise EcosystemError(f"not valid JSON: {exc}") from None
    tokens = tokenize(text)
    _check_balanced(tokens)
    default_quote = '"' if json_file else _quote_for(tokens, 0, len(tokens) - 1, "'")
    array_open = _find_apps_array(tokens)
    edits: list[Edit] = []
    seen_names = []
    for index, (first, last, _) in enumerate(_items(tokens, array_open, _match(tokens, array_open))):
        head = tokens[first]
        if head.text != "{":
            shown = "".join(t.text for t in tokens[first : min(first + 2, last + 1)])
            raise EcosystemError(f"apps[{index}] is `{shown}...`, not an object that a text edit can reach")
        props, odd = _object(tokens, first, f"apps[{index}]")
        name_prop = next((p for p in props if p.key.value == "name"), None)
        name = (
            tokens[name_prop.value_first].value if name_prop and tokens[name_prop.value_first].kind == "str" else None
        )
        seen_names.append(name)
        if apps is not None and name not in apps:
            if name is None:
                raise EcosystemError(f"apps[{index}] has no literal name, so pm2_apps cannot select it")
            continue
        if odd:
            raise EcosystemError(f"{odd[0]}: its env cannot be reached safely by a text edit")
        quote_char = _quote_for(tokens, first, last, default_quote)
        # An app given `env` by an earlier key of this edit keeps using it.
        present = [p for p in props if p.key.value in blocks] or [p for p in props if p.key.value == "env"]
        if not present:
            literal = _literal(quote_char, url)
            key = _key_text([], json_file, quote_char, key_name)
            env_key = _key_text(props, json_file, quote_char, "env")
            edits.append(_insert_property(text, tokens, first, props, env_key, f"{{ {key}: {literal} }}"))
            continue
        for block in present:
            head = tokens[block.value_first]
            label = f"apps[{index}].{block.key.value}"
            if head.text != "{":
                raise EcosystemError(f"{label} is `{head.text}...`, not an object that a text edit can reach")
            env_props, env_odd = _object(tokens, block.value_first, label)
            if env_odd:
                raise EcosystemError(f"{env_odd[0]}: {key_name} there cannot be set safely by a text edit")
            block_quote = _quote_for(tokens, block.value_first, block.value_last, quote_char)
            existing = [p for p in env_props if p.key.value == key_name]
            for prop in existing:
                first_t, last_t = tokens[prop.value_first], tokens[prop.value_last]
                if prop.value_first == prop.value_last and first_t.kind == "str" and "${" not in first_t.text:
                    if first_t.value != url:
                        edits.append(Edit(first_t.start + 1, first_t.end - 1, url))
                else:
                    edits.append(Edit(first_t.start, last_t.end, _literal(block_quote, url)))
            if not existing:
                key = _key_text(env_props, json_file, block_quote, key_name)
                edits.append(
                    _insert_property(text, tokens, block.value_first, env_props, key, _literal(block_quote, url))
                )
    if apps is not None:
        unknown = [a for a in apps if a not in seen_names]
        if unknown:
            raise EcosystemError(
                f"pm2_apps names {', '.join(unknown)}, not in the file (apps: {', '.join(map(str, seen_names))})"
            )
    for edit in sorted(edits, key=lambda e: e.start, reverse=True):
        text = text[: edit.start] + edit.text + text[edit.end :]
    return text


def redis_urls(text: str, apps: list[str] | None, blocks: tuple[str, ...], json_file: bool = False) -> dict[str, list]:
    """app name -> the REDIS_URL values in its targeted blocks, as the text says (the text-level check)."""
    tokens = tokenize(text)
    array_open = _find_apps_array(tokens)
    result: dict[str, list] = {}
    for index, (first, _, _) in enumerate(_items(tokens, array_open, _match(tokens, array_open))):
        props, _ = _object(tokens, first, f"apps[{index}]")
        name_prop = next((p for p in props if p.key.value == "name"), None)
        name = tokens[name_prop.value_first].value if name_prop else f"apps[{index}]"
        if apps is not None and name not in apps:
            continue
        targeted = [p for p in props if p.key.value in blocks] or [p for p in props if p.key.value == "env"]
        values = []
        for block in targeted:
            env_props, _ = _object(tokens, block.value_first, name)
            values.append([tokens[p.value_first].value for p in env_props if p.key.value == KEY])
        result[name] = values
    return result
