"""Offline scoring of corpora on Ray Data: `fulcrum predict`."""
