"""Search from the command line over TCP: ``overlay publish``, ``overlay search`` and
``overlay fetch`` (``overlay sim query``, the simulator's, is
:mod:`overlay.tools.cli_sim_query`).

The TCP commands are clients: they connect to one peer (``--via HOST:PORT``), handshake
as a peer that listens nowhere (as the swarm's stats client does), send one request and
print the peer's answer.  The peer does the work on the client's behalf (see
:mod:`overlay.net.client_requests`); the client only moves the request and the reply.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import trio
from rich.console import Console
from rich.table import Table

from overlay.net.client import CLIENT_TIMEOUT, ask
from overlay.net.options import add_plaintext_argument
from overlay.net.search_tally import NetworkTally, gather
from overlay.protocol.errors import OverlayError, ProtocolError
from overlay.protocol.identity import Address, Contact
from overlay.protocol.messages import (
    MAX_NAME,
    MAX_VALUE,
    ClientFetch,
    ClientFetchResult,
    ClientPublish,
    ClientPublished,
    ClientSearch,
    ClientSearchResult,
)
from overlay.tools.cli import address_argument
from overlay.tools.cli_sim_query import positive_options
from search.errors import ContentMismatch, FetchError
from search.outcome import MODES
from search.store import content_key, keywords_of


async def publish_via(
    via: Address, value: bytes, name: str | None = None, timeout: float = CLIENT_TIMEOUT
) -> str:
    """Ask the peer at ``via`` to hold ``value``; the key it holds it under."""
    reply = await ask(via, ClientPublish(value, name), ClientPublished, timeout)
    if reply.key is None:
        raise ProtocolError(f"{via} refused to publish: {reply.error}")
    return reply.key


async def search_via(
    via: Address,
    mode: str,
    *,
    key: str | None = None,
    keywords: str | None = None,
    ttl: int | None = None,
    walkers: int | None = None,
    want: int | None = None,
    timeout: float = CLIENT_TIMEOUT,
) -> ClientSearchResult:
    """Ask the peer at ``via`` to search by ``mode`` for a key or for keywords."""
    words = keywords_of(keywords) if keywords is not None else ()
    request = ClientSearch(mode, key, words, ttl, walkers, want)
    return await ask(via, request, ClientSearchResult, timeout)


async def fetch_via(
    via: Address,
    key: str,
    *,
    holder: Contact | None = None,
    mode: str = "ring",
    timeout: float = CLIENT_TIMEOUT,
) -> ClientFetchResult:
    """Ask the peer at ``via`` for the verified value of ``key`` (see :class:`ClientFetch`).

    The value is checked here once more, so a lying ``via`` peer is caught as well.
    """
    result = await ask(via, ClientFetch(key, holder, mode), ClientFetchResult, timeout)
    if result.value is not None and content_key(result.value) != key:
        actual = content_key(result.value)
        if result.holder is None:
            raise ProtocolError(f"{via} returned bytes with SHA-256 {actual}, not {key}")
        raise ContentMismatch(holder=result.holder, key=key, actual=actual)
    return result


def fetch_error(result: ClientFetchResult) -> FetchError | None:
    """The typed error of a failed fetch: the first holder's refusal, or a plain one."""
    if result.value is not None:
        return None
    for failure in result.failures:
        if failure.kind == "mismatch" and failure.actual is not None:
            return ContentMismatch(holder=failure.holder, key=result.key, actual=failure.actual)
    if result.failures:
        first = result.failures[0]
        return FetchError(first.error, holder=first.holder, key=result.key)
    return None


