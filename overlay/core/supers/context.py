"""What every part of a peer's super-peer layer shares: who I am, the configuration,
the random source, my role, the counters and the standing ledger, and the one
message every part sends the bootstrap.

The weak side, the super side and the directory meet here and in the directory
(:mod:`overlay.core.supers.directory`), never in each other's state, as the parts of
search meet in :mod:`search.context`.
"""

from __future__ import annotations

from overlay.core.config import SuperConfig
from overlay.core.membership import Membership
from overlay.core.supers.election import Election
from overlay.protocol.effects import Effect, Notify, Send
from overlay.protocol.identity import Contact
from overlay.protocol.messages import Register
from overlay.protocol.randomness import RandomSource
from overlay.protocol.signing import Signer, Verifier
from search.context import Evidence


class SuperContext:
    """The shared ground of the weak side, the super side and the layer that holds them.

    One random source for all of them, drawn from in the order the protocol acts: a
    seeded simulation depends on it.
    """

    def __init__(
        self,
        me: Contact,
        config: SuperConfig,
        rng: RandomSource,
        membership: Membership,
        election: Election,
        *,
        signer: Signer,
        verifier: Verifier,
        evidence: Evidence | None = None,
    ) -> None:
        self.me = me
        self.signer = signer
        """My key: I sign each entry of the index I publish."""
        self.verifier = verifier
        self.config = config
        self.rng = rng
        self.membership = membership
        """The flat layer: its bootstrap address, and the role it advertises."""
        self.election = election
        self.counters: dict[str, int] = {}
        """One table for both sides: a snapshot reports the layer's counters as one."""
        self.evidence = evidence
        """Told of every refusal (peer, counter): the peer core's standing ledger."""
        self.running = False

    def count(self, key: str, amount: int = 1) -> None:
        self.counters[key] = self.counters.get(key, 0) + amount

    def refuse(self, sender: Contact, why: str, counter: str, out: list[Effect]) -> None:
        """Refuse a message that breaks the rules of roles or of the index."""
        self.count(counter)
        out.append(Notify("bad_input", sender.id, why))
        if self.evidence is not None:
            self.evidence(sender.id, counter)

    def register(self, out: list[Effect]) -> None:
        """Tell the bootstrap my role (it advertises super peers; it decides nothing).

        It asks for no sample of flat peers (membership asks for those): the answer
        names super peers whatever ``want`` is, and those are what this layer needs.
        """
        bootstrap = self.membership.bootstrap
        if bootstrap is not None:
            election = self.election
            out.append(Send(bootstrap, Register(0, election.role, election.capacity)))
