"""The ``saddle`` command: list, run, verify and plot experiments.

Errors a user can cause (unknown experiment, bad --set or --grid, an --out that
exists or cannot be created, a missing run folder, a config too large for the
machine's memory) print one line ``saddle: error: ...`` and exit with 2, before
any compute where they can be foreseen; set SADDLE_DEBUG=1 to see the traceback
instead.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
import typing
import warnings
from pathlib import Path

import experiments
from experiments import common, jax_cache

USAGE_ERROR = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, no usage dump
        raise UsageError(f"{message} (see `{self.prog} --help`)")


class UsageError(Exception):
    pass


def _enable_x64():
    import jax

    jax.config.update("jax_enable_x64", True)


def _config(exp, smoke: bool, assignments):
    base = exp.smoke() if smoke else exp.Config()
    overrides = common.parse_overrides(exp.Config, assignments or [])
    return dataclasses.replace(base, **overrides)


_TOL_KIND = {"relative": "rel", "absolute": "abs", "at_least": "≥", "at_most": "≤"}


def _format_rows(rows) -> str:
    """The verify table. A long quantity wraps onto the next lines at a space,
    never mid-word; ``tol`` says rel (compared with rel err) or abs."""
    import textwrap

    width = 57
    lines = [f"{'':3}{'quantity':{width}} {'theory':>11} {'simulation':>11} {'abs err':>9} {'rel err':>9} {'tol':>12}"]
    for r in rows:
        mark = "ok" if r["passed"] else "XX"
        name = textwrap.wrap(r["quantity"], width, break_long_words=False, break_on_hyphens=False) or [""]
        kind = _TOL_KIND.get(r.get("tol_kind"), "")
        tol = f"{kind} {r['tol']:.2g}".strip()
        lines.append(f"{mark:3}{name[0]:{width}} {r['theory']:11.4g} {r['simulation']:11.4g} "
                     f"{r['abs_err']:9.2g} {r['rel_err']:9.2g} {tol:>12}")
        lines += [f"{'':5}{more}" for more in name[1:]]
    return "\n".join(lines)


def _usable() -> dict:
    """experiments.registry() without its warnings (callers say them in one line)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return experiments.registry()


def _warn_broken_plugins() -> None:
    """One line per plug-in experiment that cannot be used; the rest keep working."""
    for name, why in experiments.problems().items():
        print(f"saddle: warning: {why}", file=sys.stderr)


def cmd_list(args) -> int:
    _warn_broken_plugins()
    for name, exp in _usable().items():
        print(f"{name:24} {exp.description}")
        if args.verbose:
            hints = typing.get_type_hints(exp.Config)
            traced = getattr(exp.module, "SWEEP_FIELDS", ()) if hasattr(exp.module, "cell") else ()
            if hasattr(exp.module, "cell"):
                print(f"{'':6}sweep: [one program] fields trace in one compiled program; "
                      f"[splits grid] fields compile once per value")
            else:
                reason = getattr(exp.module, "SWEEP_UNSUPPORTED", "it defines no sweep cell")
                print(f"{'':6}sweep: not supported ({reason})")
            for f in dataclasses.fields(exp.Config):
                mode = ("[one program] " if f.name in traced else "[splits grid] ") if hasattr(exp.module, "cell") else ""
                print(f"{'':6}{f.name} = {f.default!r}  ({common._describe(hints[f.name])}) {mode}{f.metadata.get('help', '')}")
            for old, new in getattr(exp.Config, "DEPRECATED_KEYS", {}).items():
                print(f"{'':6}{old}: deprecated name of {new}")
    return 0


def cmd_run(args) -> int:
    exp = experiments.get(args.name)
    cfg = _config(exp, args.smoke, args.set)
    out = Path(args.out) if args.out else common.default_out_dir(args.name)
    _enable_x64()  # run_experiment checks `out` (creatable, empty) before computing
    start = time.perf_counter()
    result = exp.run(cfg, out, progress=not args.no_progress)
    print(_format_rows(result.rows))
    print(f"run folder: {result.out_dir}  ({time.perf_counter() - start:.1f} s)")
    for name in result.meta["figures"]:
        print(f"figure: {result.out_dir / name}")
    return 0 if all(r["passed"] for r in result.rows) else 1