def _holder(text: str) -> Contact:
    peer_id, sep, address = text.partition("@")
    try:
        if not sep:
            raise ValueError("expected ID@HOST:PORT")
        return Contact(peer_id, Address.parse(address))
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def register(subparsers: Any) -> None:
    """``overlay publish``, ``overlay search`` and ``overlay fetch``."""
    via_help = "the peer to ask (it acts on our behalf)"
    timeout_help = f"seconds to wait for the answer (default {CLIENT_TIMEOUT:g})"
    publish: argparse.ArgumentParser = subparsers.add_parser(
        "publish",
        help="have a peer hold an item (key = SHA-256 of the value)",
        description="Send a value (a FILE or --text) to the peer at --via, which holds it "
        "and answers queries for it.  Prints the key.  The name (default: the file's "
        "name) gives the item its keywords.",
    )
    publish.add_argument(
        "--via", type=address_argument, required=True, metavar="HOST:PORT", help=via_help
    )
    what = publish.add_mutually_exclusive_group(required=True)
    what.add_argument(
        "file", nargs="?", type=Path, default=None, metavar="FILE", help="publish this file"
    )
    what.add_argument("--text", help="publish this text (UTF-8) instead of a file")
    publish.add_argument("--name", default=None, help="the item's name (its keywords)")
    publish.add_argument("--timeout", type=float, default=CLIENT_TIMEOUT, help=timeout_help)
    publish.add_argument("--json", action="store_true", help="print the answer as JSON")
    add_plaintext_argument(publish)
    publish.set_defaults(run=run_publish)

    search: argparse.ArgumentParser = subparsers.add_parser(
        "search",
        help="search the overlay from a peer (flood, walk, ring, super-flood or super-walk)",
        description="Ask the peer at --via to search by key or by keywords and print "
        "what it found: hits with their holders, the search's messages network-wide by "
        "kind (each peer's own count, read from every peer that took part, as `overlay "
        "sim query` counts them), hops and time to the first hit.  Exit status 0 when "
        "found, 1 when not.",
    )
    search.add_argument(
        "--via", type=address_argument, required=True, metavar="HOST:PORT", help=via_help
    )
    search.add_argument(
        "--mode",
        required=True,
        choices=MODES,
        help="flood, walk, ring (the expanding ring), or over the super layer: super-flood, "
        "super-walk",
    )
    target = search.add_mutually_exclusive_group(required=True)
    target.add_argument("key", nargs="?", default=None, metavar="KEY", help="a 64-hex key")
    target.add_argument("--keywords", help="words that must all be in the item's name")
    search.add_argument(
        "--ttl",
        type=int,
        default=None,
        help="flood TTL (default 7, cap 10), largest ring, or walk hops",
    )
    search.add_argument("--walkers", type=int, default=None, help="walkers (default 16)")
    search.add_argument("--want", type=int, default=None, help="hits wanted (default 1)")
    search.add_argument("--timeout", type=float, default=CLIENT_TIMEOUT, help=timeout_help)
    search.add_argument("--json", action="store_true", help="print the outcome as JSON")
    add_plaintext_argument(search)
    search.set_defaults(run=run_search)

    fetch: argparse.ArgumentParser = subparsers.add_parser(
        "fetch",
        help="fetch an item's value through a peer, verified against its key",
        description="Ask the peer at --via for the value of KEY: it finds holders (by "
        "--mode, default ring) unless --holder names one, fetches, and checks the bytes "
        "against the key; so does this command.  Writes FILE only when verified.",
    )
    fetch.add_argument(
        "--via", type=address_argument, required=True, metavar="HOST:PORT", help=via_help
    )
    fetch.add_argument("key", metavar="KEY", help="the item's key (64 hex digits)")
    fetch.add_argument(
        "-o",
        "--output",
        type=Path,
        required=True,
        metavar="FILE",
        help="write the verified value here (-: standard output)",
    )
    fetch.add_argument(
        "--holder",
        type=_holder,
        default=None,
        metavar="ID@HOST:PORT",
        help="fetch from this holder only",
    )
    fetch.add_argument("--mode", choices=MODES, default="ring", help="how to find holders")
    fetch.add_argument("--timeout", type=float, default=CLIENT_TIMEOUT, help=timeout_help)
    fetch.add_argument("--json", action="store_true", help="print the answer as JSON")
    add_plaintext_argument(fetch)
    fetch.set_defaults(run=run_fetch)


