"""The well-known bootstrap node: a host cache of live peers (pure core) and its server."""
