"""`cltui data check DIR`: what a data folder holds, before a run uses it. For a folder of your own images
(`benchmark.name = "folder"`): its layout, its classes with their training and test images, the images' sizes and
modes, the files that are not readable images, and what suits it (the context splits its classes allow, the models,
the presets) with the command that runs it. For a folder of MNIST's, Fashion-MNIST's or CIFAR's files: which data
set it is, and its command. A bad folder is one line and exit 2, after the report of what was found.

Torch-free: it reads file names and image headers (core/schema/imagescan.py), never a pixel.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from cltui.cli.common import console, escape, fail
from cltui.cli.output import print_table
from core.schema.config import BenchmarkConfig, ConfigError
from core.schema.imagescan import DEFAULT_TEST_SHARE, FolderError, Scan, channels_of, scan_folder
from core.schema.limits import BENCHMARK_INFO
from core.schema.presets import build_config, list_presets, load_preset

data_app = typer.Typer(help="Check a data folder before a run uses it.", no_args_is_help=True)

NAMED_PRESETS = {"mnist": "split-mnist", "fashion-mnist": "split-fashion-mnist", "cifar10": "split-cifar10",
                 "cifar100": "split-cifar100"}
# The presets a folder is run with first, best first: an MLP on grayscale, a conv net on colour.
PREFERRED = ("split-fashion-mnist", "split-mnist", "split-cifar10", "split-cifar100", "split-digits")
MAX_ROWS = 30  # classes listed one per row; more are summed up


@data_app.command("check")
def check(
    folder: Annotated[Path, typer.Argument(metavar="DIR", help="The folder: DIR/<class>/<image>, or "
                                           "DIR/train/<class>/… with DIR/test/<class>/…")],
    test_share: Annotated[float, typer.Option(min=0.01, max=0.5, help="With no test folder: the share of each "
                                              "class held out as its test set (benchmark.test_share).")]
    = DEFAULT_TEST_SHARE,
) -> None:
    """What a data folder holds (classes, images per class, sizes, unreadable files), which presets and models
    suit it, and the command that runs it."""
    named = named_sets(folder)
    if named:
        print_named(folder, named)
        return
    try:
        scan = scan_folder(folder)
    except FolderError as e:
        fail(str(e))
    print_scan(scan, test_share)
    problem = scan.problem(None, test_share)
    if problem is not None:
        fail(str(problem))
    print_suits(folder, scan, test_share)


# --- the named data sets ---------------------------------------------------------------------------------


def named_sets(root: Path) -> dict[str, Path]:
    """The named data sets whose files `root` holds completely, each with the folder they are in."""
    from core.engine.datafiles import data_files

    found = {}
    for name in NAMED_PRESETS:
        present, missing = data_files(BenchmarkConfig(name=name, data_dir=str(root), contexts=1))  # type: ignore[arg-type]
        if present and not missing:
            found[name] = present[0].parent
    return found


def print_named(root: Path, named: dict[str, Path]) -> None:
    quoted = shlex.quote(str(root))
    side_by_side = [n for n in ("mnist", "fashion-mnist") if named.get(n) == root.expanduser()]
    if len(side_by_side) == 2:  # the four IDX files side by side: MNIST's and Fashion-MNIST's have the same names
        guess = "fashion-mnist" if "fashion" in str(root.expanduser().resolve()).lower() else None
        console.print(f"{escape(root)} holds the four IDX files of MNIST or Fashion-MNIST (the files do not say "
                      f"which{'; its name says Fashion-MNIST' if guess else ''}): a named data set, not a folder "
                      f"of images")
        for name in ([guess] if guess else ["mnist", "fashion-mnist"]):
            console.print(f"  cltui run {NAMED_PRESETS[name]} --data-dir {escape(quoted)}", soft_wrap=True)
        return
    for name, where in named.items():
        console.print(f"{escape(root)} holds {name} (its files in {escape(where)}): a named data set, not a "
                      f"folder of images")
        console.print(f"  cltui run {NAMED_PRESETS[name]} --data-dir {escape(quoted)}", soft_wrap=True)


# --- an image folder ---------------------------------------------------------------------------------------


def print_scan(scan: Scan, test_share: float) -> None:
    listing = scan.listing
    train, test = listing.split(test_share)
    n_train, n_test = sum(map(len, train)), sum(map(len, test))
    how = ("its own test folder" if listing.test is not None
           else f"no test folder: {test_share:.0%} of each class is held out as its test set")
    console.print(f"[bold]{escape(listing.root)}[/]: {len(listing.classes)} classes in {listing.layout}, "
                  f"{n_train + n_test} images; {how}")
    rows = list(zip(listing.classes, map(len, train), map(len, test), strict=True))
    rest = []
    if len(rows) > MAX_ROWS:  # the classes with the fewest training images: where a split goes wrong
        by_size = sorted(rows, key=lambda r: r[1])
        rows, rest = by_size[:10], by_size[10:]
    table = Table(show_edge=False, pad_edge=False, box=None)
    table.add_column("class", overflow="fold")
    table.add_column("train", justify="right")
    table.add_column("test", justify="right")
    for name, a, b in rows:
        table.add_row(escape(name), str(a), str(b))
    if rest:
        table.add_row(f"[dim]{len(rest)} more classes[/]", f"[dim]{rest[0][1]}-{rest[-1][1]}[/]",
                      f"[dim]{min(r[2] for r in rest)}-{max(r[2] for r in rest)}[/]")
    table.add_row("[bold]total[/]", f"[bold]{n_train}[/]", f"[bold]{n_test}[/]")
    print_table(table)
    if rest:
        console.print(f"[dim](the {len(rows)} classes with the fewest training images, then the rest)[/]")
    sizes = ", ".join(f"{w}x{h} ({n})" for (w, h), n in scan.sizes.most_common(4))
    more = f", and {len(scan.sizes) - 4} more sizes" if len(scan.sizes) > 4 else ""
    modes = ", ".join(f"{m} ({n}, {'grayscale' if channels_of(m) == 1 else 'colour'})"
                      for m, n in scan.modes.most_common())
    console.print(f"sizes: {sizes or 'none'}{more}")
    console.print(f"modes: {modes or 'none'}")
    if scan.unreadable:
        console.print(f"[red]unreadable: {len(scan.unreadable)}[/]")
        for path, why in list(scan.unreadable.items())[:5]:
            console.print(f"  {escape(path)}: {escape(why)}", soft_wrap=True)
    else:
        console.print("unreadable: none")
    if listing.ignored:
        console.print(f"[dim]ignored: {listing.ignored} files without an image extension, or folders inside class "
                      f"folders[/]")


def context_splits(n: int) -> list[tuple[int, int]]:
    """(contexts, classes per context) using every one of `n` classes, the suggested one first: two classes a
    context where they divide evenly into two contexts or more (split MNIST's), else the fewest that do."""
    splits = [(n // k, k) for k in range(1, n) if n % k == 0]
    preferred = [s for s in splits if s[1] >= 2 and s[0] >= 2]
    first = preferred[0] if preferred else splits[-1]
    return [first, *(s for s in splits if s != first)]


def preset_overrides(table: dict, n: int, test_share: float) -> list[str]:
    """The --set items that run preset `table` on a folder of `n` classes: its own split where it fits, else
    its classes per context where they divide `n`, else the suggested split."""
    bench = table.get("benchmark", {})
    items = ["benchmark.name=folder"]
    if bench.get("protocol", "split") == "split":
        contexts, cpc = bench.get("contexts", 5), bench.get("classes_per_context")
        if not (isinstance(contexts, int) and isinstance(cpc, int) and contexts * cpc == n):
            if isinstance(cpc, int) and n % cpc == 0 and n // cpc >= 2:
                contexts = n // cpc
            else:
                contexts, cpc = context_splits(n)[0]
            items += [f"benchmark.contexts={contexts}", f"benchmark.classes_per_context={cpc}"]
    if test_share != DEFAULT_TEST_SHARE:
        items.append(f"benchmark.test_share={test_share:g}")
    return items


def presets_that_run(folder: Path, scan: Scan, test_share: float) -> list[tuple[str, list[str], bool]]:
    """(preset, its --set items, made for images like these) of every preset whose config validates on this
    folder, the one to try first first."""
    shape = (scan.channels, scan.side, scan.side)
    found = []
    for name in list_presets():
        try:
            table = load_preset(name)
            bench = table.get("benchmark", {})
            info = BENCHMARK_INFO.get(bench.get("name", "digits"), {})
            if info.get("regression"):
                continue
            items = preset_overrides(table, len(scan.listing.classes), test_share)
            # the folder's values given, so that each preset's check does not scan the folder again
            known = [f"benchmark.classes={len(scan.listing.classes)}", f"benchmark.image_size={scan.side}",
                     f"benchmark.channels={scan.channels}"]
            build_config(name, data_dir=str(folder), overrides=[*items, *known])
        except ConfigError:
            continue
        same = tuple(info.get("shape", ())) == shape
        same_colour = info.get("shape", (0,))[0] == shape[0]
        rank = (not same, not same_colour, PREFERRED.index(name) if name in PREFERRED else len(PREFERRED), name)
        found.append((rank, name, items, same))
    return [(name, items, same) for _, name, items, same in sorted(found)]


def print_suits(folder: Path, scan: Scan, test_share: float) -> None:
    n, side, channels = len(scan.listing.classes), scan.side, scan.channels
    colour = "grayscale" if channels == 1 else "RGB"
    resized = "" if set(scan.sizes) == {(side, side)} else " (resized: shorter side, then the centre square)"
    console.print(f"\n[bold]a run sees[/] {side}x{side} {colour} images{resized}, standardised by the training "
                  f"images' mean and std (benchmark.image_size={side}, benchmark.channels={channels})")
    splits = context_splits(n)
    others = ", ".join(f"{c} of {k}" for c, k in splits[1:])
    console.print(f"[bold]contexts[/]: {n} classes: {splits[0][0]} contexts of {splits[0][1]}"
                  f"{f' (or {others})' if others else ''}")
    models = "mlp takes any size"
    if side >= 16:
        models += "; lenet5 16x16 and up"
    models += "; the conv nets (vdv-conv, the ResNets) are made for 32x32 colour, like CIFAR"
    if side > 64:
        models += f"; at {side}x{side}, --set benchmark.image_size=32 keeps them fast"
    console.print(f"[bold]models[/]: {models}")
    runs = presets_that_run(folder, scan, test_share)
    if not runs:
        console.print("[bold]presets[/]: none validates on this folder as it is; try "
                      "`cltui presets show split-fashion-mnist` and --set")
        return
    made = [name for name, _, same in runs if same]
    others = [name for name, _, same in runs if not same]
    more = f" and {len(others) - 5} more" if len(others) > 5 else ""
    console.print(f"[bold]presets[/]{f' made for {side}x{side} {colour}: ' + ', '.join(made) + ';' if made else ''} "
                  f"{'others ' if made else ''}that run it: {', '.join(others[:5])}{more}")
    name, items, _ = runs[0]
    sets = [f"--set {shlex.quote(item)}" for item in items]
    command = " ".join(["cltui run", name, sets[0], "--data-dir", shlex.quote(str(folder)), *sets[1:]])
    console.print("[bold]run it[/]:")
    console.print(f"  {escape(command)}", soft_wrap=True)
