"""The contract suite uses the ``backend`` fixture of tests/conftest.py."""