def cmd_verify(args) -> int:
    if not args.names:
        _warn_broken_plugins()
    names = args.names or [n for n in experiments.names() if n not in experiments.problems()]
    exps = [experiments.get(n) for n in names]  # unknown names fail before any work
    _enable_x64()
    all_rows = []
    with tempfile.TemporaryDirectory(prefix="saddle-verify-") as tmp:
        for exp in exps:
            cfg = exp.Config() if args.full else exp.smoke()
            result = exp.run(cfg, Path(tmp) / exp.NAME, progress=False)
            all_rows += result.rows
            if args.json:
                for r in result.rows:
                    print(json.dumps(r), flush=True)
            else:
                print(f"{exp.NAME}: {sum(r['passed'] for r in result.rows)}/{len(result.rows)} passed")
                print(_format_rows(result.rows), flush=True)
    return 0 if all(r["passed"] for r in all_rows) else 1


def cmd_sweep(args) -> int:
    from experiments import sweep

    if args.distributed:
        import jax

        # Reads the coordinator address, process count and id from the cluster
        # environment (SLURM, TPU pods, or JAX_COORDINATOR_ADDRESS/...); every
        # host runs this same command and process 0 writes the sweep folder.
        jax.distributed.initialize()
    if args.cell is not None:
        return _sweep_cell(args, sweep)
    if args.name is None:
        raise UsageError("sweep needs an experiment NAME or --cell module:function")
    exp = experiments.get(args.name)
    if hasattr(exp.module, "SWEEP_UNSUPPORTED"):
        raise ValueError(f"experiment {args.name!r} cannot be swept: {exp.module.SWEEP_UNSUPPORTED}")
    if not hasattr(exp.module, "cell"):
        raise ValueError(f"experiment {args.name!r} defines no sweep cell; sweepable: "
                         f"{', '.join(n for n, e in _usable().items() if hasattr(e.module, 'cell'))}")
    _check_sweep_flags(args)
    base = _config(exp, args.smoke, args.set)
    _check_grid_keys(exp, args.grid or [], args.set or [])
    axes = sweep.parse_grid(exp.module, base, args.grid or [])
    _check_grid_values(axes)
    out = Path(args.out) if args.out else common.default_out_dir(f"sweep-{args.name}")
    if args.x64:
        _enable_x64()
    cells, outputs, failed = sweep.run(exp.module, base, axes, out, resume=args.resume, n_devices=args.devices,
                                       batch_size=args.batch_size, max_loss=args.max_loss,
                                       progress=not args.no_progress)
    return _print_sweep(out)


def _sweep_cell(args, sweep) -> int:
    """`saddle sweep --cell module:fn --grid k=v1,v2 ...`: a user function, no experiment."""
    if args.name is not None:
        raise UsageError(f"give an experiment NAME or --cell, not both (got {args.name!r} and --cell {args.cell})")
    if args.set or args.smoke:
        raise UsageError("--set and --smoke configure an experiment; with --cell every input is a --grid value")
    axes = sweep.parse_cell_grid(args.grid or [])
    stem = args.cell.replace(":", ".").split(".")[-1]
    out = Path(args.out) if args.out else Path("runs") / f"sweep-{stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    if args.x64:
        _enable_x64()
    sweep.run_cell(args.cell, axes, out, resume=args.resume, n_devices=args.devices, batch_size=args.batch_size,
                   max_loss=args.max_loss, progress=not args.no_progress)
    return _print_sweep(out)


def _print_sweep(out: Path) -> int:
    text = (out / "summary.txt").read_text().splitlines()
    print("\n".join(text if len(text) <= 40 else text[:20] + ["..."] + text[-19:]))
    print(f"sweep folder: {out}")
    return 0


def _check_sweep_flags(args) -> None:
    if not args.max_loss > 0:  # also refuses NaN
        raise ValueError(f"--max-loss={args.max_loss} is invalid; allowed: a number > 0 (inf: never mark a cell failed by its loss)")
    if args.batch_size < 1:
        raise ValueError(f"--batch-size={args.batch_size} is invalid; allowed: an integer ≥ 1")
    if args.devices is not None and args.devices < 1:
        raise ValueError(f"--devices={args.devices} is invalid; allowed: an integer ≥ 1 (default: all local devices)")


def _check_grid_keys(exp, grid_args, set_args) -> None:
    """A swept field is a scalar and is not also fixed by --set (checked before parsing values)."""
    hints = typing.get_type_hints(exp.Config)
    fixed = {a.partition("=")[0].strip() for a in set_args}
    for item in grid_args:
        key = item.partition("=")[0].strip()
        if key in fixed:
            raise ValueError(f"{key} is given both by --set and by --grid; drop one (--grid sweeps it, --set fixes it)")
        if typing.get_origin(hints.get(key)) is tuple:
            raise ValueError(f"--grid {key}: {key} is a tuple field ({common._describe(hints[key])}), which a grid cannot "
                             f"sweep (its values would split at the commas); run `saddle run --set {key}=...` once per tuple")


