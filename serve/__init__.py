"""Ray Serve applications over fulcrum.inference (see app.py)."""
