"""smart-redis-step: the deploy's steps that run on the host as root, one subcommand each.

The deploy calls it with values it has validated, quoted; passwords it reads from the root-only
credentials file itself, so none is in any process's arguments. A failure is one line on
stderr and exit code 1, with the host as that line says.
"""

from __future__ import annotations

import argparse
import os
import sys

from . import handover, move, restart, restore_swap, rotation, secret_files
from .credentials import PATH as CREDENTIALS
from .credentials import PREVIOUS, read_credentials
from .resp import RedisError
from .server import SERVERS, configured_port, login, select, sentinel_myid

# kind -> (the role whose login it holds, the variable prefix)
LOGIN_FILES = {"exporter-env": ("EXPORTER", "REDIS_")}


def cmd_credentials(args) -> None:
    secret_files.compose(dict(pair.split("=", 1) for pair in args.users), renew=args.renew)


def cmd_login_file(args) -> None:
    role, prefix = LOGIN_FILES[args.kind]
    secret_files.write_private(args.dest, secret_files.login_lines(role, prefix))


def cmd_masterauth(args) -> None:
    password = read_credentials()["REDIS_REPLICATION_PASSWORD"]
    if args.running:
        # The running server first: a run that stops in between finds the file stale and repeats both.
        try:
            client = login(configured_port(), "acl")
        except ConnectionRefusedError:
            client = None  # not running: it starts with the file
        if client is not None:
            client.call("CONFIG", "SET", "masterauth", password)
    secret_files.write_private(args.dest, secret_files.masterauth(password, CREDENTIALS), 0o640, args.group)


def cmd_passwords(args) -> None:
    if args.action == "keep-previous":
        rotation.keep_previous()
    elif args.action == "accept":
        for line in rotation.accept(args.port, args.sentinel_port):
            print(line)
    elif args.action == "switch-sentinel":
        rotation.switch_sentinel(args.sentinel_port, args.master_name)
        print("Sentinel logs in to the servers and the other sentinels with the new password")
    else:
        for line in rotation.retire(args.port, args.sentinel_port):
            print(line)


def cmd_sentinel_auth(args) -> None:
    password = read_credentials()["REDIS_SENTINEL_PASSWORD"]
    # A sentinel that moves to the other server keeps its id: the others know it by that.
    myid = sentinel_myid(args.myid_from) if args.myid_from else None
    text = secret_files.sentinel_auth(args.master_name, password) + (f"sentinel myid {myid}\n" if myid else "")
    secret_files.append_private(args.file, text)


def cmd_restart(args) -> None:
    if args.save:
        restart.save_first(args.port, args.auth)
    try:
        restart.restart_with_rollback()
    except restart.StepError:
        _accept_both(args.auth, quiet=True)  # the failed restart's message is the one to show
        raise
    _accept_both(args.auth)


def _accept_both(auth: str, quiet: bool = False) -> None:
    """While a rotation runs, a restarted server takes both passwords again: until the config step
    has written both into redis.conf (or after a rollback to the file before), it names one."""
    if auth != "acl" or not os.path.exists(PREVIOUS):
        return
    try:
        rotation.accept()
    except (OSError, RedisError) as exc:
        if not quiet:
            raise restart.StepError(
                f"redis-server restarted, but does not accept both passwords of the rotation: {exc}"
            ) from None


def cmd_wait_sync(args) -> None:
    restart.wait_for_sync(args.port, args.auth, args.primary)


def cmd_group_in_sync(args) -> None:
    restart.group_in_sync(args.port, args.auth, args.primary, args.replicas, besides=args.besides)


def cmd_handover(args) -> None:
    sentinels = handover.Sentinels(args.sentinels, args.sentinel_port, args.master_name)
    handover.hand_over(args.port, args.auth, args.me, args.members, sentinels, say=lambda line: print(line, flush=True))


def cmd_move(args) -> None:
    if args.replica:
        print(move.move_replica(getattr(args, "from"), args.new_auth))
    else:
        print(move.move(getattr(args, "from"), args.port, args.auth, args.new_auth))


