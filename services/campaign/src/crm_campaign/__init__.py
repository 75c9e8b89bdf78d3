"""The campaign service: campaigns, target lists, responses and response tracking."""
