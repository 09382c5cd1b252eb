"""A peer's state on disk (``overlay peer --state DIR``): its id, known hosts and anchors
(its key is beside them, in ``identity.key``: :func:`overlay.net.keys.load_or_create_key`).

The known hosts are peers that were once its neighbors (see
:attr:`overlay.core.membership.Membership.known_hosts`).  A restarted peer puts them
back before it starts; when the bootstrap is down, the membership's repair asks
them (urgently, since it has no neighbor) and the peer rejoins without the
bootstrap.  The id is kept so the others see the same peer come back.

Writes are atomic (temporary file, fsync, rename), like the bootstrap's state.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
import cattrs

from overlay.net.atomic_file import write_atomically
from overlay.protocol.identity import PEER_ID_PATTERN, Contact, PeerId

log = logging.getLogger("overlay.net.peer_state")

STATE_NAME = "peer.json"
MAX_STATE_BYTES = 16 * 1024 * 1024
MAX_SAVED_HOSTS = 4096


@attrs.frozen
class PeerState:
    id: PeerId
    """The id the key in the same directory proves (kept to tell a mismatch)."""
    known_hosts: list[Contact]
    anchors: list[Contact] = attrs.field(factory=list)
    """The neighbors the peer had at the save: known good, put back first on a restart."""


_converter = cattrs.Converter(forbid_extra_keys=True)


def state_path(directory: Path) -> Path:
    return directory / STATE_NAME


def save_peer_state(
    directory: Path, peer_id: PeerId, hosts: list[Contact], anchors: Sequence[Contact] = ()
) -> None:
    path = state_path(directory)
    state = PeerState(peer_id, hosts[:MAX_SAVED_HOSTS], list(anchors[:MAX_SAVED_HOSTS]))
    data = json.dumps(_converter.unstructure(state), separators=(",", ":")).encode()
    write_atomically(path, data)


def load_peer_state(directory: Path) -> PeerState | None:
    """The saved state, or None.  A damaged file is logged once and ignored (not deleted)."""
    path = state_path(directory)
    try:
        if path.stat().st_size > MAX_STATE_BYTES:
            raise ValueError(f"larger than {MAX_STATE_BYTES} bytes")
        raw: Any = json.loads(path.read_bytes())
        state = _converter.structure(raw, PeerState)
        if PEER_ID_PATTERN.fullmatch(state.id) is None:
            raise ValueError("the saved id is not a peer id")
        return PeerState(
            state.id, state.known_hosts[:MAX_SAVED_HOSTS], state.anchors[:MAX_SAVED_HOSTS]
        )
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError, cattrs.BaseValidationError) as error:
        log.error("cannot read peer state %s (%s); starting afresh", path, error)
        return None
