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
    python3 ecosystem.py check ... [--pm2-user U]   # "up-to-date" or "needs-change", then flags:
                                                    # needs-reload, pm2-not-running, others-can-read
    python3 ecosystem.py verify-pm2 ... --pm2-user U  # PM2's view of the file's apps' REDIS_URL
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import re
import secrets
import shlex
import shutil
import signal
import stat
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
#
# Root reads the password and decides; every file operation in the app team's folder, and
# loading the file with node, runs as the file's owner (a forked child that dropped root), so
# a link or a require() the app team planted reaches only what that user could reach anyway.


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


@dataclass
class Owner:
    uid: int
    gid: int
    groups: list[int]
    home: str
    name: str


def owner_of(uid: int, gid: int) -> Owner:
    try:
        pw = pwd.getpwuid(uid)
    except KeyError:
        return Owner(uid, gid, [gid], "/", str(uid))
    return Owner(uid, pw.pw_gid, os.getgrouplist(pw.pw_name, pw.pw_gid), pw.pw_dir, pw.pw_name)


def _root_only(st: os.stat_result) -> bool:
    """Only root can add, replace or rename entries in a folder with this owner and mode."""
    return st.st_uid == 0 and not st.st_mode & 0o002 and not (st.st_mode & 0o020 and st.st_gid != 0)


@dataclass
class Target:
    path: str
    name: str  # relative to dir_fd
    dir_fd: int  # the folder, opened once: a link swapped in later changes nothing
    st: os.stat_result
    owner: Owner
    worker: Owner | None  # who does the file work; None: root itself, as the folder is root's alone


def target(path: str) -> Target:
    folder, name = os.path.split(path)
    try:
        dir_fd = os.open(folder or ".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        raise EcosystemError("the file does not exist") from None
    except NotADirectoryError:
        raise EcosystemError(f"{folder} is not a folder") from None
    if stat.S_ISLNK(st.st_mode):
        raise EcosystemError(
            "is a symbolic link: set pm2_ecosystem_file to the file itself (the deploy does not follow links in the app team's folder)"
        )
    if not stat.S_ISREG(st.st_mode):
        raise EcosystemError("is not a regular file")
    folder_st = os.fstat(dir_fd)
    owner = owner_of(st.st_uid, st.st_gid)
    if _root_only(folder_st):
        return Target(path, name, dir_fd, st, owner, None)
    if st.st_uid == 0:
        raise EcosystemError(
            f"belongs to root, but its folder {folder} can be changed by a non-root user (owner uid {folder_st.st_uid}, "
            f"mode {folder_st.st_mode & 0o7777:o}): root does not edit files there; give the file to the app user"
        )
    return Target(path, name, dir_fd, st, owner, owner)


def run_as(worker: Owner | None, work):
    """work() in a child process with worker's uid, gid and groups; its JSON-able result or its EcosystemError."""
    if worker is None:
        return work()
    sys.stdout.flush()
    sys.stderr.flush()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_end)
            try:
                os.setgroups(worker.groups)
                os.setgid(worker.gid)
                os.setuid(worker.uid)
                result = {"ok": work()}
            except EcosystemError as exc:
                result = {"error": str(exc)}
            except Exception as exc:  # the parent reports it as the file's error: one line, no traceback
                result = {"error": f"{type(exc).__name__}: {exc}"}
            with os.fdopen(write_end, "w") as f:
                json.dump(result, f)
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as f:
        data = f.read()
    os.waitpid(pid, 0)
    result = json.loads(data) if data else {"error": f"the editor's process as {worker.name} died"}
    if "error" in result:
        raise EcosystemError(result["error"])
    return result["ok"]


def _read(t: Target) -> str:
    fd = os.open(t.name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=t.dir_fd)
    with os.fdopen(fd, "rb") as f:
        now = os.fstat(f.fileno())
        if (now.st_dev, now.st_ino) != (t.st.st_dev, t.st.st_ino):
            raise EcosystemError("the file was replaced while the deploy read it; run again")
        data = f.read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise EcosystemError("is not UTF-8 text") from None


