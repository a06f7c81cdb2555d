"""Delivery of redis-monitor's alerts: a webhook, a Telegram bot, e-mail through sendmail.

Each receiver returns (ok, reason). A webhook URL and a bot token are secrets (a URL often
carries a token in its path or query): they come from the root-only secrets file, travel
only inside the request, and a reason is built from our own words and the error's kind,
then scrubbed of every secret and every part of one, so that it can go to the journal.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from email.message import EmailMessage

from .alerts import Message, iso, payload, subject, text
from .credentials import read_credentials

TIMEOUT = 10  # seconds one request may take at most (less when the receiver's budget is nearly spent)
SENDMAIL = "/usr/sbin/sendmail"
WEBHOOK_URL = "REDIS_ALERT_WEBHOOK_URL"
TELEGRAM_TOKEN = "REDIS_ALERT_TELEGRAM_TOKEN"
HEARTBEAT_URL = "REDIS_ALERT_HEARTBEAT_URL"
RECEIVERS = ("webhook", "telegram", "email")

Result = tuple[bool, str]


def secret_parts(secret: str) -> list[str]:
    """The secret and each part of it that would give it away (a URL's host, path, query, login)."""
    parts = [secret]
    if "://" in secret:
        url = urllib.parse.urlsplit(secret)
        parts += [
            url.netloc,
            url.hostname or "",
            url.path,
            url.query,
            url.fragment,
            url.username or "",
            url.password or "",
        ]
        parts += [p for p in url.path.split("/") + url.query.split("&") if p]
    # Longest first, so that a part inside another is not left half-replaced; tiny ones say nothing.
    return sorted({p for p in parts if len(p) >= 4}, key=len, reverse=True)


def scrub(reason: str, secrets: list[str]) -> str:
    for secret in secrets:
        for part in secret_parts(secret):
            reason = reason.replace(part, "***")
    return " ".join(reason.split())[:200]


def _error(exc: BaseException, timeout: float = TIMEOUT) -> str:
    """An error in our words: its kind and the system's message, never the request."""
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code}"
    if isinstance(exc, urllib.error.URLError):
        exc = exc.reason if isinstance(exc.reason, BaseException) else OSError(str(exc.reason))
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return f"no answer within {timeout:g} s"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return type(exc).__name__


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """urllib turns a redirected POST into a GET without the body: the message would be lost
    while the answer says 200. A redirect is a failure to deliver, with a hint."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        raise urllib.error.HTTPError(req.full_url, code, "redirected: use the URL it redirects to", headers, fp)


_OPENER = urllib.request.build_opener(_NoRedirect)


def post_json(url: str, body: dict, secrets: list[str], timeout: float = TIMEOUT) -> Result:
    scheme = urllib.parse.urlsplit(url).scheme
    if scheme not in ("http", "https"):
        return False, "the URL is not http:// or https://"
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "User-Agent": "smart-redis-alert"},
        method="POST",
    )
    timeout = min(timeout, TIMEOUT)
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            response.read(65536)
            return True, f"HTTP {response.status}"
    except urllib.error.HTTPError as exc:
        said = ""
        try:
            # Telegram says why in its JSON ("Unauthorized", "chat not found"); scrubbed below.
            said = str(json.loads(exc.read(4096)).get("description") or "")
        except (ValueError, AttributeError, OSError):
            pass
        if 300 <= exc.code < 400:
            said = "redirected: use the URL it redirects to"
        return False, scrub(f"HTTP {exc.code}" + (f": {said}" if said else ""), secrets)
    except Exception as exc:  # noqa: BLE001 - any answer that is not HTTP (BadStatusLine...) is a failed delivery
        return False, scrub(_error(exc, timeout), secrets)


def webhook(url: str, fmt: str, message: Message, host: str, now: float, timeout: float = TIMEOUT) -> Result:
    return post_json(url, payload(message, host, now, fmt), [url], timeout)


def telegram(
    api: str, token: str, chat_id: str, message: Message, host: str, now: float, timeout: float = TIMEOUT
) -> Result:
    url = f"{api.rstrip('/')}/bot{token}/sendMessage"
    return post_json(url, {"chat_id": chat_id, "text": text(message, host, now)}, [token, url], timeout)


def heartbeat(alerts: dict, secrets: dict[str, str], status: str, now: float) -> Result | None:
    """The dead man's switch: a POST on every run, whatever the checks say (None: not configured)."""
    if not alerts.get("heartbeat"):
        return None
    url = secrets.get(HEARTBEAT_URL)
    if not url:
        return False, f"{HEARTBEAT_URL} is not in the secrets file {alerts.get('secrets')}"
    host = alerts.get("host") or socket.gethostname()
    return post_json(url, {"source": "smart-redis", "host": host, "status": status, "time": iso(now)}, [url])


def email(to: list[str], sender: str, message: Message, host: str, now: float, timeout: float = 60) -> Result:
    if not os.path.exists(SENDMAIL):
        return False, "no sendmail on this host"
    mail = EmailMessage()
    try:
        mail["To"] = ", ".join(to)
        mail["From"] = sender
        mail["Subject"] = subject(message, host, now)
    except ValueError:
        return False, "an address holds a line break"
    mail.set_content(text(message, host, now) + "\n")
    try:
        done = subprocess.run(
            [SENDMAIL, "-t", "-i"], input=mail.as_bytes(), capture_output=True, timeout=min(timeout, 60)
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, _error(exc) if isinstance(exc, OSError) else f"sendmail took more than {min(timeout, 60):g} s"
    if done.returncode != 0:
        said = done.stderr.decode(errors="replace").strip().splitlines()[-1:]
        return False, " ".join(f"sendmail exited {done.returncode}: {said[0] if said else ''}".split())[:200]
    return True, f"handed to {SENDMAIL}"


def configured(alerts: dict | None) -> list[str]:
    """The receivers that monitor.json's "alerts" names, in a fixed order."""
    return [name for name in RECEIVERS if alerts and alerts.get(name)]


def senders(alerts: dict, secrets: dict[str, str]) -> dict[str, Callable[..., Result]]:
    """name -> send(message, now, timeout=...) for every configured receiver; a missing secret fails each send."""
    host = alerts.get("host") or socket.gethostname()
    found: dict[str, Callable[..., Result]] = {}

    def missing(key: str) -> Callable[..., Result]:
        return lambda message, now, timeout=TIMEOUT: (
            False,
            f"{key} is not in the secrets file {alerts.get('secrets')}",
        )

    if alerts.get("webhook"):
        url, fmt = secrets.get(WEBHOOK_URL), alerts["webhook"].get("format", "json")
        found["webhook"] = (
            (lambda m, now, timeout=TIMEOUT: webhook(url, fmt, m, host, now, timeout)) if url else missing(WEBHOOK_URL)
        )
    if alerts.get("telegram"):
        token, bot = secrets.get(TELEGRAM_TOKEN), alerts["telegram"]
        found["telegram"] = (
            (lambda m, now, timeout=TIMEOUT: telegram(bot["api"], token, str(bot["chat_id"]), m, host, now, timeout))
            if token
            else missing(TELEGRAM_TOKEN)
        )
    if alerts.get("email"):
        mail = alerts["email"]
        found["email"] = lambda m, now, timeout=60: email(list(mail["to"]), mail["from"], m, host, now, timeout)
    return found


def read_secrets(path: str) -> dict[str, str]:
    """The secrets file's values; none when it is missing (each receiver that needs one says so)."""
    try:
        return read_credentials(path)
    except FileNotFoundError:
        return {}
