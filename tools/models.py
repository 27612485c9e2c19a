"""Fill the store of trained networks (``make models``): train what the current code and recipes need and the store
lacks, copy it into the store, and remove entries that no recipe needs any more.

    python tools/models.py                    # quick scale, two networks at a time, one torch thread each
    LIB_SCALE=paper python tools/models.py    # paper scale (for a GPU): into models/paper/ (not committed)
    python tools/models.py --list             # what the store holds and lacks; trains nothing

Every network of :func:`lib.recipes.book_networks.book_networks` is addressed by its key (parameters and the source of
the code that computes it, :mod:`lib.infra.sources`).  A missing network is trained by its recipe exactly as a chapter
would train it (:func:`lib.recipes.pipelines.trained_networks.trained`: resumable, saved in the artefact cache), then
its cache entry is copied into ``models/<scale>/`` (:class:`lib.infra.store.NetworkStore`).  The networks are trained
the longest first, ``--workers`` at a time, each worker on ``LIB_THREADS`` torch threads (default 1).  An interrupted
run loses nothing: the next run continues each unfinished training from its checkpoint.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context

from lib.infra import profile
from lib.infra.cache import ArtefactCache
from lib.infra.store import NetworkStore
from lib.recipes.book_networks import book_networks


def _key(recipe) -> str:
    return ArtefactCache().key(recipe.kind, recipe.key_params(), code=recipe.code)


def _cost(recipe) -> float:
    """A rough order of the training costs (steps x batch x sites of one sample): the longest first."""
    train = recipe.train
    steps = train.n_steps or train.epochs * 1000
    spec = recipe.params.get("spec")
    sites = spec.params.L ** 2 if spec is not None else 1
    return steps * train.batch_size * sites


def _train(scale: str, device: str, chapter: str, name: str) -> tuple[str, str, float, str]:
    """In a worker: train one network of the book (or find it in the artefact cache); its cache entry."""
    import torch

    torch.set_num_threads(int(os.environ.get("LIB_THREADS", "1") or 1))
    os.environ["LIB_STORE"] = "off"  # the store lacks it: train (or resume) into the artefact cache
    from lib.recipes.pipelines.trained_networks import trained

    recipe = next(n.recipe for n in book_networks(scale, device) if n.chapter == chapter and n.name == name)
    start = time.perf_counter()
    result = trained(recipe, ArtefactCache(), device=device)
    cache = ArtefactCache()
    entry = cache.entry_dir(recipe.kind, recipe.key_params(), code=recipe.code)
    return chapter, name, time.perf_counter() - start, str(entry) if result.source != "store" else ""


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", default=None, help="quick or paper (default: LIB_SCALE, else quick)")
    parser.add_argument("--workers", type=int, default=2, help="networks trained at once (default 2)")
    parser.add_argument("--list", action="store_true", help="list what the store holds and lacks; train nothing")
    parser.add_argument("--keep", action="store_true", help="do not remove entries that no recipe needs")
    args = parser.parse_args(argv)
    prof = profile.current(scale=args.scale)
    scale, device = prof.scale, prof.device
    store = NetworkStore()
    nets = book_networks(scale, device)
    by_key: dict[str, list] = {}
    for net in nets:
        by_key.setdefault(_key(net.recipe), []).append(net)
    present = {key for key in by_key if store.find(by_key[key][0].recipe.kind, by_key[key][0].recipe.key_params(),
                                                     code=by_key[key][0].recipe.code) is not None}
    missing = sorted((k for k in by_key if k not in present), key=lambda k: -_cost(by_key[k][0].recipe))
    print(f"store {store.scale_root(scale)}: {len(by_key)} networks needed at the {scale} scale "
          f"({len(nets)} uses in the chapters), {len(present)} present, {len(missing)} missing")
    for key in sorted(by_key, key=lambda k: (by_key[k][0].chapter, by_key[k][0].name)):
        uses = ", ".join(f"{n.chapter.rsplit('/', 1)[-1]}: {n.name}" for n in by_key[key])
        print(f"  {'present' if key in present else 'MISSING'}  {by_key[key][0].recipe.kind}/{key[:16]}  {uses}")
    if args.list:
        return 0

    start = time.perf_counter()
    if missing:
        jobs = [(scale, device, by_key[k][0].chapter, by_key[k][0].name) for k in missing]
        workers = max(1, min(args.workers, len(jobs)))
        print(f"training {len(jobs)} networks, {workers} at a time", flush=True)
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
            futures = [pool.submit(_train, *job) for job in jobs]
            for future in as_completed(futures):
                chapter, name, seconds, entry = future.result()
                where = store.put(scale, entry) if entry else "(already in the store)"
                print(f"  {seconds:7.0f} s  {chapter}: {name} -> {where}", flush=True)
    removed = []
    if not args.keep:
        needed = {k[:16] for k in by_key}
        for entry in store.entries(scale):
            if entry.name not in needed:
                shutil.rmtree(entry)
                removed.append(entry)
        for folder in store.scale_root(scale).glob("*"):
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
    for entry in removed:
        print(f"  removed {entry} (no recipe needs it)")
    size = store.size(scale)
    print(f"done in {time.perf_counter() - start:.0f} s: {len(store.entries(scale))} entries, "
          f"{size / 2**20:.2f} MiB in {store.scale_root(scale)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
