"""What the terminal shows while the worker loads a model it cannot find (issue 26: start and stop).

sentence-transformers announces "No modules.json found for <id>, initializing a new CrossEncoder
model" at INFO before it looks any further; offline, that line came just before the worker's own
explanation and read as if a new model were being made up. The site's logging keeps it out; the
worker's own lines (worker.reranker) say what happened.
"""

from __future__ import annotations

import pytest


def test_a_missing_hub_model_is_not_announced_as_a_new_model(caplog):
    from sentence_transformers import CrossEncoder

    with pytest.raises(OSError):  # not in the local cache, and the hub may not be asked
        CrossEncoder("searchsite-test/no-such-model", local_files_only=True)

    assert "No modules.json found" not in caplog.text
    assert "initializing a new CrossEncoder model" not in caplog.text
