"""``python -m robustjax.eval [run] [options]``, ``report --out DIR``, ``gallery --out DIR`` and ``list [--markdown]``.

Plugins (``--plugin MODULE``, a config's ``plugins``, installed ``robustjax.plugins`` entry points)
are imported first, so every name they register is validated like a built-in one, before compute.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from robustjax.eval import config as C


def _run_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m robustjax.eval",
        description="Run an experiment grid (datasets x models x defenses x attacks x eps x threat models). "
        "With no arguments: the quick-start (efficientnet_lite0 on foolbox's 20 ImageNet photos). "
        "Finished cells are stored in OUT/results.jsonl and skipped on rerun. "
        "Other commands: `report --out DIR` (tables + plots), `gallery --out DIR` (a page of the adversarial "
        "examples --save-adversarials stored), `list` (valid names).",
    )
    C.add_arguments(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--no-report", action="store_true", help="do not render the report after the run")
    p.add_argument("--msr", action="store_true",
                   help="report the misclassification success rate too (Das et al. 2017)")
    return p


def _report_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m robustjax.eval report",
                                description="Render OUT/results.jsonl as markdown + CSV tables and plots.")
    p.add_argument("--out", required=True, help="results directory")
    p.add_argument("--no-plots", action="store_true")
    p.add_argument("--msr", action="store_true", help="add the misclassification success rate table (Das et al. 2017)")
    return p


def _gallery_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m robustjax.eval gallery",
                                description="Write OUT/gallery/index.html: a static page (HTML + PNG) of the "
                                "adversarial examples a run with --save-adversarials stored.")
    p.add_argument("--out", required=True, help="results directory")
    p.add_argument("--per-cell", type=int, default=4, metavar="K",
                   help="broken images shown per cell and budget (the lowest rows; default 4)")
    return p


def _gallery(argv) -> int:
    from robustjax.eval import gallery
    from robustjax.eval.adversarials import NoAdversarialsError

    args = _gallery_parser().parse_args(argv)
    try:
        index = gallery.write(args.out, per_cell=args.per_cell)
    except NoAdversarialsError:
        print(f"error: {args.out} holds no saved adversarial examples (no {args.out}/adversarials files of its "
              "cells); rerun the experiment with --save-adversarials (config key save_adversarials=True) and the "
              "same --out: finished cells are recomputed with them", file=sys.stderr)
        return 2
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(index)
    return 0


def _list_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m robustjax.eval list",
                                description="Every valid name with its usage line, plugins' names included.")
    p.add_argument("--plugin", action="append", default=[], metavar="MODULE", help="import MODULE first (repeatable)")
    p.add_argument("--markdown", action="store_true",
                   help="the README's catalogue table instead (installed entry-point plugins left out: the README "
                   "lists what robustjax ships)")
    return p


def _list(argv, components) -> int:
    from robustjax import plugins
    from robustjax.eval import catalogue

    args = _list_parser().parse_args(argv)
    try:
        plugins.load(args.plugin, entry_points=not args.markdown)
    except ImportError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(catalogue.markdown() if args.markdown else catalogue.text(components))
    return 0


def main(argv=None, components=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["report"]:
        args = _report_parser().parse_args(argv[1:])
        from robustjax.eval.report import render

        print(render(args.out, plots=not args.no_plots, msr=args.msr))
        return 0
    if argv[:1] == ["list"]:
        return _list(argv[1:], components)
    if argv[:1] == ["gallery"]:
        return _gallery(argv[1:])
    if argv[:1] == ["run"]:
        argv = argv[1:]
    args = _run_parser().parse_args(argv)
    try:
        cfg = C.from_args(args)
        from robustjax import plugins

        plugins.load(cfg.get("plugins", []))  # before validation: their names are checked like built-in ones
    except (ValueError, FileNotFoundError, ImportError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    from robustjax import compilation_cache
    from robustjax.eval.components import default
    from robustjax.eval.mesh import maybe_initialize_distributed
    from robustjax.eval.plan import resolve
    from robustjax.eval.runner import Runner

    comp = components or default(skip_unreadable=bool(cfg.get("skip_unreadable", False)))
    try:
        resolved = resolve(cfg, comp)  # names, shapes and defenses, before jax touches a device
    except (ValueError, FileNotFoundError, ImportError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    maybe_initialize_distributed()
    compilation_cache.enable()
    runner = Runner(cfg, comp, progress=not args.no_progress, plan=resolved)

    def on_sigint(signum, frame):
        runner.interrupted = True
        raise KeyboardInterrupt

    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, on_sigint) if main_thread else None
    try:
        records = runner.run()
        if runner.interrupted:
            raise KeyboardInterrupt
    except KeyboardInterrupt:
        n = len(runner.store.records())
        print(f"\ninterrupted: {n} finished cell(s) are stored in {runner.store.path}; "
              "rerun the same command to resume", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    if runner.mesh.process_index == 0:
        from robustjax.eval.report import render, summary_table

        n_images = records[0]["n_images"] if records else 0
        print(f"\n{cfg.name}: {cfg.dataset}, {n_images} images, results in {runner.store.path}\n")
        print(summary_table(records, runner.store.dir))
        if not args.no_report:
            try:
                render(cfg.out, msr=args.msr)
                print(f"\nreport: {runner.store.dir / 'report.md'}")
            except Exception as e:  # the results are safe; a plotting problem must not hide them
                print(f"warning: report not rendered ({type(e).__name__}: {e})", file=sys.stderr)
    return 0
