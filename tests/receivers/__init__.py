"""Test receivers: shairport-sync fixtures, packet-loss helper, receiver emulators."""
