"""Stand-in: music_assistant.controllers."""
