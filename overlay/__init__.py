"""An unstructured peer-to-peer overlay with super peers.

The package is layered; each layer is a folder and imports only the ones above it
in this list (``tests/test_layers.py`` fails otherwise):

* :mod:`overlay.protocol`: what crosses the wire and what a core returns: identities,
  messages and their validators, the wire format, the effects, the ``Core`` protocol,
  the typed errors.
* :mod:`search` (its own top-level package): flooding, random walks, the item store
  and a super peer's index, as pure components of a peer.
* :mod:`overlay.core`: the peer as a pure state machine (membership, standing,
  admission, and :mod:`overlay.core.supers`, the super-peer layer), and
  :mod:`bootstrap.hostcache`, the bootstrap's pure state.  No I/O, no clock, no
  global random: time and a seeded :class:`random.Random` are handed in.
* :mod:`overlay.sim` and :mod:`overlay.net`: the two runtimes that drive the same
  cores, the seeded discrete-event simulator and the trio TCP runtime (with
  :mod:`bootstrap.server`).  Neither imports the other.
* :mod:`overlay.tools`: the ``overlay`` command, the crawler, the live view and the
  swarm's parent process.

``docs/design.md`` explains the shape and the reasons.
"""

# First of all: decide whether the compiled build of the core runs (overlay/compiled.py).
import overlay.compiled  # noqa: F401