def _fail(command: str, why: object, code: int = 1) -> int:
    print(f"overlay {command}: {why}", file=sys.stderr)
    return code


def run_publish(args: argparse.Namespace) -> int:
    name: str | None = args.name
    if args.file is not None:
        try:
            value = args.file.read_bytes()
        except OSError as error:
            return _fail("publish", f"cannot read {args.file}: {error.strerror}", 2)
        if name is None:
            name = args.file.name
    else:
        value = args.text.encode()
    if len(value) > MAX_VALUE:
        return _fail("publish", f"{len(value)} bytes is over the item limit of {MAX_VALUE}", 2)
    if name is not None and len(name) > MAX_NAME:
        return _fail("publish", f"a name has at most {MAX_NAME} characters", 2)
    try:
        key = trio.run(publish_via, args.via, value, name, args.timeout)
    except OverlayError as error:
        return _fail("publish", error)
    if args.json:
        print(json.dumps({"key": key, "name": name, "size": len(value), "via": str(args.via)}))
    else:
        print(key)
    return 0


def search_json(result: ClientSearchResult, network: NetworkTally | None = None) -> dict[str, Any]:
    """A search result as the plain dict ``--json`` prints.

    ``messages`` is the search's cost over the whole network, by kind, as every peer
    that took part reported it (``network``; the meaning ``overlay sim query`` gives
    it); ``messages_at_origin`` what the origin itself sent.  ``hits`` are the items the
    origin kept (at most ``--want`` unless more came at once); ``messages.hit`` counts
    every hit message sent, each hop back along a flood's path included.
    """
    at_origin = {counter.name: counter.value for counter in result.messages}
    at_origin["total"] = sum(at_origin.values())
    messages = network.messages(result.wire_ids) if network is not None else None
    return {
        "search_id": result.search_id,
        "mode": result.mode,
        "success": result.success,
        "hits": [
            {
                "key": hit.key,
                "name": hit.name,
                "size": hit.size,
                "holder": {"id": hit.holder.id, "address": str(hit.holder.address)},
                "hops": hit.hops,
                "time": round(hit.time, 6),
            }
            for hit in result.hits
        ],
        "messages": messages,
        "messages_at_origin": at_origin,
        "peers_counted": (
            {"asked": network.asked, "answered": network.answered, "senders": network.senders}
            if network is not None
            else None
        ),
        "wire_ids": list(result.wire_ids),
        "first_hit_hops": result.first_hit_hops,
        "first_hit_time": (
            round(result.first_hit_time, 6) if result.first_hit_time is not None else None
        ),
        "duration": round(result.duration, 6),
        "error": result.error or None,
    }


def run_search(args: argparse.Namespace) -> int:
    key: str | None = args.key
    if key is not None:
        key = key.lower()
        if len(key) != 64 or any(c not in "0123456789abcdef" for c in key):
            return _fail("search", "KEY is 64 hex digits (the SHA-256 of the value)", 2)
    elif not keywords_of(args.keywords):
        return _fail("search", "--keywords needs at least one word", 2)
    problem = positive_options(args, ("ttl", "walkers", "want"))
    if problem is not None:
        return _fail("search", problem, 2)

    async def search_and_count() -> tuple[ClientSearchResult, NetworkTally | None]:
        result = await search_via(
            args.via,
            args.mode,
            key=key,
            keywords=args.keywords,
            ttl=args.ttl,
            walkers=args.walkers,
            want=args.want,
            timeout=args.timeout,
        )
        if result.error or not result.wire_ids:
            return result, None
        return result, await gather([args.via], result.wire_ids)

    try:
        result, network = trio.run(search_and_count)
    except (OverlayError, ValueError) as error:
        return _fail("search", error)
    report = search_json(result, network)
    if args.json:
        print(json.dumps(report, sort_keys=True))
    elif result.error:
        return _fail("search", result.error)
    else:
        _print_search(report, Console())
    return 0 if result.success else 1


