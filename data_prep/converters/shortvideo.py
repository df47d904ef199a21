"""Short-Video (same pairs layout as MicroLens) -> RecBole atomic files, with the CVA paper's App. E pruning.

App. E, in the paper's order: (1) video pruning: remove videos that appear only once (or
never); (2) user pruning: remove users with sequences of length 0 or 1; (3) keep only users
with >= 5 interactions. The paper describes ONE pass in this order, so that is the default:
after step 3 a few videos may again be seen only once. ``iterate=True`` repeats the passes
until nothing changes (a fixed point where every item is seen >= 2 times and every user has
>= 5), for those who want the k-core reading. Each pass's drops are counted separately.
"""
from __future__ import annotations

from pathlib import Path

from data_prep.converters.dataset_writer import ConversionReport, drop_short_users, write_dataset
from data_prep.converters.dataset_writer import read_pairs_and_titles


def convert_shortvideo(pairs: str | Path, out: str | Path, *, titles_csv: str | Path | None = None,
                       name: str = "shortvideo", min_item_count: int = 2, min_user_inter: int = 5,
                       iterate: bool = False, max_passes: int = 100) -> ConversionReport:
    report, df, titles = read_pairs_and_titles(pairs, out, titles_csv)
    for n_pass in range(1, (max_passes if iterate else 1) + 1):
        before = len(df)
        counts = df.groupby("item")["user"].transform("size")
        rare = counts < min_item_count
        if rare.any():
            report.dropped[f"pass {n_pass}: videos seen < {min_item_count} times ({df.loc[rare, 'item'].nunique()} videos)"] = int(rare.sum())
        df = df[~rare]
        df = drop_short_users(df, min_user_inter, report, f"pass {n_pass}: users with < {min_user_inter} interactions")
        if len(df) == before:
            break
    if not iterate:
        left = int((df.groupby("item")["user"].transform("size") < min_item_count).sum())
        if left:
            report.notes.append(f"one pass (as in App. E): {left} interactions are with videos seen < {min_item_count} "
                                "times after user pruning; --iterate prunes to a fixed point")
    write_dataset(df, titles, Path(out), name, report)
    return report
