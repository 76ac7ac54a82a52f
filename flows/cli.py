"""The `eventsep` command line: it starts the flows (or, with --local, runs the library directly).

Exit codes: 0 done; 2 bad input or parameters; 3 no separator available; 4 not in the cache
(refuse before separate); 1 anything else. Logs are quiet unless -v is given.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "accordion_and_speech.flac"
EXAMPLE_QUERY = "only the accordion"

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_NO_SEPARATOR, EXIT_NOT_CACHED = 0, 1, 2, 3, 4

PREFECT_DEFAULTS = {
    # The temporary server takes 10-36 s to start on 2 cores; Prefect's own 20 s limit is too short.
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    # The command line prints its own one-line errors; Prefect would add a traceback for each.
    "PREFECT_LOGGING_LEVEL": "CRITICAL",
}


def prepare_prefect_environment(verbose: bool = False) -> None:
    """Set quiet, private Prefect defaults; anything the user set in the environment wins."""
    for name, value in PREFECT_DEFAULTS.items():
        os.environ.setdefault(name, value)
    if verbose:
        os.environ["PREFECT_LOGGING_LEVEL"] = "INFO"


@contextmanager
def plain_warnings():
    """EventSep's warnings (a damaged result file, ...) as their own one line on stderr, on every path:
    not in Prefect's log format, and not twice. The logger is as it was afterwards."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("eventsep")
    saved = logger.handlers, logger.level, logger.propagate
    logger.handlers, logger.propagate = [handler], False
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.handlers, logger.level, logger.propagate = saved


def _add_stage_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--mask", choices=["auto", "hard", "soft", "off"],
                        help="mask mode (default auto: events found, the answer not gated; docs/mask.md)")
    parser.add_argument("--threshold", type=float, help="θ in [0, 1] (default 0.5)")
    parser.add_argument("--smoothing", choices=["median", "hysteresis", "none"])
    parser.add_argument("--spans", help='user time spans, e.g. "2-4.5,7-9"')
    parser.add_argument("--spans-mode", choices=["add", "replace"])
    parser.add_argument("--mask-at", choices=["output", "input", "none"])
    parser.add_argument("--classes", help='AudioSet classes to follow, ";"-separated, instead of the query\'s')
    parser.add_argument("--fusion", choices=["rate", "band", "band-reversed", "progressive",
                                             "progressive-reversed"])
    parser.add_argument("--alpha", type=float, help="weight of the first separator in --fusion rate")
    parser.add_argument("--split-hz", type=float, help="crossover of the band modes")
    parser.add_argument("--separators", help='comma-separated, first gives the phase (default "auto": dfn3 for '
                        'speech queries; for others audiosep, with flowsep fused where its model card shows it '
                        'within 3 dB of AudioSep: `eventsep models card NAME`)')
    parser.add_argument("--sed", help="SED backend (default auto: silero for speech queries, yamnet for others)")
    parser.add_argument("--encoder", help="query text encoder (default minilm)")
    parser.add_argument("--attenuation-limit", type=float,
                        help="dfn3: most it lowers the noise, in dB (default 100 = no limit)")
    _add_separator_text_option(parser)
    _add_fallback_option(parser)
    _add_weights_option(parser)
    parser.add_argument("--reference", help="clean target recording: adds metrics")
    parser.add_argument("--local", action="store_true", help="run in this process without Prefect")
    parser.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                        help="no progress display (none either when stderr is not a terminal)")


def _add_weights_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--weights", action="append", default=[], metavar="NAME=FILE",
                        help="other weights for a project model (audiosep-mini, flowsep-mini), e.g. a training's "
                             "export from `eventsep models export`; cache keys follow the file (repeatable)")


def _use_weights(given: list[str] | None) -> None:
    """Add --weights to EVENTSEP_WEIGHTS (a Prefect run's tasks read it too) and check every file named there."""
    from eventsep.pretrained import check_overrides

    if given:
        os.environ["EVENTSEP_WEIGHTS"] = ",".join(filter(None, [os.environ.get("EVENTSEP_WEIGHTS", "")] + given))
    check_overrides()


def _add_separator_text_option(parser: argparse.ArgumentParser) -> None:
    from typing import get_args

    from eventsep.config import SeparatorText

    parser.add_argument("--separator-text", choices=get_args(SeparatorText),
                        help="what AudioSep and FlowSep are asked for (default auto: the query's words, Speech as "
                        "'a person speaking'; words; class: the best class's AudioSet name; class+words; "
                        "docs/audiosep.md)")