def cmd_restore(args) -> None:
    print(restore_swap.swap(args.port, args.auth, args.name, args.counts))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="smart-redis-step", description=__doc__.splitlines()[0])
    p.add_argument("--server", choices=sorted(SERVERS), default="redis", help="redis_server: the server this host runs")
    sub = p.add_subparsers(dest="command", required=True)

    def add(name, func, helptext, server=False):
        command = sub.add_parser(name, help=helptext)
        command.set_defaults(func=func)
        if server:
            command.add_argument("--port", type=int, required=True)
            command.add_argument("--auth", choices=("acl", "none"), required=True)
        return command

    compose = add("credentials", cmd_credentials, "compose the credentials file")
    compose.add_argument("users", nargs="+", metavar="ROLE=USER")
    compose.add_argument("--renew", nargs="*", default=[], metavar="ROLE", help="generate new passwords for these")
    login = add("login-file", cmd_login_file, "one user's login in a root-only file")
    login.add_argument("kind", choices=sorted(LOGIN_FILES))
    login.add_argument("dest")
    master = add("masterauth", cmd_masterauth, "the replicas' login to the primary, for redis.conf")
    master.add_argument("dest")
    master.add_argument("--group", required=True)
    master.add_argument("--running", action="store_true", help="CONFIG SET it on the running server first")
    rotate = add("passwords", cmd_passwords, "a password rotation's steps (host/rotation.py)")
    rotate.add_argument("action", choices=("keep-previous", "accept", "switch-sentinel", "retire"))
    rotate.add_argument("--port", type=int)
    rotate.add_argument("--sentinel-port", type=int)
    rotate.add_argument("--master-name")
    sentinel = add("sentinel-auth", cmd_sentinel_auth, "append the sentinels' logins to a new sentinel.conf")
    sentinel.add_argument("file")
    sentinel.add_argument("master_name")
    sentinel.add_argument("--myid-from", metavar="PATH", help="the sentinel.conf of the sentinel this one replaces")
    add("restart", cmd_restart, "SAVE, install the candidate redis.conf, restart, roll back", True).add_argument(
        "--save", action="store_true", help="the server runs: SAVE first, as the stored admin or " + PREVIOUS
    )
    sync = add("wait-sync", cmd_wait_sync, "wait until this replica is in sync", True)
    sync.add_argument("--primary", required=True, metavar="'IP PORT'")
    group = add("group-in-sync", cmd_group_in_sync, "wait until the primary has every replica in sync", True)
    group.add_argument("--primary", required=True, metavar="'IP PORT'")
    group.add_argument("--replicas", type=int, required=True)
    group.add_argument("--besides", metavar="IP", help="count the replicas at other addresses only (this host's)")
    move = add("handover", cmd_handover, "give this primary's role to an in-sync replica through Sentinel", True)
    move.add_argument("--me", required=True, metavar="'IP PORT'", help="this server, as the sentinels name it")
    move.add_argument("--members", nargs="+", required=True, metavar="IP", help="the group's Redis servers")
    move.add_argument("--sentinels", nargs="+", required=True, metavar="IP")
    move.add_argument("--sentinel-port", type=int, required=True)
    move.add_argument("--master-name", required=True)
    moved = add("move", cmd_move, "the server moves to the other program with its data, or stays", True)
    moved.add_argument("--from", required=True, choices=sorted(SERVERS), help="the server the host runs now")
    moved.add_argument("--new-auth", choices=("acl", "none"), required=True, help="the new server's login")
    moved.add_argument("--replica", action="store_true", help="a group's replica: it syncs from its primary")
    swap = add("restore", cmd_restore, "put the staged snapshot under the server, check it, or undo", True)
    swap.add_argument("--name", required=True, help="the snapshot's file name, for messages")
    swap.add_argument("--counts", action="store_true", help="check the key counts staged beside it")
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    select(args.server)
    try:
        args.func(args)
    except restart.StepError as exc:
        print(exc, file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - a missing file or login, or a bug: one line, no traceback
        print(f"smart-redis-step {args.command}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0
