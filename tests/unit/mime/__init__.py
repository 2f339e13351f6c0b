import pytest

# The corpus module's helpers assert too: show their operands on failure.
pytest.register_assert_rewrite("tests.unit.mime.corpus")