def _add_fallback_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--fallback", choices=["gated", "gated-all", "off"],
                        help="answer when the separator cannot be trusted (default gated: the mixture gated by the "
                        "detector for keep queries; gated-all: removals too; off: the separator's; docs/trust.md)")


def _add_grid_options(parser: argparse.ArgumentParser, separators: bool = True, fusions: str = "band,rate",
                      thresholds: str = "0.3,0.5") -> None:
    if separators:
        parser.add_argument("--separators", default="audiosep,flowsep",
                            help="each is scored alone; the first two also fused (default audiosep,flowsep)")
    parser.add_argument("--fusions", default=fusions, help=f"fusion modes of the first two (default {fusions})")
    parser.add_argument("--masks", default="off,soft,hard",
                        help="mask modes (default off,soft,hard); evaluate also takes oracle: the true span of the "
                             "wanted sound (the manifest's onset to offset), the bound of what a mask can add")
    parser.add_argument("--thresholds", default=thresholds, help=f"θ of soft and hard (default {thresholds})")
    parser.add_argument("--no-baseline", action="store_true",
                        help="leave out the mixture gated by the mask (the no-separator baseline)")


def options_from_args(args: argparse.Namespace):
    from eventsep.api import make_options

    mask = {k: v for k, v in {
        "mode": args.mask, "threshold": args.threshold, "smoothing": args.smoothing, "spans": args.spans,
        "spans_mode": args.spans_mode, "mask_at": args.mask_at,
        "classes": [c.strip() for c in args.classes.split(";") if c.strip()] if args.classes else None,
    }.items() if v is not None}
    fusion = {k: v for k, v in {"mode": args.fusion, "alpha": args.alpha, "split_hz": args.split_hz}.items()
              if v is not None}
    separators = tuple(s.strip() for s in args.separators.split(",") if s.strip()) if args.separators else None
    separator = {k: v for k, v in {"attenuation_limit_db": args.attenuation_limit,
                                   "text": args.separator_text}.items() if v is not None}
    return make_options(mask=mask, fusion=fusion, separator=separator, separators=separators, sed=args.sed,
                        encoder=args.encoder, fallback=args.fallback)


def check_output_folder(path: str | os.PathLike) -> None:
    """ValueError (one line) when `path` is a file or cannot become a folder this process can write to;
    checked before any work, and nothing is created."""
    folder = Path(path)
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        where = "is a file" if existing == folder else f"lies under {existing}, which is a file"
        raise ValueError(f"output folder {path} {where}, not a folder")
    import tempfile

    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as error:
        raise ValueError(f"output folder {path} cannot be written ({error.strerror or error} in {existing})"
                         ) from None


def cmd_separate(args) -> int:
    from flows.progress import ProgressDisplay

    check_output_folder(args.output)
    options = options_from_args(args)
    started = time.perf_counter()
    with ProgressDisplay(args.quiet) as display:
        if args.local:
            from eventsep import stream
            from eventsep.api import local_runner, separate
            from eventsep.outputs import write_result
            from flows.separate import output_stem

            if stream.wanted(args.input, args.reference):  # long: a block at a time, memory flat in length
                result, paths = stream.separate_file(args.input, args.query, options, local_runner(), args.output,
                                                     output_stem(args.input), not args.no_report, display)
            else:
                result = separate(args.input, args.query, options=options, reference=args.reference,
                                  progress=display)
                display("write", None)
                paths = write_result(result, args.output, output_stem(args.input), not args.no_report, args.input)
            summary = {"outputs": paths,
                       "metrics": result.metrics, "events": result.events, "separators": result.separators,
                       "note": result.extra.get("mask_note"), "warnings": result.extra.get("warnings", [])}
        else:
            from flows.separate import separate_flow

            summary = separate_flow(args.input, args.query, args.output, options, args.reference, display,
                                    report=not args.no_report)
    summary["seconds"] = round(time.perf_counter() - started, 2)
    _print_summary(summary, args)
    return EXIT_OK


def print_warnings(lines: list[str], source: str | None = None) -> None:
    """Each warning of a run as one line on stderr (whatever --json says)."""
    for line in lines or []:
        print(f"eventsep: warning: {f'{source}: ' if source else ''}{line}", file=sys.stderr)


def _print_summary(summary: dict, args) -> None:
    print_warnings(summary.get("warnings"))
    if args.json:
        print(json.dumps(summary, indent=1, default=str))
        return
    for part, path in summary["outputs"].items():
        print(f"{part:12s} {path}")
    for event in summary["events"]:
        print(f"event        {event['onset']:7.2f}-{event['offset']:7.2f} s  {event['label']}  p={event['peak']:.2f}")
    if summary.get("note"):
        print(f"note         {summary['note']}")
    if summary.get("metrics"):
        print("metrics      " + "  ".join(f"{k}={v:.2f}" for k, v in summary["metrics"].items()))
    print(f"separators   {', '.join(summary['separators'])}   ({summary['seconds']} s)")


