"""Authenticated, encrypted links on real sockets: the Noise XX handshake proves a peer's
id, and nobody can speak for another (overlay/net/secure.py, overlay/net/node.py)."""

from __future__ import annotations

import contextlib
import json
import logging
import random
from functools import partial
from pathlib import Path

import msgpack
import pytest
import trio
import trio.testing
from noise.connection import Keypair, NoiseConnection  # type: ignore[import-untyped]

from overlay.core.peer import Peer
from overlay.net.client import ClientLink
from overlay.net.keys import KeyPair
from overlay.net.node import Node
from overlay.net.secure import (
    BUSY_USES,
    MAX_CHUNK,
    NOISE_PROTOCOL,
    PLAINTEXT,
    CorruptMessage,
    HandshakeFailed,
    LinkIdentity,
    NoiseFramer,
    Session,
    handshake,
)
from overlay.protocol.identity import Address, Contact, new_peer_id
from overlay.protocol.messages import (
    Disconnect,
    Handshake,
    Heartbeat,
    Leave,
    Register,
    StatsReply,
    StatsRequest,
)
from overlay.protocol.wire import PROTOCOL_VERSION, encode_frame
from overlay.tools.crawl import fetch_stats
from tests.conftest import (
    RawClient,
    connect,
    cyclic_garbage,
    handshaken,
    interrupt,
    neighbors,
    spawn_overlay,
    start_bootstrap,
    start_peer,
    wait_for,
)


def _lines_about(caplog: pytest.LogCaptureFixture, needle: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.INFO and needle in r.getMessage()
    ]


async def _two_linked(nursery: trio.Nursery) -> tuple[Peer, Node, Peer, Node]:
    server = await start_bootstrap(nursery)
    a, a_node = await start_peer(nursery, bootstrap=server.address)
    b, b_node = await start_peer(nursery, bootstrap=server.address, seed=1)
    await wait_for(a_node, lambda: b.id in neighbors(a) and a.id in neighbors(b))
    return a, a_node, b, b_node


async def _closed_with(client: RawClient) -> None:
    with trio.fail_after(5):
        assert await client.closed_by_remote()


async def _refused(caplog: pytest.LogCaptureFixture, client: RawClient, claim: Contact) -> str:
    """Send a handshake claiming ``claim``; the one line the peer logged as it closed."""
    await client.send_message(Handshake(PROTOCOL_VERSION, claim))
    await _closed_with(client)
    lines = _lines_about(caplog, f"{client.local_host}:{client.local_port}")
    assert len(lines) == 1, lines
    return lines[0]


# ---------------------------------------------------------------------- the handshake itself


