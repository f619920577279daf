"""AirPlay output provider: RAOP and AirPlay 2 streaming, multi-room, DACP and pairing."""