def _keep_owner(fd: int, st: os.stat_result) -> None:
    now = os.fstat(fd)
    if (now.st_uid, now.st_gid) == (st.st_uid, st.st_gid):
        return
    try:
        os.fchown(fd, st.st_uid if os.geteuid() == 0 else -1, st.st_gid)
    except PermissionError:
        raise EcosystemError(f"its group (gid {st.st_gid}) is not one of its owner's groups, so a new file cannot keep it") from None


def _create(t: Target, name: str, text: str, mode: int) -> None:
    """A new file in the folder; fails if the name exists in any form, a dangling link included."""
    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=t.dir_fd)
    try:
        with os.fdopen(fd, "wb", closefd=False) as f:
            f.write(text.encode("utf-8"))
            f.flush()
            _keep_owner(fd, t.st)  # before the mode: chown clears setgid bits
            os.fchmod(fd, mode)
            os.fsync(fd)
    except BaseException:
        os.unlink(name, dir_fd=t.dir_fd)
        raise
    finally:
        os.close(fd)


def _replace(t: Target, text: str, mode: int) -> None:
    tmp = f".{t.name}.smart-redis-{secrets.token_hex(6)}"
    _create(t, tmp, text, mode)
    try:
        os.rename(tmp, t.name, src_dir_fd=t.dir_fd, dst_dir_fd=t.dir_fd)
    except BaseException:
        os.unlink(tmp, dir_fd=t.dir_fd)
        raise


def _backup_once(t: Target, original: str, mode: int) -> None:
    name = f"{t.name}.backup"
    try:
        _create(t, name, original, mode)
    except FileExistsError:
        if not stat.S_ISREG(os.stat(name, dir_fd=t.dir_fd, follow_symlinks=False).st_mode):
            raise EcosystemError(
                f"{name} exists but is not a regular file (a symbolic link?), so it is not the backup the deploy keeps: "
                "remove it and run again; the file was not changed"
            ) from None


def _chmod(t: Target, mode: int) -> None:
    fd = os.open(t.name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=t.dir_fd)
    try:
        now = os.fstat(fd)
        if (now.st_dev, now.st_ino) != (t.st.st_dev, t.st.st_ino):
            raise EcosystemError("the file was replaced while the deploy read it; run again")
        os.fchmod(fd, mode)
    finally:
        os.close(fd)


# Loads the file as PM2 would and writes what it sees to a private fd: the file may print
# anything on stdout, and node is given no secret at all; the editor compares the values.
NODE_CHECK = r"""
const path = require('path'), fs = require('fs');
const [file, only, blocks, keys, out] = process.argv.slice(1);
const loaded = file.endsWith('.json') ? JSON.parse(fs.readFileSync(file, 'utf8')) : require(path.resolve(file));
const apps = Array.isArray(loaded) ? loaded : loaded.apps;
const selected = only ? only.split(',') : null;
const seen = [];
for (const app of apps) {
  if (selected && !selected.includes(app.name)) continue;
  let present = blocks.split(',').filter((b) => app[b] !== undefined);
  if (!present.length) present = ['env'];
  for (const b of present) {
    const values = {};
    for (const k of keys.split(',')) if (app[b] && app[b][k] !== undefined) values[k] = app[b][k];
    seen.push([String(app.name), b, values]);
  }
}
fs.writeSync(Number(out), '\n' + JSON.stringify(seen) + '\n');
"""


