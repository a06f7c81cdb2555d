"""Set REDIS_URL in a PM2 ecosystem file, changing no other byte of it.

Standard library only: the deploy copies this file to the host and runs it there with the
system Python, so that the password (read from the root-only credentials file) never leaves
the host and never appears on a command line.

    set_redis_url(text, url, apps=None, blocks=("env", "env_production")) -> new text

Understands `module.exports = { apps: [...] }`, apps in a `const` exported later, JSON
files, the three JS quotes, // and /* */ comments and trailing commas. Apps it cannot reach
with a text edit (built by a function, spread from another module) raise EcosystemError.

On the host:

    python3 ecosystem.py apply FILE --credentials C --user U --host H --port P [--apps a,b] [--blocks env]
    python3 ecosystem.py check ...          # prints "up-to-date" or "needs-change"
    python3 ecosystem.py verify-pm2 ...     # PM2's view of each running app's REDIS_URL
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from urllib.parse import quote

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
        elif IDENT.match(text, i):
            m = IDENT.match(text, i)
            tokens.append(Token("ident", i, m.end(), m.group()))
            i = m.end()
        elif c.isdigit():
            m = NUMBER.match(text, i)
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
            raise EcosystemError(f"apps comes from `{name} = {tokens[k + 3].text}...`, which no text edit can safely reach")
    raise EcosystemError(f"apps refers to `{name}`, which is not defined in this file")


# --- Editing -------------------------------------------------------------------------------


@dataclass
class Edit:
    start: int
    end: int
    text: str


def _line_indent(text: str, pos: int) -> str:
    line_start = text.rfind("\n", 0, pos) + 1
    return re.match(r"[ \t]*", text[line_start:]).group()


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


def _insert_property(text: str, tokens: list[Token], open_i: int, props: list[Prop], key: str, value: str) -> Edit:
    """Add `key: value` as the last property of the object opened at open_i, in its own style."""
    close_i = _match(tokens, open_i)
    open_t, close_t = tokens[open_i], tokens[close_i]
    if not props:
        if "\n" in text[open_t.end : close_t.start]:
            indent = _line_indent(text, close_t.start) + _indent_unit(text)
            return Edit(open_t.end, open_t.end, f"\n{indent}{key}: {value},")
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
    # A comment after the last value stays on its line; the new property goes after it.
    return Edit(after_value, line_end, f"{comma_first}{text[after_value:line_end]}\n{indent}{key}: {value}{trailing}")


def _key_text(props: list[Prop], json_file: bool, quote_char: str, name: str) -> str:
    if json_file:
        return f'"{name}"'
    quoted = [p.key.quote for p in props if p.key.kind == "str"]
    if quoted and len(quoted) == len(props):
        return f"{quoted[0]}{name}{quoted[0]}"
    return name


def set_redis_url(
    text: str, url: str, apps: list[str] | None = None, blocks: tuple[str, ...] = ("env", "env_production"),
    json_file: bool = False, extra: dict[str, str] | None = None,
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
        name = tokens[name_prop.value_first].value if name_prop and tokens[name_prop.value_first].kind == "str" else None
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
                edits.append(_insert_property(text, tokens, block.value_first, env_props, key, _literal(block_quote, url)))
    if apps is not None:
        unknown = [a for a in apps if a not in seen_names]
        if unknown:
            raise EcosystemError(f"pm2_apps names {', '.join(unknown)}, not in the file (apps: {', '.join(map(str, seen_names))})")
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


# --- On the host ----------------------------------------------------------------------------


def read_credentials(path: str) -> dict[str, str]:
    values = {}
    with open(path) as f:
        for line in f:
            if "=" in line and not line.startswith("#"):
                key, _, value = line.strip().partition("=")
                values[key] = shlex.split(value)[0] if value else ""
    return values


def compose_url(args) -> str:
    auth = ""
    if args.auth != "none":
        creds = read_credentials(args.credentials)
        auth = f"{quote(args.user, safe='')}:{quote(creds['REDIS_APP_PASSWORD'], safe='')}@"
    host = f"[{args.host}]" if ":" in args.host else args.host
    return f"redis://{auth}{host}:{args.port}/0"


NODE_CHECK = r"""
const path = require('path'), fs = require('fs');
const file = path.resolve(process.argv[1]);
const loaded = file.endsWith('.json') ? JSON.parse(fs.readFileSync(file, 'utf8')) : require(file);
const apps = Array.isArray(loaded) ? loaded : loaded.apps;
const wanted = JSON.parse(process.env.SMART_REDIS_EXPECTED);
const only = process.env.SMART_REDIS_APPS ? process.env.SMART_REDIS_APPS.split(',') : null;
const blocks = process.env.SMART_REDIS_BLOCKS.split(',');
const bad = [];
for (const app of apps) {
  if (only && !only.includes(app.name)) continue;
  let present = blocks.filter((b) => app[b] !== undefined);
  if (!present.length) present = ['env'];
  for (const b of present) for (const [k, v] of Object.entries(wanted)) if (!app[b] || app[b][k] !== v) bad.push(`${app.name}.${b}.${k}`);
}
console.log(JSON.stringify(bad));
"""


def node_check(path: str, expected: dict[str, str], apps, blocks) -> list[str] | None:
    """Blocks and keys whose value node does not see as intended; None when node is not installed."""
    node = shutil.which("node") or shutil.which("nodejs")
    if node is None:
        return None
    env = dict(os.environ, SMART_REDIS_EXPECTED=json.dumps(expected), SMART_REDIS_APPS=",".join(apps or []),
               SMART_REDIS_BLOCKS=",".join(blocks))
    result = subprocess.run([node, "-e", NODE_CHECK, path], env=env, capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        return [f"node could not load the file: {result.stderr.strip().splitlines()[-1] if result.stderr.strip() else ''}"]
    return json.loads(result.stdout)


def _write_keeping_owner_and_mode(path: str, text: str) -> None:
    st = os.stat(path)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".ecosystem-")
    try:
        with os.fdopen(fd, "w", newline="") as f:
            f.write(text)
        os.chown(tmp, st.st_uid, st.st_gid)
        os.chmod(tmp, st.st_mode & 0o7777)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def apply(args) -> int:
    path = args.file
    if not os.path.isfile(path):
        raise EcosystemError("the file does not exist")
    with open(path, newline="") as f:
        original = f.read()
    url = compose_url(args)
    apps = args.apps.split(",") if args.apps else None
    blocks = tuple(args.blocks.split(","))
    json_file = path.endswith(".json")
    extra = dict(item.split("=", 1) for item in args.set)
    edited = set_redis_url(original, url, apps, blocks, json_file, extra)
    if args.command == "check":
        print("up-to-date" if edited == original else "needs-change")
        return 0
    if edited == original:
        print("REDIS_URL is already set")
        return 0
    # Text-level check first: every targeted block holds exactly the URL.
    for name, values in redis_urls(edited, apps, blocks, json_file).items():
        if not values or any(v != [url] for v in values):
            raise EcosystemError(f"after editing, app {name} does not hold exactly one REDIS_URL per block")
    backup = path + ".backup"
    if not os.path.exists(backup):
        shutil.copy2(path, backup)
        st = os.stat(path)
        os.chown(backup, st.st_uid, st.st_gid)
    _write_keeping_owner_and_mode(path, edited)
    bad = node_check(path, {KEY: url, **extra}, apps, blocks)
    if bad is None:
        print("node is not installed: REDIS_URL checked at text level only")
    elif bad:
        _write_keeping_owner_and_mode(path, original)
        raise EcosystemError(f"node does not see the intended REDIS_URL in {', '.join(bad)}; the previous file is back")
    print("REDIS_URL set")
    return 0


def verify_pm2(args) -> int:
    url = compose_url(args)
    apps = args.apps.split(",") if args.apps else None
    result = subprocess.run(["runuser", "-l", args.pm2_user, "-c", "pm2 jlist"], capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise EcosystemError(f"pm2 jlist as {args.pm2_user} failed: {result.stderr.strip()[-200:]}")
    listing = json.loads(result.stdout[result.stdout.find("[") :])
    stale = []
    for proc in listing:
        env = proc.get("pm2_env", {})
        if apps is not None and proc.get("name") not in apps:
            continue
        for key, wanted in {KEY: url, **dict(item.split("=", 1) for item in args.set)}.items():
            if env.get("env", {}).get(key, env.get(key)) != wanted:
                stale.append(proc.get("name", "?"))
    if stale:
        raise EcosystemError(f"PM2 still runs {', '.join(sorted(set(stale)))} without the new REDIS_URL")
    print(f"PM2 runs {len(listing)} processes with the new REDIS_URL")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("apply", "check", "verify-pm2"))
    parser.add_argument("file")
    parser.add_argument("--credentials", default="/etc/smart-redis/credentials")
    parser.add_argument("--auth", default="acl")
    parser.add_argument("--user", default="")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", default="6379")
    parser.add_argument("--apps", default="")
    parser.add_argument("--blocks", default="env,env_production")
    parser.add_argument("--pm2-user", default="")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="another variable to set beside REDIS_URL")
    args = parser.parse_args(argv)
    try:
        return verify_pm2(args) if args.command == "verify-pm2" else apply(args)
    except EcosystemError as exc:
        print(f"{args.file}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