async def test_the_handshake_proves_each_side_its_remote_id_and_carries_frames_both_ways() -> None:
    left_end, right_end = trio.testing.memory_stream_pair()
    alice, bob = LinkIdentity.fresh(), LinkIdentity.fresh()
    results: dict[str, tuple[Session, str]] = {}

    async def side(name: str, me: LinkIdentity, stream: trio.abc.Stream, initiator: bool) -> None:
        results[name] = await handshake(
            me,
            initiator=initiator,
            send=stream.send_all,
            receive=partial(stream.receive_some, 65536),
        )

    async with trio.open_nursery() as nursery:
        nursery.start_soon(side, "alice", alice, left_end, True)
        nursery.start_soon(side, "bob", bob, right_end, False)
    alice_session, alice_sees = results["alice"]
    bob_session, bob_sees = results["bob"]
    assert alice_sees == bob.peer_id
    assert bob_sees == alice.peer_id
    # A batch larger than one Noise message is cut into several, and arrives whole.
    data = bytes(range(256)) * ((MAX_CHUNK * 2) // 256 + 3)
    sealed = alice_session.seal(data)
    assert len(sealed) == 6  # three messages, each a length and a body
    wire = b"".join(sealed)
    opened = b"".join(bob_session.open(wire[i : i + 1000]) for i in range(0, len(wire), 1000))
    assert opened == data


def _noise_pair() -> tuple[NoiseConnection, NoiseConnection]:
    """Two of noiseprotocol's own connections after an XX handshake in memory."""
    ends = []
    for initiator in (True, False):
        noise = NoiseConnection.from_name(NOISE_PROTOCOL)
        if initiator:
            noise.set_as_initiator()
        else:
            noise.set_as_responder()
        noise.set_keypair_from_private_bytes(Keypair.STATIC, LinkIdentity.fresh().static)
        noise.start_handshake()
        ends.append(noise)
    first, second = ends
    second.read_message(first.write_message())
    first.read_message(second.write_message())
    second.read_message(first.write_message())
    assert first.handshake_finished and second.handshake_finished
    return first, second


def test_a_session_seals_and_opens_exactly_as_noiseprotocol_does() -> None:
    mine, theirs = _noise_pair()
    protocol = mine.noise_protocol
    session = Session(
        protocol.cipher_state_encrypt, protocol.cipher_state_decrypt, NoiseFramer(1024)
    )
    # Both ways, several messages (the nonce advances in step), a view among them.
    for index, data in enumerate([b"", b"x", bytes(range(200)), b"frame" * 700]):
        sealed = b"".join(session.seal(memoryview(data) if index % 2 else data))
        assert sealed[:2] == len(sealed[2:]).to_bytes(2, "big")
        assert theirs.decrypt(sealed[2:]) == data  # the library's own open, its own nonce
        reply = theirs.encrypt(data + b"!")
        assert session.open(len(reply).to_bytes(2, "big") + reply) == data + b"!"
    # A message altered in transit, or sealed twice with one nonce (a replay), is refused.
    replayed = theirs.encrypt(b"once")
    assert session.open(len(replayed).to_bytes(2, "big") + replayed) == b"once"
    with pytest.raises(CorruptMessage):
        session.open(len(replayed).to_bytes(2, "big") + replayed)


def test_a_quiet_session_keeps_no_cipher_objects_and_a_busy_one_keeps_both() -> None:
    mine, theirs = _noise_pair()
    protocol = mine.noise_protocol
    session = Session(
        protocol.cipher_state_encrypt, protocol.cipher_state_decrypt, NoiseFramer(1024)
    )

    def exchange(count: int) -> None:
        # Every message checks against the library's own, whether the AEAD objects
        # were kept or built for the one use.
        for index in range(count):
            data = b"beat %d" % index
            assert theirs.decrypt(b"".join(session.seal(data))[2:]) == data
            reply = theirs.encrypt(data)
            assert session.open(len(reply).to_bytes(2, "big") + reply) == data

    assert session.ciphers_kept == 0
    exchange(2)  # a heartbeat each way, twice: 4 uses
    assert session.ciphers_kept == 0
    exchange(BUSY_USES)  # busy: from the BUSY_USES-th use on, both are kept
    assert session.ciphers_kept == 2
    session.sweep()  # it was busy in the period that ends: it keeps them
    assert session.ciphers_kept == 2
    exchange(1)
    session.sweep()  # quiet for a period: it drops them
    assert session.ciphers_kept == 0
    exchange(3)  # and still seals and opens in step with the remote's nonces
    assert session.ciphers_kept == 0


async def test_a_proof_signed_by_another_key_fails_the_handshake() -> None:
    left_end, right_end = trio.testing.memory_stream_pair()
    honest = LinkIdentity.fresh()
    forger = LinkIdentity.fresh()
    # The forger names the honest key but signs its own static key with its own key.
    _key, signature = msgpack.unpackb(forger.payload)
    forger.payload = msgpack.packb([honest.key.public_key, signature], use_bin_type=True)
    failures: list[str] = []

    async def responder() -> None:
        try:
            await handshake(
                honest,
                initiator=False,
                send=right_end.send_all,
                receive=partial(right_end.receive_some, 65536),
            )
        except HandshakeFailed as error:
            failures.append(str(error))
        await right_end.aclose()

    async def initiator() -> None:
        with contextlib.suppress(
            HandshakeFailed, trio.BrokenResourceError, trio.ClosedResourceError
        ):
            await handshake(
                forger,
                initiator=True,
                send=left_end.send_all,
                receive=partial(left_end.receive_some, 65536),
            )

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(responder)
            nursery.start_soon(initiator)
    assert failures == ["the identity key's signature over the Noise static key is wrong"]


# ---------------------------------------------------------------------- nobody speaks for another


async def test_a_connection_claiming_another_peers_id_is_refused_and_links_stay(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    a, a_node, b, _b_node = await _two_linked(nursery)
    links_before = list(a_node.links[b.address])
    client = await connect(a.address)
    line = await _refused(caplog, client, Contact(b.id, Address("127.0.0.1", client.local_port)))
    assert client.identity is not None
    assert f"claims id {b.id} but proved {client.identity.peer_id}" in line
    assert a_node.counters["connections.impersonation"] == 1
    assert b.id in neighbors(a)
    assert a_node.links[b.address] == links_before


@pytest.mark.parametrize(
    "message", [Leave(), Disconnect(), Heartbeat(0)], ids=lambda m: type(m).__name__
)
async def test_leave_disconnect_or_heartbeat_in_anothers_name_change_nothing(
    nursery: trio.Nursery, message: Leave | Disconnect | Heartbeat
) -> None:
    """Over a secure link the only id a client can speak for is its own: claiming the
    victim's is refused at the handshake, and the same message under its own id acts
    for itself alone."""
    a, a_node, b, b_node = await _two_linked(nursery)
    degree_a, degree_b = len(neighbors(a)), len(neighbors(b))
    forged = await connect(a.address)
    await forged.send_message(
        Handshake(PROTOCOL_VERSION, Contact(b.id, Address("127.0.0.1", forged.local_port)))
    )
    await forged.send_message(message)
    await _closed_with(forged)
    honest, _me = await handshaken(a.address)
    await honest.send_message(message)
    await honest.send_message(StatsRequest())
    with trio.fail_after(5):  # served; its message was handled as its own (a non-neighbor's)
        while type(await honest.receive()) is not StatsReply:
            pass
    assert b.id in neighbors(a)
    assert a.id in neighbors(b)
    assert len(neighbors(a)) == degree_a
    assert len(neighbors(b)) == degree_b
    assert b.address in a_node.links
    assert a.address in b_node.links


async def test_misbehaviour_is_charged_to_the_proven_key_never_to_a_claimed_id(
    nursery: trio.Nursery,
) -> None:
    """Ten frames a peer does not handle, sent in b's name, never reach a's core; sent
    under the sender's own proven id, they are charged to it."""
    a, _a_node, b, _b_node = await _two_linked(nursery)
    unexpected = encode_frame(Register(4)) * 10
    forger = await connect(a.address)
    await forger.send_message(
        Handshake(PROTOCOL_VERSION, Contact(b.id, Address("127.0.0.1", forger.local_port)))
    )
    await forger.send(unexpected)
    await _closed_with(forger)
    culprit, me = await handshaken(a.address)
    await culprit.send(unexpected + encode_frame(StatsRequest()))
    with trio.fail_after(5):
        while type(await culprit.receive()) is not StatsReply:
            pass
    assert a.standing.faults_of(b.id) == 0
    assert a.standing.faults_of(me.id) > 0
    assert b.id in neighbors(a)


async def test_a_peer_whose_listen_host_is_not_its_source_ip_is_refused(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    a, _a_node, b, _b_node = await _two_linked(nursery)
    client = await connect(a.address, source="127.0.0.2")
    assert client.identity is not None
    line = await _refused(
        caplog, client, Contact(client.identity.peer_id, Address("127.0.0.1", 4321))
    )
    assert "claims to listen on 127.0.0.1:4321 but connects from 127.0.0.2" in line
    assert b.id in neighbors(a)


async def test_a_proven_peer_cannot_take_over_a_linked_peers_address(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    a, a_node, b, _b_node = await _two_linked(nursery)
    links_before = list(a_node.links[b.address])
    client = await connect(a.address)
    assert client.identity is not None
    line = await _refused(caplog, client, Contact(client.identity.peer_id, b.address))
    assert f"the address of linked peer {b.id}" in line
    assert a_node.links[b.address] == links_before


# ---------------------------------------------------------------------- plaintext and tampering


async def test_a_plaintext_client_against_a_secure_peer_is_refused_with_one_line(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    a, _a_node, b, _b_node = await _two_linked(nursery)
    client = await connect(a.address, plaintext=True)
    me = Contact(new_peer_id(random.Random(3)), Address("127.0.0.1", client.local_port))
    assert "--plaintext" in await _refused(caplog, client, me)
    assert b.id in neighbors(a)


async def test_a_flipped_bit_in_the_encrypted_stream_closes_that_connection_only(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    a, a_node, b, _b_node = await _two_linked(nursery)
    client, me = await handshaken(a.address)
    assert client.session is not None
    sealed = bytearray(b"".join(client.session.seal(encode_frame(StatsRequest()))))
    sealed[5] ^= 0x10
    await client.send_raw(bytes(sealed))
    await _closed_with(client)
    lines = _lines_about(caplog, me.id[:8])
    assert len(lines) == 1, lines
    assert "failed authentication" in lines[0]
    assert b.id in neighbors(a)
    assert b.address in a_node.links
    reply = await fetch_stats(a.address)
    assert reply.id == a.id


async def test_a_noise_handshake_with_forged_messages_closes_with_one_line(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    a, a_node, b, _b_node = await _two_linked(nursery)
    client = await connect(a.address, plaintext=True)  # bare TCP: we write Noise by hand
    rng = random.Random(7)
    await client.send_raw(b"\x00\x20" + rng.randbytes(32))  # any 32 bytes pass as a key
    with trio.fail_after(5):
        answer = await client.stream.receive_some(65536)
    assert len(answer) > 2 + 32  # message 2: the peer's ephemeral and static keys, its proof
    await client.send_raw(b"\x00\x60" + rng.randbytes(96))  # message 3, not encrypted to it
    await _closed_with(client)
    lines = _lines_about(caplog, f"127.0.0.1:{client.local_port}")
    assert len(lines) == 1, lines
    assert "Noise handshake failed" in lines[0]
    assert b.address in a_node.links
    assert (await fetch_stats(a.address)).id == a.id


async def test_a_secure_client_reads_the_peers_proven_id(nursery: trio.Nursery) -> None:
    a, _a_node, _b, _b_node = await _two_linked(nursery)
    me = LinkIdentity(KeyPair.generate())
    link = await ClientLink.open(a.address, [StatsRequest()], security=me)
    try:
        assert link.me.id == me.peer_id
        with trio.fail_after(5):
            messages: list[object] = []
            while not messages:
                got = await link.read()
                assert got is not None
                messages.extend(got)
        assert type(messages[0]) is StatsReply
    finally:
        await link.aclose()


async def test_plaintext_peers_and_bootstrap_still_join_and_answer(nursery: trio.Nursery) -> None:
    server = await start_bootstrap(nursery, plaintext=True)
    peers = [
        await start_peer(nursery, bootstrap=server.address, seed=i, plaintext=True)
        for i in range(3)
    ]
    ids = {peer.id for peer, _ in peers}
    for peer, node in peers:
        await wait_for(node, partial(lambda p: neighbors(p) == ids - {p.id}, peer))
    link = await ClientLink.open(peers[0][0].address, [StatsRequest()], security=PLAINTEXT)
    try:
        with trio.fail_after(5):
            replies: list[object] = []
            while not replies:
                got = await link.read()
                assert got is not None
                replies.extend(got)
        reply = replies[0]
        assert isinstance(reply, StatsReply)
        assert set(reply.neighbors) == ids - {peers[0][0].id}
    finally:
        await link.aclose()


async def test_a_secure_peer_cannot_join_a_plaintext_bootstrap(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    server = await start_bootstrap(nursery, plaintext=True)
    peer, _node = await start_peer(nursery, bootstrap=server.address)
    with trio.fail_after(5):
        while not server.node.counters.get("connections.bad_input"):
            await trio.sleep(0.05)
    assert peer.id not in server.cache
    assert not peer.membership.ever_joined


# ---------------------------------------------------------------------- identity on disk


async def test_a_peer_restarted_with_state_keeps_its_id_and_its_anchors(tmp_path: Path) -> None:
    bootstrap = await spawn_overlay(["bootstrap", "--port", "0"])
    other = await spawn_overlay(["peer", "--bootstrap", str(bootstrap.address)])
    try:
        state = tmp_path / "peer"
        args = ["peer", "--bootstrap", str(bootstrap.address), "--state", str(state)]
        first = await spawn_overlay(args)
        with trio.fail_after(30):
            while other.id not in (await fetch_stats(first.address)).neighbors:
                await trio.sleep(0.2)
        await interrupt(first.process)
        assert (state / "identity.key").stat().st_mode & 0o777 == 0o600
        saved = json.loads((state / "peer.json").read_text())
        assert saved["id"] == first.id
        assert other.id in {anchor["id"] for anchor in saved["anchors"]}
        second = await spawn_overlay(args)
        await interrupt(second.process)
        assert second.id == first.id
        elsewhere = await spawn_overlay(
            ["peer", "--bootstrap", str(bootstrap.address), "--state", str(tmp_path / "x")]
        )
        await interrupt(elsewhere.process)
        assert elsewhere.id != first.id
    finally:
        await interrupt(other.process)
        await interrupt(bootstrap.process)


async def test_a_handshake_done_or_failed_leaves_nothing_for_the_cyclic_collector() -> None:
    """noiseprotocol keeps a connection's next step as a bound method of itself; the
    handshake breaks that cycle, or every link would leave its Noise state and two
    ChaCha20-Poly1305 objects until the next collection."""
    alice, bob, mallory = LinkIdentity.fresh(), LinkIdentity.fresh(), LinkIdentity.fresh()

    async def pair(initiator: LinkIdentity, responder: LinkIdentity, lie: bool) -> None:
        left_end, right_end = trio.testing.memory_stream_pair()
        if lie:  # the initiator's proof is signed by another key: the responder refuses it
            initiator.payload = msgpack.packb(
                [mallory.key.public_key, msgpack.unpackb(initiator.payload)[1]]
            )

        async def side(me: LinkIdentity, stream: trio.abc.Stream, first: bool) -> None:
            with contextlib.suppress(HandshakeFailed, trio.BrokenResourceError):
                await handshake(
                    me, initiator=first, send=stream.send_all,
                    receive=partial(stream.receive_some, 65536),
                )  # fmt: skip
            await stream.aclose()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(side, initiator, left_end, True)
            nursery.start_soon(side, responder, right_end, False)

    with cyclic_garbage() as garbage:
        await pair(alice, bob, lie=False)
        await pair(LinkIdentity.fresh(), bob, lie=True)
    noise = {"NoiseConnection", "NoiseProtocol", "CipherState", "ChaCha20Poly1305"}
    assert not noise & set(garbage), garbage
