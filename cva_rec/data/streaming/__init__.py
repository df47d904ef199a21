"""The streaming sequence engine (``dataset.engine: streaming``): each user's history kept once.

RecBole's sequential datasets materialise every training window as its own row
(``[n_interactions, max_seq_length]`` item ids, built in Python at start-up). This engine keeps
each user's filtered sequence once, as CSR arrays (``indptr`` + ``items`` + ``times``), cached
on disk as memory-mapped ``.npy`` files, and cuts the windows per batch in the DataLoader.
It reproduces RecBole 1.2.1's filters, id remapping, per-user order and row order exactly,
so the training examples, splits, histories, popularity and metrics are RecBole's.

* :mod:`.inter_file`  ``.inter`` read in chunks, tokens interned across chunks
* :mod:`.sequences`   RecBole's filters, remap and per-user order -> CSR arrays
* :mod:`.cache`       the CSR arrays on disk, keyed by the file's hash and the filters
* :mod:`.windows`     leave-two-out layout, training windows and evaluation rows as batches
* :mod:`.engine`      ``build_streaming_data(cfg)`` -> :class:`cva_rec.data.dataset.SequentialData`
"""
