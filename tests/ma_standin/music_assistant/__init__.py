"""Stand-in for Music Assistant's server package (tests only; see ../README.md)."""
