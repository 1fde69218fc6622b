"""``nl-tracker eval``: offline evaluation on dataset folders or bags, with a report."""
from __future__ import annotations

import argparse
import pathlib

HELP = 'evaluate the tracker offline on dataset folders or bags: JSON, plots, overlays'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``nl-tracker eval``."""
    from nl_tracker_ros.commands._tracking import add_tracker_arguments
    from nl_tracker_ros.evaluation.metrics import CONVENTIONS

    parser.add_argument('data', nargs='+',
                        help='dataset folders (LaSOT, TNL2K, OTB99-Lang, generated scenes) '
                             'or rosbag2 recordings with ground truth')
    parser.add_argument('--out', metavar='DIR', default='runs/eval',
                        help='report folder: results/, plots, overlays, summary (runs/eval)')
    parser.add_argument('--json', metavar='OUT', help='JSON report path (default OUT/report.json)')
    parser.add_argument('--recovery', choices=('on', 'off', 'both'), default='on',
                        help='lost/re-found handling; "both" runs with and without it and '
                             'compares them in one report and one plot (default: on)')
    parser.add_argument('--convention', choices=CONVENTIONS, default='pytracking',
                        help='pytracking: absent frames count as failures; tnl2k: absent '
                             'frames are not scored; absent-aware: an absent frame without a '
                             'box succeeds, with one it fails (default pytracking)')
    parser.add_argument('--init', choices=('nl', 'nl+box'), default='nl',
                        help='language only (default), or language plus the frame-1 box')
    parser.add_argument('--sequences', nargs='+', metavar='NAME',
                        help='only these sequences')
    parser.add_argument('--limit', type=int, metavar='N', help='only the first N sequences')
    parser.add_argument('--worst', type=int, default=3, metavar='K',
                        help='overlay videos of the K worst sequences (default 3, 0: none)')
    parser.add_argument('--fps', type=float, default=30.0,
                        help='frame rate for stamps of sequences without their own (30)')
    parser.add_argument('--min-auc', type=float, metavar='A',
                        help='exit with status 3 when the first configuration\'s AUC is below A')
    parser.add_argument('--results', action='append', default=[], metavar='NAME=DIR',
                        help='also score results files already written in the pytracking '
                             'layout (ours or another tracker\'s) as configuration NAME; '
                             'repeatable')
    parser.add_argument('--no-tracker', action='store_true',
                        help='only score --results, do not run the tracker')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')
    add_tracker_arguments(parser)


def _results_arg(text: str) -> tuple[str, pathlib.Path]:
    from nl_tracker_ros.errors import InputError

    name, sep, folder = text.partition('=')
    if not sep or not name or not folder:
        raise InputError(f'--results: expected NAME=DIR, got {text!r}')
    if not pathlib.Path(folder).is_dir():
        raise InputError(f'--results {name}: {folder} is not a folder')
    return name, pathlib.Path(folder)


def load_inputs(paths, log=print) -> tuple[list, list[tuple[str, str]]]:
    """Sequences from dataset folders and bags, plus (name, reason) for each one left out."""
    from nl_tracker_ros.errors import InputError
    from nl_tracker_ros.inputs import is_bag, open_bag, read_dataset

    sequences, skipped = [], []
    for p in paths:
        p = pathlib.Path(p)
        try:
            if is_bag(p):
                seq = open_bag(p)
                if not getattr(seq, 'has_truth', True):
                    raise InputError(f'bag {p}: no ground-truth topic (TrackedTarget) to score '
                                     f'against; use "nl-tracker track" for unannotated input')
                sequences.append(seq)
                continue
            seqs, skips = read_dataset(p)
        except (InputError, OSError) as exc:
            skipped.append((p.name, str(exc)))
            log(f'skipped {p}: {exc}')
            continue
        sequences += seqs
        skipped += [(pathlib.Path(s.path).name, f'{s.path}: {s.reason}') for s in skips]
    return sequences, skipped


def run(args: argparse.Namespace) -> int:
    """Run every configuration over every sequence, write the report, print the summary."""
    from nl_tracker_ros.commands._tracking import make_tracker
    from nl_tracker_ros.errors import InputError
    from nl_tracker_ros.evaluation import (EvalConfig, run_batch, run_from_results, summarize,
                                           write_results)
    from nl_tracker_ros.evaluation.report import write_report

    config = EvalConfig(init=args.init, convention=args.convention, fps=args.fps)
    given = [_results_arg(r) for r in args.results]
    if args.no_tracker and not given:
        raise InputError('--no-tracker: expected at least one --results NAME=DIR to score')
    sequences, skipped = load_inputs(args.data)
    if args.sequences:
        wanted = set(args.sequences)
        sequences = [s for s in sequences if s.name in wanted]
    if args.limit is not None:
        sequences = sequences[:args.limit]
    if not sequences:
        raise InputError(f'nothing to evaluate in {", ".join(map(str, args.data))}'
                         + (f' ({len(skipped)} skipped)' if skipped else ''))
    out = pathlib.Path(args.out)
    results, runs = {}, {}
    settings = ('on', 'off') if args.recovery == 'both' else (args.recovery,)
    for setting in () if args.no_tracker else settings:
        name = f'recovery-{setting}'
        tracker = make_tracker(args, recovery=setting == 'on')
        done, failed = run_batch(tracker, sequences, config, progress=not args.no_progress,
                                 desc=name)
        for r in done:
            write_results(r, out / 'results' / name)
        runs[name] = done
        results[name] = summarize(done, config, skipped + failed)
        del tracker
    for name, folder in given:
        done, failed = [], []
        for seq in sequences:
            try:
                done.append(run_from_results(seq, folder))
            except (InputError, OSError) as exc:
                failed.append((seq.name, str(exc)))
        runs[name] = done
        results[name] = summarize(done, config, skipped + failed)
    report, paths, text = write_report(out, results, runs, config, worst=args.worst,
                                       json_path=args.json)
    for seq in sequences:     # bags keep their files open for load_frame
        getattr(seq, 'close', lambda: None)()
    print(text)
    first = results[next(iter(results))]
    if first['sequences_scored'] == 0:
        return 1
    if args.min_auc is not None and (first['auc'] or 0.0) < args.min_auc:
        print(f'nl-tracker eval: AUC {first["auc"]:.3f} is below --min-auc {args.min_auc}')
        return 3
    return 0
