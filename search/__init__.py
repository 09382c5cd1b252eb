"""Search over the overlay: content stored by hash, flooding, random walks, the super peer index."""

# Before any module of search: decide whether the compiled build runs (overlay/compiled.py).
import overlay.compiled  # noqa: F401
