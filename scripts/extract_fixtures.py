#!/usr/bin/env python3
"""Copy the Stripe example objects our tests build on out of Stripe's own fixtures.

Source: Stripe's published fixtures, stripe/openapi openapi/fixtures3.json at commit
f6c2a48fbac2819d1feba8143d942ffc65e1c0d2 (MIT licence). Only the resources Holdfast reads
or calls are kept, unchanged, so the tests need nothing outside this repository. To update,
give the path of a newer fixtures3.json from a checkout of stripe/openapi:

    python3 scripts/extract_fixtures.py path/to/openapi/fixtures3.json
"""
import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
if len(sys.argv) != 2:
    sys.exit("usage: extract_fixtures.py path/to/openapi/fixtures3.json")
SOURCE = pathlib.Path(sys.argv[1])
TARGET = ROOT / "tests" / "fixtures" / "stripe_objects.json"
KEEP = [
    "customer", "subscription", "invoice", "discount", "coupon", "price", "checkout.session",
    "payment_method", "card", "billing_portal.session", "deleted_customer", "event",
]

resources = json.loads(SOURCE.read_text())["resources"]
subset = {
    "provenance": "stripe/openapi openapi/fixtures3.json @ f6c2a48fbac2819d1feba8143d942ffc65e1c0d2 (MIT)",
    "resources": {name: resources[name] for name in KEEP},
}
TARGET.write_text(json.dumps(subset, indent=1, sort_keys=True) + "\n")
print(f"wrote {TARGET.relative_to(ROOT)} ({len(KEEP)} resources)")