def cmd_batch(args) -> int:
    if args.local and args.dask:
        raise ValueError("--dask runs the batch as a Prefect flow on Dask workers; drop --local")
    check_output_folder(args.output)
    options = options_from_args(args)
    from flows.batch import run_batch

    if args.dask and not args.verbose:  # the scheduler and nannies in this process log every start at INFO
        import distributed  # noqa: F401 - sets the level of its logger when imported

        logging.getLogger("distributed").setLevel(logging.ERROR)
    from flows.progress import ProgressDisplay

    with ProgressDisplay(args.quiet or bool(args.dask)) as display:
        rows = run_batch(args.inputs, args.query, args.output, options, dask=args.dask, workers=args.workers,
                         progress=display, report=not args.no_report)
    failed = [r for r in rows if r.get("error")]
    for row in rows:
        print_warnings(row.get("warnings"), row["audio"])
    if args.json:
        print(json.dumps(rows, indent=1, default=str))
    else:
        for row in rows:
            where = f"  ({row['worker']})" if args.dask and row.get("worker") else ""
            print(f"{'FAILED' if row.get('error') else 'ok':6s} {row['audio']}  "
                  f"{row.get('error') or row['outputs']['target']}{where}")
    return EXIT_BAD_INPUT if failed else EXIT_OK


def cmd_refuse(args) -> int:
    from eventsep.pipeline import grid_product

    if args.output:
        check_output_folder(args.output)
    options = options_from_args(args)
    grid = grid_product(args.masks.split(","), [float(t) for t in args.thresholds.split(",")],
                        args.fusions.split(","))
    started = time.perf_counter()
    if args.local:
        from eventsep.api import refuse

        results = refuse(args.input, args.query, grid, options=options, reference=args.reference)
        rows = [{**r.extra["grid_point"], "metrics": r.metrics, "events": len(r.events), "answer": r.extra.get("answer")}
                for r in results]
        if args.output:
            from eventsep.outputs import write_result
            from flows.separate import output_stem

            for index, (row, result) in enumerate(zip(rows, results)):
                row["outputs"] = write_result(result, args.output, f"{output_stem(args.input)}.{index:03d}",
                                              not args.no_report, args.input)
    else:
        from flows.refuse import refuse_flow

        rows = refuse_flow(args.input, args.query, grid, options, args.reference, args.output)
    seconds = time.perf_counter() - started
    if args.json:
        print(json.dumps(rows, indent=1, default=str))
    else:
        for row in rows:
            metrics = "  ".join(f"{k}={v:.2f}" for k, v in (row["metrics"] or {}).items())
            print(f"{row['mask_mode']:5s} θ={row['threshold']:<5g} {row['fusion_mode']:21s} "
                  f"events={row['events']:<3d} {metrics}")
        print(f"{len(rows)} grid points in {seconds:.2f} s")
    return EXIT_OK


