"""Slack: run notifications, slash commands and buttons. Uses ``runner`` and ``gitops``."""
