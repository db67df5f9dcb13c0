"""moto's DynamoDB items in the embedded runtime (photopipe_infra.dynamodb_provider): a deep copy — moto makes two for
every UpdateItem — is a true copy, and leaves the original item as small as it was."""

from __future__ import annotations

import json
import subprocess

from photopipe_infra import venvs

# Runs in LocalStack's own venv, with LocalStack's patch of moto's instance tracking applied as the runtime does.
PROBE = r"""
import copy, gc, json, tracemalloc
from localstack.aws.patches import patch_moto_instance_tracker_meta
patch_moto_instance_tracker_meta()
import photopipe_infra.dynamodb_provider  # noqa: F401 - the patch under test
from moto.dynamodb.models.dynamo_type import DynamoType, Item

variant = {"M": {"key": {"S": "media/X/thumb.webp"}, "width": {"N": "96"}, "tags": {"L": [{"S": "a"}, {"N": "1"}]}}}
attrs = {"pk": {"S": "MEDIA#X"}, "sk": {"S": "META"}, "status": {"S": "READY"}, "variants": {"M": {"thumb": variant}},
         "runs": {"SS": ["a", "b"]}, "blob": {"B": b"\x00\x01"}, "empty": {"NULL": True}}
items = [Item(DynamoType(attrs["pk"]), DynamoType(attrs["sk"]), attrs) for _ in range(2000)]
gc.collect()
tracemalloc.start()
before = tracemalloc.get_traced_memory()[0]
copies = [copy.deepcopy(item) for item in items]
del copies
gc.collect()
grown = (tracemalloc.get_traced_memory()[0] - before) / len(items)
original, twin = items[0], copy.deepcopy(items[0])
twin.attrs["variants"].value["thumb"].value["width"].value = "1"
twin.attrs["runs"].value.append("c")
print(json.dumps({
    "equal": copy.deepcopy(original).to_json() == original.to_json(),
    "independent": original.attrs["variants"].value["thumb"].value["width"].value == "96"
                   and original.attrs["runs"].value == ["a", "b"],
    "same_types": type(twin) is Item and type(twin.attrs) is type(original.attrs),
    "grown_bytes_per_item": grown,
}))
"""


def test_a_deep_copy_of_a_moto_item_is_a_true_copy_and_leaves_the_original_as_small() -> None:
    python = venvs.ensure(venvs.LOCALSTACK).python
    result = subprocess.run([str(python), "-c", PROBE], capture_output=True, text=True, timeout=120, check=True)  # noqa: S603
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    assert measured["equal"] and measured["independent"] and measured["same_types"]
    # Python 3.12+ keeps an object's attributes inline until something asks for its __dict__; copy's generic path
    # does, and the dict it leaves costs more than the item's own values (≈ 5 KB per item of a photo's size).
    assert measured["grown_bytes_per_item"] < 200, measured
