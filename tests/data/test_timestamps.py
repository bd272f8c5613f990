"""`utc_text` (plugins/data/api.py) is the text datetime would write, millisecond for millisecond,
for the current time and for any epoch, across second and day boundaries."""
from __future__ import annotations

import random
import time
from datetime import datetime, timezone

import pytest

from plugins.data.api import utc_text


def datetime_text(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


EDGES = [0, 1, 59.9994, 59.9995, 86399.9999996, 1700000000, 1700000000.0005, 1700000000.9999994,
         1700000000.9999996, 3683788228.1329994, 4102444799.999]


@pytest.mark.parametrize("epoch", EDGES)
def test_an_epoch_is_written_as_datetime_writes_it(epoch):
    assert utc_text(epoch) == datetime_text(epoch)


def test_whole_and_fractional_epochs_across_the_range_are_written_as_datetime_writes_them():
    draw = random.Random(23)
    epochs = [draw.randrange(4 * 10**9) for _ in range(1000)] + [draw.uniform(0, 4e9) for _ in range(5000)]
    assert [utc_text(epoch) for epoch in epochs] == [datetime_text(epoch) for epoch in epochs]


def test_now_and_the_seconds_around_it_are_in_order():
    before = datetime_text(time.time())
    texts = [utc_text(), utc_text(time.time() - 1.0005), utc_text(), utc_text(time.time() + 1)]
    after = datetime_text(time.time())
    assert before <= texts[0] <= texts[2] <= after
    assert texts[1] < before and texts[3] > after  # another second than the one last written
