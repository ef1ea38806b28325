"""The load test's short CI variant: 20 concurrent gradio_client users against the real app
(small model), one question each. The full run is ``python -m benchmarks.load``."""

import pytest

from tests.load_support import print_table, run_load
from tests.support import running_app

pytestmark = pytest.mark.load


def test_twenty_concurrent_users_are_all_answered_and_memory_stays_flat(article_settings):
    log = article_settings.store_dir.parent / "load-app.log"
    with running_app(article_settings, log, RAG_MODEL_SIZE="0.5b") as app:
        result = run_load(app.url, users=20, questions=1, deadline=600, model_size="0.5b",
                          pid=app.pid)
    print_table(result)
    assert result["failed"] == 0, result["failures"]
    assert result["answered"] == result["requests"] == 20
    assert result["rss_mb_end"] <= 1.25 * result["rss_mb_after_warmup"]
