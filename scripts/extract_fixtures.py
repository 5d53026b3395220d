#!/usr/bin/env python3
"""Copy the Stripe example objects our tests build on out of Stripe's own fixtures.

Source: ../shared/fixtures/stripe-openapi/fixtures3.json, i.e. stripe/openapi
openapi/fixtures3.json at commit f6c2a48fbac2819d1feba8143d942ffc65e1c0d2 (MIT licence).
Only the resources Holdfast reads or calls are kept, unchanged, so a clean clone can run
the tests without the shared folder. Re-run after updating the shared fixtures:

    python3 scripts/extract_fixtures.py
"""
import json
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent
SOURCE = ROOT.parent / "shared" / "fixtures" / "stripe-openapi" / "fixtures3.json"
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
