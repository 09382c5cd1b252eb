"""What one worker encodes for another decodes to the same messages, sent once each."""

from __future__ import annotations

from overlay.protocol.identity import Address, Contact
from overlay.protocol.messages import Disconnect, Heartbeat, ShuffleEntry, ShuffleRequest
from overlay.sim.exchange import Decoder, Encoder
from overlay.sim.simulator import BOOTSTRAP_ADDRESS, SEQUENCE_BITS, Outgoing, sim_address

ALICE = Contact("a" * 32, sim_address(3))
BOB = Contact("b" * 32, sim_address(70_000))
ELSEWHERE = Address("192.0.2.7", 9000)


def key(number: int, sequence: int) -> int:
    return (number << SEQUENCE_BITS) + sequence


def test_messages_come_out_as_they_went_in_with_one_copy_of_each() -> None:
    shuffle = ShuffleRequest((ShuffleEntry(ALICE, 0), ShuffleEntry(BOB, 3)))
    window: list[Outgoing] = [
        (40, key(5, 0), sim_address(8), ALICE, Heartbeat(6)),
        (40, key(5, 1), BOOTSTRAP_ADDRESS, ALICE, Disconnect("full")),
        (41, key(9, 0), ELSEWHERE, BOB, shuffle),
        (41, key(9, 1), sim_address(8), BOB, Heartbeat(6)),
    ]
    encoder, decoder = Encoder({}), Decoder()
    next_tick, messages = decoder.decode(encoder.encode(33, window))
    assert next_tick == 33
    assert messages == window
    first, _, third, fourth = messages
    assert first[4] is fourth[4]  # equal plain messages are built once
    assert third[4] == shuffle and type(third[2]) is Address
    entries = third[4].entries
    assert entries[0].contact is first[3] and entries[1].contact is fourth[3]


def test_a_sender_is_announced_once_per_receiver() -> None:
    encoder, decoder = Encoder({}), Decoder()
    once = encoder.encode(0, [(20, key(5, 0), sim_address(8), ALICE, Heartbeat(1))])
    again = encoder.encode(0, [(40, key(5, 1), sim_address(8), ALICE, Heartbeat(1))])
    assert ALICE.id.encode() in once and ALICE.id.encode() not in again
    decoder.decode(once)
    _, messages = decoder.decode(again)
    assert messages[0][3] == ALICE
