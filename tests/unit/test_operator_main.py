import gc
from collections.abc import Iterator

import pytest
from headwater_operator.__main__ import YOUNG_GENERATION_THRESHOLD, tune_garbage_collection


@pytest.fixture
def restored_collector() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


@pytest.mark.usefixtures("restored_collector")
def test_the_collector_runs_less_often_and_leaves_start_up_objects_alone() -> None:
    gc.set_threshold(700, 10, 10)
    tune_garbage_collection()
    assert gc.get_threshold() == (YOUNG_GENERATION_THRESHOLD, 10, 10)
    assert gc.get_freeze_count() > 0
