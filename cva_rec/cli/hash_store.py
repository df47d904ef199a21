"""``cva-rec hash-store``: record the content hashes of a feature store written without them."""
from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser(
        "hash-store",
        help="record content hashes in a feature store written before stores carried them",
        description="Stores record the sha256 of their item ids and data files in meta.json when they are "
        "written, and every open checks them, so a changed value or reordered item_ids.json is refused. A store "
        "written before that opens with a warning and unverified; this command adds the hashes of its files as "
        "they are now (vouch for them first: re-extract a store you do not trust). A store that has hashes is "
        "verified instead (exit 2 if its files changed).",
        epilog="example: cva-rec hash-store stores/microlens-lite0",
    )
    p.add_argument("store", help="feature store directory")
    p.set_defaults(func=run)


def run(args) -> int:
    from cva_rec.features.store import record_content_hashes

    hashes = record_content_hashes(args.store)
    print(f"hash-store: {args.store}: {len(hashes)} files carry content hashes in meta.json ({', '.join(sorted(hashes))})")
    return 0