def node_check(path: str, expected: dict[str, str], apps, blocks, owner: Owner | None = None) -> list[str] | None:
    """Blocks and keys whose value node does not see as intended; None when node is not installed.

    node runs as owner (never as root) with a clean environment: the file and all it require()s
    are the app team's code.
    """
    node = shutil.which("node", path=SAFE_PATH) or shutil.which("nodejs", path=SAFE_PATH)
    if node is None:
        return None
    switch, env = {}, {"PATH": SAFE_PATH, "LANG": "C.UTF-8", "HOME": os.environ.get("HOME", "/")}
    if owner is not None:
        env.update(HOME=owner.home, USER=owner.name, LOGNAME=owner.name)
        if os.geteuid() != owner.uid:
            switch = {"user": owner.uid, "group": owner.gid, "extra_groups": owner.groups}
    with tempfile.TemporaryFile() as result, tempfile.TemporaryFile() as errors:
        argv = [node, "-e", NODE_CHECK, path, ",".join(apps or []), ",".join(blocks), ",".join(expected), str(result.fileno())]
        proc = subprocess.Popen(
            argv, env=env, cwd=os.path.dirname(path) or ".", stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=errors, pass_fds=(result.fileno(),), start_new_session=True, **switch,
        )
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return ["node did not finish loading the file within 60 s"]
        result.seek(0)
        errors.seek(0)
        lines = [line for line in result.read().decode("utf-8", "replace").splitlines() if line.strip()]
        stderr = errors.read().decode("utf-8", "replace")
    if proc.returncode != 0:
        return [f"node could not load the file: {_error_line(stderr, expected)}"]
    try:
        seen = json.loads(lines[-1])
    except (IndexError, ValueError):
        return ["node printed no readable result"]
    bad = []
    for name, block, values in seen:
        bad += [f"{name}.{block}.{key}" for key, value in expected.items() if values.get(key) != value]
    return bad


SAFE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _error_line(stderr: str, hidden: dict[str, str]) -> str:
    """node's own error line, without the values (a syntax error quotes the source line)."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    line = next((line for line in lines if re.match(r"^\w*Error\b", line)), lines[-1] if lines else "")
    for value in hidden.values():
        line = line.replace(value, "<hidden>")
    return line[:300]


def _edit(t: Target, original: str, edited: str, mode: int, expected: dict[str, str], apps, blocks) -> list[str]:
    """As the file's owner (or root in a root-only folder): backup, write, node check, put back on failure."""
    if edited == original:
        _chmod(t, mode)
        return []
    _backup_once(t, original, mode)
    _replace(t, edited, mode)
    if t.st.st_uid == 0:
        return ["the file belongs to root: node does not load it (REDIS_URL checked at text level)"]
    bad = node_check(t.path, expected, apps, blocks, t.owner)
    if bad is None:
        return ["node is not installed: REDIS_URL checked at text level only"]
    if bad:
        _replace(t, original, mode)
        raise EcosystemError(f"node does not see the intended REDIS_URL in {', '.join(bad)}; the previous file is back")
    return []


def _wanted(args, url: str) -> dict[str, str]:
    return {KEY: url, **dict(item.split("=", 1) for item in args.set)}


def _options(args) -> tuple[list[str] | None, tuple[str, ...], bool]:
    return (args.apps.split(",") if args.apps else None), tuple(args.blocks.split(",")), args.file.endswith(".json")


def _modes(args, t: Target) -> tuple[int, int]:
    """(mode, mode to set): a file that holds a password loses the others' read bit."""
    mode = t.st.st_mode & 0o7777
    return mode, (mode & ~0o004 if args.auth != "none" else mode)


def apply(args) -> int:
    t = target(args.file)
    url = compose_url(args)
    apps, blocks, json_file = _options(args)
    original = run_as(t.worker, lambda: _read(t))
    edited = set_redis_url(original, url, apps, blocks, json_file, dict(item.split("=", 1) for item in args.set))
    mode, new_mode = _modes(args, t)
    if args.command == "check":
        print(" ".join(_check_words(args, t, url, original, edited, mode != new_mode)))
        return 0
    if edited == original and mode == new_mode:
        print("REDIS_URL is already set")
        return 0
    if edited != original:
        # Text-level check first: every targeted block holds exactly the URL.
        for name, values in redis_urls(edited, apps, blocks, json_file).items():
            if not values or any(v != [url] for v in values):
                raise EcosystemError(f"after editing, app {name} does not hold exactly one REDIS_URL per block")
    notes = run_as(t.worker, lambda: _edit(t, original, edited, new_mode, _wanted(args, url), apps, blocks))
    if mode != new_mode:
        print(f"{args.file} was readable by every local user and holds the Redis password: mode {mode:04o} -> {new_mode:04o}")
    for note in notes:
        print(note)
    print("REDIS_URL set" if edited != original else "REDIS_URL was already set")
    return 0


