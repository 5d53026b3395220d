#!/usr/bin/env python3
"""Writes the fuzz seed corpora (fuzz/seeds/<target>/) from the repository's own test data:
Stripe's example objects (tests/fixtures) wrapped in event envelopes, and the stripe-python
signature vectors (tests/vectors). Re-run after changing either; the seeds are committed."""
import hashlib
import json
import pathlib

root = pathlib.Path(__file__).resolve().parent.parent
fixtures = json.loads((root / "tests/fixtures/stripe_objects.json").read_text())["resources"]
vectors = json.loads((root / "tests/vectors/stripe_signatures.json").read_text())["vectors"]

KINDS = {
    "customer": ["customer.created", "customer.updated", "customer.deleted"],
    "deleted_customer": ["customer.deleted"],
    "subscription": ["customer.subscription.created", "customer.subscription.updated", "customer.subscription.deleted",
                     "customer.subscription.paused", "customer.subscription.trial_will_end"],
    "invoice": ["invoice.created", "invoice.paid", "invoice.payment_failed", "invoice.payment_succeeded",
                "invoice.finalized", "invoice.voided", "invoice.marked_uncollectible"],
    "discount": ["customer.discount.created", "customer.discount.deleted"],
    "checkout.session": ["checkout.session.completed"],
    "coupon": ["coupon.updated"],
    "price": ["price.updated"],
}


def write(target, data: bytes):
    out = root / "fuzz/seeds" / target
    out.mkdir(parents=True, exist_ok=True)
    (out / hashlib.sha1(data).hexdigest()).write_bytes(data)


n = 0
for resource, kinds in KINDS.items():
    obj = fixtures.get(resource)
    if obj is None:
        continue
    for kind in kinds:
        n += 1
        event = {"id": f"evt_seed{n:04d}", "object": "event", "api_version": "2024-06-20", "created": 1700000000 + n,
                 "livemode": False, "type": kind, "data": {"object": obj}}
        write("event_projection", json.dumps(event, indent=1).encode())
if "event" in fixtures:
    write("event_projection", json.dumps(fixtures["event"]).encode())
for v in vectors:
    write("event_projection", v["payload"].encode())
    write("signature_header", (v["header"] + "\n" + v["payload"]).encode())
