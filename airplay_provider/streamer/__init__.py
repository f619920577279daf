"""Real-time streamer processes behind bin/cliraop and bin/cliap2."""
