"""Headwater operator."""
