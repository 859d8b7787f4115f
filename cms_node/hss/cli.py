"""``mpkix hss generate | show | stats``: the operator's subscriber database from the command line.

``generate`` writes the whole population into ``PATH.tmp`` and renames it over ``PATH`` only once
it is complete and closed, so an interrupted run leaves no half-written database (decision record
0205). Heavy imports happen inside the handlers.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from datetime import date
from typing import Any

__all__ = ["register"]


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add the ``hss`` group to ``mpkix``."""
    hss = sub.add_parser("hss", help="operator subscriber database (HSS): generate, show, stats")
    cmds = hss.add_subparsers(dest="hss_command", metavar="SUBCOMMAND", required=True)

    gen = cmds.add_parser("generate", help="create a synthetic subscriber population")
    gen.add_argument("--count", type=int, default=None, help="subscribers (default 120531)")
    gen.add_argument("--seed", type=int, required=True, help="RNG seed (same seed, same data)")
    gen.add_argument("--db", required=True, help="SQLite file to create")
    gen.add_argument("--op", default=None, help="operator OP, 32 hex digits (default: from seed)")
    gen.add_argument("--mnc", default=None, help="mobile network code, 2-3 digits (default 260)")
    gen.add_argument(
        "--reference-date",
        default=None,
        help="date the age pyramid refers to, YYYY-MM-DD (default 2025-01-01)",
    )
    gen.add_argument("--force", action="store_true", help="replace an existing database")
    gen.add_argument("--no-progress", action="store_true", help="no progress bar")
    gen.set_defaults(handler=_generate)

    show = cmds.add_parser("show", help="print one subscriber as JSON (K/OPc in hex)")
    show.add_argument("--db", required=True, help="SQLite file")
    show.add_argument("--imsi", required=True, help="15-digit IMSI")
    show.set_defaults(handler=_show)

    stats = cmds.add_parser("stats", help="print population statistics as JSON")
    stats.add_argument("--db", required=True, help="SQLite file")
    stats.add_argument("--as-of", default=None, help="date for the age bands (default: today)")
    stats.set_defaults(handler=_stats)


def _fail(message: str, code: int = 2) -> int:
    print(f"mpkix hss: error: {message}", file=sys.stderr)
    return code


def _parse_date(text: str, what: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{what} must be YYYY-MM-DD, got {text!r}") from None


def _existing_population(path: str) -> int | None:
    """Subscribers in an existing file at ``path``; ``None`` if it is not an HSS database."""
    from cms_node.hss.sqlite_store import SchemaError, SqliteSubscriberStore

    try:
        store = SqliteSubscriberStore(path, create=False)
    except (SchemaError, OSError):
        return None
    try:
        return store.count()
    finally:
        store.close()


def _remove_db_files(path: str) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        with contextlib.suppress(FileNotFoundError):
            os.remove(path + suffix)


def _fsync_dir(path: str) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _generate(args: argparse.Namespace) -> int:
    from cms_node.hss import generator

    count = generator.DEFAULT_COUNT if args.count is None else args.count
    if not 1 <= count <= generator.MAX_COUNT:
        return _fail(f"--count must be 1..{generator.MAX_COUNT}, got {count}")
    mnc = generator.DEFAULT_MNC if args.mnc is None else args.mnc
    if not (mnc.isascii() and mnc.isdigit() and len(mnc) in (2, 3)):
        return _fail(f"--mnc must be 2 or 3 digits, got {mnc!r}")
    op: bytes | None = None
    if args.op is not None:
        try:
            op = bytes.fromhex(args.op)
        except ValueError:
            op = b""
        if len(op) != 16:
            return _fail("--op must be 32 hex digits (16 bytes)")
    try:
        reference = (
            generator.DEFAULT_REFERENCE_DATE
            if args.reference_date is None
            else _parse_date(args.reference_date, "--reference-date")
        )
    except ValueError as exc:
        return _fail(str(exc))

    path: str = args.db
    if os.path.isdir(path):
        return _fail(f"{path} is a directory")
    if os.path.exists(path) and os.path.getsize(path) > 0 and not args.force:
        existing = _existing_population(path)
        if existing is None:
            return _fail(f"{path} exists and is not an HSS database; use --force to replace it", 1)
        if existing > 0:
            return _fail(
                f"{path} already holds {existing} subscribers; use --force to replace it", 1
            )
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        return _fail(f"directory {parent} does not exist")

    from tqdm import tqdm

    from cms_node.hss.sqlite_store import SqliteSubscriberStore

    tmp = path + ".tmp"
    _remove_db_files(tmp)  # leftovers of an interrupted run
    started = time.perf_counter()
    ok = False
    try:
        store = SqliteSubscriberStore(tmp)
        try:
            store.set_meta("generator", "cms_node.hss.generator/1")
            store.set_meta("seed", str(args.seed))
            store.set_meta("count", str(count))
            store.set_meta("mnc", mnc)
            store.set_meta("reference_date", reference.isoformat())
            with tqdm(
                total=count,
                unit="sub",
                unit_scale=True,
                desc="generating",
                file=sys.stderr,
                disable=args.no_progress,
            ) as bar:
                written = generator.populate(
                    store, count, args.seed, op=op, mnc=mnc, reference_date=reference,
                    progress=bar.update,
                )  # fmt: skip
        finally:
            store.close()  # last connection: checkpoints the WAL into the main file
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        _remove_db_files(path)  # a stale -wal of an old database must not meet the new file
        os.replace(tmp, path)
        _fsync_dir(path)
        ok = True
    finally:
        if not ok:
            _remove_db_files(tmp)
    elapsed = time.perf_counter() - started
    print(
        f"generated {written} subscribers into {path} in {elapsed:.1f} s "
        f"({written / elapsed:,.0f}/s; seed={args.seed}, mnc={mnc}, "
        f"op={'given' if op is not None else 'from seed'})"
    )
    return 0


def _open_existing(path: str) -> Any:
    from cms_node.hss.sqlite_store import SchemaError, SqliteSubscriberStore

    try:
        return SqliteSubscriberStore(path, create=False)
    except FileNotFoundError:
        raise LookupError(f"no database at {path}") from None
    except SchemaError as exc:
        raise LookupError(str(exc)) from None


def _show(args: argparse.Namespace) -> int:
    imsi: str = args.imsi
    if not (len(imsi) == 15 and imsi.isascii() and imsi.isdigit()):
        return _fail(f"--imsi must be 15 digits, got {imsi!r}")
    try:
        store = _open_existing(args.db)
    except LookupError as exc:
        return _fail(str(exc), 1)
    try:
        subscriber = store.get(imsi)
    finally:
        store.close()
    if subscriber is None:
        return _fail(f"no subscriber with IMSI {imsi}", 1)
    print(json.dumps(subscriber.to_json_dict(), indent=2))
    return 0


def _stats(args: argparse.Namespace) -> int:
    try:
        as_of = date.today() if args.as_of is None else _parse_date(args.as_of, "--as-of")
    except ValueError as exc:
        return _fail(str(exc))
    try:
        store = _open_existing(args.db)
    except LookupError as exc:
        return _fail(str(exc), 1)
    try:
        summary = store.stats(as_of)
        summary["meta"] = {
            key: store.get_meta(key)
            for key in ("generator", "seed", "count", "mnc", "reference_date")
            if store.get_meta(key) is not None
        }
    finally:
        store.close()
    print(json.dumps(summary, indent=2))
    return 0
