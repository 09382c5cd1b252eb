"""Search over the overlay: content stored by hash, flooding, random walks, the super peer index."""
