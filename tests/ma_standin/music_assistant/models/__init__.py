"""Stand-in: music_assistant.models."""
