"""One module per CLI command; see rsnn2chip/cli.py for the protocol."""
