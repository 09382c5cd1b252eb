"""An unstructured peer-to-peer overlay with super peers.

The protocol core (:mod:`overlay.peer`, :mod:`overlay.membership`,
:mod:`bootstrap.hostcache`) is a pure state machine: it is handed the time and a
seeded :class:`random.Random`, takes events and returns effects.  Two runtimes
drive it: the discrete-event simulator (:mod:`overlay.sim`) and the trio TCP
runtime (:mod:`overlay.node`).
"""

PROTOCOL_VERSION = 1
