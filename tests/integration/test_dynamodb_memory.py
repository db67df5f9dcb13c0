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


# Items written through moto's backend (as LocalStack's DynamoDB does), with the runtime's patches applied.
STRINGS_PROBE = r"""
import json
from localstack.aws.patches import patch_moto_instance_tracker_meta
patch_moto_instance_tracker_meta()
import photopipe_infra.dynamodb_provider  # noqa: F401 - the patch under test
import boto3
from moto import mock_aws
from moto.dynamodb.models import dynamodb_backends

MEDIA = {"S": "01JD3X4Y5Z6A7B8C9D0EFGHJKM"}
PHASH = {"S": "0123456789abcdef"}
WEBP = {"M": {"format": {"S": "webp"}}}
with mock_aws():
    ddb = boto3.client("dynamodb", region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b")
    keys = [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}]
    definitions = [{"AttributeName": n, "AttributeType": "S"} for n in ("pk", "sk")]
    ddb.create_table(TableName="t", BillingMode="PAY_PER_REQUEST", AttributeDefinitions=definitions, KeySchema=keys)
    for band in range(3):  # three items of one photo, as its perceptual-hash bands are written
        ddb.put_item(TableName="t", Item={"pk": {"S": f"PHASH#{band}#{band:03x}"}, "sk": MEDIA, "phash": PHASH})
    key = {"pk": {"S": "PHASH#0#000"}, "sk": MEDIA}
    variants = {"M": {"thumb": WEBP, "large": WEBP}}
    update = {"UpdateExpression": "SET variants = :v", "ExpressionAttributeValues": {":v": variants}}
    ddb.update_item(TableName="t", Key=key, **update)
    table = dynamodb_backends["123456789012"]["us-east-1"].tables["t"]
    items = [item for partition in table.items.values() for item in partition.values()]
    names = [next(name for name in item.attrs if name == "phash") for item in items]
    values = [item.attrs["phash"].value for item in items] + [item.range_key.value for item in items]
    stored = next(item.attrs["variants"].value for item in items if "variants" in item.attrs)
    formats = [stored[name].value["format"].value for name in ("thumb", "large")]
    back = ddb.get_item(TableName="t", Key=key)["Item"]
    print(json.dumps({
        "names_shared": all(n is names[0] for n in names),
        "values_shared": all(v is values[0] for v in values[:3]) and all(v is values[3] for v in values[3:]),
        "nested_shared": formats[0] is formats[1],
        "read_back": back["variants"] == variants and back["phash"] == PHASH,
    }))
"""


def test_equal_strings_of_stored_items_are_kept_once() -> None:
    # Every request's JSON is decoded into new strings: each stored item held its own copy of every attribute
    # name and of values repeated across items (a photo's id in its seven hash-band items …) — ≈ 8 KB a photo.
    python = venvs.ensure(venvs.LOCALSTACK).python
    result = subprocess.run([str(python), "-c", STRINGS_PROBE], capture_output=True, text=True, timeout=120, check=True)  # noqa: S603
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    assert measured == {"names_shared": True, "values_shared": True, "nested_shared": True, "read_back": True}