def kinds_line(messages: dict[str, int]) -> str:
    """``query / hit / check = total``, as the tables print a tally."""
    return (
        f"{messages.get('query', 0)} / {messages.get('hit', 0)} / {messages.get('check', 0)}"
        f" = {messages.get('total', 0)}"
    )


def _print_search(report: dict[str, Any], console: Console) -> None:
    table = Table(title=f"{report['mode']} search {report['search_id']}", show_header=False)
    table.add_column("figure")
    table.add_column("value", justify="right")
    network = report["messages"]
    counted = report["peers_counted"]
    rows: list[tuple[str, object]] = [
        ("success", report["success"]),
        ("items found (hits kept by the origin)", len(report["hits"])),
        (
            "messages, network-wide: query / hit / check",
            kinds_line(network) if network is not None else "not counted",
        ),
        (
            "peers that sent any / answered",
            f"{counted['senders']} / {counted['answered']}" if counted is not None else "-",
        ),
        ("messages the origin sent", kinds_line(report["messages_at_origin"])),
        ("hops to first hit", report["first_hit_hops"]),
        ("time to first hit (s)", report["first_hit_time"]),
        ("duration (s)", report["duration"]),
    ]
    for label, value in rows:
        table.add_row(label, str(value))
    console.print(table)
    console.print(
        "hit messages count every hop a hit travels back, and every holder's hit: "
        "one item found can cost many",
        style="dim",
        highlight=False,
    )
    for hit in report["hits"]:
        holder = hit["holder"]
        console.print(
            f"{hit['key']}  {hit['size']:>6} B  {hit['name'] or '-'}  "
            f"at {holder['id']}@{holder['address']}  ({hit['hops']} hops)",
            highlight=False,
        )


def run_fetch(args: argparse.Namespace) -> int:
    to_stdout = str(args.output) == "-"
    if to_stdout and args.json:
        return _fail("fetch", "-o - and --json both write to standard output: pick one", 2)
    key = args.key.lower()
    if len(key) != 64 or any(c not in "0123456789abcdef" for c in key):
        return _fail("fetch", "KEY is 64 hex digits (the SHA-256 of the value)", 2)
    try:
        result = trio.run(
            lambda: fetch_via(
                args.via, key, holder=args.holder, mode=args.mode, timeout=args.timeout
            )
        )
    except OverlayError as error:
        return _fail("fetch", error)
    for failure in result.failures:
        print(f"overlay fetch: refused {failure.holder}: {failure.error}", file=sys.stderr)
    if args.json:
        print(
            json.dumps(
                {
                    "key": key,
                    "ok": result.value is not None,
                    "size": len(result.value) if result.value is not None else None,
                    "holder": str(result.holder) if result.holder is not None else None,
                    "failures": [
                        {"holder": str(f.holder), "kind": f.kind, "error": f.error}
                        for f in result.failures
                    ],
                    "error": result.error or None,
                    "output": str(args.output) if result.value is not None else None,
                },
                sort_keys=True,
            )
        )
    if result.value is None:
        refusal = fetch_error(result)
        return _fail("fetch", refusal if refusal is not None else result.error)
    try:
        if to_stdout:
            sys.stdout.buffer.write(result.value)
            sys.stdout.buffer.flush()
        else:
            args.output.write_bytes(result.value)
    except OSError as error:
        return _fail("fetch", f"cannot write {args.output}: {error.strerror}")
    if not args.json:
        where = "standard output" if to_stdout else args.output
        print(
            f"{len(result.value)} bytes from {result.holder}, verified, written to {where}",
            file=sys.stderr,
        )
    return 0
