"""Tests of the rtvoice integration inside a real Home Assistant."""