def _names(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def grid_spec_from_args(args):
    from eventsep.evaluate import GridSpec

    try:
        thresholds = tuple(float(t) for t in _names(args.thresholds))
    except ValueError:
        raise ValueError(f"--thresholds takes numbers separated by commas, not {args.thresholds!r}") from None
    return GridSpec(separators=_names(args.separators), fusions=_names(args.fusions), masks=_names(args.masks),
                    thresholds=thresholds, baseline=not args.no_baseline)


def cmd_evaluate(args) -> int:
    from eventsep.api import make_options
    from eventsep.evaluate import read_manifest, select_kinds

    spec = grid_spec_from_args(args).model_copy(update={"defaults": not args.no_defaults})
    options = make_options(sed=args.sed, encoder=args.encoder, separators=spec.separators[:2],
                           fallback=args.fallback, mask=None if args.floor is None else {"floor": args.floor},
                           separator=None if args.separator_text is None else {"text": args.separator_text})
    kinds = _names(args.kinds)
    select_kinds(read_manifest(args.manifest), kinds, args.manifest)  # a bad manifest fails here, in one line
    if args.audio_items is not None and args.audio_items < 0:
        raise ValueError(f"--audio-items must be 0 or more, not {args.audio_items}")
    log = None if args.quiet else (lambda line: print(line, file=sys.stderr))
    if args.local:
        from eventsep.evaluate import evaluate

        doc = evaluate(args.manifest, args.output, spec, options, audio_items=args.audio_items,
                       report=not args.no_report, log=log, kinds=kinds)
    else:
        from flows.evaluate import evaluate_flow

        doc = evaluate_flow(args.manifest, args.output, spec, options, args.audio_items, not args.no_report, kinds)
    if args.json:
        from eventsep.evaluate import jsonable

        print(json.dumps(jsonable({k: doc[k] for k in ("default", "summary", "gains", "seconds")}), indent=1))
        return EXIT_OK
    print(evaluation_table(doc))
    print(f"wrote {Path(args.output) / 'results.json'}, results.csv"
          + ("" if args.no_report else ", report.html") + f"  ({doc['seconds']})")
    return EXIT_OK


def evaluation_table(doc: dict) -> str:
    def value(x) -> str:
        return "-" if x is None else f"{x:.2f}"

    kinds = [k for k in ("speech", "music", "environment")
             if any(k in s["by_kind"] for s in doc["summary"].values())]
    lines = [doc["note"], "", f"{'setting':34s} {'SI-SDRi mean':>12s} {'median':>7s} {'SDRi mean':>9s} "
             f"{'ESTOI':>6s} {'out/in dB':>9s} {'silent':>6s}  SI-SDRi mean by kind: {' / '.join(kinds)}"]
    for setting, s in doc["summary"].items():
        by_kind = " / ".join(value(s["by_kind"].get(k, {}).get("mean")) for k in kinds)
        lines.append(f"{setting:34s} {value(s['si_sdri']['mean']):>12s} {value(s['si_sdri']['median']):>7s} "
                     f"{value(s['sdri']['mean']):>9s} {value(s['estoi']['mean']):>6s} "
                     f"{value(s['outside_db']['median']):>9s} {s['silent']:>3d}/{s['items']}  {by_kind}")
    return "\n".join(lines)


def cmd_detect(args) -> int:
    """SED alone: the event table of the named classes, else of the --top classes by peak probability that
    reach θ (or, with --all, of every class that reaches θ)."""
    from eventsep.api import as_audio, local_runner
    from eventsep.config import MaskParams, SedParams
    from eventsep.mask import compute_mask
    from eventsep.ontology import by_name, check_class_names, classes
    from eventsep.outputs import events_csv

    if args.top < 1:
        raise ValueError(f"--top must be at least 1, not {args.top}")
    params = MaskParams(mode="hard", threshold=args.threshold, min_peak=0.0)
    names = [name.strip() for name in args.classes.split(";") if name.strip()] if args.classes else []
    check_class_names(names)
    if args.output:
        if Path(args.output).is_dir():
            raise ValueError(f"-o {args.output} is a folder; name a .csv or .json file")
        check_output_folder(Path(args.output).parent)
    recording = as_audio(args.input)
    sed = local_runner().run("sed", recording=recording, model=args.sed or "yamnet", params=SedParams())
    probs, frame_rate = sed["probs"], sed.meta["frame_rate"]
    if names:
        chosen = [by_name(name) for name in names]
    else:
        peaks, means = probs.max(axis=0), probs.mean(axis=0)
        chosen = sorted((c for c in classes() if peaks[c.index] >= args.threshold),
                        key=lambda c: (-peaks[c.index], -means[c.index]))
        chosen = chosen if args.all else chosen[:args.top]
    events = []
    for entry in chosen:
        events += compute_mask(probs, frame_rate, [entry.index], params, num_samples=len(recording.samples),
                               sample_rate=recording.sample_rate, class_names=[entry.name]).events_table()
    events.sort(key=lambda e: (e["onset"], -e["peak"]))
    if args.json:
        print(json.dumps(events, indent=1))
    else:
        print(events_csv(events), end="")
    if args.output:
        from eventsep.outputs import write_text

        write_text(Path(args.output), json.dumps(events, indent=1) if args.output.endswith(".json")
                   else events_csv(events))
    return EXIT_OK


def cmd_cache(args) -> int:
    from eventsep.settings import settings
    from eventsep.store import ResultStore

    store = ResultStore(settings().results_url)
    if args.action == "ls":
        total = 0
        for key in store.keys():
            try:
                info = store.info(key)
            except Exception as error:  # a damaged file is listed, not fatal
                print(f"{key}  damaged ({error})")
                continue
            total += info["bytes"]
            print(f"{key}  {info['stage']:10s} {info['bytes'] / 1e6:8.2f} MB")
        print(f"{store.root}: {len(store.keys())} results, {total / 1e6:.2f} MB")
    else:
        print(f"removed {store.clear(args.stage)} results from {store.root}")
    return EXIT_OK


def seed_range(text: str) -> range:
    """`N` or `N-M` (inclusive) as a range; anything else is refused in one line."""
    first, _, last = text.partition("-")
    if not first.isdigit() or not (last or first).isdigit() or int(last or first) < int(first):
        raise ValueError(f"--seeds must be N or N-M with N <= M, got {text!r}")
    return range(int(first), int(last or first) + 1)


def cmd_corpus(args) -> int:
    if args.real:
        from eventsep.corpus import real
        from eventsep.corpus.sources import CorpusToolMissing

        try:
            plan = real.plan_set(seed_range(args.seeds)) if args.seeds else real.committed_plan()
            path = real.write_set(plan, args.output)
        except (CorpusToolMissing, FileNotFoundError) as error:
            print(f"eventsep: {error}", file=sys.stderr)
            return EXIT_BAD_INPUT
        print(f"wrote {len(plan['items'])} recorded mixtures and {path}")
        return EXIT_OK
    if args.training_validation:
        from eventsep.separators.training import config_with, trainer, write_validation_set

        if args.seeds:
            raise ValueError("--training-validation renders the trainer's own validation seeds; it takes no --seeds")
        module = trainer(args.training_validation)
        config = config_with(module.DEFAULTS, {})
        path = write_validation_set(args.output, config, module.MINI.sample_rate)
        print(f"wrote {config.validation_seeds[1] - config.validation_seeds[0]} validation mixtures of "
              f"{args.training_validation} and {path}")
        return EXIT_OK
    if args.synthetic_dev:
        from eventsep.corpus.mixtures import committed_synthetic_plan, write_synthetic_set

        if args.seeds:
            raise ValueError("--synthetic-dev renders the committed plan; it takes no --seeds")
        plan = committed_synthetic_plan()
        print(f"wrote {len(plan['items'])} synthetic mixtures and {write_synthetic_set(plan, args.output)}")
        return EXIT_OK
    from eventsep.corpus import make_corpus
    from eventsep.corpus.manifest import write_corpus_manifest

    seeds = seed_range(args.seeds or "0-9")
    manifest = write_corpus_manifest(args.output, make_corpus(args.output, seeds))
    print(f"wrote {len(seeds)} mixtures to {args.output} and the evaluation manifest {manifest}")
    return EXIT_OK


def cmd_bench(args) -> int:
    if args.what == "audiosep":
        from eventsep.separators.audiosep.bench import bench

        print(bench((10.0, 60.0)))
        return EXIT_OK
    if args.what == "clap-text":
        from eventsep.separators.audiosep.bench import bench_text_query

        print(bench_text_query())
        return EXIT_OK
    if args.what == "flowsep":
        from eventsep.separators.flowsep.bench import bench

        print(bench(tuple(args.steps)))
        return EXIT_OK
    if args.what == "dfn3":
        from eventsep.audio import load_audio
        from eventsep.separators.dfn3.bench import bench

        recording = load_audio(args.audio)
        print(bench(recording.samples, recording.sample_rate))
        return EXIT_OK
    if args.what == "evaluate":
        from eventsep.evaluate_bench import bench_evaluate

        args.separators = args.separators or "audiosep,flowsep"
        print(bench_evaluate(args.items, args.seconds, grid_spec_from_args(args)))
        return EXIT_OK
    if args.what == "long":
        from flows.bench import bench_long

        print(bench_long(args.audio, args.query, args.minutes))
        return EXIT_OK
    from flows.bench import main as bench_cache

    options = options_from_args(args)
    print(bench_cache(args.audio, args.query, options, args.seconds))
    return EXIT_OK


def training_setting(text: str) -> tuple[str, object]:
    """`field=value` with a JSON value (`learning_rate=3e-4`, `train_seeds=[0,2000]`)."""
    name, separator, value = text.partition("=")
    if not separator:
        raise ValueError(f"--set takes FIELD=VALUE, got {text!r}")
    try:
        return name.strip(), json.loads(value)
    except json.JSONDecodeError:
        raise ValueError(f"--set {name}: {value!r} is not a JSON value (a number, true, null or [a, b])") from None


def cmd_train(args) -> int:
    folder = args.folder or f"cache/training/{args.model}"
    settings = dict(training_setting(text) for text in args.set)
    if args.local:
        from eventsep.pretrained import packaged_path
        from eventsep.separators.training import config_with, export, trainer, warm_start_weights

        module = trainer(args.model)
        state = module.train(folder, args.minutes, config_with(module.DEFAULTS, settings),
                             warm_start=warm_start_weights(args.model, args.fresh))
        if args.export:
            print(f"exported {export(folder, packaged_path(args.model))}")
    else:
        from flows.train import train_mini_separator

        state = train_mini_separator(args.model, folder, args.minutes, args.rounds, args.export, not args.fresh,
                                     settings)
    print(json.dumps(state["history"][-1] if state.get("history") else state))
    if args.export:
        from eventsep.hashing import file_sha256
        from eventsep.pretrained import packaged_path

        print(f"record sha256 {file_sha256(packaged_path(args.model))} for {args.model} in "
              "eventsep/pretrained.py (the weights are checked against it when loaded)")
    return EXIT_OK


def cmd_models(args) -> int:
    from eventsep import pretrained

    if args.action == "card":
        from eventsep.cards import card_names, load_card, render

        for name in [args.name] if args.name else card_names():
            print(render(load_card(name)) + "\n")
        return EXIT_OK
    names = [args.name] if args.name else list(pretrained.REGISTRY)
    if args.action == "list":
        print(f"model folder: {pretrained.models_dir()}")
        for name in names:
            entry = pretrained.REGISTRY[name]
            present = "present" if pretrained.path_of(name).exists() else "absent"
            source = (f"inside the {entry.wheel.requirement} wheel ({entry.wheel.licence})" if entry.wheel
                      else entry.url or "made by this project")
            print(f"{name:32s} {present:8s} {entry.stage:36s} {entry.filename}  sha256={entry.sha256 or '-'}  {source}")
        return EXIT_OK
    if args.action == "pull":
        for name in names:
            print(f"pulled {pretrained.pull(name)}")
        return EXIT_OK
    if args.action == "export":
        from eventsep.separators.training import export

        if not args.name or not args.source or not args.output:
            raise ValueError("models export needs NAME, --from (a training folder or its checkpoint) and -o FILE")
        pretrained.packaged_path(args.name)  # one of the project's own models
        written = export(args.source, args.output)
        print(f"exported {written}; use it with --weights {args.name}={written} (or EVENTSEP_WEIGHTS)")
        return EXIT_OK
    if args.action == "convert":
        if not args.name:
            raise ValueError("models convert needs the NAME of one checkpoint (see `eventsep models list`)")
        path = pretrained.locate(args.name)
        warning = (f"converting unpickles {path} with weights_only=False, which runs any code the file holds; "
                   "do it only for a file from its official source")
        if not args.yes:
            if not sys.stdin.isatty():
                raise ValueError(f"{warning}. Re-run with --yes to confirm")
            if input(f"{warning}. Continue? [y/N] ").strip().lower() not in ("y", "yes"):
                print("not converted")
                return EXIT_BAD_INPUT
        print(f"converted to {pretrained.convert(args.name)}")
        return EXIT_OK
    failures = 0
    for name in names:
        status, message = pretrained.verify(name)
        failures += status == "failed"
        print(f"{status.upper() if status == 'failed' else status:6s} {name}: {message}")
    # absent optional files are not failures: exit 0 exactly when every file present is whole and the
    # default backends have all theirs
    return EXIT_BAD_INPUT if failures else EXIT_OK


def cmd_serve(args) -> int:
    # The deployments sit above the flows: start them as their own program rather than import them here.
    os.execv(sys.executable, [sys.executable, "-m", "deployments.local", *args.rest])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="eventsep", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="Prefect's logs at INFO")
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="no progress display (there is none either when stderr is not a terminal)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    commands = parser.add_subparsers(dest="command", required=True)

    separate = commands.add_parser("separate", help="separate what QUERY describes from IN")
    separate.add_argument("input")
    separate.add_argument("query")
    separate.add_argument("-o", "--output", default="out", help="output folder (default ./out)")
    _add_stage_options(separate)
    separate.add_argument("--no-report", action="store_true", help="do not write NAME.report.html")
    separate.set_defaults(run=cmd_separate)

    batch = commands.add_parser("batch", help="separate one query from many files; a bad file fails alone")
    batch.add_argument("inputs", nargs="+")
    batch.add_argument("--query", required=True)
    batch.add_argument("-o", "--output", default="out")
    batch.add_argument("--dask", metavar="local|ADDRESS",
                       help="map the files over Dask workers: a LocalCluster here, or the scheduler at ADDRESS "
                            "(e.g. tcp://10.0.0.5:8786); default: one after another")
    batch.add_argument("--workers", type=int, help="worker processes of --dask local (default: one per core)")
    _add_stage_options(batch)
    batch.add_argument("--no-report", action="store_true", help="do not write NAME.report.html")
    batch.set_defaults(run=cmd_batch)

    refuse = commands.add_parser("refuse", help="re-run mask and fusion over a grid from the cache alone")
    refuse.add_argument("input")
    refuse.add_argument("query")
    refuse.add_argument("--masks", default="hard,soft")
    refuse.add_argument("--thresholds", default="0.3,0.5,0.7")
    refuse.add_argument("--fusions", default="rate,band,progressive")
    refuse.add_argument("-o", "--output", help="also write every grid point's outputs here")
    _add_stage_options(refuse)
    refuse.add_argument("--no-report", action="store_true", help="with -o: do not write the HTML reports")
    refuse.set_defaults(run=cmd_refuse)

    evaluate = commands.add_parser("evaluate", help="metrics over a labelled set and a grid of settings; "
                                                    "results.json, results.csv, report.html")
    evaluate.add_argument("manifest", help='JSON {"items": [...]} (docs/evaluate.md)')
    evaluate.add_argument("-o", "--output", required=True, help="folder for results.json, results.csv, report.html")
    _add_grid_options(evaluate)
    evaluate.add_argument("--no-defaults", action="store_true",
                          help="leave out the row of what `separate` answers with its defaults (it runs the "
                          "separators that \"auto\" picks per query, e.g. dfn3 for speech)")
    evaluate.add_argument("--floor", type=float,
                          help="the gain the grid's soft and hard masks keep outside events (default 0; "
                          "separate's auto mask applies none: docs/mask.md)")
    evaluate.add_argument("--kinds", default="", help="only the items of these kinds, e.g. speech (default all)")
    evaluate.add_argument("--audio-items", type=int, help="audio players for the first N items only (default all)")
    evaluate.add_argument("--no-report", action="store_true", help="results.json and results.csv only")
    evaluate.add_argument("--sed", help="SED backend (default auto: yamnet, silero for speech queries)")
    evaluate.add_argument("--encoder", help="query text encoder (default minilm)")
    _add_separator_text_option(evaluate)
    _add_fallback_option(evaluate)
    _add_weights_option(evaluate)
    evaluate.add_argument("--local", action="store_true", help="run in this process without Prefect")
    evaluate.set_defaults(run=cmd_evaluate)

    detect = commands.add_parser("detect", help="print the event table of a recording (SED only)")
    detect.add_argument("input")
    detect.add_argument("--classes", help='AudioSet names, ";"-separated (default: the --top classes)')
    detect.add_argument("--threshold", type=float, default=0.5, help="θ an event must reach (default 0.5)")
    detect.add_argument("--top", type=int, default=5,
                        help="the classes with the highest peak probability reaching θ (default 5)")
    detect.add_argument("--all", action="store_true", help="every class that reaches θ")
    detect.add_argument("--sed", help="SED backend (default yamnet)")
    detect.add_argument("-o", "--output", help="also write the table to this .csv or .json file")
    detect.set_defaults(run=cmd_detect)

    cache = commands.add_parser("cache", help="list or clear the result store")
    cache.add_argument("action", choices=["ls", "clear"])
    cache.add_argument("--stage", help="clear only this stage's results")
    cache.set_defaults(run=cmd_cache)

    bench = commands.add_parser("bench", help="benchmarks that print a table")
    bench.add_argument("what", choices=["cache", "audiosep", "clap-text", "flowsep", "serve", "dfn3", "evaluate", "long"],
                       help="serve: see `eventsep bench serve --help`")
    bench.add_argument("--items", type=int, default=40, help="evaluate: stand-in items to score")
    bench.add_argument("--steps", type=int, nargs="+", default=[1, 10, 20], help="flowsep: ODE step counts")
    bench.add_argument("--audio", default=str(EXAMPLE), help="recording to time (default: the bundled example)")
    bench.add_argument("--query", default=EXAMPLE_QUERY)
    bench.add_argument("--seconds", type=float, default=10.0, help="length of the clip (of each item) to time")
    bench.add_argument("--minutes", type=float, nargs="+", default=[1.0, 10.0, 60.0],
                       help="long: lengths to time, in minutes of the recording tiled")
    _add_stage_options(bench)
    _add_grid_options(bench, separators=False, fusions="band,band-reversed,rate,progressive", thresholds="0.3,0.5")
    bench.set_defaults(run=cmd_bench)

    train = commands.add_parser("train", help="train a project model on the open corpus (resumable)")
    train.add_argument("model", choices=["audiosep-mini", "flowsep-mini"])
    train.add_argument("--minutes", type=float, default=60.0)
    train.add_argument("--rounds", type=int, default=1, help="validate after each of this many rounds")
    train.add_argument("--folder", default=None, help="default: cache/training/MODEL")
    train.add_argument("--export", action="store_true", help="write the packaged weights afterwards")
    train.add_argument("--local", action="store_true", help="run in this process without Prefect")
    train.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                       help="change a training setting (TrainConfig field, JSON value); repeatable")
    train.add_argument("--fresh", action="store_true",
                       help="without a checkpoint in --folder, start from random weights, not the packaged ones")
    train.set_defaults(run=cmd_train)

    models = commands.add_parser("models", help="list, verify or pull the model files")
    models.add_argument("action", choices=["list", "verify", "pull", "convert", "card", "export"])
    models.add_argument("name", nargs="?")
    models.add_argument("--from", dest="source", metavar="FOLDER|CHECKPOINT",
                        help="export: a training folder (its last.pt) or a checkpoint file")
    models.add_argument("-o", "--output", help="export: the safetensors file to write")
    models.add_argument("--yes", action="store_true", help="convert: confirm unpickling without a prompt")
    models.set_defaults(run=cmd_models)

    serve = commands.add_parser("serve", help="a local Prefect server, the deployments and the inbox watcher",
                                add_help=False)
    serve.add_argument("rest", nargs=argparse.REMAINDER)
    serve.set_defaults(run=cmd_serve)

    corpus = commands.add_parser("corpus", help="write open-corpus mixtures (deterministic by seed)")
    corpus.add_argument("output")
    corpus.add_argument("--seeds", default=None,
                        help="e.g. 0-19 (default 0-9; with --real, the committed development set's plan)")
    which = corpus.add_mutually_exclusive_group()
    which.add_argument("--real", action="store_true",
                       help="recorded sources only, from the units held out of training (docs/corpus.md)")
    which.add_argument("--synthetic-dev", action="store_true",
                       help="the committed synthetic development set (48 items, seeds 100000-100047)")
    which.add_argument("--training-validation", choices=["audiosep-mini", "flowsep-mini"], metavar="MODEL",
                       help="the validation items MODEL's training reads (20 items of 4 s, 16 kHz)")
    corpus.set_defaults(run=cmd_corpus)
    return parser


