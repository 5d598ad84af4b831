"""Data Manager filter builders (studio.labelstudio.client): the exact JSON Label Studio's views API takes."""

from datetime import datetime, timezone

import pytest

from studio.errors import LabelStudioError
from studio.labelstudio.client import _updated_query, dm_filters, dm_item


def test_items_get_the_filter_prefix_once_and_filters_join_them():
    item = dm_item("tasks:predictions_model_versions", "contains", "List", ["run-1"])
    assert item == {"filter": "filter:tasks:predictions_model_versions", "operator": "contains", "type": "List",
                    "value": ["run-1"]}
    assert dm_item("filter:tasks:id", "equal", "Number", 3)["filter"] == "filter:tasks:id"
    assert dm_filters(item) == {"conjunction": "and", "items": [item]}
    assert dm_filters(item, item, conjunction="or")["conjunction"] == "or"
    with pytest.raises(LabelStudioError, match="Did you mean 'and'"):
        dm_filters(item, conjunction="And")


def test_updated_query_bounds_updated_at_on_both_sides():
    after, until = datetime(2024, 1, 1, tzinfo=timezone.utc), datetime(2024, 1, 2, tzinfo=timezone.utc)
    items = _updated_query(after, until)["filters"]["items"]
    assert [(i["filter"], i["operator"], i["value"]) for i in items] == [
        ("filter:tasks:updated_at", "greater", "2024-01-01T00:00:00.000000Z"),
        ("filter:tasks:updated_at", "less", "2024-01-02T00:00:00.000001Z")]
