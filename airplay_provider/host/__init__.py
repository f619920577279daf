"""The standalone host: the `airplay-provider` command and its local helpers."""