def _check_words(args, t: Target, url: str, original: str, edited: str, others_can_read: bool) -> list[str]:
    """'up-to-date' or 'needs-change', then what else the deploy must know: needs-reload,
    pm2-not-running, others-can-read."""
    words = ["up-to-date" if edited == original and not others_can_read else "needs-change"]
    if others_can_read:
        words.append("others-can-read")
    if args.pm2_user:
        listing = pm2_listing(args.pm2_user)
        if listing is None:
            words.append("pm2-not-running")
        elif edited == original and stale_apps(listing, app_names(args, original), _wanted(args, url)):
            words.append("needs-reload")
    return words


def app_names(args, text: str) -> set[str]:
    """The processes the deploy answers for: the targeted apps of the file, not every PM2 process of the user."""
    apps, blocks, json_file = _options(args)
    return set(redis_urls(text, apps, blocks, json_file))


def pm2_listing(user: str) -> list | None:
    """PM2's process list as user; None when no PM2 daemon runs as user (asking never starts one)."""
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        return None
    if os.path.basename(entry.pw_shell) in ("nologin", "false"):
        return None  # runuser -l cannot run pm2 as this user: no PM2 the deploy could reload
    script = 'test -S "${PM2_HOME:-$HOME/.pm2}/rpc.sock" || exit 64; exec pm2 jlist'
    result = subprocess.run(
        ["runuser", "-l", user, "-c", script], stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120
    )
    if result.returncode == 64:
        return None
    if result.returncode != 0:
        raise EcosystemError(f"pm2 jlist as {user} failed: {result.stderr.strip()[-200:]}")
    return parse_jlist(result.stdout)


def parse_jlist(output: str) -> list:
    """The JSON list in pm2 jlist's output; banner lines such as "[PM2] Spawning PM2 daemon" may come first."""
    decoder = json.JSONDecoder()
    for match in re.finditer(r"^[ \t]*\[", output, re.M):
        try:
            value, _ = decoder.raw_decode(output, match.end() - 1)
        except ValueError:
            continue
        if isinstance(value, list):
            return value
    raise EcosystemError("pm2 jlist printed no process list")


def stale_apps(listing: list, names: set[str], wanted: dict[str, str]) -> list[str]:
    stale = set()
    for proc in listing:
        if not isinstance(proc, dict) or proc.get("name") not in names:
            continue
        env = proc.get("pm2_env") or {}
        for key, value in wanted.items():
            if (env.get("env") or {}).get(key, env.get(key)) != value:
                stale.add(proc["name"])
    return sorted(stale)


def verify_pm2(args) -> int:
    t = target(args.file)
    url = compose_url(args)
    names = app_names(args, run_as(t.worker, lambda: _read(t)))
    listing = pm2_listing(args.pm2_user)
    if listing is None:
        raise EcosystemError(f"PM2 is not running as {args.pm2_user}")
    stale = stale_apps(listing, names, _wanted(args, url))
    if stale:
        raise EcosystemError(f"PM2 still runs {', '.join(stale)} without the new REDIS_URL")
    running = sum(1 for proc in listing if isinstance(proc, dict) and proc.get("name") in names)
    print(f"PM2 runs {running} processes of the file with the new REDIS_URL")
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
    parser.add_argument("--pm2-user", default="", help="check: also ask PM2 (as this user) whether the apps run the values")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="another variable to set beside REDIS_URL")
    args = parser.parse_args(argv)
    try:
        return verify_pm2(args) if args.command == "verify-pm2" else apply(args)
    except EcosystemError as exc:
        print(f"{args.file}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