def _check_grid_values(axes) -> None:
    for key, values in axes.items():
        seen = []
        for v in values:
            if v in seen:
                raise ValueError(f"--grid {key} lists {v!r} twice; give each value once")
            seen.append(v)


def cmd_plot(args) -> int:
    res = experiments.load(args.run_dir)
    if res.kind == "sweep":
        return _plot_sweep(res)
    exp = experiments.get(res.meta["experiment"])
    cfg = common.config_from_meta(exp.Config, res.meta["config"])
    for name in common.save_figures(exp.plot(res.arrays, cfg), Path(args.run_dir)):
        print(f"figure: {Path(args.run_dir) / name}")
    return 0


def _plot_sweep(res) -> int:
    """A sweep folder: redraw sweep.png/.pdf from results.npz (failed cells marked)."""
    from dynamics import sweep as engine
    from experiments import sweep

    label, values = engine.metric_values(res.outputs, res.meta.get("metric"))
    title = res.meta.get("experiment") or res.meta.get("cell") or res.path.name
    fig = sweep.plot_cells(title, label, res.grid, res.cells, values, res.failed)
    for name in common.save_figures({"sweep": fig}, res.path):
        print(f"figure: {res.path / name}")
    return 0


def cmd_new(args) -> int:
    from experiments import scaffold

    target = Path(args.dir) if args.dir else Path(args.name)
    written = scaffold.new_plugin(args.name, target)
    print(f"wrote the plug-in package {target}:")
    for path in written:
        print(f"  {path}")
    print(f"next: pip install -e {target}  &&  saddle run {args.name} --smoke  &&  pytest {target}")
    return 0