# Commands that run a Prefect flow unless --local is given.
FLOW_COMMANDS = ("separate", "batch", "refuse", "train")


def main(argv: list[str] | None = None) -> int:
    """`argv` None means a program run (the console script, `python -m flows.cli`): only then does Ctrl-C
    or SIGTERM end the process at once, and the temporary Prefect server die with it even on kill -9."""
    as_program = argv is None
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["serve"]:  # its options are deployments.local's own
        return cmd_serve(argparse.Namespace(rest=argv[1:]))
    if argv[:2] == ["bench", "serve"]:  # deployments.bench's own options; it sits above the flows too
        os.execv(sys.executable, [sys.executable, "-m", "deployments.bench", *argv[2:]])
    args = build_parser().parse_args(argv)
    prepare_prefect_environment(args.verbose)
    if as_program:
        from eventsep.procs import exit_promptly_on_signals

        exit_promptly_on_signals()
        if args.command in FLOW_COMMANDS and not args.local:
            from flows.temporary_server import start_temporary_server

            start_temporary_server()
    warnings_shown = plain_warnings()
    warnings_shown.__enter__()
    from pydantic import ValidationError

    from eventsep.audio import AudioError
    from eventsep.backends import BackendUnavailable
    from eventsep.config import ParamError, one_line
    from eventsep.pipeline import NoSeparatorAvailable, NotCached

    from eventsep.settings import settings

    try:
        settings().cache_max_bytes  # a bad EVENTSEP_CACHE_MAX is one line before any work
        _use_weights(getattr(args, "weights", None))  # so is a bad --weights or EVENTSEP_WEIGHTS
        return args.run(args)
    except NoSeparatorAvailable as error:
        for event in error.events:
            print(f"event        {event['onset']:7.2f}-{event['offset']:7.2f} s  {event['label']}  "
                  f"p={event['peak']:.2f}")
        print(f"eventsep: {error}", file=sys.stderr)
        return EXIT_NO_SEPARATOR
    except NotCached as error:
        print(f"eventsep: {error}", file=sys.stderr)
        return EXIT_NOT_CACHED
    except (AudioError, ParamError, ValidationError, BackendUnavailable, ValueError) as error:
        print(f"eventsep: {one_line(error)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("eventsep: interrupted", file=sys.stderr)
        return 130
    except OSError as error:  # e.g. the disk filled up while writing: one line, not a traceback
        print(f"eventsep: {one_line(error)}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        warnings_shown.__exit__(None, None, None)


if __name__ == "__main__":
    sys.exit(main())
