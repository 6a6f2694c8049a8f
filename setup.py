"""Package layout only; everything else is in pyproject.toml.

The checkout keeps the HTTP application in a top-level serve/ folder beside platform/; it is
installed as `fulcrum.serve`, so a wheel carries it, an installed `fulcrum` imports it from
anywhere, and Serve configs name it `fulcrum.serve.app:build_app`. pyproject.toml alone can
map a folder to a subpackage but cannot add it to the packages it finds, hence this file.
"""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages("platform", include=["fulcrum", "fulcrum.*"]), "fulcrum.serve"],
    package_dir={"": "platform", "fulcrum.serve": "serve"},
)
