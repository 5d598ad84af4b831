"""Everything that talks to Label Studio: the server's lifecycle (server.py) and the SDK wrapper (client.py)."""