def cmd_gallery(args) -> int:
    from experiments import gallery

    for path in gallery.make(args.out, args.names, overwrite=args.overwrite, dpi=args.dpi, progress=not args.no_progress):
        print(f"figure: {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="saddle",
        description="Simulation next to theory for the learning dynamics of small networks. "
        "Each experiment reproduces a paper figure and checks every prediction with an error and a tolerance.",
        epilog="Examples:  saddle list -v  |  saddle run saxe-modes --smoke  |  "
        "saddle run saxe-modes --set u0=1e-4 --set s=4,2,1  |  saddle verify --json  |  saddle plot runs/saxe-modes-...",
    )
    parser.add_argument("--no-cache", action="store_true", help="do not use JAX's persistent compilation cache "
                        "($SADDLE_CACHE_DIR, default ~/.cache/saddle/jax; also off with SADDLE_NO_CACHE=1)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    p = sub.add_parser("list", help="list experiments (-v: with their config keys and defaults)")
    p.add_argument("-v", "--verbose", action="store_true", help="show every config key, its default and meaning")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("run", help="run one experiment into a new run folder",
                       description="Run an experiment: simulate, compute the theory, compare, and write "
                       "results.npz, meta.json, verify.json and PNG+PDF figures into a new folder. "
                       "Exit status 1 if a verification row fails.")
    p.add_argument("name", help="experiment name (see `saddle list`)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a config field, e.g. --set u0=1e-4 --set s=3,2,1 (keys: `saddle list -v`)")
    p.add_argument("--out", help="run folder to create (must not exist or be empty); default runs/NAME-TIMESTAMP-SUFFIX, unique")
    p.add_argument("--smoke", action="store_true", help="start from the small smoke config (seconds on a laptop)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("verify", help="run experiments and print theory vs simulation rows",
                       description="Run each experiment's smoke config (--full: default config) in float64 and print "
                       "one row per prediction. Exit status 1 if any row fails.")
    p.add_argument("names", nargs="*", metavar="NAME", help="experiments to verify (default: all)")
    p.add_argument("--json", action="store_true", help='one JSON object per row: {"experiment", "quantity", '
                   '"theory", "simulation", "abs_err", "rel_err", "tol", "tol_kind", "passed"}; tol_kind is '
                   '"relative" (tol bounds rel_err), "absolute" (abs_err), or "at_least"/"at_most" (a one-sided bound)')
    p.add_argument("--full", action="store_true", help="use the default (paper) configs instead of smoke configs")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("sweep", help="run a grid of configs as one compiled, sharded, resumable program",
                       description="Sweep an experiment's config over a grid. Fields the experiment can trace "
                       "(e.g. seed, u0, learning_rate) run as one vmapped program; others form groups compiled "
                       "once each. Cells stream to OUT/groups/*/chunks as they finish; --resume continues a killed "
                       "sweep. A cell whose outputs are NaN/inf or whose loss exceeds --max-loss is marked failed.")
    p.add_argument("name", nargs="?", help="experiment name (see `saddle list`); or give --cell instead")
    p.add_argument("--cell", metavar="MODULE:FUNCTION",
                   help="sweep your own function fn(values) -> dict of arrays instead of an experiment, e.g. "
                   "--cell mypkg.cells:fn --grid seed=0,1,2 (values maps each --grid key to a scalar; an output "
                   "'loss' is checked against --max-loss, an output 't' is the time axis of the curves)")
    p.add_argument("--grid", action="append", metavar="KEY=V1,V2,...", help="a swept config field and its values")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a fixed config field")
    p.add_argument("--smoke", action="store_true", help="start from the smoke config")
    p.add_argument("--out", help="sweep folder (default runs/sweep-NAME-TIMESTAMP-SUFFIX, unique)")
    p.add_argument("--resume", action="store_true", help="continue the sweep in --out (same experiment, grid and config), skipping finished chunks")
    p.add_argument("--devices", type=int, help="devices to shard cells over (default: all local devices)")
    p.add_argument("--batch-size", type=int, default=64, help="cells per vmapped micro-batch (bounds memory)")
    p.add_argument("--max-loss", type=float, default=1e6, help="a cell whose loss exceeds this is marked failed")
    p.add_argument("--x64", action="store_true", help="float64 (default float32, for throughput)")
    p.add_argument("--distributed", action="store_true",
                   help="multi-host: call jax.distributed.initialize() and shard cells over every host's devices")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("plot", help="redraw the figures of a run or sweep folder without re-running")
    p.add_argument("run_dir", help="a folder written by `saddle run` or `saddle sweep`")
    p.set_defaults(func=cmd_plot)

    p = sub.add_parser("new", help="write a plug-in experiment package to start from",
                       description="Write a working plug-in package (pyproject.toml with the saddle.experiments "
                       "entry point, the experiment module, a test) into a new folder. It reproduces one mode of "
                       "a two-layer linear network against the Saxe closed form. Nothing existing is overwritten.")
    p.add_argument("name", help="experiment name, e.g. my-exp (lower-case letters, digits, '-')")
    p.add_argument("--dir", help="folder to create (must not exist or be empty); default ./NAME")
    p.set_defaults(func=cmd_new)

    p = sub.add_parser("gallery", help="one small PNG per experiment from its smoke run (docs/gallery.md)")
    p.add_argument("names", nargs="*", metavar="NAME", help="experiments to draw (default: all)")
    p.add_argument("--out", default="docs/img", help="folder for NAME.png (default docs/img)")
    p.add_argument("--dpi", type=int, default=60, help="resolution of the PNGs (default 60: ~30-60 KB each)")
    p.add_argument("--overwrite", action="store_true", help="replace existing PNGs")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=cmd_gallery)
    return parser


def _out_of_memory(err: BaseException) -> bool:
    """numpy's MemoryError, or XLA's allocation failure (a JaxRuntimeError)."""
    text = str(err)
    return isinstance(err, MemoryError) or (
        type(err).__name__ in ("JaxRuntimeError", "XlaRuntimeError") and ("RESOURCE_EXHAUSTED" in text or "Out of memory" in text))


def main(argv=None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return USAGE_ERROR
        jax_cache.enable(args.no_cache)
        common.figure_formats()  # a bad $SADDLE_FIGURE_FORMATS is refused before any compute
        return args.func(args)
    except (UsageError, ValueError, FileExistsError, FileNotFoundError) as err:
        if os.environ.get("SADDLE_DEBUG"):
            raise
        print(f"saddle: error: {err}", file=sys.stderr)
        return USAGE_ERROR
    except Exception as err:
        if not _out_of_memory(err) or os.environ.get("SADDLE_DEBUG"):
            raise
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        print(f"saddle: error: out of memory ({first[-160:]}); the config is too large for this machine: "
              f"reduce its widths or sizes (keys: `saddle list -v`)", file=sys.stderr)
        return USAGE_ERROR
    except KeyboardInterrupt:
        print("saddle: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
